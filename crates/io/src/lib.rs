//! NIfTI and DICOM I/O.
use thiserror::Error;

/// I/O errors; every variant names the file.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum IoError {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Open { path: std::path::PathBuf, source: std::io::Error },
}
