//! DICOM CT series reading (dicom-rs, pure-Rust codecs).
//!
//! Files are grouped by SeriesInstanceUID. A series becomes one [`Volume<i16>`] of Hounsfield units:
//! slices (single-frame files, or the frames of an enhanced multi-frame CT) are sorted along the slice
//! normal `n = row_direction x column_direction` by `ImagePositionPatient . n`, the spacing is checked
//! to be uniform (missing slices are reported, not interpolated) and positions must lie along `n`
//! (gantry tilt is refused rather than silently sheared). Stored values become HU through
//! RescaleSlope/RescaleIntercept, rounded and saturated to i16.
//!
//! Nothing in a file is trusted before it is checked: declared element lengths against the file's size
//! (before the parser allocates them), image sizes against [`MAX_VOXELS`] and the pixel data the file
//! holds (before the volume is allocated), and the codecs' work is fenced so that a panic on corrupt
//! compressed data becomes [`IoError::CorruptPixelData`] for that file.
use crate::{IoError, MAX_VOXELS};
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject, OpenFileOptions, Tag};
use dicom_pixeldata::{PixelDecoder, PixelRepresentation};
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};
use nodal_core::{Geometry, Volume};
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
    pub study_instance_uid: Option<String>,
    /// ImageType of the first file, as stored (`ORIGINAL\\PRIMARY\\LOCALIZER`, say).
    pub image_type: Option<String>,
    pub sop_class_uid: Option<String>,
    /// Whether the slices are axial (their normal within 45 degrees of the patient's S-I axis);
    /// `None` without ImageOrientationPatient.
    pub axial: Option<bool>,
}

impl SeriesInfo {
    /// Slices (frames) of an image series; 0 for objects without an image.
    pub fn n_slices(&self) -> usize {
        self.dims.map_or(0, |d| d[2])
    }

    /// A CT series with an image (not, say, a CT dose report without Rows).
    pub fn is_ct_image(&self) -> bool {
        self.modality.as_deref() == Some("CT") && self.dims.is_some()
    }

    /// Why this series cannot be the CT volume to segment, when it is not one (a scout, a secondary
    /// capture, a single slice, non-axial slices); `None` for a candidate axial CT volume.
    pub fn not_a_volume(&self) -> Option<&'static str> {
        let image_type = self.image_type.as_deref().unwrap_or("").to_ascii_uppercase();
        if !self.is_ct_image() {
            Some("not a CT image")
        } else if image_type.split('\\').any(|v| v.trim() == "LOCALIZER") {
            Some("localizer")
        } else if self.sop_class_uid.as_deref().is_some_and(|c| c.starts_with(SECONDARY_CAPTURE_CLASS)) {
            Some("secondary capture")
        } else if self.n_slices() < 2 {
            Some("a single slice")
        } else if self.axial == Some(false) {
            Some("not axial")
        } else {
            None
        }
    }
}

/// SOP classes of secondary captures (`1.2.840.10008.5.1.4.1.1.7` and its multi-frame kinds
/// `.7.1` ... `.7.4`): screenshots and key images, never the CT volume.
const SECONDARY_CAPTURE_CLASS: &str = "1.2.840.10008.5.1.4.1.1.7";

/// How the series read from a folder of several was chosen (printed by the commands and recorded
/// in their outputs).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SeriesChoice {
    pub series_instance_uid: String,
    pub series_description: Option<String>,
    pub n_slices: usize,
    /// Every series found, the chosen one included.
    pub n_series: usize,
    /// One sentence: the rule that chose it and what was set aside.
    pub reason: String,
}

