use std::path::PathBuf;
use thiserror::Error;

/// Errors of the data engine. Every variant names the file or the parameter at fault.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PhantomError {
    /// A configuration value is out of range.
    #[error("invalid phantom configuration: {0}")]
    InvalidConfig(String),
    /// A dataset folder whose name nnU-Net would not take.
    #[error(
        "{path}: an nnU-Net dataset folder is named DatasetNNN_Name (three digits, then a name of \
         letters, digits, '_' or '-'), e.g. Dataset501_NodalSim"
    )]
    DatasetName { path: PathBuf },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// A NIfTI/DICOM read or write failed.
    #[error(transparent)]
    Nifti(#[from] nodal_io::IoError),
    /// Volume geometry problem.
    #[error(transparent)]
    Core(#[from] nodal_core::CoreError),
    /// An InVesalius project could not be read.
    #[error("{path}: not a readable InVesalius project: {reason}")]
    Inv3 { path: PathBuf, reason: String },
    /// A background CT cannot host nodes (wrong content or too small).
    #[error("{path}: unusable background CT: {reason}")]
    Background { path: PathBuf, reason: String },
    /// The held-out validation background was given to the training-set writer.
    #[error("{path}: this CT is the held-out validation background and is never used for training data")]
    HeldOutBackground { path: PathBuf },
    /// A scan of the external validation set was given as a training background (recognised by
    /// content, under any name).
    #[error("{path}: external validation case {case}, not for training")]
    ExternalValidationCase { path: PathBuf, case: String },
    /// JSON (de)serialisation failed.
    #[error("{path}: JSON error: {source}")]
    Json { path: PathBuf, source: serde_json::Error },
    /// A PNG preview could not be encoded.
    #[error("{path}: PNG error: {reason}")]
    Png { path: PathBuf, reason: String },
}

impl PhantomError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        PhantomError::Io { path: path.into(), source }
    }
}
