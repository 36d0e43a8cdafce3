use std::path::PathBuf;

/// Errors of the readers and writers. Every variant names the file (or folder) and the problem, so
/// the message alone tells the user what to fix (the underlying `std::io::Error`s are kept as fields
/// and printed in the message rather than chained, so they are not printed twice).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IoError {
    /// The file could not be opened or read.
    #[error("{path}: {error}")]
    Open { path: PathBuf, error: std::io::Error },
    /// The output could not be written (or renamed into place).
    #[error("{path}: cannot write: {error}")]
    Write { path: PathBuf, error: std::io::Error },
    /// A gzip stream is truncated or corrupt (bad deflate data or CRC).
    #[error("{path}: truncated or corrupt gzip stream: {error}")]
    Gzip { path: PathBuf, error: std::io::Error },
    /// Not a NIfTI-1 single file (wrong header size or magic).
    #[error("{path}: not a NIfTI-1 file: {reason}")]
    NotNifti { path: PathBuf, reason: String },
    /// A valid NIfTI-1 header that asks for something nodal does not read (datatype, 4D, ...).
    #[error("{path}: unsupported NIfTI: {reason}")]
    UnsupportedNifti { path: PathBuf, reason: String },
    /// The file ends before the voxel data the header declares.
    #[error("{path}: header declares {expected_bytes} bytes of voxel data but the file holds {found_bytes}")]
    DataSizeMismatch { path: PathBuf, expected_bytes: u64, found_bytes: u64 },
    /// The memory for a volume within the limits could not be reserved.
    #[error("{path}: cannot allocate {bytes} bytes for the volume")]
    Allocation { path: PathBuf, bytes: u64 },
    /// Dimensions are zero, negative, inconsistent, or larger than [`crate::MAX_VOXELS`] (checked before
    /// allocating).
    #[error("{path}: invalid dimensions {dims:?}: {reason}")]
    InvalidDims { path: PathBuf, dims: Vec<i64>, reason: String },
    /// Spacing, origin or direction is NaN, zero or sheared.
    #[error("{path}: invalid geometry: {reason}")]
    InvalidGeometry { path: PathBuf, reason: String },
    /// The DICOM file could not be parsed or lacks a required attribute.
    #[error("{path}: invalid DICOM: {reason}")]
    Dicom { path: PathBuf, reason: String },
    /// The pixel data uses a transfer syntax nodal cannot decode.
    #[error("{path}: unsupported transfer syntax {uid} ({name})")]
    UnsupportedTransferSyntax { path: PathBuf, uid: String, name: String },
    /// Pixel data could not be decoded.
    #[error("{path}: cannot decode pixel data: {reason}")]
    PixelDecode { path: PathBuf, reason: String },
    /// The pixel data codec failed on damaged data (a panic inside the decoder, contained, or an
    /// encapsulated frame whose structure is broken).
    #[error("{path}: corrupt pixel data (decoder failed): {detail}")]
    CorruptPixelData { path: PathBuf, detail: String },
    /// NaN or infinite voxel values: a CT holds finite numbers, and converting these would silently
    /// turn them into 0 or the type's extreme.
    #[error(
        "{path}: {count} non-finite (NaN or infinite) voxel value(s); the first at index (i, j, k) = \
         ({}, {}, {})",
        first_index[0], first_index[1], first_index[2]
    )]
    NonFiniteVoxels { path: PathBuf, count: u64, first_index: [usize; 3] },
    /// A value scaling (NIfTI `scl_slope`/`scl_inter`, DICOM RescaleSlope/RescaleIntercept) that is not a
    /// finite, non-zero slope and a finite intercept.
    #[error("{path}: invalid value scaling: {reason}")]
    InvalidScaling { path: PathBuf, reason: String },
    /// A CT slice without RescaleIntercept/RescaleSlope (Type 1 in the CT Image module) whose stored
    /// values are not evidently Hounsfield units already: reading them as HU would shift every value.
    #[error(
        "{path}: CT image without {missing} (required for CT images); the stored values cannot be \
         converted to Hounsfield units safely — add RescaleIntercept/RescaleSlope to the files"
    )]
    MissingRescale { path: PathBuf, missing: String },
    /// Voxel spacing outside what a CT can have: usually an affine or PixelSpacing in the wrong unit
    /// (cm, m, or µm instead of mm).
    #[error(
        "{path}: implausible voxel spacing {:?} mm for a CT (each must be finite and within \
         ({}, {}] mm); is the affine/PixelSpacing in the wrong unit?",
        spacing_mm,
        crate::MIN_SPACING_MM,
        crate::MAX_SPACING_MM
    )]
    ImplausibleSpacing { path: PathBuf, spacing_mm: [f64; 3] },
    /// No readable DICOM image file under the path.
    #[error("{path}: no DICOM image files found")]
    NoDicomFiles { path: PathBuf },
    /// The chosen series is not a CT.
    #[error("{path}: series {series_uid} has modality {modality}, not CT")]
    NotCt { path: PathBuf, series_uid: String, modality: String },
    /// Several CT series and none clearly the volume to read (series of several studies, or a tie
    /// for the most slices).
    #[error(
        "{path}: {} CT series found and none is clearly the CT volume (the axial CT series of one study \
         with the most slices); choose one by its SeriesInstanceUID (nodal ... --series UID):\n{}",
        series.len(),
        crate::dicom::format_series_list(series)
    )]
    AmbiguousSeries { path: PathBuf, series: Vec<crate::SeriesInfo> },
    /// No CT series at all (the series found are listed).
    #[error("{path}: no CT series found; series present:\n{}", crate::dicom::format_series_list(series))]
    NoCtSeries { path: PathBuf, series: Vec<crate::SeriesInfo> },
    /// A cohort's inputs cannot be listed: duplicate case ids, a list naming a missing file, ...
    #[error("{path}: {reason}")]
    Cases { path: PathBuf, reason: String },
    /// `--series` given for a NIfTI file, which holds one volume.
    #[error("{path}: a NIfTI file holds one volume; --series {series_uid} applies to DICOM input only")]
    SeriesForNifti { path: PathBuf, series_uid: String },
    /// The requested series UID is not present.
    #[error(
        "{path}: series {series_uid} not found; series present:\n{}",
        crate::dicom::format_series_list(available)
    )]
    SeriesNotFound { path: PathBuf, series_uid: String, available: Vec<crate::SeriesInfo> },
    /// Slices are missing: a gap of more than one slice spacing along the slice normal.
    #[error(
        "{path}: series {series_uid}: {missing} slice(s) missing between positions {before_mm:.3} and \
         {after_mm:.3} mm along the slice normal (spacing {spacing_mm:.3} mm)"
    )]
    MissingSlices {
        path: PathBuf,
        series_uid: String,
        spacing_mm: f64,
        before_mm: f64,
        after_mm: f64,
        missing: usize,
    },
    /// Slice positions are not evenly spaced (and not a whole number of missing slices).
    #[error(
        "{path}: series {series_uid}: non-uniform slice spacing: gap of {gap_mm:.4} mm after position \
         {before_mm:.3} mm, expected {spacing_mm:.4} mm"
    )]
    NonUniformSpacing { path: PathBuf, series_uid: String, spacing_mm: f64, gap_mm: f64, before_mm: f64 },
    /// Slice positions do not lie along the slice normal (gantry tilt): the grid would be sheared.
    #[error(
        "{path}: series {series_uid}: slice positions deviate {tilt_deg:.2} degrees from the slice normal \
         (gantry tilt); a sheared grid is not supported — resample the series first"
    )]
    GantryTilt { path: PathBuf, series_uid: String, tilt_deg: f64 },
    /// Slices of one series disagree (size, orientation, pixel spacing, duplicate positions, ...).
    #[error("{path}: series {series_uid}: inconsistent slices: {reason}")]
    InconsistentSeries { path: PathBuf, series_uid: String, reason: String },
    /// A label map holds a value that is no label id (negative, fractional, not finite, or above
    /// `u32::MAX`): reading it as ids would drop or merge labels.
    #[error("{path}: label map holds {value}, which is not a label id ({reason})")]
    InvalidLabel { path: PathBuf, value: f64, reason: &'static str },
}

impl IoError {
    pub(crate) fn dicom(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> Self {
        IoError::Dicom { path: path.into(), reason: reason.to_string() }
    }
}
