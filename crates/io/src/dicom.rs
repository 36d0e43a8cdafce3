//! DICOM CT series reading (dicom-rs, pure-Rust codecs).
//!
//! Files are grouped by SeriesInstanceUID. A series becomes one [`Volume<i16>`] of Hounsfield units:
//! slices (single-frame files, or the frames of an enhanced multi-frame CT) are sorted along the slice
//! normal `n = row_direction x column_direction` by `ImagePositionPatient . n`, the spacing is checked
//! to be uniform (missing slices are reported, not interpolated) and positions must lie along `n`
//! (gantry tilt is refused rather than silently sheared). Stored values become HU through
//! RescaleSlope/RescaleIntercept, rounded and saturated to i16.
use crate::IoError;
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject, OpenFileOptions, Tag};
use dicom_pixeldata::{PixelDecoder, PixelRepresentation};
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};
use nodal_core::{Geometry, Volume, MAX_VOXELS};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// One series found under a path.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesInfo {
    /// The SeriesInstanceUID, or for files without one (anonymised data)
    /// `no-uid:<FrameOfReferenceUID>:<SeriesNumber>`; either selects the series in [`read_ct_series`].
    pub series_instance_uid: String,
    pub modality: Option<String>,
    pub series_description: Option<String>,
    pub series_number: Option<String>,
    /// Number of files of the series.
    pub n_files: usize,
    /// (columns, rows, frames in all files) — the volume dims if the series is read; `None` for
    /// objects without an image (structured reports, ...).
    pub dims: Option<[usize; 3]>,
    /// Transfer syntax UID of the first file.
    pub transfer_syntax: String,
    /// The files, sorted by path.
    pub files: Vec<PathBuf>,
}

