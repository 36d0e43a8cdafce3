//! Fitting a component filter to a network and choosing its cut-offs:
//!
//! * [`case_samples`] — the components of `p >= threshold` (the recipe's connectivity, no peak
//!   cut-off) whose axial short axis reaches the protocol's 4.5 mm, with their features; a
//!   component is a node when it touches a ground-truth node voxel (the complement of
//!   [`crate::negatives`]).
//! * [`tune_filter`] — the evaluation protocol on selection cases at every peak cut-off of
//!   [`PEAK_GRID`] times every filter cut-off of [`SCORE_GRID`], from one inference per case; the
//!   point with the best selection score wins among those the [`LargeNodes`] rule allows against
//!   the model alone.
//! * [`train_filter`] — samples from annotated datasets (resumable, [`SAMPLES_FILE`]), the trees,
//!   the cut-offs on other datasets, and a new model folder with `config.json` (the chosen peak
//!   cut-off), the weights (copied) and `component_filter.json`.
use crate::filter::{component_features, BoostConfig, ComponentFilter, Feature, N_FEATURES};
use crate::ledger::{Ledger, LedgerEntry, LedgerHeader, ModelIdentity, Resume};
use crate::model::{predict, unfiltered_version, Model, FILTERED_VERSION_SUFFIX, FILTER_FILE};
use crate::recipe::{Candidates, Cutoffs};
use crate::select::{choose_point, LargeNodes, PEAK_GRID};
use crate::validate::{score_points, Point};
use crate::DetectError;
use indicatif::ProgressBar;
use nodal_core::vocab::{LARGE_NODE_SHORT_AXIS_MM, MIN_SHORT_AXIS_MM};
use nodal_core::Volume;
use nodal_eval::{SelectionTargets, ValMetrics};
use nodal_net::config::{CONFIG_FILE, WEIGHTS_FILE};
use nodal_net::infer::InferOptions;
use nodal_net::train::{list_cases, load_val_cases, ValCase};
use nodal_net::LoadedModel;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Filter cut-offs tried by [`tune_filter`]; 0 keeps every component (no filter).
pub const SCORE_GRID: [f64; 11] = [0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6];

/// One component of a network's mask on an annotated case.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Component id in the case's component labelling.
    pub node_id: u32,
    /// Features in the order of [`Feature::ALL`].
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
        .map(|f| Sample { node_id: f.node_id, values: f.values, is_node: touches[f.node_id as usize] })
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

/// Schema of the samples record.
pub const SAMPLES_SCHEMA: &str = "nodal.filter_samples/1";
/// The samples record in the output model folder.
pub const SAMPLES_FILE: &str = "filter_samples.json";

#[derive(Serialize, Deserialize)]
struct SamplesHeader {
    #[serde(flatten)]
    producer: ModelIdentity,
    features: Vec<Feature>,
}

impl LedgerHeader for SamplesHeader {
    fn same_work(&self, earlier: &Self) -> bool {
        self.producer == earlier.producer && self.features == earlier.features
    }
}

/// The samples of one case.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CaseSamples {
    /// The dataset folder.
    pub dataset: String,
    /// Case id.
    pub case: String,
    /// Its components.
    pub samples: Vec<Sample>,
}

impl LedgerEntry for CaseSamples {
    fn key(&self) -> String {
        format!("{}\u{0}{}", self.dataset, self.case)
    }
}

/// What to fit and how to choose.
#[derive(Clone, Debug)]
pub struct FitOptions {
    /// Datasets whose components train the filter.
    pub data: Vec<PathBuf>,
    /// Datasets on which the cut-offs are chosen.
    pub select: Vec<PathBuf>,
    /// Output model folder (not the model's own).
    pub out: PathBuf,
    /// Components with at least this short axis are never dropped (`None`: no guard).
    pub keep_short_axis_mm: Option<f64>,
    /// Which cut-offs may be chosen, as to the large nodes.
    pub rule: LargeNodes,
    /// Weight in the fit of a node component of at least 15 mm short axis.
    pub large_node_weight: f64,
    /// Features (`None`: [`Feature::DEFAULT`]).
    pub features: Option<Vec<Feature>>,
    /// Tree settings.
    pub boost: BoostConfig,
    /// Inference options.
    pub opts: InferOptions,
}

