//! A detection: a measured node together with what the model said about it — the network's
//! probability over its voxels and the component filter's verdict. The geometry comes from
//! `nodal_nodes` alone; the confidences belong to the model that drew the node.
use crate::filter::FilterScore;
use nodal_core::Volume;
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

/// A node's network probability: a per-node confidence for ranking detections (FROC curves,
/// reading the least certain nodes first).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeProbability {
    /// Highest probability of any voxel of the node.
    pub peak: f64,
    /// Mean over the node's voxels (hole and convex filling add voxels the network scored lower).
    pub mean: f64,
}

/// Peak and mean of `prob` over the voxels of every label `0..=max` of `labels` (index = label;
/// a label without voxels gets peak -inf and mean NaN). `prob` is on the labels' grid (callers
/// check it).
pub fn label_probabilities(labels: &Volume<u32>, prob: &Volume<f32>) -> Vec<NodeProbability> {
    let n = labels.as_slice().iter().copied().max().unwrap_or(0) as usize;
    let mut peak = vec![f64::NEG_INFINITY; n + 1];
    let mut sum = vec![0.0f64; n + 1];
    let mut count = vec![0usize; n + 1];
    for (&l, &p) in labels.as_slice().iter().zip(prob.as_slice()) {
        let l = l as usize;
        peak[l] = peak[l].max(f64::from(p));
        sum[l] += f64::from(p);
        count[l] += 1;
    }
    (0..=n).map(|l| NodeProbability { peak: peak[l], mean: sum[l] / count[l] as f64 }).collect()
}