/// Chooses the CT volume among several series of one study: the axial CT series with the most
/// slices, localizers, secondary captures and single slices set aside. `Err` with the CT series
/// when the choice is not clear: CT images of several studies, no candidate, or a tie for the most
/// slices.
fn choose_series(infos: &[SeriesInfo]) -> Result<SeriesChoice, Vec<SeriesInfo>> {
    let candidates: Vec<&SeriesInfo> = infos.iter().filter(|s| s.not_a_volume().is_none()).collect();
    // Every CT image counts here, scouts included: a folder mixing patients or studies is never
    // resolved by slice counts.
    let studies: std::collections::BTreeSet<Option<&str>> =
        infos.iter().filter(|s| s.is_ct_image()).map(|s| s.study_instance_uid.as_deref()).collect();
    let most = candidates.iter().map(|s| s.n_slices()).max().unwrap_or(0);
    let top: Vec<&&SeriesInfo> = candidates.iter().filter(|s| s.n_slices() == most).collect();
    let ct_images = || infos.iter().filter(|s| s.is_ct_image()).cloned().collect();
    if studies.len() != 1 || top.len() != 1 {
        return Err(ct_images());
    }
    let chosen = top[0];
    let set_aside: Vec<String> = infos
        .iter()
        .filter(|s| s.series_instance_uid != chosen.series_instance_uid)
        .map(|s| {
            let why = s.not_a_volume().unwrap_or("fewer slices");
            format!("{} ({why})", s.series_description.as_deref().unwrap_or(&s.series_instance_uid))
        })
        .collect();
    Ok(SeriesChoice {
        series_instance_uid: chosen.series_instance_uid.clone(),
        series_description: chosen.series_description.clone(),
        n_slices: chosen.n_slices(),
        n_series: infos.len(),
        reason: format!(
            "the axial CT volume with the most slices ({}) of {} series; set aside: {}",
            chosen.n_slices(),
            infos.len(),
            set_aside.join(", ")
        ),
    })
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
    /// InstanceNumber of each k slice, in volume order (what a PACS viewer shows as the image
    /// number); for an enhanced multi-frame CT the frame number (1-based). `None` where absent.
    pub instance_numbers: Vec<Option<i64>>,
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
    /// SliceThickness of the first slice, mm (nominal reconstructed thickness, which may differ
    /// from the spacing between slices); `None` when absent or not positive.
    pub slice_thickness_mm: Option<f64>,
}

/// Geometry and value transform of one frame.
#[derive(Clone, Debug)]
struct FrameInfo {
    ipp: Option<[f64; 3]>,
    iop: Option<[f64; 6]>,
    /// (row spacing, column spacing) as stored: between rows (j), between columns (i).
    pixel_spacing: Option<[f64; 2]>,
    slice_thickness: Option<f64>,
    /// RescaleSlope / RescaleIntercept as stored; `None` when absent (checked in [`assemble`]).
    slope: Option<f64>,
    intercept: Option<f64>,
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

/// Per-frame geometry and rescale of an object with `n_frames` frames (checked by the caller against
/// the file's size and [`MAX_FRAMES`], since one record is built per frame).
fn parse_frames(obj: &InMemDicomObject, n_frames: usize) -> Vec<FrameInfo> {
    let classic = FrameInfo {
        ipp: to_arr(get_f64s(obj, tags::IMAGE_POSITION_PATIENT)),
        iop: to_arr(get_f64s(obj, tags::IMAGE_ORIENTATION_PATIENT)),
        pixel_spacing: to_arr(get_f64s(obj, tags::PIXEL_SPACING)),
        slice_thickness: get_f64(obj, tags::SLICE_THICKNESS),
        slope: get_f64(obj, tags::RESCALE_SLOPE),
        intercept: get_f64(obj, tags::RESCALE_INTERCEPT),
    };
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
                .or(classic.slope),
                intercept: fg_attr(&groups, tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE, |g| {
                    get_f64(g, tags::RESCALE_INTERCEPT)
                })
                .or(classic.intercept),
            }
        })
        .collect()
}

/// The StudyInstanceUID of a DICOM image file (`None` when it has none); a DICOMDIR or other
/// non-image file reads as `None`. The header is checked as for reading a series.
pub(crate) fn study_uid_of(path: &Path) -> Result<Option<String>, IoError> {
    Ok(read_header(path)?.and_then(|h| get_str(&h.obj, tags::STUDY_INSTANCE_UID)))
}

/// True when the file has the DICOM Part 10 preamble + "DICM" magic (DICOMDIR included).
pub(crate) fn has_dicm_magic(path: &Path) -> bool {
    let mut buf = [0u8; 132];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut buf)).is_ok() && &buf[128..132] == b"DICM"
}

const DICOMDIR_CLASS: &str = "1.2.840.10008.1.3.10";