/// What [`train_filter`] did.
#[derive(Clone, Debug)]
pub struct Fitted {
    /// The filter written.
    pub filter: ComponentFilter,
    /// Training cases, of which taken from an earlier run's samples.
    pub n_cases: usize,
    pub n_cases_kept: usize,
    /// Training components, touching a node, touching a node and >= 15 mm.
    pub n_components: usize,
    pub n_nodes: usize,
    pub n_large: usize,
    /// Selection cases.
    pub n_select: usize,
    /// The chosen point and its metrics; the model alone's metrics.
    pub chosen: (FilterPoint, ValMetrics),
    pub model_alone: ValMetrics,
}

/// Fits a component filter to `model`'s network (its own filter, if any, is not used: the new one
/// replaces it) and writes the model with the filter to `opts.out`. `notice` is told, before any
/// work, when an earlier samples record in `opts.out` cannot be resumed.
///
/// # Errors
/// [`DetectError::InvalidOption`] for bad options or an output folder that is the model's own;
/// dataset, inference and evaluation errors naming the case; [`DetectError::Write`] for outputs.
pub fn train_filter(
    model: &Model,
    opts: &FitOptions,
    progress: Option<&ProgressBar>,
    notice: &mut dyn FnMut(String),
) -> Result<Fitted, DetectError> {
    let bad = |name, value: String, reason| DetectError::InvalidOption { name, value, reason };
    if let Some(g) = opts.keep_short_axis_mm.filter(|g| !(g.is_finite() && *g > 0.0)) {
        return Err(bad("keep_short_axis_mm", g.to_string(), "must be a number of mm > 0"));
    }
    if !(opts.large_node_weight.is_finite() && opts.large_node_weight > 0.0) {
        return Err(bad("large_node_weight", opts.large_node_weight.to_string(), "must be a number > 0"));
    }
    if let LargeNodes::AtLeast(r) = opts.rule {
        if !(0.0..=1.0).contains(&r) {
            return Err(bad("min_large_recall", r.to_string(), "must be a fraction in [0, 1]"));
        }
    }
    if let Some(f) = &opts.features {
        crate::filter::feature_columns(f)?;
    }
    let net = &model.net;
    std::fs::create_dir_all(&opts.out).map_err(|e| DetectError::write(&opts.out, e))?;
    let same =
        |a: &Path, b: &Path| a.canonicalize().ok().zip(b.canonicalize().ok()).is_some_and(|(a, b)| a == b);
    if same(&opts.out, &net.folder) {
        return Err(bad("output folder", opts.out.display().to_string(), "is the model's own folder"));
    }
    let mut producer = ModelIdentity::of(net)?;
    // The samples do not depend on the model's own filter: a filtered model and the model it was
    // fitted to share them.
    producer.model_version = unfiltered_version(&net.config.version).to_string();
    let weights_sha256 = producer.model_sha256.clone();

    // Samples, resumed from an earlier run of the same model into the same folder.
    let header = SamplesHeader { producer, features: Feature::ALL.to_vec() };
    let (mut ledger, resume) =
        Ledger::<SamplesHeader, CaseSamples>::open(&opts.out.join(SAMPLES_FILE), SAMPLES_SCHEMA, header);
    if let Resume::Restarted(why) = &resume {
        notice(format!("{} {why}: every case is sampled again", opts.out.join(SAMPLES_FILE).display()));
    }
    let mut cases = Vec::new();
    for d in &opts.data {
        cases.extend(list_cases(d)?.into_iter().map(|c| (d.display().to_string(), c)));
    }
    if let Some(pb) = progress {
        pb.set_length(cases.len() as u64);
    }
    let mut n_cases_kept = 0;
    for (dataset, c) in &cases {
        if let Some(pb) = progress {
            pb.set_message(c.id.clone());
        }
        match ledger.take_earlier(&format!("{dataset}\u{0}{}", c.id)) {
            Some(s) => {
                ledger.keep(s);
                n_cases_kept += 1;
            }
            None => {
                let sample = || -> Result<Vec<Sample>, DetectError> {
                    let ct = nodal_io::read_nifti::<i16>(&c.image)?;
                    let labels = nodal_io::read_nifti::<u16>(&c.label)?;
                    case_samples(net, &ct, &labels, &opts.opts)
                };
                let samples = sample().map_err(|e| e.on_case(&c.id))?;
                // Rewritten after every case, so an interrupted run resumes from here.
                ledger.record(CaseSamples { dataset: dataset.clone(), case: c.id.clone(), samples })?;
            }
        }
        if let Some(pb) = progress {
            pb.inc(1);
        }
    }
    ledger.save()?;
    let all: Vec<&Sample> = ledger.cases().iter().flat_map(|c| &c.samples).collect();
    let n_nodes = all.iter().filter(|s| s.is_node).count();
    let x: Vec<[f64; N_FEATURES]> = all.iter().map(|s| s.values).collect();
    let y: Vec<bool> = all.iter().map(|s| s.is_node).collect();
    let sad = Feature::ShortAxisMm.column();
    let is_large = |s: &Sample| s.is_node && s.values[sad] >= LARGE_NODE_SHORT_AXIS_MM;
    let w: Vec<f64> = all.iter().map(|s| if is_large(s) { opts.large_node_weight } else { 1.0 }).collect();
    let n_large = all.iter().filter(|s| is_large(s)).count();
    let mut filter = ComponentFilter::fit(&x, &y, Some(&w), opts.features.as_deref(), opts.boost)?;
    filter.keep_short_axis_mm = opts.keep_short_axis_mm;

    // Cut-offs on the selection cases.
    let mut select_files = Vec::new();
    for d in &opts.select {
        select_files.extend(list_cases(d)?);
    }
    let select_cases = load_val_cases(&select_files)?;
    let targets = SelectionTargets::default();
    let tuned = tune_filter(net, &filter, &select_cases, &opts.opts, &targets, opts.rule)?;
    let (point, metrics) = tuned.points[tuned.best].clone();
    let alone = tuned.points[tuned.model_alone].1.clone();
    filter.min_score = point.min_score;
    filter.record = serde_json::json!({
        "model_id": net.config.model_id,
        "model_version": net.config.version,
        "model_sha256": weights_sha256,
        "threshold": net.config.threshold,
        "training_datasets": opts.data.iter().map(|d| d.display().to_string()).collect::<Vec<_>>(),
        "training_cases": cases.len(),
        "training_components": all.len(),
        "training_components_touching_a_node": n_nodes,
        "large_node_weight": opts.large_node_weight,
        "training_components_touching_a_node_ge_15mm": n_large,
        "selection_datasets": opts.select.iter().map(|d| d.display().to_string()).collect::<Vec<_>>(),
        "selection_cases": select_cases.len(),
        "selection_targets": targets,
        "large_nodes": opts.rule,
        "model_alone": { "min_peak_probability": net.config.min_peak_probability, "metrics": alone },
        "chosen": { "min_peak_probability": point.min_peak, "min_score": point.min_score, "metrics": metrics },
        "table": tuned.points.iter().map(|(p, m)| serde_json::json!({ "point": p, "metrics": m })).collect::<Vec<_>>(),
    });

    let mut config = net.config.at_operating_point(net.config.threshold, point.min_peak);
    // A filter fitted to a model that had one replaces it, so the suffix is not repeated.
    config.version = format!("{}{FILTERED_VERSION_SUFFIX}", unfiltered_version(&net.config.version));
    write_model_folder(net, &config, Some(&filter), &opts.out)?;
    let n_cases = cases.len();
    Ok(Fitted {
        filter,
        n_cases,
        n_cases_kept,
        n_components: all.len(),
        n_nodes,
        n_large,
        n_select: select_cases.len(),
        chosen: (point, metrics),
        model_alone: alone,
    })
}

