//! NIfTI-1 and DICOM CT reading and writing that keeps exact patient-space geometry.
//!
//! * [`read_nifti`] / [`write_nifti`] / [`read_nifti_header`] — `.nii` and `.nii.gz`; NIfTI's RAS
//!   affine (sform, else qform) becomes nodal's LPS [`nodal_core::Geometry`]; written files carry both
//!   sform and qform and open in nibabel with the same affine. [`NiftiRows`] reads a file a block of
//!   rows at a time, for callers that keep only part of the voxels.
//! * [`list_series`] / [`read_ct_series`] / [`read_ct_files`] — DICOM CT series (classic single-frame
//!   files or enhanced multi-frame CT) to a [`CtScan`]: HU as `Volume<i16>` plus the [`DicomRefs`] a
//!   DICOM SEG/SR needs.
//! * [`read_ct`] / [`read_ct_choosing`] — either of the two, chosen from the path (and the DICOM
//!   series: the only CT series, or the axial CT volume with the most slices of one study).
//! * [`find_inputs`] — one scan or a cohort: what a path given to a command holds ([`cases`]).
//! * [`describe`] — what `nodal info` prints.
//! * [`write_atomic`] / [`write_atomic_with`] — re-exported from `nodal_core::fs`.
//! * [`IoError`] — one typed error per failure, each naming the file.
//!
//! # Limits on what is read
//!
//! Input is not trusted: a damaged or hostile file must end in an [`IoError`] naming it, never in a
//! panic, an out-of-memory abort, or values that are silently wrong.
//!
//! * **Size.** A volume may have at most [`MAX_VOXELS`] voxels (402 653 184 = 512 x 512 x 1536). The
//!   limit is checked against the sizes a header declares, and the data the file actually holds is
//!   checked against those sizes (file length for `.nii` and native DICOM, a capped incremental read
//!   for `.nii.gz`), all before the volume is allocated.
//! * **Values.** NaN or infinite voxels read into an integer type (every CT read: [`read_ct`] gives
//!   i16 HU) and non-finite value scalings are errors ([`IoError::NonFiniteVoxels`],
//!   [`IoError::InvalidScaling`]); a float read keeps them bit-exactly. A DICOM CT without
//!   RescaleIntercept is refused ([`IoError::MissingRescale`]) unless its stored values are signed and
//!   include negatives (already HU); that case is read and reported in [`CtScan::warnings`].
//! * **Geometry.** A CT ([`read_ct`], [`read_ct_series`]) must have each voxel spacing finite and in
//!   ([`MIN_SPACING_MM`], [`MAX_SPACING_MM`]] mm ([`IoError::ImplausibleSpacing`]): an affine in cm or m
//!   otherwise turns into a resampling grid of billions of voxels downstream.
//! * **Decoders.** A panic inside a DICOM pixel codec (on corrupt compressed data) is contained and
//!   reported as [`IoError::CorruptPixelData`] for that file.

pub mod cases;
mod dicom;
mod dicom_lengths;
mod error;
mod nifti;

pub use cases::{find_inputs, nifti_case_id, CaseSource, Inputs};
pub use dicom::{
    format_series_list, list_series, list_series_files, read_ct_files, read_ct_series, CtScan, DicomRefs,
    SeriesChoice, SeriesInfo,
};
pub use error::IoError;
pub use nifti::{
    label_id, read_labels, read_nifti, read_nifti_header, write_nifti, NiftiDtype, NiftiHeader, NiftiRows,
    NiftiVoxel,
};
pub use nodal_core::fs::{write_atomic, write_atomic_with};

use std::path::Path;

/// The most voxels a volume read by nodal may have: 402 653 184 (3 x 2^27 = 512 x 512 x 1536).
///
/// It bounds the memory a single input can make nodal use (the HU volume is 2 bytes a voxel; the
/// pipeline holds a few copies in other types). It admits every diagnostic CT nodal is meant for — a
/// 0.625 mm chest-abdomen-pelvis CT is about 512 x 512 x 1100 — and refuses the 512 Mi-voxel volumes a
/// tiny, highly compressed `.nii.gz` can declare. Larger scans must be cropped or resampled first.
/// Stricter than [`nodal_core::MAX_VOXELS`], which bounds any allocation, not what a reader accepts.
pub const MAX_VOXELS: usize = 3 << 27;

/// Smallest voxel spacing accepted for a CT, exclusive (mm): micro-CT territory, or an affine in metres.
pub const MIN_SPACING_MM: f64 = 0.05;
/// Largest voxel spacing accepted for a CT, inclusive (mm): beyond this a "CT" is a scout, or its
/// affine is in cm or scaled.
pub const MAX_SPACING_MM: f64 = 20.0;

/// Checks that a CT's voxel spacing is plausible (see [`MIN_SPACING_MM`], [`MAX_SPACING_MM`]).
pub(crate) fn check_ct_spacing(path: &Path, g: &nodal_core::Geometry) -> Result<(), IoError> {
    let ok = |s: f64| s.is_finite() && s > MIN_SPACING_MM && s <= MAX_SPACING_MM;
    if g.spacing_mm.iter().all(|&s| ok(s)) {
        Ok(())
    } else {
        Err(IoError::ImplausibleSpacing { path: path.to_path_buf(), spacing_mm: g.spacing_mm })
    }
}

/// True when `path` names a NIfTI file by its extension (`.nii`, `.nii.gz`, any case).
pub fn is_nifti_path(path: &Path) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    name.ends_with(".nii") || name.ends_with(".nii.gz")
}

