//! The network's probability over a node's voxels: a per-node confidence to rank detections by,
//! and two of the component filter's features.
use nodal_core::Volume;
use serde::{Deserialize, Serialize};

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