/// Writes a model folder for `net`'s weights (copied from its folder) with `config` and, when
/// given, `filter` (each file atomically).
///
/// # Errors
/// [`DetectError::Write`] naming the file.
pub fn write_model_folder(
    net: &nodal_net::LoadedModel,
    config: &nodal_net::ModelConfig,
    filter: Option<&ComponentFilter>,
    out: &Path,
) -> Result<(), DetectError> {
    std::fs::create_dir_all(out).map_err(|e| DetectError::write(out, e))?;
    let weights = out.join(WEIGHTS_FILE);
    let tmp = out.join(format!(".{WEIGHTS_FILE}.tmp"));
    std::fs::copy(net.folder.join(WEIGHTS_FILE), &tmp).map_err(|e| DetectError::write(&tmp, e))?;
    std::fs::rename(&tmp, &weights).map_err(|e| DetectError::write(&weights, e))?;
    config.save(&out.join(CONFIG_FILE))?;
    let filter_path = out.join(FILTER_FILE);
    match filter {
        Some(f) => {
            let json =
                serde_json::to_string_pretty(f).map_err(|e| DetectError::write(&filter_path, e.into()))?;
            nodal_core::fs::write_atomic(&filter_path, json.as_bytes())
                .map_err(|e| DetectError::write(&filter_path, e))?;
        }
        None => {
            // A filter left from another model would be applied to this one's outputs.
            let _ = std::fs::remove_file(&filter_path);
        }
    }
    Ok(())
}