/// Formats series one per line (used in error messages and `nodal info`).
pub fn format_series_list(series: &[SeriesInfo]) -> String {
    series
        .iter()
        .map(|s| {
            let dims = s.dims.map_or("no image".to_string(), |d| format!("{}x{}x{}", d[0], d[1], d[2]));
            format!(
                "  {}  modality {}  {} file(s)  {}  \"{}\"",
                s.series_instance_uid,
                s.modality.as_deref().unwrap_or("?"),
                s.n_files,
                dims,
                s.series_description.as_deref().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// DICOM identifiers of the series a CT volume came from (what a DICOM SEG/SR referencing it needs).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct DicomRefs {
    pub study_instance_uid: Option<String>,
    /// `None` when the files carry none (anonymised data).
    pub series_instance_uid: Option<String>,
    pub frame_of_reference_uid: Option<String>,
    pub sop_class_uid: Option<String>,
    /// One per k slice, in volume order (empty strings where a file has none). For an enhanced
    /// multi-frame CT every entry is the one multi-frame instance (the frame is then the k index).
    pub sop_instance_uids: Vec<String>,
    pub patient_name: Option<String>,
    pub patient_id: Option<String>,
    pub patient_birth_date: Option<String>,
    pub patient_sex: Option<String>,
    pub study_date: Option<String>,
    pub study_time: Option<String>,
    pub study_id: Option<String>,
    pub accession_number: Option<String>,
    pub referring_physician_name: Option<String>,
    pub series_number: Option<String>,
    pub series_description: Option<String>,
    pub manufacturer: Option<String>,
}

/// Geometry and value transform of one frame.
#[derive(Clone, Debug)]
struct FrameInfo {
    ipp: Option<[f64; 3]>,
    iop: Option<[f64; 6]>,
    /// (row spacing, column spacing) as stored: between rows (j), between columns (i).
    pixel_spacing: Option<[f64; 2]>,
    slice_thickness: Option<f64>,
    slope: f64,
    intercept: f64,
}

/// A parsed header (everything before PixelData).
struct FileHeader {
    path: PathBuf,
    obj: DefaultDicomObject,
    series_uid: String,
    rows: Option<usize>,
    cols: Option<usize>,
    frames: Vec<FrameInfo>,
}

fn get_str(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    let s = obj.get(tag)?.to_str().ok()?;
    let s = s.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    (!s.is_empty()).then(|| s.to_string())
}

fn get_f64s(obj: &InMemDicomObject, tag: Tag) -> Option<Vec<f64>> {
    obj.get(tag)?.to_multi_float64().ok().filter(|v| !v.is_empty())
}

fn get_f64(obj: &InMemDicomObject, tag: Tag) -> Option<f64> {
    get_f64s(obj, tag).map(|v| v[0])
}

fn first_item(obj: &InMemDicomObject, tag: Tag) -> Option<&InMemDicomObject> {
    obj.get(tag)?.items()?.first()
}

/// Frame attributes from a functional-group item (per-frame or shared), if present.
fn fg_attr<'a, T>(
    groups: &[Option<&'a InMemDicomObject>],
    seq: Tag,
    f: impl Fn(&'a InMemDicomObject) -> Option<T>,
) -> Option<T> {
    groups.iter().flatten().find_map(|g| first_item(g, seq).and_then(&f))
}

fn to_arr<const N: usize>(v: Option<Vec<f64>>) -> Option<[f64; N]> {
    v.filter(|v| v.len() >= N).map(|v| std::array::from_fn(|i| v[i]))
}

fn parse_frames(obj: &InMemDicomObject) -> Vec<FrameInfo> {
    let classic = FrameInfo {
        ipp: to_arr(get_f64s(obj, tags::IMAGE_POSITION_PATIENT)),
        iop: to_arr(get_f64s(obj, tags::IMAGE_ORIENTATION_PATIENT)),
        pixel_spacing: to_arr(get_f64s(obj, tags::PIXEL_SPACING)),
        slice_thickness: get_f64(obj, tags::SLICE_THICKNESS),
        slope: get_f64(obj, tags::RESCALE_SLOPE).unwrap_or(1.0),
        intercept: get_f64(obj, tags::RESCALE_INTERCEPT).unwrap_or(0.0),
    };
    let n_frames = get_str(obj, tags::NUMBER_OF_FRAMES).and_then(|s| s.parse::<usize>().ok()).unwrap_or(1);
    let per_frame = obj.get(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE).and_then(|e| e.items());
    let shared = first_item(obj, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE);
    if per_frame.is_none() && shared.is_none() {
        return vec![classic; n_frames.max(1)];
    }
    // Enhanced multi-frame: per-frame groups override shared ones, which override top-level attributes.
    (0..n_frames.max(1))
        .map(|f| {
            let groups = [per_frame.and_then(|p| p.get(f)), shared];
            FrameInfo {
                ipp: fg_attr(&groups, tags::PLANE_POSITION_SEQUENCE, |g| {
                    to_arr(get_f64s(g, tags::IMAGE_POSITION_PATIENT))
                })
                .or(classic.ipp),
                iop: fg_attr(&groups, tags::PLANE_ORIENTATION_SEQUENCE, |g| {
                    to_arr(get_f64s(g, tags::IMAGE_ORIENTATION_PATIENT))
                })
                .or(classic.iop),
                pixel_spacing: fg_attr(&groups, tags::PIXEL_MEASURES_SEQUENCE, |g| {
                    to_arr(get_f64s(g, tags::PIXEL_SPACING))
                })
                .or(classic.pixel_spacing),
                slice_thickness: fg_attr(&groups, tags::PIXEL_MEASURES_SEQUENCE, |g| {
                    get_f64(g, tags::SLICE_THICKNESS)
                })
                .or(classic.slice_thickness),
                slope: fg_attr(&groups, tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE, |g| {
                    get_f64(g, tags::RESCALE_SLOPE)
                })
                .unwrap_or(classic.slope),
                intercept: fg_attr(&groups, tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE, |g| {
                    get_f64(g, tags::RESCALE_INTERCEPT)
                })
                .unwrap_or(classic.intercept),
            }
        })
        .collect()
}

/// True when the file has the DICOM Part 10 preamble + "DICM" magic.
fn has_dicm_magic(path: &Path) -> bool {
    let mut buf = [0u8; 132];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut buf)).is_ok() && &buf[128..132] == b"DICM"
}

const DICOMDIR_CLASS: &str = "1.2.840.10008.1.3.10";

/// Parses the header of one file; `Ok(None)` for files that are not DICOM images of a series
/// (other files, DICOMDIR).
fn read_header(path: &Path) -> Result<Option<FileHeader>, IoError> {
    if !has_dicm_magic(path) {
        return Ok(None);
    }
    let obj = match OpenFileOptions::new().read_until(tags::PIXEL_DATA).open_file(path) {
        Ok(obj) => obj,
        Err(e) => {
            // A damaged DICOMDIR is no reason to refuse the images next to it: look at the file meta
            // alone (stop before the first data set element) and skip it if it is a directory.
            let meta_only = OpenFileOptions::new().read_until(Tag(0x0004, 0x0000)).open_file(path);
            if meta_only.is_ok_and(|o| {
                o.meta().media_storage_sop_class_uid().trim_end_matches('\0') == DICOMDIR_CLASS
            }) {
                return Ok(None);
            }
            return Err(IoError::dicom(path, e));
        }
    };
    if obj.meta().media_storage_sop_class_uid().trim_end_matches('\0') == DICOMDIR_CLASS {
        return Ok(None);
    }
    // Anonymised files may carry an empty SeriesInstanceUID: group those by frame of reference and
    // series number instead, under a key that `--series` accepts like a UID.
    let series_uid = get_str(&obj, tags::SERIES_INSTANCE_UID).unwrap_or_else(|| {
        format!(
            "no-uid:{}:{}",
            get_str(&obj, tags::FRAME_OF_REFERENCE_UID).unwrap_or_else(|| "-".into()),
            get_str(&obj, tags::SERIES_NUMBER).unwrap_or_else(|| "-".into())
        )
    });
    let rows = get_f64(&obj, tags::ROWS).map(|v| v as usize);
    let cols = get_f64(&obj, tags::COLUMNS).map(|v| v as usize);
    // Refuse absurd sizes before building per-frame records (NumberOfFrames comes from the file).
    let n_frames = get_str(&obj, tags::NUMBER_OF_FRAMES).and_then(|s| s.parse::<u64>().ok()).unwrap_or(1);
    let voxels = (rows.unwrap_or(1) as u64).saturating_mul(cols.unwrap_or(1) as u64).saturating_mul(n_frames);
    if voxels > MAX_VOXELS as u64 {
        return Err(IoError::InvalidDims {
            path: path.to_path_buf(),
            dims: vec![cols.unwrap_or(0) as i64, rows.unwrap_or(0) as i64, n_frames as i64],
            reason: format!("more than {MAX_VOXELS} voxels"),
        });
    }
    let frames = parse_frames(&obj);
    Ok(Some(FileHeader { path: path.to_path_buf(), obj, series_uid, rows, cols, frames }))
}

/// All regular files under `path` (recursively, sorted), or `path` itself when it is a file.
fn collect_files(path: &Path) -> Result<Vec<PathBuf>, IoError> {
    let meta = std::fs::metadata(path)
        .map_err(|source| IoError::Open { path: path.to_path_buf(), error: source })?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let rd =
            std::fs::read_dir(&dir).map_err(|source| IoError::Open { path: dir.clone(), error: source })?;
        for entry in rd {
            let entry = entry.map_err(|source| IoError::Open { path: dir.clone(), error: source })?;
            let p = entry.path();
            let ft = entry.file_type().map_err(|source| IoError::Open { path: p.clone(), error: source })?;
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() || (ft.is_symlink() && p.is_file()) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Headers of all DICOM image files, grouped by series (BTreeMap: deterministic order).
fn scan(origin: &Path, files: &[PathBuf]) -> Result<BTreeMap<String, Vec<FileHeader>>, IoError> {
    let headers: Vec<Option<FileHeader>> =
        files.par_iter().map(|p| read_header(p)).collect::<Result<_, _>>()?;
    let mut series: BTreeMap<String, Vec<FileHeader>> = BTreeMap::new();
    for h in headers.into_iter().flatten() {
        series.entry(h.series_uid.clone()).or_default().push(h);
    }
    if series.is_empty() {
        return Err(IoError::NoDicomFiles { path: origin.to_path_buf() });
    }
    Ok(series)
}

fn series_info(uid: &str, files: &[FileHeader]) -> SeriesInfo {
    let first = &files[0];
    let n_frames: usize = files.iter().map(|f| f.frames.len()).sum();
    SeriesInfo {
        series_instance_uid: uid.to_string(),
        modality: get_str(&first.obj, tags::MODALITY),
        series_description: get_str(&first.obj, tags::SERIES_DESCRIPTION),
        series_number: get_str(&first.obj, tags::SERIES_NUMBER),
        n_files: files.len(),
        dims: match (first.cols, first.rows) {
            (Some(c), Some(r)) => Some([c, r, n_frames]),
            _ => None,
        },
        transfer_syntax: first.obj.meta().transfer_syntax().trim_end_matches('\0').to_string(),
        files: files.iter().map(|f| f.path.clone()).collect(),
    }
}

/// Lists the series under a folder (recursively) or in a single file.
pub fn list_series(path: impl AsRef<Path>) -> Result<Vec<SeriesInfo>, IoError> {
    let path = path.as_ref();
    let files = collect_files(path)?;
    list_series_files(path, &files)
}

/// Lists the series in the given files; `origin` names them in errors.
pub fn list_series_files(origin: &Path, files: &[PathBuf]) -> Result<Vec<SeriesInfo>, IoError> {
    let series = scan(origin, files)?;
    Ok(series.iter().map(|(uid, f)| series_info(uid, f)).collect())
}

/// A CT volume in Hounsfield units with its provenance.
#[derive(Clone, Debug)]
pub struct CtScan {
    /// HU, LPS geometry.
    pub hu: Volume<i16>,
    /// DICOM identifiers when read from DICOM.
    pub dicom: Option<DicomRefs>,
    /// The file or folder it was read from.
    pub source: PathBuf,
}

/// Reads a CT series from a folder (recursive) or a single file. With `series_uid = None` the CT
/// series is picked automatically when there is exactly one; otherwise the error lists the series.
pub fn read_ct_series(path: impl AsRef<Path>, series_uid: Option<&str>) -> Result<CtScan, IoError> {
    let path = path.as_ref();
    let files = collect_files(path)?;
    read_ct_files(path, &files, series_uid)
}

/// Like [`read_ct_series`] over an explicit list of files; `origin` names the input in errors and in
/// [`CtScan::source`].
pub fn read_ct_files(origin: &Path, files: &[PathBuf], series_uid: Option<&str>) -> Result<CtScan, IoError> {
    let mut series = scan(origin, files)?;
    let infos: Vec<SeriesInfo> = series.iter().map(|(uid, f)| series_info(uid, f)).collect();
    let uid = match series_uid {
        Some(uid) => {
            if !series.contains_key(uid) {
                return Err(IoError::SeriesNotFound {
                    path: origin.to_path_buf(),
                    series_uid: uid.to_string(),
                    available: infos,
                });
            }
            uid.to_string()
        }
        None => {
            let ct: Vec<&SeriesInfo> =
                infos.iter().filter(|s| s.modality.as_deref() == Some("CT") && s.dims.is_some()).collect();
            match ct.len() {
                1 => ct[0].series_instance_uid.clone(),
                0 => {
                    // One image series of another modality: name it; otherwise list what is there.
                    let images: Vec<&SeriesInfo> = infos.iter().filter(|s| s.dims.is_some()).collect();
                    if images.len() == 1 {
                        let s = images[0];
                        return Err(IoError::NotCt {
                            path: origin.to_path_buf(),
                            series_uid: s.series_instance_uid.clone(),
                            modality: s.modality.clone().unwrap_or_else(|| "(none)".into()),
                        });
                    }
                    return Err(IoError::NoCtSeries { path: origin.to_path_buf(), series: infos });
                }
                _ => {
                    return Err(IoError::AmbiguousSeries {
                        path: origin.to_path_buf(),
                        series: ct.into_iter().cloned().collect(),
                    })
                }
            }
        }
    };
    let files = series.remove(&uid).expect("uid checked above");
    let modality = get_str(&files[0].obj, tags::MODALITY);
    if modality.as_deref() != Some("CT") {
        return Err(IoError::NotCt {
            path: origin.to_path_buf(),
            series_uid: uid,
            modality: modality.unwrap_or_else(|| "(none)".into()),
        });
    }
    let (hu, refs) = assemble(origin, &uid, files)?;
    Ok(CtScan { hu, dicom: Some(refs), source: origin.to_path_buf() })
}

/// One slice of the volume: which file/frame, and where.
struct SliceRef {
    file: usize,
    frame: u32,
    pos_mm: f64,
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}
fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}
fn normalized(a: [f64; 3]) -> [f64; 3] {
    let n = dot(a, a).sqrt();
    [a[0] / n, a[1] / n, a[2] / n]
}

/// Sorts, checks and decodes the slices of one series.
fn assemble(origin: &Path, uid: &str, files: Vec<FileHeader>) -> Result<(Volume<i16>, DicomRefs), IoError> {
    let inconsistent = |reason: String| IoError::InconsistentSeries {
        path: origin.to_path_buf(),
        series_uid: uid.to_string(),
        reason,
    };
    let f0 = &files[0];
    let (Some(rows), Some(cols)) = (f0.rows, f0.cols) else {
        return Err(IoError::dicom(&f0.path, "no Rows/Columns: not an image"));
    };
    let frame0 = &f0.frames[0];
    let iop = frame0.iop.ok_or_else(|| IoError::dicom(&f0.path, "no ImageOrientationPatient"))?;
    let ps = frame0.pixel_spacing.ok_or_else(|| IoError::dicom(&f0.path, "no PixelSpacing"))?;
    let row_dir = normalized([iop[0], iop[1], iop[2]]);
    let col_dir = normalized([iop[3], iop[4], iop[5]]);
    let normal = normalized(cross(row_dir, col_dir));
    if normal.iter().any(|v| !v.is_finite()) || ps.iter().any(|v| !v.is_finite() || *v <= 0.0) {
        return Err(IoError::InvalidGeometry {
            path: f0.path.clone(),
            reason: format!("ImageOrientationPatient {iop:?} / PixelSpacing {ps:?}"),
        });
    }
    let mut slices = Vec::new();
    let mut positions = Vec::new();
    for (fi, f) in files.iter().enumerate() {
        if f.rows != Some(rows) || f.cols != Some(cols) {
            return Err(inconsistent(format!(
                "{} is {:?}x{:?}, {} is {cols}x{rows}",
                f.path.display(),
                f.cols,
                f.rows,
                f0.path.display()
            )));
        }
        for (fr, info) in f.frames.iter().enumerate() {
            let ipp = info.ipp.ok_or_else(|| IoError::dicom(&f.path, "no ImagePositionPatient"))?;
            if ipp.iter().any(|v| !v.is_finite()) {
                return Err(IoError::InvalidGeometry {
                    path: f.path.clone(),
                    reason: format!("ImagePositionPatient {ipp:?}"),
                });
            }
            let same_iop =
                info.iop.is_some_and(|o| o.iter().zip(iop.iter()).all(|(a, b)| (a - b).abs() < 1e-4));
            if !same_iop {
                return Err(inconsistent(format!(
                    "ImageOrientationPatient {:?} in {} differs from {iop:?} in {}",
                    info.iop,
                    f.path.display(),
                    f0.path.display()
                )));
            }
            let same_ps = info
                .pixel_spacing
                .is_some_and(|p| p.iter().zip(ps.iter()).all(|(a, b)| (a - b).abs() < 1e-4));
            if !same_ps {
                return Err(inconsistent(format!(
                    "PixelSpacing {:?} in {} differs from {ps:?}",
                    info.pixel_spacing,
                    f.path.display()
                )));
            }
            slices.push(SliceRef { file: fi, frame: fr as u32, pos_mm: dot(ipp, normal) });
            positions.push(ipp);
        }
    }
    let nk = slices.len();
    let dims = [cols, rows, nk];
    if dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).is_none_or(|n| n > MAX_VOXELS || n == 0) {
        return Err(IoError::InvalidDims {
            path: origin.to_path_buf(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            reason: format!("zero or more than {MAX_VOXELS} voxels"),
        });
    }
    // Sort along the normal, carrying the positions along.
    let mut order: Vec<usize> = (0..nk).collect();
    order.sort_by(|&a, &b| slices[a].pos_mm.total_cmp(&slices[b].pos_mm));
    let slices: Vec<SliceRef> = {
        let mut tmp: Vec<Option<SliceRef>> = slices.into_iter().map(Some).collect();
        order.iter().map(|&i| tmp[i].take().expect("permutation")).collect()
    };
    let positions: Vec<[f64; 3]> = order.iter().map(|&i| positions[i]).collect();

    let mut spacing_k = frame0.slice_thickness.filter(|t| t.is_finite() && *t > 0.0).unwrap_or(1.0);
    if nk > 1 {
        for w in slices.windows(2) {
            if (w[1].pos_mm - w[0].pos_mm).abs() < 1e-3 {
                return Err(inconsistent(format!(
                    "two slices at the same position {:.3} mm ({} and {})",
                    w[0].pos_mm,
                    files[w[0].file].path.display(),
                    files[w[1].file].path.display()
                )));
            }
        }
        // Gantry tilt: the offset of each slice from the first must be along the normal.
        let p0 = positions[0];
        for p in &positions[1..] {
            let d = [p[0] - p0[0], p[1] - p0[1], p[2] - p0[2]];
            let along = dot(d, normal);
            let lateral = {
                let l = [d[0] - along * normal[0], d[1] - along * normal[1], d[2] - along * normal[2]];
                dot(l, l).sqrt()
            };
            if lateral > 0.05 + 1e-3 * along.abs() {
                return Err(IoError::GantryTilt {
                    path: origin.to_path_buf(),
                    series_uid: uid.to_string(),
                    tilt_deg: lateral.atan2(along.abs()).to_degrees(),
                });
            }
        }
        let gaps: Vec<f64> = slices.windows(2).map(|w| w[1].pos_mm - w[0].pos_mm).collect();
        let step = gaps.iter().copied().fold(f64::INFINITY, f64::min);
        let tol = (0.01 * step).max(0.005);
        for (g, w) in gaps.iter().zip(slices.windows(2)) {
            let m = (g / step).round();
            if (g - m * step).abs() > tol * m {
                return Err(IoError::NonUniformSpacing {
                    path: origin.to_path_buf(),
                    series_uid: uid.to_string(),
                    spacing_mm: step,
                    gap_mm: *g,
                    before_mm: w[0].pos_mm,
                });
            }
            if m >= 2.0 {
                return Err(IoError::MissingSlices {
                    path: origin.to_path_buf(),
                    series_uid: uid.to_string(),
                    spacing_mm: step,
                    before_mm: w[0].pos_mm,
                    after_mm: w[1].pos_mm,
                    missing: m as usize - 1,
                });
            }
        }
        spacing_k = (slices[nk - 1].pos_mm - slices[0].pos_mm) / (nk - 1) as f64;
    }
    let geometry = Geometry {
        // PixelSpacing is (between rows, between columns) = (j, i).
        spacing_mm: [ps[1], ps[0], spacing_k],
        origin_mm: positions[0],
        direction: [row_dir, col_dir, normal],
    };
    geometry
        .validate()
        .map_err(|e| IoError::InvalidGeometry { path: f0.path.clone(), reason: e.to_string() })?;

    // Decode. Multi-frame files are opened once and shared; single-frame files are opened inside the
    // parallel loop so that only the slices being decoded sit in memory.
    let multi: Vec<Option<DefaultDicomObject>> = files
        .par_iter()
        .map(|f| if f.frames.len() > 1 { open_full(&f.path).map(Some) } else { Ok(None) })
        .collect::<Result<_, _>>()?;
    let mut data = vec![0i16; cols * rows * nk];
    data.par_chunks_mut(cols * rows).zip(slices.par_iter()).try_for_each(|(out, s)| {
        let f = &files[s.file];
        let info = &f.frames[s.frame as usize];
        match &multi[s.file] {
            Some(obj) => decode_frame(obj, &f.path, s.frame, rows, cols, info, out),
            None => decode_frame(&open_full(&f.path)?, &f.path, s.frame, rows, cols, info, out),
        }
    })?;
    let array = ndarray::Array3::from_shape_vec([nk, rows, cols], data).expect("sizes match");
    let hu = Volume::new(array, geometry)
        .map_err(|e| IoError::InvalidGeometry { path: origin.to_path_buf(), reason: e.to_string() })?;

    let first = &files[slices[0].file].obj;
    let refs = DicomRefs {
        study_instance_uid: get_str(first, tags::STUDY_INSTANCE_UID),
        series_instance_uid: get_str(first, tags::SERIES_INSTANCE_UID),
        frame_of_reference_uid: get_str(first, tags::FRAME_OF_REFERENCE_UID),
        sop_class_uid: get_str(first, tags::SOP_CLASS_UID),
        sop_instance_uids: slices
            .iter()
            .map(|s| {
                // Anonymised series often blank the data set's SOP Instance UID; the file meta
                // group still names the instance.
                let obj = &files[s.file].obj;
                get_str(obj, tags::SOP_INSTANCE_UID)
                    .or_else(|| {
                        let m = obj.meta().media_storage_sop_instance_uid();
                        let m = m.trim_matches(|c: char| c == '\0' || c.is_whitespace());
                        (!m.is_empty()).then(|| m.to_string())
                    })
                    .unwrap_or_default()
            })
            .collect(),
        patient_name: get_str(first, tags::PATIENT_NAME),
        patient_id: get_str(first, tags::PATIENT_ID),
        patient_birth_date: get_str(first, tags::PATIENT_BIRTH_DATE),
        patient_sex: get_str(first, tags::PATIENT_SEX),
        study_date: get_str(first, tags::STUDY_DATE),
        study_time: get_str(first, tags::STUDY_TIME),
        study_id: get_str(first, tags::STUDY_ID),
        accession_number: get_str(first, tags::ACCESSION_NUMBER),
        referring_physician_name: get_str(first, tags::REFERRING_PHYSICIAN_NAME),
        series_number: get_str(first, tags::SERIES_NUMBER),
        series_description: get_str(first, tags::SERIES_DESCRIPTION),
        manufacturer: get_str(first, tags::MANUFACTURER),
    };
    Ok((hu, refs))
}

/// Opens a whole file, refusing transfer syntaxes whose pixel data cannot be decoded.
fn open_full(path: &Path) -> Result<DefaultDicomObject, IoError> {
    let obj = dicom_object::open_file(path).map_err(|e| IoError::dicom(path, e))?;
    let uid = obj.meta().transfer_syntax().trim_end_matches('\0').to_string();
    let unsupported = |name: &str| IoError::UnsupportedTransferSyntax {
        path: path.to_path_buf(),
        uid: uid.clone(),
        name: name.to_string(),
    };
    match TransferSyntaxRegistry.get(&uid) {
        None => return Err(unsupported("unknown")),
        Some(ts) => {
            // Big endian is retired and its decoded byte order is not something we verify: refuse.
            if !ts.can_decode_all() || uid == "1.2.840.10008.1.2.2" {
                return Err(unsupported(ts.name()));
            }
        }
    }
    Ok(obj)
}

/// Decodes one frame into `out` (rows x cols, i fastest) as HU.
fn decode_frame(
    obj: &DefaultDicomObject,
    path: &Path,
    frame: u32,
    rows: usize,
    cols: usize,
    info: &FrameInfo,
    out: &mut [i16],
) -> Result<(), IoError> {
    let px = obj
        .decode_pixel_data_frame(frame)
        .map_err(|e| IoError::PixelDecode { path: path.to_path_buf(), reason: e.to_string() })?;
    let bad = |reason: String| IoError::PixelDecode { path: path.to_path_buf(), reason };
    if px.samples_per_pixel() != 1 {
        return Err(bad(format!("{} samples per pixel; a CT has 1", px.samples_per_pixel())));
    }
    if px.rows() as usize != rows || px.columns() as usize != cols {
        return Err(bad(format!("decoded {}x{}, header says {cols}x{rows}", px.columns(), px.rows())));
    }
    let bytes = px.data();
    let n = rows * cols;
    let alloc = px.bits_allocated() as usize;
    let stored = (px.bits_stored() as usize).clamp(1, alloc.max(1));
    let signed = px.pixel_representation() == PixelRepresentation::Signed;
    let need = n * alloc / 8;
    if !matches!(alloc, 8 | 16 | 32) || bytes.len() < need {
        return Err(bad(format!("{} bytes for {n} pixels of {alloc} bits", bytes.len())));
    }
    // Only the low `bits_stored` bits are the value; sign-extend from there when signed.
    let mask: u64 = if stored >= 64 { u64::MAX } else { (1u64 << stored) - 1 };
    let sign_bit = 1u64 << (stored - 1);
    let value = |raw: u64| -> f64 {
        let v = raw & mask;
        if signed && v & sign_bit != 0 {
            (v as i64 - (1i64 << stored)) as f64
        } else {
            v as f64
        }
    };
    let (slope, intercept) = (info.slope, info.intercept);
    let hu = |v: f64| -> i16 { (v * slope + intercept).round() as i16 }; // `as` saturates
    match alloc {
        8 => out.iter_mut().zip(bytes).for_each(|(o, &b)| *o = hu(value(b as u64))),
        16 => out
            .iter_mut()
            .zip(bytes.chunks_exact(2))
            .for_each(|(o, c)| *o = hu(value(u16::from_le_bytes([c[0], c[1]]) as u64))),
        _ => out
            .iter_mut()
            .zip(bytes.chunks_exact(4))
            .for_each(|(o, c)| *o = hu(value(u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as u64))),
    }
    Ok(())
}
