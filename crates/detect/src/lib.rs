//! Everything after the network, in one place: from a probability map to measured node
//! detections, and the jobs that judge and tune that step.
//!
//! * [`recipe`] — [`Recipe`] (post-processing + component filter + cut-offs) and its one
//!   [`Recipe::apply`]; [`Candidates`], the components every caller starts from, and the keep
//!   rule ([`Candidates::keep`]).
//! * [`detection`] — [`Detection`]: a node's measurement (`nodal_nodes`) with the network's
//!   probability over it ([`probability`]) and the component filter's verdict.
//! * [`model`] — [`Model`]: a network with its component filter; [`model::predict`], the
//!   model's probability map with its large-node pass ([`large_nodes`]).
//! * [`segment`] — [`segment_ct`]: CT -> [`Segmentation`] (probability, detections, report), and
//!   the files `nodal segment` writes ([`output`]: `nodes.json`, `nodes.csv`).
//! * [`filter`] — the component filter: features ([`filter::Feature`]), gradient boosting, the
//!   model file; [`fit`] — fitting it with a resumable sample record, and its cut-offs.
//! * [`validate`] — the evaluation protocol on annotated cases, many recipes from one inference
//!   ([`validate::score_points`]); [`select`] — the grids and the rule a point is chosen by;
//!   [`tune`] — operating point and mask drawing chosen by the selection score, and the trainer's
//!   [`tune::ProtocolValidator`].
//! * [`negatives`] — a model's false-positive components on a training dataset (hard negatives).
//! * [`ledger`] — the resumable per-case record the long jobs share.
//!
//! ```no_run
//! let model = nodal_detect::default_model().unwrap();
//! let ct = nodal_io::read_ct("ct.nii.gz").unwrap();
//! let seg = nodal_detect::segment_ct(&ct.hu, &model, &Default::default(), None).unwrap();
//! for d in &seg.detected.detections {
//!     println!("node {}: short axis {:.1} mm", d.measurement.node_id, d.measurement.axes.short_axis_mm);
//! }
//! ```
pub mod detection;
mod error;
pub mod filter;
pub mod fit;
pub mod large_nodes;
pub mod ledger;
pub mod model;
pub mod negatives;
pub mod output;
pub mod probability;
pub mod recipe;
pub mod segment;
pub mod select;
pub mod tune;
pub mod validate;

pub use detection::Detection;
pub use error::DetectError;
pub use model::{default_model, load_model, load_model_or_default, Model};
pub use probability::NodeProbability;
pub use recipe::{Candidates, Cutoffs, Detected, PostProcessReport, Recipe};
pub use segment::{segment_ct, write_segmentation, Segmentation};
