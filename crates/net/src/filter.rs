//! Fitting a component filter ([`nodal_nodes::filter`]) to a network: the samples are the
//! components of the network's mask on annotated cases, and the cut-offs are chosen on other
//! cases by the trainer's selection rule.
//!
//! * [`case_samples`] — the components of `p >= threshold` (26-connected, no peak cut-off) whose
//!   axial short axis reaches the protocol's 4.5 mm, with their features; a component is a node
//!   when it touches a ground-truth node voxel (the complement of [`crate::negatives`]).
//! * [`tune_filter`] — the evaluation protocol on selection cases at every peak cut-off of
//!   [`PEAK_GRID`] times every filter cut-off of [`SCORE_GRID`], from one inference per case; the
//!   point with the best [`selection_score`](crate::train::selection_score) wins; with
//!   [`LargeNodes::NoLoss`], only among the points that find as many large nodes (SAD >= 15 mm) as
//!   the model alone.
use nodal_core::Volume;
use nodal_nodes::filter::{component_features, ComponentFilter, N_FEATURES};
use nodal_nodes::postprocess::{finish_components, PeakComponents};
use nodal_nodes::Connectivity;
use serde::{Deserialize, Serialize};

use crate::infer::{predict, InferOptions};
use crate::train::{SelectionTargets, ValCase, ValMetrics, ValTally, PEAK_GRID};
use crate::{LoadedModel, NetError};

/// Filter cut-offs tried by [`tune_filter`]; 0 keeps every component (no filter).
pub const SCORE_GRID: [f64; 11] = [0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6];

/// The protocol's size filter: components with a smaller axial short axis never count, mm.
const MIN_SHORT_AXIS_MM: f64 = 4.5;

/// One component of a network's mask on an annotated case.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Component id in the case's component labelling.
    pub label: u32,
    /// Features in the order of [`nodal_nodes::filter::FEATURE_NAMES`].
    pub values: [f64; N_FEATURES],
    /// Touches a ground-truth node voxel.
    pub is_node: bool,
}

/// The samples of one case: inference with `model` (its component filter, if any, is not used),
/// components at the model's threshold, those of at least 4.5 mm short axis with their features.
///
/// # Errors
/// Inference errors; [`NetError::Core`] when `labels` is not on the CT grid.
pub fn case_samples(
    model: &LoadedModel,
    ct: &Volume<i16>,
    labels: &Volume<u16>,
    opts: &InferOptions,
) -> Result<Vec<Sample>, NetError> {
    let eval_err = |e: &dyn std::fmt::Display| NetError::Eval(e.to_string());
    ct.check_same_grid(labels)?;
    let out = predict(model, ct, opts, None)?;
    let cc = PeakComponents::new(&out.probability, model.config.threshold, Connectivity::TwentySix)
        .map_err(|e| eval_err(&e))?;
    let mut touches = vec![false; cc.peaks.len()];
    for (&c, &g) in cc.labels.as_slice().iter().zip(labels.as_slice()) {
        if c > 0 && g > 0 {
            touches[c as usize] = true;
        }
    }
    let features = component_features(&cc.labels, &out.probability, ct, true).map_err(|e| eval_err(&e))?;
    Ok(features
        .into_iter()
        .filter(|f| f.short_axis_mm >= MIN_SHORT_AXIS_MM)
        .map(|f| Sample { label: f.label, values: f.values, is_node: touches[f.label as usize] })
        .collect())
}

/// A peak cut-off and a filter cut-off.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct FilterPoint {
    /// Components whose highest probability is below this are dropped; `None` keeps all.
    pub min_peak: Option<f32>,
    /// Components the filter scores below this are dropped.
    pub min_score: f64,
}

/// Which cut-offs [`tune_filter`] may choose, as to the large nodes (SAD >= 15 mm) of the
/// selection cases.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LargeNodes {
    /// Any point: large nodes count like the others.
    Any,
    /// Only points that localize at least as many large nodes as the model alone (its own peak
    /// cut-off, no filter): a filter must not buy its false positives with the bulky and necrotic
    /// metastases that matter most for staging.
    NoLoss,
    /// Only points whose recall of the large nodes is at least this (e.g. as many as another
    /// model finds, when the model alone is not the reference).
    AtLeast(f64),
}