/// Whether the first KiB of the file (the file meta, where MediaStorageSOPClassUID sits) holds the
/// directory's SOP class UID as a whole value (not followed by another UID character: a value of
/// even length has no padding, the next element's tag follows), without parsing anything.
fn meta_bytes_name_dicomdir(path: &Path) -> bool {
    let mut head = Vec::with_capacity(1024);
    if std::fs::File::open(path).and_then(|f| f.take(1024).read_to_end(&mut head)).is_err() {
        return false;
    }
    let uid = DICOMDIR_CLASS.as_bytes();
    head.windows(uid.len()).enumerate().any(|(at, w)| {
        w == uid && head.get(at + uid.len()).is_none_or(|&b| !(b.is_ascii_digit() || b == b'.'))
    })
}

/// Most frames one file may declare. One small record is built per frame from the header, so the count
/// is bounded before that (an enhanced CT has a few thousand; 2^31 would ask for hundreds of GB).
pub(crate) const MAX_FRAMES: u64 = 1 << 16;

/// Transfer syntaxes whose pixel data is stored as is (its length is known from the image size).
fn is_native(ts: &str) -> bool {
    matches!(ts, "1.2.840.10008.1.2" | "1.2.840.10008.1.2.1" | "1.2.840.10008.1.2.2")
}
const RLE_LOSSLESS: &str = "1.2.840.10008.1.2.5";
const DEFLATED: &str = "1.2.840.10008.1.2.1.99";

fn transfer_syntax(obj: &DefaultDicomObject) -> String {
    obj.meta().transfer_syntax().trim_end_matches(['\0', ' ']).to_string()
}

/// An unsigned integer attribute (Rows, BitsAllocated, ...).
fn get_uint(obj: &InMemDicomObject, tag: Tag) -> Option<u64> {
    let v = get_f64(obj, tag)?;
    (v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v <= u32::MAX as f64).then_some(v as u64)
}

/// Bytes of native pixel data for an image of this size (bit-packed when 1 bit is allocated).
fn native_pixel_bytes(rows: u64, cols: u64, frames: u64, samples: u64, bits: u64) -> u64 {
    let n = rows * cols * frames * samples;
    if bits == 1 {
        n.div_ceil(8)
    } else {
        n * bits.div_ceil(8)
    }
}

