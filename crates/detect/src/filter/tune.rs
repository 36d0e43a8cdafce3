//! Fitting a component filter to a network: the samples are the components of the network's mask
//! on annotated cases ([`case_samples`]), and the cut-offs are chosen on other cases by the
//! selection score ([`tune_filter`]).
//!
//! * [`case_samples`] — the components of `p >= threshold` (the recipe's connectivity, no peak
//!   cut-off) whose axial short axis reaches the protocol's 4.5 mm, with their features; a
//!   component is a node when it touches a ground-truth node voxel (the complement of
//!   [`crate::negatives`]).
//! * [`tune_filter`] — the evaluation protocol on selection cases at every peak cut-off of
//!   [`PEAK_GRID`] times every filter cut-off of [`SCORE_GRID`], from one inference per case; the
//!   point with the best selection score wins among those the [`LargeNodes`] rule allows against
//!   the model alone.
use nodal_core::vocab::MIN_SHORT_AXIS_MM;
use nodal_core::Volume;
use nodal_eval::{SelectionTargets, ValMetrics};
use nodal_net::infer::InferOptions;
use nodal_net::train::ValCase;
use nodal_net::LoadedModel;
use serde::{Deserialize, Serialize};

use super::{component_features, ComponentFilter, N_FEATURES};
use crate::model::predict;
use crate::recipe::{Candidates, Cutoffs};
use crate::tune::{choose_point, LargeNodes, PEAK_GRID};
use crate::validate::{score_points, Point};
use crate::DetectError;

/// Filter cut-offs tried by [`tune_filter`]; 0 keeps every component (no filter).
pub const SCORE_GRID: [f64; 11] = [0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6];

/// One component of a network's mask on an annotated case.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Component id in the case's component labelling.
    pub label: u32,
    /// Features in the order of [`super::Feature::ALL`].
    pub values: [f64; N_FEATURES],
    /// Touches a ground-truth node voxel.
    pub is_node: bool,
}

/// The samples of one case: inference with `net`, the recipe's components at its threshold
/// (no filter, no peak cut-off), those of at least 4.5 mm short axis with every feature.
///
/// # Errors
/// Inference errors; [`DetectError::Core`] when `labels` is not on the CT grid.
pub fn case_samples(
    net: &LoadedModel,
    ct: &Volume<i16>,
    labels: &Volume<u16>,
    opts: &InferOptions,
) -> Result<Vec<Sample>, DetectError> {
    ct.check_same_grid(labels)?;
    let out = predict(net, ct, opts, None)?;
    let pp = net.config.postprocess_config();
    let cc = Candidates::with_filter(&out.probability, Some(ct), &pp, None)?.components;
    let mut touches = vec![false; cc.peaks.len()];
    for (&c, &g) in cc.labels.as_slice().iter().zip(labels.as_slice()) {
        if c > 0 && g > 0 {
            touches[c as usize] = true;
        }
    }
    let features = component_features(&cc.labels, &out.probability, ct, true)?;
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

/// Scores `filter` on `cases` at the model's recipe, every peak cut-off of [`PEAK_GRID`] and
/// every filter cut-off of [`SCORE_GRID`] (and the model's own peak cut-off without a filter, when
/// the grid lacks it); chooses the point with the highest selection score among those `rule`
/// allows against the model alone (ties: the earlier point).
///
/// # Errors
/// Inference and evaluation errors, naming the case.
pub fn tune_filter(
    net: &LoadedModel,
    filter: &ComponentFilter,
    cases: &[ValCase],
    opts: &InferOptions,
    targets: &SelectionTargets,
    rule: LargeNodes,
) -> Result<FilterTable, DetectError> {
    let mut points: Vec<FilterPoint> = PEAK_GRID
        .iter()
        .flat_map(|&min_peak| SCORE_GRID.iter().map(move |&min_score| FilterPoint { min_peak, min_score }))
        .collect();
    let alone = FilterPoint { min_peak: net.config.min_peak_probability, min_score: 0.0 };
    let model_alone = match points.iter().position(|p| *p == alone) {
        Some(i) => i,
        None => {
            points.push(alone);
            points.len() - 1
        }
    };
    let postprocess = net.config.postprocess_config();
    let scored: Vec<Point> = points
        .iter()
        .map(|p| Point {
            postprocess,
            cutoffs: Cutoffs { min_peak: p.min_peak, min_score: Some(p.min_score) },
        })
        .collect();
    let metrics = score_points(net, Some(filter), cases, opts, &scored, targets, None)?;
    let best = choose_point(&metrics, model_alone, rule);
    Ok(FilterTable { points: points.into_iter().zip(metrics).collect(), best, model_alone })
}