/// The result of [`tune_filter`].
#[derive(Clone, Debug)]
pub struct FilterTable {
    /// Every point tried with its metrics on the selection cases.
    pub points: Vec<(FilterPoint, ValMetrics)>,
    /// Index of the chosen point.
    pub best: usize,
    /// Index of the model alone (its own peak cut-off, no filter).
    pub model_alone: usize,
}

/// Scores `filter` on `cases` at the model's threshold, every peak cut-off of [`PEAK_GRID`] and
/// every filter cut-off of [`SCORE_GRID`] (and the model's own peak cut-off without a filter, when
/// the grid lacks it); chooses the point with the highest selection score among those `rule`
/// allows (ties: the earlier point).
///
/// # Errors
/// Inference and evaluation errors, naming the case.
pub fn tune_filter(
    model: &LoadedModel,
    filter: &ComponentFilter,
    cases: &[ValCase],
    opts: &InferOptions,
    targets: &SelectionTargets,
    rule: LargeNodes,
) -> Result<FilterTable, NetError> {
    let mut points: Vec<FilterPoint> = PEAK_GRID
        .iter()
        .flat_map(|&min_peak| SCORE_GRID.iter().map(move |&min_score| FilterPoint { min_peak, min_score }))
        .collect();
    let alone = FilterPoint { min_peak: model.config.min_peak_probability, min_score: 0.0 };
    let model_alone = match points.iter().position(|p| *p == alone) {
        Some(i) => i,
        None => {
            points.push(alone);
            points.len() - 1
        }
    };
    let mut tallies = vec![ValTally::default(); points.len()];
    let post = model.config.postprocess_config();
    for c in cases {
        let eval_err = |e: &dyn std::fmt::Display| NetError::Eval(format!("case {}: {e}", c.id));
        let out = predict(model, &c.ct, opts, None)?;
        let gt = nodal_eval::PreparedGt::new(&c.labels).map_err(|e| eval_err(&e))?;
        let cc = PeakComponents::new(&out.probability, model.config.threshold, Connectivity::TwentySix)
            .map_err(|e| eval_err(&e))?;
        let scores = filter.scores(&cc.labels, &out.probability, &c.ct).map_err(|e| eval_err(&e))?;
        for (tally, p) in tallies.iter_mut().zip(&points) {
            let keep: Vec<bool> = cc
                .peaks
                .iter()
                .zip(&scores)
                .map(|(&peak, s)| {
                    p.min_peak.is_none_or(|m| peak >= m) && s.is_some_and(|s| s.passes(p.min_score))
                })
                .collect();
            // Then the rest of `nodal segment`'s post-processing, as validation applies it.
            let mut labels = cc.labels.map(|l| if keep[l as usize] { l } else { 0 });
            finish_components(&mut labels, Some(&out.probability), &post).map_err(|e| eval_err(&e))?;
            let mask = labels.map(|l| u8::from(l > 0));
            let r = nodal_eval::evaluate_prepared(nodal_eval::Prediction::Mask(&mask), &gt, None)
                .map_err(|e| eval_err(&e))?;
            tally.add(&r);
        }
    }
    let metrics: Vec<ValMetrics> = tallies.iter().map(|t| t.metrics(cases.len(), targets)).collect();
    let best = choose_point(&metrics, model_alone, rule);
    Ok(FilterTable { points: points.into_iter().zip(metrics).collect(), best, model_alone })
}

/// The index of the highest selection score (ties: the earlier point) among the points `rule`
/// allows; the model alone, at `model_alone`, is always allowed.
pub fn choose_point(metrics: &[ValMetrics], model_alone: usize, rule: LargeNodes) -> usize {
    // Every point is scored on the same nodes, so comparing recalls compares counts.
    let large = |m: &ValMetrics| m.recall_sad_ge_15mm.unwrap_or(0.0);
    let floor = large(&metrics[model_alone]);
    let allowed = |m: &ValMetrics| match rule {
        LargeNodes::Any => true,
        LargeNodes::NoLoss => large(m) >= floor,
        LargeNodes::AtLeast(r) => large(m) >= r,
    };
    let mut best = model_alone;
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
