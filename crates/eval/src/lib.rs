//! Evaluation of lymph-node models with the published protocol and its statistics.
//!
//! Every definition follows `docs/evaluation-protocol.md`; outputs use its metric names.
//!
//! * [`scan`] — one scan: [`evaluate_scan`] takes a [`Prediction`] (binary mask or probability map)
//!   and a ground-truth instance label map and returns a [`ScanResult`]: post-processing
//!   (26-connected components, SAD < 4.5 mm removed), per-node sensitivity and localization,
//!   TP/FP components, recall/precision/F1, FP counts, Dice and surface distances of the filtered
//!   masks, a [`NodeRow`] per GT node and an [`FpRow`] per false positive.
//!   [`evaluate_prepared`] scores against a [`PreparedGt`] built once, for many predictions of one
//!   scan.
//! * [`distance`] — surface voxels, surface distances (on `nodal_core::edt`), and the summaries
//!   `assd`, `avg_hd`, `mhd`, `hd`, `hd95`.
//! * [`selection`] — metrics summed over a set of cases ([`ValTally`] -> [`ValMetrics`]) and the
//!   [`selection_score`] models and operating points are chosen by.
//! * Internally, masks and label maps are held as runs of nonzero voxels (nodes fill a tiny part of
//!   a CT): every stage works on runs and on small boxes around the nodes, and [`evaluate_case`]
//!   reads the files row by row into runs without building a full-size volume.
//! * [`stats`] — Shapiro-Wilk, Kruskal-Wallis, Dunn (Bonferroni), Pearson; p-values as SciPy's.
//! * [`cohort`] — pairing files into [`CaseInput`]s, [`evaluate_cohort`] (parallel), cohort means,
//!   Table 1, statistics and FROC in a [`CohortResult`] (`evaluation.json`, schema
//!   [`cohort::SCHEMA`]).
//! * [`output`] — [`write_outputs`]: JSON, CSV tables, `table1.md` and the figures ([`plots`]).
//! * [`meta`] — per-node metadata ([`NodeMeta`]: metastatic flags) from `nodes.json` or CSV.
//!
//! ```
//! use nodal_core::{Geometry, Volume};
//! use nodal_eval::{evaluate_scan, Prediction};
//! let g = Geometry::axis_aligned([1.0, 1.0, 1.0], [0.0; 3]);
//! let mut gt = Volume::<u16>::zeros([12, 12, 12], g);
//! let mut pred = Volume::<u8>::zeros([12, 12, 12], g);
//! for k in 2..8 { for j in 2..8 { for i in 2..8 {
//!     gt.data_mut()[[k, j, i]] = 1;
//!     pred.data_mut()[[k, j, i]] = 1;
//! } } }
//! let r = evaluate_scan(Prediction::Mask(&pred), &gt, None).unwrap();
//! assert_eq!(r.recall, Some(1.0));
//! assert_eq!(r.dice, Some(1.0));
//! assert_eq!(r.hd, Some(0.0));
//! ```
mod axes;
pub mod cohort;
pub mod distance;
mod error;
pub mod meta;
pub mod output;
pub mod plots;
pub mod scan;
pub mod selection;
mod sparse;
pub mod stats;
mod table;

pub use cohort::{
    evaluate_case, evaluate_cohort, pair_dirs, read_manifest, summarise_cohort, CaseInput, CaseResult,
    CohortResult, MetaSource,
};
pub use error::EvalError;
pub use meta::NodeMeta;
pub use nodal_core::SadGroup;
pub use output::write_outputs;
pub use scan::{evaluate_prepared, evaluate_scan, FpRow, NodeRow, Prediction, PreparedGt, ScanResult};
pub use selection::{selection_score, SelectionTargets, ValMetrics, ValTally};
