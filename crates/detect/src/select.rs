//! How models and settings are chosen: the grids tuning scores, the operating point, and the rule
//! that picks a point from a table of validation metrics ([`choose_point`]).
use nodal_eval::ValMetrics;
use serde::{Deserialize, Serialize};

/// Voxel thresholds of the operating-point grid.
pub const THRESHOLD_GRID: [f32; 6] = [0.2, 0.25, 0.3, 0.4, 0.5, 0.6];
/// Component peak cut-offs of the operating-point grid (`None`: no cut-off). The network's
/// probabilities saturate, so the useful cut-offs crowd below 1.
pub const PEAK_GRID: [Option<f32>; 8] =
    [None, Some(0.99), Some(0.995), Some(0.997), Some(0.998), Some(0.999), Some(0.9995), Some(0.9998)];

/// Mask thresholds tried for a model's kept components ([`tune_mask`]); `None` keeps them whole.
pub const MASK_THRESHOLD_GRID: [Option<f32>; 6] =
    [None, Some(0.3), Some(0.4), Some(0.5), Some(0.6), Some(0.7)];
/// Convex-fill size gates tried with them, mm: none, or every node of at least 10 mm short axis
/// (the usual size criterion of a suspicious cervical node).
pub const CONVEX_FILL_GRID: [Option<f64>; 2] = [None, Some(10.0)];

/// A voxel threshold and a component peak cut-off.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct OperatingPoint {
    /// Foreground is `p >= threshold`.
    pub threshold: f32,
    /// Components whose highest probability is below this are dropped; `None` keeps all.
    pub min_peak: Option<f32>,
}

/// Every (threshold, peak cut-off) pair of [`THRESHOLD_GRID`] x [`PEAK_GRID`].
pub fn operating_point_grid() -> Vec<OperatingPoint> {
    THRESHOLD_GRID
        .iter()
        .flat_map(|&threshold| PEAK_GRID.iter().map(move |&min_peak| OperatingPoint { threshold, min_peak }))
        .collect()
}

/// Which points a tuning may choose, as to the large nodes (SAD >= 15 mm) of the tuning cases.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LargeNodes {
    /// Any point: large nodes count like the others.
    Any,
    /// Only points that localize at least as many large nodes as the current setting: a filter
    /// or a mask must not buy its gains with the bulky and necrotic metastases that matter most
    /// for staging.
    NoLoss,
    /// Only points whose recall of the large nodes is at least this.
    AtLeast(f64),
}

/// The index of the highest selection score (ties: the earlier point) among the points `rule`
/// allows; the current setting, at `current`, is always allowed.
pub fn choose_point(metrics: &[ValMetrics], current: usize, rule: LargeNodes) -> usize {
    // Every point is scored on the same nodes, so comparing recalls compares counts.
    let large = |m: &ValMetrics| m.recall_sad_ge_15mm.unwrap_or(0.0);
    let floor = large(&metrics[current]);
    let allowed = |m: &ValMetrics| match rule {
        LargeNodes::Any => true,
        LargeNodes::NoLoss => large(m) >= floor,
        LargeNodes::AtLeast(r) => large(m) >= r,
    };
    let mut best = current;
    for (i, m) in metrics.iter().enumerate() {
        let better = m.score > metrics[best].score || (m.score == metrics[best].score && i < best);
        if allowed(m) && better {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(score: f64, large: Option<f64>) -> ValMetrics {
        ValMetrics {
            n_cases: 1,
            n_gt: 10,
            recall: score - 1.0,
            recall_ceiling: None,
            recall_countable: None,
            fp_per_scan: 1.0,
            dice: Some(0.8),
            recall_sad_ge_15mm: large,
            recall_sad_ge_5mm: None,
            score,
        }
    }

    /// 0: the model alone (finds 3 of 4 large nodes); 1: the best score, loses one; 2: keeps the
    /// 3 with a lower score; 3: finds all 4 with a lower score still.
    fn four_points() -> [ValMetrics; 4] {
        [
            metrics(1.5, Some(0.75)),
            metrics(1.7, Some(0.5)),
            metrics(1.6, Some(0.75)),
            metrics(1.55, Some(1.0)),
        ]
    }

    #[test]
    fn the_large_node_rule_refuses_points_that_lose_large_nodes() {
        let m = four_points();
        assert_eq!(choose_point(&m, 0, LargeNodes::Any), 1);
        assert_eq!(choose_point(&m, 0, LargeNodes::NoLoss), 2);
        // The model alone stays when every other point loses a large node.
        let m = [metrics(1.7, Some(0.5)), metrics(1.5, Some(0.75))];
        assert_eq!(choose_point(&m, 1, LargeNodes::NoLoss), 1);
        assert_eq!(choose_point(&m, 1, LargeNodes::Any), 0);
    }

    #[test]
    fn a_large_node_floor_of_its_own_replaces_the_model_alone() {
        let m = four_points();
        assert_eq!(choose_point(&m, 0, LargeNodes::AtLeast(0.5)), 1);
        assert_eq!(choose_point(&m, 0, LargeNodes::AtLeast(0.7)), 2);
        assert_eq!(choose_point(&m, 0, LargeNodes::AtLeast(1.0)), 3);
    }

    #[test]
    fn ties_go_to_the_earlier_point_and_cases_without_large_nodes_allow_all() {
        let m = [metrics(1.6, None), metrics(1.6, None), metrics(1.5, None)];
        assert_eq!(choose_point(&m, 2, LargeNodes::NoLoss), 0);
        assert_eq!(choose_point(&m, 2, LargeNodes::Any), 0);
    }
}
