//! Node analysis: connected components, RECIST measurements and post-processing of node masks.
//!
//! * [`components`] — 3D connected components ([`Connectivity`] 6/18/26) of masks
//!   ([`label_components`]) and of label maps per value ([`label_components_of_labels`]).
//! * [`measure`] — the protocol's axial short/long axes ([`measure::axial_axes`]) and full per-node
//!   measurements ([`measure::measure_nodes`] -> [`measure::NodeMeasurement`]).
//! * [`postprocess`] — probability map or mask -> instance labels: threshold, components, size
//!   filter, hole filling, optional splitting of touching nodes, relabel by decreasing short axis
//!   ([`postprocess::PostProcessConfig`] -> [`postprocess::PostProcessed`]).
//! * [`output`] — `nodes.json` (schema `nodal.nodes/1`) and `nodes.csv`, written atomically.
//! * [`NodesError`] — typed errors for bad input.
pub mod components;
mod error;
pub mod hull;
pub mod measure;
pub mod output;
pub mod postprocess;

pub use components::{label_components, label_components_of_labels, Connectivity};
pub use error::NodesError;
