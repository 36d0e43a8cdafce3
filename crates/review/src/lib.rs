//! Reviewing nodes: a radiologist checks a model's nodes in the browser, accepts or rejects each,
//! marks it metastatic, benign or unsure, sets its neck level, corrects its voxels, adds the nodes
//! the model missed, splits and merges; the corrected case folders become training data.
//!
//! - [`frame`]: display indices (the grid as if reoriented to LPS) and slices.
//! - [`record`]: `review.json`, each node's review and the history of edits.
//! - [`case`]: one case folder under review: its CT, labels, measurements and saving.
//! - [`change`]: one applied edit, as undo and redo keep it.
//! - [`edit`]: the edits, checked before they touch anything, and undo / redo.
//! - [`server`]: the local HTTP server the page talks to, with its access token.
//! - [`export`]: reviewed cases as an nnU-Net dataset that `nodal train` fine-tunes on.
//!
//! See docs/review.md for the files written and the HTTP interface.
pub mod case;
pub mod change;
pub mod edit;
pub mod export;
pub mod frame;
pub mod record;
pub mod server;

pub use case::{find_case_folders, Case, CaseFolder};
pub use edit::Edit;
pub use server::{serve, ServeOptions, Server};

use std::path::PathBuf;

/// What can go wrong while reviewing.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// A folder that is not a case folder, or a cohort without any.
    #[error("{path}: {reason}")]
    Folder { path: PathBuf, reason: String },
    /// A file of the case folder could not be read or is not what it should be.
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    /// Reading a CT or label map.
    #[error(transparent)]
    Io(#[from] nodal_io::IoError),
    /// Measuring the nodes.
    #[error("measuring the nodes: {0}")]
    Nodes(#[from] nodal_nodes::NodesError),
    /// Writing nodes.json or nodes.csv.
    #[error(transparent)]
    Detect(#[from] nodal_detect::DetectError),
    /// The dataset folder (not a folder, in use, not writable).
    #[error(transparent)]
    Output(#[from] nodal_core::output::OutputError),
    /// Writing a file of the case folder or the dataset.
    #[error("writing {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    /// An edit or request the state refuses (nothing was changed).
    #[error("{0}")]
    BadEdit(String),
    /// A CT the export must not turn into training data.
    #[error(transparent)]
    HeldOut(#[from] nodal_phantom::PhantomError),
    /// The address to serve on.
    #[error("serving on {addr}: {reason}")]
    Bind { addr: String, reason: String },
}

impl ReviewError {
    /// True when the input (a folder, file, option or edit) is at fault, not the program.
    pub fn is_input(&self) -> bool {
        match self {
            ReviewError::Io(e) => !matches!(e, nodal_io::IoError::Write { .. }),
            ReviewError::Nodes(e) => e.is_input(),
            ReviewError::Detect(e) => e.is_input(),
            ReviewError::Output(e) => e.is_input(),
            ReviewError::Write { .. } => false,
            _ => true,
        }
    }

    pub(crate) fn write(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ReviewError::Write { path: path.into(), source }
    }
}
