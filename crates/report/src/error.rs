use std::path::PathBuf;
use thiserror::Error;

/// Errors of report generation. Each variant names the file or the inconsistent input.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ReportError {
    /// The CT and the label map are not on the same voxel grid.
    #[error("label map and CT are on different grids: {0}")]
    GridMismatch(String),
    /// The report data is inconsistent (e.g. a node whose label is absent from the label map).
    #[error("invalid report input: {0}")]
    InvalidInput(String),
    /// The DICOM references do not describe the CT grid (slice count, UIDs, geometry).
    #[error("DICOM source does not match the CT: {0}")]
    DicomSource(String),
    /// Building or writing a DICOM object failed.
    #[error("{path}: cannot write DICOM: {message}")]
    DicomWrite { path: PathBuf, message: String },
    /// A file could not be written or renamed into place.
    #[error("{path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    /// PNG encoding of a report image failed.
    #[error("cannot encode report image: {0}")]
    Image(String),
    /// JSON serialisation failed.
    #[error("{path}: cannot serialise JSON: {source}")]
    Json { path: PathBuf, source: serde_json::Error },
}
