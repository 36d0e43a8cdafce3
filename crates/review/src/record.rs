//! `review.json` (schema [`REVIEW_SCHEMA`]): who reviewed a case, each node's review, and every
//! edit in order. With `nodes.nii.gz` and `rejected.nii.gz` it is the whole reviewed state.
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Version tag of `review.json`.
pub const REVIEW_SCHEMA: &str = "nodal.review/1";

/// The neck levels a node can be given (with sublevels), as the page offers them.
pub const LEVELS: &[&str] = &["I", "IA", "IB", "II", "IIA", "IIB", "III", "IV", "V", "VA", "VB", "VI", "VII"];

/// Longest note kept, characters.
pub const MAX_NOTE_CHARS: usize = 2000;

/// What the reviewer said of a node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Not looked at yet.
    #[default]
    Unreviewed,
    /// A lymph node.
    Accepted,
    /// Not a lymph node (a false positive): its voxels go to `rejected.nii.gz`.
    Rejected,
}

/// The reviewer's call on malignancy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeClass {
    Metastatic,
    Benign,
    Unsure,
}

/// Where a node's voxels came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// The model output.
    Model,
    /// Painted or grown by the reviewer.
    Added,
    /// A piece of a split node.
    Split,
    /// Nodes merged into one.
    Merged,
}

/// One node's review.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeReview {
    pub node_id: u32,
    pub status: Status,
    pub class: Option<NodeClass>,
    pub level: Option<String>,
    #[serde(default)]
    pub note: String,
    pub origin: Origin,
    /// The voxels differ from the model's (the model's probability and filter score no longer
    /// describe the node).
    #[serde(default)]
    pub edited: bool,
}

impl NodeReview {
    /// A node as the model drew it, not reviewed.
    pub fn from_model(node_id: u32) -> Self {
        NodeReview {
            node_id,
            status: Status::Unreviewed,
            class: None,
            level: None,
            note: String::new(),
            origin: Origin::Model,
            edited: false,
        }
    }

    /// A node the reviewer made: accepted by making it.
    pub fn made(node_id: u32, origin: Origin) -> Self {
        NodeReview { status: Status::Accepted, origin, edited: true, ..NodeReview::from_model(node_id) }
    }
}

/// One edit, as the history keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The state's generation after the edit.
    pub generation: u64,
    /// UTC, RFC 3339.
    pub time: String,
    pub reviewer: String,
    /// The edit's `op` (`paint`, `annotate`, `undo`...).
    pub op: String,
    /// What it did, in words.
    pub summary: String,
    /// The nodes it touched.
    pub node_ids: Vec<u32>,
    /// Voxels whose label changed.
    pub voxels_changed: usize,
}

/// The model output the review started from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelOutputRef {
    /// Folder of the untouched copy, relative to the case folder.
    pub folder: String,
    /// sha256 of its `nodes.nii.gz`.
    pub nodes_sha256: String,
    pub model_id: Option<String>,
    pub model_version: Option<String>,
}

/// The content of `review.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReviewRecord {
    pub schema: String,
    pub case_id: String,
    /// The CT the nodes are on.
    pub ct: String,
    /// Edits saved so far (0: none).
    pub generation: u64,
    /// The id the next new node gets: ids are never reused, so history entries stay unambiguous.
    pub next_node_id: u32,
    pub model_output: ModelOutputRef,
    /// Every node, rejected ones included, by id.
    pub nodes: BTreeMap<u32, NodeReview>,
    pub history: Vec<HistoryEntry>,
    pub nodal_version: String,
}

impl ReviewRecord {
    /// Reviewers who edited the case, in order of first edit.
    pub fn reviewers(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for h in &self.history {
            if !out.contains(&h.reviewer.as_str()) {
                out.push(&h.reviewer);
            }
        }
        out
    }
}