/// Parses the header of one file; `Ok(None)` for files that are not DICOM images of a series
/// (other files, DICOMDIR).
fn read_header(path: &Path) -> Result<Option<FileHeader>, IoError> {
    if !has_dicm_magic(path) {
        return Ok(None);
    }
    // A damaged DICOMDIR is no reason to refuse the images next to it: look at the file meta alone
    // (stop before the first data set element) and skip it if it is a directory.
    let is_dicomdir = || {
        let meta_only = OpenFileOptions::new().read_until(Tag(0x0004, 0x0000)).open_file(path);
        meta_only
            .is_ok_and(|o| o.meta().media_storage_sop_class_uid().trim_end_matches('\0') == DICOMDIR_CLASS)
    };
    // Before the parser sees the file: every declared length must fit in it (see `dicom_lengths`).
    // When one does not, the parser must not see even the file meta (a bad length there makes it
    // reserve that much): a directory is recognised from the meta's bytes instead.
    let layout = match crate::dicom_lengths::check(path) {
        Ok(layout) => layout,
        Err(_) if meta_bytes_name_dicomdir(path) => return Ok(None),
        Err(reason) => return Err(IoError::dicom(path, reason)),
    };
    let obj = match OpenFileOptions::new().read_until(tags::PIXEL_DATA).open_file(path) {
        Ok(obj) => obj,
        Err(_) if is_dicomdir() => return Ok(None),
        Err(e) => return Err(IoError::dicom(path, e)),
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
    let (rows, cols, n_frames) = check_image_size(path, &obj, layout.pixel_data_len)?;
    let frames = parse_frames(&obj, n_frames);
    Ok(Some(FileHeader { path: path.to_path_buf(), obj, series_uid, rows, cols, frames }))
}

/// Rows, Columns and NumberOfFrames of an object, checked before anything is sized by them: present
/// together, non-zero, within [`MAX_VOXELS`] and [`MAX_FRAMES`], and (native pixel data) matching the
/// PixelData length the file declares and holds. Objects without an image (no Rows/Columns) pass
/// with one frame.
fn check_image_size(
    path: &Path,
    obj: &DefaultDicomObject,
    pixel_data_len: Option<u64>,
) -> Result<(Option<usize>, Option<usize>, usize), IoError> {
    let rows = get_uint(obj, tags::ROWS);
    let cols = get_uint(obj, tags::COLUMNS);
    let frames_attr = get_str(obj, tags::NUMBER_OF_FRAMES);
    let n_frames = match &frames_attr {
        None => 1,
        Some(s) => match s.parse::<u64>() {
            Ok(n) if n >= 1 => n,
            _ => {
                return Err(IoError::dicom(path, format!("NumberOfFrames \"{s}\" is not a positive integer")))
            }
        },
    };
    let bad_dims = |reason: String| IoError::InvalidDims {
        path: path.to_path_buf(),
        dims: vec![
            cols.map_or(-1, |c| c as i64),
            rows.map_or(-1, |r| r as i64),
            n_frames.min(i64::MAX as u64) as i64,
        ],
        reason,
    };
    let (rows, cols) = match (rows, cols) {
        (None, None) if n_frames > 1 => {
            return Err(bad_dims(format!("NumberOfFrames {n_frames} but no Rows/Columns")));
        }
        (None, None) => return Ok((None, None, 1)),
        (Some(r), Some(c)) if r > 0 && c > 0 => (r, c),
        _ => return Err(bad_dims("Rows and Columns must both be present and non-zero".into())),
    };
    let voxels = rows.saturating_mul(cols).saturating_mul(n_frames);
    if voxels > MAX_VOXELS as u64 {
        return Err(bad_dims(format!(
            "{cols} x {rows} x {n_frames} = {voxels} voxels exceeds nodal's limit of {MAX_VOXELS} voxels"
        )));
    }
    if n_frames > MAX_FRAMES {
        return Err(bad_dims(format!("{n_frames} frames; nodal reads at most {MAX_FRAMES} per file")));
    }
    let ts = transfer_syntax(obj);
    let file_len =
        std::fs::metadata(path).map_err(|error| IoError::Open { path: path.to_path_buf(), error })?.len();
    // Type 1 in the Image Pixel module, and what the pixel data's size follows from.
    let bits = get_uint(obj, tags::BITS_ALLOCATED)
        .ok_or_else(|| IoError::dicom(path, "image without BitsAllocated"))?;
    let samples = get_uint(obj, tags::SAMPLES_PER_PIXEL)
        .ok_or_else(|| IoError::dicom(path, "image without SamplesPerPixel"))?;
    if !matches!(bits, 1 | 8 | 16 | 32 | 64) || !(1..=4).contains(&samples) {
        return Err(IoError::dicom(path, format!("BitsAllocated {bits}, SamplesPerPixel {samples}")));
    }
    if is_native(&ts) {
        let expected = native_pixel_bytes(rows, cols, n_frames, samples, bits);
        let size_error = |found| IoError::DataSizeMismatch {
            path: path.to_path_buf(),
            expected_bytes: expected,
            found_bytes: found,
        };
        match pixel_data_len {
            // PixelData is padded to an even length.
            Some(found) if found != expected && found != expected + (expected % 2) => {
                return Err(size_error(found))
            }
            Some(_) => {}
            // The length walk stopped before PixelData (a structure it leaves to the parser): the file
            // must at least be long enough to hold it.
            None if file_len < expected => return Err(size_error(file_len)),
            None => {}
        }
    } else if ts != DEFLATED && n_frames.saturating_mul(8) > file_len {
        // Each encapsulated frame takes at least one 8-byte item.
        return Err(bad_dims(format!("{n_frames} frames cannot fit in a file of {file_len} bytes")));
    }
    Ok((Some(rows as usize), Some(cols as usize), n_frames as usize))
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
        study_instance_uid: get_str(&first.obj, tags::STUDY_INSTANCE_UID),
        image_type: get_str(&first.obj, tags::IMAGE_TYPE),
        sop_class_uid: get_str(&first.obj, tags::SOP_CLASS_UID).or_else(|| {
            Some(first.obj.meta().media_storage_sop_class_uid().trim_end_matches('\0').to_string())
        }),
        axial: first.frames.first().and_then(|f| f.iop).map(|o| {
            let n = cross([o[0], o[1], o[2]], [o[3], o[4], o[5]]);
            let norm = dot(n, n).sqrt();
            norm > 0.0 && (n[2] / norm).abs() >= std::f64::consts::FRAC_1_SQRT_2
        }),
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
    /// Things accepted with an assumption the user should know of (a DICOM CT without
    /// RescaleIntercept whose values are evidently HU already, say), one sentence each, naming the file.
    /// Empty for a clean read; the library does not print them.
    pub warnings: Vec<String>,
    /// How the series was chosen when the folder held several CT series and none was named.
    pub series_choice: Option<SeriesChoice>,
}

/// Reads a CT series from a folder (recursive) or a single file. With `series_uid = None` the CT
/// series is picked automatically: the only one, or among several of one study the axial CT volume
/// with the most slices (localizers, secondary captures and single slices set aside; recorded in
/// [`CtScan::series_choice`]); when that is not clear the error lists the series.
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
    let mut choice = None;
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
            let ct: Vec<&SeriesInfo> = infos.iter().filter(|s| s.is_ct_image()).collect();
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
                _ => match choose_series(&infos) {
                    Ok(c) => {
                        let uid = c.series_instance_uid.clone();
                        choice = Some(c);
                        uid
                    }
                    Err(series) => {
                        return Err(IoError::AmbiguousSeries { path: origin.to_path_buf(), series })
                    }
                },
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
    let (hu, refs, warnings) = assemble(origin, &uid, files)?;
    Ok(CtScan { hu, dicom: Some(refs), source: origin.to_path_buf(), warnings, series_choice: choice })
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
fn assemble(
    origin: &Path,
    uid: &str,
    files: Vec<FileHeader>,
) -> Result<(Volume<i16>, DicomRefs, Vec<String>), IoError> {
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
            let side = |v: Option<usize>| v.map_or_else(|| "(missing)".to_string(), |v| v.to_string());
            return Err(inconsistent(format!(
                "{} is {}x{} (Columns x Rows), {} is {cols}x{rows}",
                f.path.display(),
                side(f.cols),
                side(f.rows),
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
    crate::check_ct_spacing(origin, &geometry)?;

    // What can be refused from the headers is refused before anything is decoded.
    for f in &files {
        check_transfer_syntax(&f.path, &transfer_syntax(&f.obj))?;
    }
    let mut warnings = Vec::new();
    let lacks_intercept = check_rescale(&files, &mut warnings)?;

    // Decode. Multi-frame files are opened once and shared; single-frame files are opened inside the
    // parallel loop so that only the slices being decoded sit in memory.
    let multi: Vec<Option<DefaultDicomObject>> = files
        .par_iter()
        .map(|f| if f.frames.len() > 1 { open_full(&f.path).map(Some) } else { Ok(None) })
        .collect::<Result<_, _>>()?;
    let mut data = vec![0i16; cols * rows * nk];
    let negative_without_intercept = std::sync::atomic::AtomicBool::new(false);
    data.par_chunks_mut(cols * rows).zip(slices.par_iter()).try_for_each(|(out, s)| {
        let f = &files[s.file];
        let frame =
            Frame { index: s.frame, of: f.frames.len(), rows, cols, info: &f.frames[s.frame as usize] };
        let negative = match &multi[s.file] {
            Some(obj) => decode_frame(obj, &f.path, &frame, out),
            None => decode_frame(&open_full(&f.path)?, &f.path, &frame, out),
        }?;
        if negative && lacks_intercept[s.file] {
            negative_without_intercept.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Ok::<(), IoError>(())
    })?;
    if let Some(fi) = lacks_intercept.iter().position(|&l| l) {
        // Signed stored values with negatives present can only be HU already (a CT's raw detector
        // numbers are not negative); anything else would be read 1024 HU too high, or worse.
        if !negative_without_intercept.into_inner() {
            return Err(IoError::MissingRescale {
                path: files[fi].path.clone(),
                missing: "RescaleIntercept".into(),
            });
        }
        let n = lacks_intercept.iter().filter(|&&l| l).count();
        warnings.push(format!(
            "{}: {n} of {} file(s) have no RescaleIntercept (first: {}); their stored values are signed \
             and include negatives, so they were read as HU already (intercept 0, slope 1)",
            origin.display(),
            files.len(),
            files[fi].path.display()
        ));
    }
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
        instance_numbers: slices
            .iter()
            .map(|s| {
                let obj = &files[s.file].obj;
                // An enhanced multi-frame CT is one instance: its frames are numbered from 1.
                match files[s.file].frames.len() {
                    1 => get_str(obj, tags::INSTANCE_NUMBER).and_then(|v| v.parse().ok()),
                    _ => Some(i64::from(s.frame) + 1),
                }
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
        slice_thickness_mm: files[slices[0].file].frames[slices[0].frame as usize]
            .slice_thickness
            .filter(|t| t.is_finite() && *t > 0.0),
    };
    Ok((hu, refs, warnings))
}

/// Checks RescaleSlope/RescaleIntercept of every frame: present ones must be finite (and the slope
/// non-zero). Returns, per file, whether a frame lacks RescaleIntercept; such a series is only read
/// when its stored values turn out to be HU already (see [`assemble`]), and when that is impossible
/// (unsigned pixels) the error comes here, before decoding. A missing RescaleSlope alone is read as 1,
/// with a warning.
fn check_rescale(files: &[FileHeader], warnings: &mut Vec<String>) -> Result<Vec<bool>, IoError> {
    let mut lacks_intercept = vec![false; files.len()];
    let mut slope_missing = None;
    for (fi, f) in files.iter().enumerate() {
        for info in &f.frames {
            for (name, v) in [("RescaleSlope", info.slope), ("RescaleIntercept", info.intercept)] {
                if v.is_some_and(|v| !v.is_finite() || (name == "RescaleSlope" && v == 0.0)) {
                    return Err(IoError::InvalidScaling {
                        path: f.path.clone(),
                        reason: format!("{name} {}", v.unwrap_or_default()),
                    });
                }
            }
        }
        let samples = get_uint(&f.obj, tags::SAMPLES_PER_PIXEL).unwrap_or(1);
        if samples != 1 {
            return Err(IoError::dicom(&f.path, format!("SamplesPerPixel {samples}; a CT has 1")));
        }
        if f.frames.iter().any(|i| i.intercept.is_none()) {
            let signed = get_uint(&f.obj, tags::PIXEL_REPRESENTATION) == Some(1);
            if !signed {
                return Err(IoError::MissingRescale {
                    path: f.path.clone(),
                    missing: if f.frames.iter().any(|i| i.slope.is_none()) {
                        "RescaleIntercept and RescaleSlope".into()
                    } else {
                        "RescaleIntercept".into()
                    },
                });
            }
            lacks_intercept[fi] = true;
        } else if f.frames.iter().any(|i| i.slope.is_none()) {
            slope_missing.get_or_insert(fi);
        }
    }
    if let Some(fi) = slope_missing {
        warnings.push(format!(
            "{}: RescaleIntercept without RescaleSlope; slope 1 assumed",
            files[fi].path.display()
        ));
    }
    Ok(lacks_intercept)
}

/// Opens a whole file, refusing transfer syntaxes whose pixel data cannot be decoded.
fn open_full(path: &Path) -> Result<DefaultDicomObject, IoError> {
    let obj = dicom_object::open_file(path).map_err(|e| IoError::dicom(path, e))?;
    let ts = transfer_syntax(&obj);
    check_transfer_syntax(path, &ts)?;
    // Once per object, before any of its frames is decoded.
    if is_jpeg_2000(&ts) {
        check_jpeg_2000(&obj, path)?;
    }
    Ok(obj)
}

/// Refuses transfer syntaxes whose pixel data nodal cannot decode.
fn check_transfer_syntax(path: &Path, uid: &str) -> Result<(), IoError> {
    let unsupported = |name: &str| IoError::UnsupportedTransferSyntax {
        path: path.to_path_buf(),
        uid: uid.to_string(),
        name: name.to_string(),
    };
    match TransferSyntaxRegistry.get(uid) {
        None => return Err(unsupported("unknown")),
        Some(ts) => {
            // Big endian is retired and its decoded byte order is not something we verify: refuse.
            if !ts.can_decode_all() || uid == "1.2.840.10008.1.2.2" {
                return Err(unsupported(ts.name()));
            }
        }
    }
    Ok(())
}

/// One frame to decode: its index among the file's `of` frames, its size and value transform.
struct Frame<'a> {
    index: u32,
    of: usize,
    rows: usize,
    cols: usize,
    info: &'a FrameInfo,
}

thread_local! {
    /// Set while this thread runs a codec inside [`contain_panics`]: the panic is reported as an
    /// error naming the file, so the default "thread panicked at" message would only confuse.
    static QUIET_PANICS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` (a pixel codec) and turns a panic inside it into `Err(panic message)`.
///
/// The codecs (dicom-rs 0.10.1, the newest release) index into corrupt data without checks, e.g. an
/// RLE segment that decodes short. The first call installs a panic hook that stays silent for panics
/// on threads inside this function and forwards every other panic to the hook that was there before,
/// so the process' panic output is unchanged elsewhere and no global state is toggled per call.
fn contain_panics<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET_PANICS.with(|q| q.get()) {
                previous(info)
            }
        }));
    });
    let was = QUIET_PANICS.with(|q| q.replace(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET_PANICS.with(|q| q.set(was));
    result.map_err(|p| {
        p.downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "the decoder panicked".into())
    })
}

/// The fragments of encapsulated pixel data (`codec` names it in the error).
fn encapsulated_fragments<'a>(
    obj: &'a DefaultDicomObject,
    path: &Path,
    codec: &str,
) -> Result<&'a [Vec<u8>], IoError> {
    obj.get(tags::PIXEL_DATA).and_then(|e| e.fragments()).ok_or_else(|| IoError::CorruptPixelData {
        path: path.to_path_buf(),
        detail: format!("{codec} pixel data is not encapsulated"),
    })
}

/// Checks the structure of an RLE frame (one fragment per frame, a 64-byte header with 1..=15
/// segment offsets, increasing and inside the fragment) before the codec reads it: the codec indexes
/// the header unchecked and sizes a buffer from the segment count, which a panic guard cannot undo.
fn check_rle_frame(obj: &DefaultDicomObject, path: &Path, frame: &Frame) -> Result<(), IoError> {
    let corrupt = |detail: String| IoError::CorruptPixelData { path: path.to_path_buf(), detail };
    let fragments = encapsulated_fragments(obj, path, "RLE")?;
    if fragments.len() != frame.of {
        return Err(corrupt(format!(
            "{} RLE fragment(s) for {} frame(s); RLE stores one per frame",
            fragments.len(),
            frame.of
        )));
    }
    let f = &fragments[frame.index as usize];
    if f.len() < 64 {
        return Err(corrupt(format!(
            "RLE frame {} has {} bytes, less than its 64-byte header",
            frame.index,
            f.len()
        )));
    }
    let word = |i: usize| u32::from_le_bytes([f[4 * i], f[4 * i + 1], f[4 * i + 2], f[4 * i + 3]]) as usize;
    let n_segments = word(0);
    if !(1..=15).contains(&n_segments) {
        return Err(corrupt(format!("RLE frame {} declares {n_segments} segments (1 to 15)", frame.index)));
    }
    let mut previous = 64;
    for s in 0..n_segments {
        let offset = word(1 + s);
        if (s == 0 && offset != 64) || offset < previous || offset > f.len() {
            return Err(corrupt(format!(
                "RLE frame {}: segment {s} offset {offset} is out of order or past the fragment's {} bytes",
                frame.index,
                f.len()
            )));
        }
        previous = offset;
    }
    Ok(())
}

/// JPEG 2000 transfer syntaxes (Part 1 and 2, lossless and lossy, and High-Throughput JPEG 2000).
fn is_jpeg_2000(ts: &str) -> bool {
    ["1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.92", "1.2.840.10008.1.2.4.93"]
        .contains(&ts)
        || ts.starts_with("1.2.840.10008.1.2.4.20")
}

/// Checks the image size each JPEG 2000 codestream of the pixel data declares (its SIZ marker,
/// ISO 15444-1 A.5.1) against Rows, Columns and one sample per pixel before the decoder sizes its
/// buffers from it: a 3.6 KB file whose codestream declared a large image made it reserve 8.6 GB.
fn check_jpeg_2000(obj: &DefaultDicomObject, path: &Path) -> Result<(), IoError> {
    let corrupt = |detail: String| IoError::CorruptPixelData { path: path.to_path_buf(), detail };
    // Present and in range: checked when the header was read.
    let (rows, cols) = (get_uint(obj, tags::ROWS).unwrap_or(0), get_uint(obj, tags::COLUMNS).unwrap_or(0));
    let fragments = encapsulated_fragments(obj, path, "JPEG 2000")?;
    let be16 = |b: &[u8], at: usize| b.get(at..at + 2).map(|x| u16::from_be_bytes([x[0], x[1]]) as u64);
    let be32 =
        |b: &[u8], at: usize| b.get(at..at + 4).map(|x| u32::from_be_bytes([x[0], x[1], x[2], x[3]]) as u64);
    let mut codestreams = 0;
    for f in fragments {
        // SOC then SIZ, at the start of a codestream (after a JP2 wrapper's boxes, if any).
        let head = &f[..f.len().min(4096)];
        let Some(at) = head.windows(4).position(|w| w == [0xFF, 0x4F, 0xFF, 0x51]) else { continue };
        codestreams += 1;
        let siz = at + 4;
        let field = |o: usize| be32(f, siz + o);
        let (Some(x), Some(y), Some(x0), Some(y0), Some(tx), Some(ty), Some(tx0), Some(ty0), Some(c)) = (
            field(4),
            field(8),
            field(12),
            field(16),
            field(20),
            field(24),
            field(28),
            field(32),
            be16(f, siz + 36),
        ) else {
            return Err(corrupt("a JPEG 2000 codestream's SIZ marker is cut short".into()));
        };
        let (w, h) = (x.saturating_sub(x0), y.saturating_sub(y0));
        if w != cols || h != rows || c != 1 {
            return Err(corrupt(format!(
                "a JPEG 2000 codestream declares {w}x{h} with {c} component(s); the header says {cols}x{rows} with 1"
            )));
        }
        // Tiles: at least one pixel each, at most the 65,535 the standard allows.
        let tiles =
            |size: u64, end: u64, origin: u64| (size > 0).then(|| end.saturating_sub(origin).div_ceil(size));
        match (tiles(tx, x, tx0), tiles(ty, y, ty0)) {
            (Some(a), Some(b)) if a * b <= 65_535 => {}
            _ => return Err(corrupt(format!("a JPEG 2000 codestream declares tiles of {tx}x{ty} pixels"))),
        }
    }
    if codestreams == 0 {
        return Err(corrupt("JPEG 2000 pixel data holds no codestream header (SOC, SIZ)".into()));
    }
    Ok(())
}

/// Decodes one frame into `out` (rows x cols, i fastest) as HU. Returns whether a stored value was
/// negative (evidence that values without a RescaleIntercept are HU already).
fn decode_frame(
    obj: &DefaultDicomObject,
    path: &Path,
    frame: &Frame,
    out: &mut [i16],
) -> Result<bool, IoError> {
    let (rows, cols, info) = (frame.rows, frame.cols, frame.info);
    if transfer_syntax(obj) == RLE_LOSSLESS {
        check_rle_frame(obj, path, frame)?;
    }

    let px = contain_panics(|| obj.decode_pixel_data_frame(frame.index))
        .map_err(|detail| IoError::CorruptPixelData { path: path.to_path_buf(), detail })?
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
    // Absent values were checked in `check_rescale`: a missing intercept is only read when the stored
    // values are HU already, a missing slope is 1.
    let (slope, intercept) = (info.slope.unwrap_or(1.0), info.intercept.unwrap_or(0.0));
    let mut negative = false;
    let mut put = |o: &mut i16, raw: u64| {
        let v = value(raw);
        negative |= v < 0.0;
        *o = (v * slope + intercept).round() as i16; // `as` saturates
    };
    match alloc {
        8 => out.iter_mut().zip(bytes).for_each(|(o, &b)| put(o, b as u64)),
        16 => out
            .iter_mut()
            .zip(bytes.chunks_exact(2))
            .for_each(|(o, c)| put(o, u16::from_le_bytes([c[0], c[1]]) as u64)),
        _ => out
            .iter_mut()
            .zip(bytes.chunks_exact(4))
            .for_each(|(o, c)| put(o, u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as u64)),
    }
    Ok(negative)
}