/// Reads a CT in HU from a NIfTI file (values rounded/saturated to i16) or a DICOM folder/file (the
/// CT series there, chosen as [`read_ct_series`] does). The voxel spacing must be plausible for a CT
/// ([`IoError::ImplausibleSpacing`]).
pub fn read_ct(path: impl AsRef<Path>) -> Result<CtScan, IoError> {
    read_ct_choosing(path, None)
}

/// [`read_ct`] with the DICOM series named by `series_uid` (`--series`); naming one for a NIfTI file
/// is an error ([`IoError::SeriesForNifti`]).
pub fn read_ct_choosing(path: impl AsRef<Path>, series_uid: Option<&str>) -> Result<CtScan, IoError> {
    let path = path.as_ref();
    if is_nifti_path(path) {
        if let Some(uid) = series_uid {
            return Err(IoError::SeriesForNifti { path: path.to_path_buf(), series_uid: uid.to_string() });
        }
        // The header alone tells the spacing: refuse a scaled affine before reading the voxels.
        check_ct_spacing(path, &read_nifti_header(path)?.geometry)?;
        Ok(CtScan {
            hu: read_nifti::<i16>(path)?,
            dicom: None,
            source: path.to_path_buf(),
            warnings: Vec::new(),
            series_choice: None,
        })
    } else {
        read_ct_series(path, series_uid)
    }
}

/// Human-readable description of a CT file or folder: geometry, HU range and (DICOM) the series
/// found. With several CT series and no `series_uid`, only the list is described.
pub fn describe(path: impl AsRef<Path>, series_uid: Option<&str>) -> Result<String, IoError> {
    use std::fmt::Write;
    let path = path.as_ref();
    let mut s = String::new();
    let scan = if is_nifti_path(path) {
        let h = read_nifti_header(path)?;
        let _ = writeln!(s, "file: {}", path.display());
        let _ = writeln!(
            s,
            "format: NIfTI-1, {}{}, affine from {}",
            h.dtype.name(),
            h.scaling.map_or(String::new(), |(a, b)| format!(", scaled x{a} + {b}")),
            h.affine_source
        );
        // Read as f32 so that the HU range is reported as stored (no rounding of scaled values).
        let v = read_nifti::<f32>(path)?;
        // A range over NaN/inf voxels would print as "inf .. -inf" or hide them: name them instead.
        let mut bad = v.as_slice().iter().enumerate().filter(|(_, x)| !x.is_finite());
        if let Some((first, _)) = bad.next() {
            let [ni, nj, _] = v.dims();
            return Err(IoError::NonFiniteVoxels {
                path: path.to_path_buf(),
                count: 1 + bad.count() as u64,
                first_index: [first % ni, first / ni % nj, first / (ni * nj)],
            });
        }
        let (lo, hi) = v.min_max();
        let g = v.geometry();
        describe_geometry(&mut s, v.dims(), g);
        let _ = writeln!(s, "value range: {lo} .. {hi}");
        return Ok(s);
    } else {
        let series = list_series(path)?;
        let _ = writeln!(s, "path: {}", path.display());
        let _ = writeln!(s, "DICOM series found: {}", series.len());
        let _ = writeln!(s, "{}", format_series_list(&series));
        match read_ct_series(path, series_uid) {
            Ok(scan) => scan,
            Err(IoError::AmbiguousSeries { .. }) | Err(IoError::NoCtSeries { .. })
                if series_uid.is_none() =>
            {
                let _ = writeln!(s, "no single CT series: choose one with --series UID");
                return Ok(s);
            }
            Err(e) => return Err(e),
        }
    };
    if let Some(c) = &scan.series_choice {
        let _ = writeln!(s, "chosen: {}", c.reason);
    }
    if let Some(r) = &scan.dicom {
        let _ = writeln!(
            s,
            "series: {} \"{}\"",
            r.series_instance_uid.as_deref().unwrap_or("(no SeriesInstanceUID)"),
            r.series_description.as_deref().unwrap_or("")
        );
    }
    describe_geometry(&mut s, scan.hu.dims(), scan.hu.geometry());
    let (lo, hi) = scan.hu.min_max();
    let _ = writeln!(s, "HU range: {lo} .. {hi}");
    Ok(s)
}

fn describe_geometry(s: &mut String, dims: [usize; 3], g: &nodal_core::Geometry) {
    use std::fmt::Write;
    let _ = writeln!(s, "dims (i, j, k): {} x {} x {}", dims[0], dims[1], dims[2]);
    let sp = g.spacing_mm;
    let _ = writeln!(s, "spacing (mm): {:.4} x {:.4} x {:.4}", sp[0], sp[1], sp[2]);
    let _ = writeln!(s, "orientation: {}", g.orientation_string());
    let o = g.origin_mm;
    // `+ 0.0` turns -0.0 into 0.0 so that axis-aligned directions print without stray signs.
    let _ = writeln!(s, "origin (LPS mm): [{:.3}, {:.3}, {:.3}]", o[0] + 0.0, o[1] + 0.0, o[2] + 0.0);
    for (name, d) in ["i", "j", "k"].iter().zip(g.direction.iter()) {
        let _ =
            writeln!(s, "direction {name} (LPS): [{:.5}, {:.5}, {:.5}]", d[0] + 0.0, d[1] + 0.0, d[2] + 0.0);
    }
}
