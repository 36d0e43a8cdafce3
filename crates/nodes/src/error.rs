use nodal_core::CoreError;
use thiserror::Error;

/// Errors of node analysis. Every variant says which input is wrong and how.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum NodesError {
    /// A CT (or other companion volume) is not on the label map's grid.
    #[error("{what} is not on the label map's grid: {source}")]
    GridMismatch {
        /// Which companion volume (e.g. "CT").
        what: String,
        #[source]
        source: CoreError,
    },
    /// A label map holds negative ids; instance ids must be 0 (background) or positive.
    #[error("label map holds a negative id ({id}); instance ids must be >= 0")]
    NegativeLabel { id: i64 },
    /// A volume declared to be a binary mask holds values other than 0 and 1.
    #[error("mask is not binary: found value {value} (a mask holds only 0 and 1; use a label map instead)")]
    NotBinary { value: i64 },
    /// An option is out of range.
    #[error("invalid option {name} = {value}: {reason}")]
    InvalidOption { name: &'static str, value: String, reason: &'static str },
    /// A probability map holds NaN or infinite values.
    #[error("probability map holds a non-finite value at voxel (i, j, k) = {index:?}")]
    NonFinite { index: [usize; 3] },
    /// More components than the output label type can hold.
    #[error("{count} components do not fit in the output label type (max {max})")]
    TooManyLabels { count: usize, max: usize },
    /// Writing an output file failed.
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A geometry operation failed.
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl NodesError {
    /// True when the input is at fault (the user can fix it), false for output failures.
    pub fn is_input(&self) -> bool {
        !matches!(self, NodesError::Write { .. })
    }
}
