//! A detection: a measured node together with what the model said about it — the network's
//! probability over its voxels and the component filter's verdict. The geometry comes from
//! `nodal_nodes` alone; the confidences belong to the model that drew the node.
use crate::filter::FilterScore;
use crate::probability::NodeProbability;
use nodal_nodes::measure::NodeMeasurement;
use serde::{Deserialize, Serialize};

/// One detected node: its measurement (flattened into the same JSON object) and confidences.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// Geometry, RECIST axes, HU statistics, side and size classes.
    #[serde(flatten)]
    pub measurement: NodeMeasurement,
    /// The network's probability over the node's voxels, when the node came from a probability
    /// map (`nodal segment`); `None` for label maps measured on their own.
    pub probability: Option<NodeProbability>,
    /// The component filter's verdict on the component the node was drawn from, when a filter
    /// chose it; `None` otherwise.
    pub filter: Option<FilterScore>,
}

impl Detection {
    /// A node measured from a label map on its own: no confidences.
    pub fn measured(measurement: NodeMeasurement) -> Self {
        Detection { measurement, probability: None, filter: None }
    }
}
