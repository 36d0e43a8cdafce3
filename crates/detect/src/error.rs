use std::path::PathBuf;
use thiserror::Error;

/// Errors of detection: each keeps the typed error of the stage that failed, so the binary can
/// tell bad input (exit 2) from an internal failure (exit 1) by [`DetectError::is_input`].
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DetectError {
    /// The network or model folder (inference, weights, config, dataset listing).
    #[error(transparent)]
    Net(#[from] nodal_net::NetError),
    /// Node geometry: non-finite probabilities, invalid post-processing, grids that differ.
    #[error(transparent)]
    Nodes(#[from] nodal_nodes::NodesError),
    /// The evaluation protocol.
    #[error(transparent)]
    Eval(#[from] nodal_eval::EvalError),
    /// Reading or writing a volume.
    #[error(transparent)]
    Volume(#[from] nodal_io::IoError),
    /// Geometry.
    #[error(transparent)]
    Core(#[from] nodal_core::CoreError),
    /// An option or setting is out of range.
    #[error("invalid option {name} = {value}: {reason}")]
    InvalidOption { name: &'static str, value: String, reason: &'static str },
    /// A component filter file cannot be read or is malformed.
    #[error("component filter {path}: {reason}")]
    FilterFile { path: PathBuf, reason: String },
    /// A resumable record belongs to other work or cannot be read.
    #[error("{path}: {reason}")]
    Record { path: PathBuf, reason: String },
    /// An error on one case, naming it.
    #[error("case {case}: {source}")]
    Case {
        case: String,
        #[source]
        source: Box<DetectError>,
    },
    /// Writing an output file failed.
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl DetectError {
    /// True when the user can fix the problem by changing the input (files, model folder,
    /// options); false for internal and output failures.
    pub fn is_input(&self) -> bool {
        match self {
            DetectError::Net(e) => e.is_input_error(),
            DetectError::Nodes(e) => e.is_input(),
            DetectError::Eval(e) => e.is_input(),
            DetectError::Volume(e) => !matches!(e, nodal_io::IoError::Write { .. }),
            DetectError::Case { source, .. } => source.is_input(),
            DetectError::Write { .. } => false,
            DetectError::Core(_)
            | DetectError::InvalidOption { .. }
            | DetectError::FilterFile { .. }
            | DetectError::Record { .. } => true,
        }
    }

    /// Wraps `self` as an error on `case`.
    pub fn on_case(self, case: impl Into<String>) -> Self {
        DetectError::Case { case: case.into(), source: Box::new(self) }
    }

    pub(crate) fn write(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DetectError::Write { path: path.into(), source }
    }
}
