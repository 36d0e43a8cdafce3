//! Tuning: choosing a model's operating point and mask drawing on annotated cases, from one
//! inference per case, by the selection score (`nodal_eval::selection_score`); and the
//! trainer's validation ([`ProtocolValidator`]), which chooses the operating point the same way.
//!
//! Use cases the model was not trained on and that will not validate it.
use crate::filter::ComponentFilter;
use crate::model::Model;
use crate::recipe::Cutoffs;
use crate::select::{
    choose_point, operating_point_grid, LargeNodes, OperatingPoint, CONVEX_FILL_GRID, MASK_THRESHOLD_GRID,
    PEAK_GRID,
};
use crate::validate::{score_points, Point};
use crate::DetectError;
use indicatif::ProgressBar;
use nodal_eval::{SelectionTargets, ValMetrics};
use nodal_net::infer::InferOptions;
use nodal_net::train::{ValCase, Validation, Validator};
use nodal_net::{LoadedModel, ModelConfig};
use nodal_nodes::postprocess::PostProcessConfig;
use serde::{Deserialize, Serialize};

/// The points [`tune_operating_point`] scores: the whole grid, or with a component filter the
/// grid's peak cut-offs at the model's own threshold — the filter's features (volume, shape,
/// mean probability) were learnt from components cut at that threshold and mean something else
/// at another one.
pub fn tuning_points(config: &ModelConfig, has_filter: bool) -> Vec<OperatingPoint> {
    if has_filter {
        PEAK_GRID.iter().map(|&min_peak| OperatingPoint { threshold: config.threshold, min_peak }).collect()
    } else {
        operating_point_grid()
    }
}

/// The table a tuning chose from.
#[derive(Clone, Debug, Serialize)]
pub struct Table<P> {
    /// Every point with its metrics.
    pub points: Vec<(P, ValMetrics)>,
    /// Index of the chosen point.
    pub best: usize,
    /// Index of the model's current setting.
    pub current: usize,
}

/// Scores the operating points ([`tuning_points`]) on `cases` and chooses the highest score
/// (ties: the earlier point). The rest of the recipe (mask drawing, the filter at its own
/// cut-off) is the model's.
///
/// # Errors
/// Inference and evaluation errors, naming the case.
pub fn tune_operating_point(
    model: &Model,
    cases: &[ValCase],
    opts: &InferOptions,
    targets: &SelectionTargets,
    progress: Option<&ProgressBar>,
) -> Result<Table<OperatingPoint>, DetectError> {
    let (points, best, metrics) =
        choose_operating_point(&model.net, model.filter.as_ref(), cases, opts, targets, progress)?;
    let own =
        OperatingPoint { threshold: model.config().threshold, min_peak: model.config().min_peak_probability };
    let current = points.iter().position(|p| *p == own).unwrap_or(best);
    Ok(Table { points: points.into_iter().zip(metrics).collect(), best, current })
}

/// Scores [`tuning_points`] with `filter` at its own cut-off; returns the points, the index of
/// the best and every point's metrics.
fn choose_operating_point(
    net: &LoadedModel,
    filter: Option<&ComponentFilter>,
    cases: &[ValCase],
    opts: &InferOptions,
    targets: &SelectionTargets,
    progress: Option<&ProgressBar>,
) -> Result<(Vec<OperatingPoint>, usize, Vec<ValMetrics>), DetectError> {
    let points = tuning_points(&net.config, filter.is_some());
    let min_score = filter.map(|f| f.min_score);
    let scored: Vec<Point> = points
        .iter()
        .map(|p| Point {
            postprocess: net.config.at_operating_point(p.threshold, p.min_peak).postprocess_config(),
            cutoffs: Cutoffs { min_peak: p.min_peak, min_score },
        })
        .collect();
    let metrics = score_points(net, filter, cases, opts, &scored, targets, progress)?;
    let mut best = 0;
    for (i, m) in metrics.iter().enumerate() {
        if m.score > metrics[best].score {
            best = i;
        }
    }
    Ok((points, best, metrics))
}

/// How a model's kept components are drawn: its `mask_threshold` and
/// `convex_fill_min_short_axis_mm`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MaskSetting {
    /// Kept components keep only their voxels at or above this; `None` keeps them whole.
    pub mask_threshold: Option<f32>,
    /// Cross-sections of nodes of at least this short axis are filled to their convex hull, mm.
    pub convex_fill_min_short_axis_mm: Option<f64>,
}

/// Chooses the mask drawing at the model's own threshold, peak cut-off and component filter (so
/// the same components are kept; only their extent changes): every pair of
/// [`MASK_THRESHOLD_GRID`] (values above the threshold) and [`CONVEX_FILL_GRID`], and the pair
/// with the best selection score among those `rule` allows against the current drawing (point 0).
///
/// # Errors
/// Inference and evaluation errors, naming the case.
pub fn tune_mask(
    model: &Model,
    cases: &[ValCase],
    opts: &InferOptions,
    targets: &SelectionTargets,
    rule: LargeNodes,
    progress: Option<&ProgressBar>,
) -> Result<Table<MaskSetting>, DetectError> {
    let own = Point::of_model(model);
    let current = own.postprocess;
    let mut configs: Vec<PostProcessConfig> = vec![current];
    for &mask_threshold in MASK_THRESHOLD_GRID.iter().filter(|m| m.is_none_or(|m| m > current.threshold)) {
        for &convex_fill_min_short_axis_mm in &CONVEX_FILL_GRID {
            let c = PostProcessConfig { mask_threshold, convex_fill_min_short_axis_mm, ..current };
            if c != current {
                configs.push(c);
            }
        }
    }
    let points: Vec<Point> = configs.iter().map(|&postprocess| Point { postprocess, ..own }).collect();
    let metrics = score_points(&model.net, model.filter.as_ref(), cases, opts, &points, targets, progress)?;
    let best = choose_point(&metrics, 0, rule);
    let settings = configs.iter().map(|c| MaskSetting {
        mask_threshold: c.mask_threshold,
        convex_fill_min_short_axis_mm: c.convex_fill_min_short_axis_mm,
    });
    Ok(Table { points: settings.zip(metrics).collect(), best, current: 0 })
}

/// The trainer's validation: the evaluation protocol at every operating point of the grid, from
/// one inference per case, and the point with the best selection score. No component filter: one
/// fitted to other weights would not fit these.
#[derive(Clone, Debug, Default)]
pub struct ProtocolValidator {
    /// Inference options.
    pub opts: InferOptions,
}

impl Validator for ProtocolValidator {
    fn validate(
        &self,
        model: &LoadedModel,
        cases: &[ValCase],
        targets: &SelectionTargets,
    ) -> Result<Validation, Box<dyn std::error::Error + Send + Sync>> {
        let (points, best, metrics) = choose_operating_point(model, None, cases, &self.opts, targets, None)?;
        let point = points[best];
        let config = model.config.at_operating_point(point.threshold, point.min_peak);
        let grid: Vec<(OperatingPoint, ValMetrics)> =
            points.into_iter().zip(metrics.iter().cloned()).collect();
        let record = serde_json::json!({ "operating_point": point, "metrics": metrics[best], "grid": grid });
        Ok(Validation { config, metrics: metrics[best].clone(), record })
    }
}
