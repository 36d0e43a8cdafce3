use std::path::PathBuf;
use thiserror::Error;

/// Errors of the evaluation crate. Input problems (the user can fix them) name the file or case.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum EvalError {
    /// Prediction and ground truth of one case are not on the same voxel grid.
    #[error("case {case_id}: prediction {pred} and ground truth {gt} are not on the same grid: {detail}")]
    GridMismatch { case_id: String, pred: PathBuf, gt: PathBuf, detail: String },
    /// Prediction and ground truth volumes handed in memory are not on the same grid.
    #[error("prediction and ground truth are not on the same grid: {0}")]
    Geometry(String),
    /// A ground-truth label id too large to index (ids are expected to be node numbers).
    #[error("ground-truth label {label} exceeds the supported maximum {max}")]
    LabelTooLarge { label: usize, max: usize },
    /// A probability map holds a value outside [0, 1] or NaN.
    #[error("probability map holds {value}, outside [0, 1]")]
    InvalidProbability { value: f64 },
    /// A file could not be read as an image.
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: nodal_io::IoError },
    /// A metadata file (nodes.json / CSV) or a manifest is malformed.
    #[error("{path}: {reason}")]
    BadTable { path: PathBuf, reason: String },
    /// Pairing predictions with ground truths found nothing to evaluate, or a case lacks a file.
    #[error("pairing cases: {0}")]
    Pairing(String),
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// A figure could not be rendered.
    #[error("rendering {path}: {reason}")]
    Plot { path: PathBuf, reason: String },
    /// An error while evaluating one case of a cohort, naming the case and its files.
    #[error("case {case_id} (prediction {pred}, ground truth {gt}): {source}")]
    Case { case_id: String, pred: PathBuf, gt: PathBuf, source: Box<EvalError> },
}

impl EvalError {
    /// True when the user can fix the cause by changing the input (files, tables, pairing): every
    /// variant except a failure to render a figure.
    pub fn is_input(&self) -> bool {
        match self {
            EvalError::Case { source, .. } => source.is_input(),
            e => !matches!(e, EvalError::Plot { .. }),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        EvalError::Io { path: path.into(), source }
    }
}
