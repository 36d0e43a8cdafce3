//! Node geometry: connected components, RECIST measurements and the post-processing steps of node
//! masks. Pure geometry on label maps — what a model said about a node (probabilities, a learnt
//! filter's score) and file outputs live in `nodal-detect`.
//!
//! * [`components`] — 3D connected components ([`Connectivity`] 6/18/26) of masks
//!   ([`label_components`]) and of label maps per value ([`label_components_of_labels`]).
//! * [`measure`] — the protocol's axial short/long axes ([`measure::axial_axes`]) and full per-node
//!   measurements ([`measure::measure_nodes`] -> [`measure::NodeMeasurement`]).
//! * [`postprocess`] — the steps from components to measured instance labels: threshold and
//!   peaks ([`postprocess::PeakComponents`]), size filter, hole filling, convex fill, optional
//!   splitting of touching nodes, relabel by decreasing short axis ([`postprocess::finish_nodes`],
//!   [`postprocess::postprocess_mask`] -> [`postprocess::Nodes`]).
//! * [`coverage`] — which body regions a CT shows and whether it covers the neck
//!   ([`coverage::body_coverage`]).
//! * [`NodesError`] — typed errors for bad input.
//!
//! ```
//! use nodal_core::{Geometry, Volume};
//! use nodal_nodes::{label_components, measure::axial_axes, Connectivity};
//! // A 3 x 2 pixel block in one slice at 1 x 1 x 2 mm: long axis = diagonal of the 3 x 2 mm box.
//! let mut mask = Volume::<u8>::zeros([6, 6, 3], Geometry::axis_aligned([1.0, 1.0, 2.0], [0.0; 3]));
//! for j in 1..3 {
//!     for i in 1..4 {
//!         mask.data_mut()[[1, j, i]] = 1;
//!     }
//! }
//! let (labels, n) = label_components(&mask, Connectivity::TwentySix);
//! assert_eq!(n, 1);
//! let ax = axial_axes(&labels)[1].unwrap();
//! assert!((ax.long_axis_mm - 13f64.sqrt()).abs() < 1e-12);
//! assert_eq!(ax.long_axis_slice, 1);
//! ```
pub mod components;
pub mod coverage;
mod error;
pub mod hull;
pub mod measure;
pub mod postprocess;

pub use components::{label_components, label_components_of_labels, Connectivity};
pub use error::NodesError;
