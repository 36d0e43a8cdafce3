//! Training on an nnU-Net raw-layout dataset (`imagesTr/<case>_0000.nii.gz`,
//! `labelsTr/<case>.nii.gz`, instance labels > 0 = node).
//!
//! * Cases are split once, by the seed, into training and held-out validation cases
//!   (`split.json` in the run folder); validation cases are never sampled for training.
//! * Each training case is preprocessed once (model grid, [`Pyramid`], binary label, node voxel
//!   lists). A batch draws patches with foreground oversampling (`foreground_fraction` of the
//!   patches are centred near a voxel of a node drawn with weight `voxels^node_size_exponent`) and
//!   random [`Augmentation`]. Of the other patches, `hard_negative_fraction` are centred near a
//!   voxel of the case's hard negatives (`negativesTr/`, see [`crate::negatives`]) when it has
//!   them; the rest anywhere in the case.
//! * Loss = cross-entropy + soft Dice (batch Dice of the node channel); AdamW with gradient-norm
//!   clipping; learning rate: linear warm-up then cosine decay to 1% ([`learning_rate`]).
//! * Every `val_every` steps: sliding-window inference on the validation CTs, scored on the CT grid
//!   with the evaluation protocol ([`nodal_eval::evaluate_prepared`]): recall (a GT node is localized
//!   when at least 40% of it is covered), false positives per scan, Dice, recall of nodes with
//!   SAD of at least 15 mm — at each [`OperatingPoint`] of a grid (voxel threshold x component
//!   peak cut-off), from one inference per case. The point with the best [`selection_score`] for
//!   the run's [`SelectionTargets`] is the validation's result; the best such result is exported to
//!   `best/` as a model folder whose config carries that operating point.
//! * Every `checkpoint_every` steps `checkpoint/` is replaced atomically: model (burnpack, which
//!   keeps parameter ids so the optimizer state re-attaches), AdamW state, and `state.json` (step,
//!   RNG state, best score). `--resume` continues bit-for-bit from it.
//! * `log.csv` + `log.jsonl`: one record per `log_every` steps and per validation.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::store::{BurnpackStore, ModuleSnapshot};
use burn::tensor::activation::{log_softmax, softmax};
use indicatif::ProgressBar;
use ndarray::Array3;
use nodal_core::{Interpolation, Volume};
use nodal_nodes::postprocess::{drop_filtered, finish_components, PeakComponents, PostProcessConfig};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::{save_model, write_atomic, LoadedModel, ModelConfig};
use crate::infer::{predict, InferOptions};
use crate::model::Net;
use crate::negatives::NEGATIVES_DIR;
use crate::patch::{sample_training_patch, Augmentation, Pyramid};
use crate::preprocess::prepare;
use crate::rng::Rng;
use crate::NetError;

/// Everything a training run needs besides the data; saved as `train_config.json` in the run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// The model to train (architecture, preprocessing, patch sizes).
    pub model: ModelConfig,
    /// Seed of the split, initial weights, patch sampling and augmentation.
    pub seed: u64,
    /// Optimisation steps.
    pub steps: usize,
    /// Patches per step.
    pub batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// Linear warm-up steps.
    pub warmup_steps: usize,
    /// Fraction of patches centred near a node.
    pub foreground_fraction: f64,
    /// Which node a foreground patch is centred on: each node is drawn with weight
    /// `voxels^node_size_exponent` (0 = every node equally often, 1 = every node voxel equally
    /// often). Large nodes are few, and with 0 the net rarely sees a whole bulky or necrotic node.
    #[serde(default)]
    pub node_size_exponent: f64,
    /// Fraction of the other (background) patches centred near a voxel of the case's hard
    /// negatives, where a model found a node that is not there (`negativesTr/`, written by
    /// `nodal hard-negatives`); cases without such a mask always get uniformly drawn centres.
    #[serde(default)]
    pub hard_negative_fraction: f64,
    /// Start from the weights of this model folder (fine-tuning, e.g. on a user's cohort) instead
    /// of a random initialisation. Its architecture and preprocessing must equal `model`'s.
    #[serde(default)]
    pub init_from: Option<PathBuf>,
    /// Apply random augmentation.
    pub augment: bool,
    /// Held-out validation cases (taken from the dataset by the seeded shuffle).
    pub val_cases: usize,
    /// Validate every this many steps (0 = only at the end).
    pub val_every: usize,
    /// Write a checkpoint every this many steps.
    pub checkpoint_every: usize,
    /// Log averaged training loss every this many steps.
    pub log_every: usize,
    /// Use at most this many training cases (memory bound); `None` = all.
    pub max_train_cases: Option<usize>,
    /// Stop (with checkpoint and final validation) after this many minutes of wall time.
    pub max_minutes: Option<f64>,
    /// What validation selects operating points and checkpoints for.
    #[serde(default)]
    pub selection: SelectionTargets,
}

/// The operating targets a model is selected for: at most `max_fp_per_scan` false positives per
/// scan with a Dice of at least `min_dice`, and then as much recall as possible.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SelectionTargets {
    /// False-positive budget per scan.
    pub max_fp_per_scan: f64,
    /// Lowest acceptable mean per-scan Dice.
    pub min_dice: f64,
}

impl Default for SelectionTargets {
    /// 3 FP/scan and Dice 0.80: half the study's 6.5 FP/scan, above its 0.73 Dice.
    fn default() -> Self {
        SelectionTargets { max_fp_per_scan: 3.0, min_dice: 0.8 }
    }
}

impl TrainConfig {
    /// Defaults for the foveal net.
    pub fn default_foveal() -> Self {
        TrainConfig {
            model: ModelConfig::default_foveal(),
            seed: 1,
            steps: 2000,
            batch_size: 2,
            lr: 3e-3,
            weight_decay: 1e-4,
            warmup_steps: 100,
            foreground_fraction: 0.67,
            node_size_exponent: 0.0,
            hard_negative_fraction: 0.0,
            init_from: None,
            augment: true,
            val_cases: 4,
            val_every: 500,
            checkpoint_every: 100,
            log_every: 10,
            max_train_cases: Some(80),
            max_minutes: None,
            selection: SelectionTargets::default(),
        }
    }

    /// Checks ranges.
    pub fn validate(&self) -> Result<(), NetError> {
        self.model.validate()?;
        let bad = |m: String| Err(NetError::InvalidConfig(m));
        if self.batch_size == 0 || self.batch_size > 64 {
            return bad(format!("batch_size {} outside 1..=64", self.batch_size));
        }
        if !(self.lr > 0.0 && self.lr < 1.0) {
            return bad(format!("lr {} outside (0, 1)", self.lr));
        }
        if !(0.0..=1.0).contains(&self.foreground_fraction) {
            return bad(format!("foreground_fraction {} outside [0, 1]", self.foreground_fraction));
        }
        if !(0.0..=1.0).contains(&self.hard_negative_fraction) {
            return bad(format!("hard_negative_fraction {} outside [0, 1]", self.hard_negative_fraction));
        }
        if !(0.0..=2.0).contains(&self.node_size_exponent) {
            return bad(format!("node_size_exponent {} outside [0, 2]", self.node_size_exponent));
        }
        if self.checkpoint_every == 0 || self.log_every == 0 {
            return bad("checkpoint_every and log_every must be positive".into());
        }
        let t = self.selection;
        if !(t.max_fp_per_scan.is_finite() && t.max_fp_per_scan >= 0.0 && (0.0..=1.0).contains(&t.min_dice)) {
            return bad(format!("selection targets {t:?}: need max_fp_per_scan >= 0 and min_dice in [0, 1]"));
        }
        Ok(())
    }

    /// Reads a config JSON file.
    pub fn load(path: &Path) -> Result<Self, NetError> {
        let text = std::fs::read_to_string(path).map_err(|e| NetError::io(path, e))?;
        let cfg: TrainConfig = serde_json::from_str(&text)
            .map_err(|e| NetError::InvalidConfig(format!("{}: {e}", path.display())))?;
        cfg.validate()?;
        Ok(cfg)
    }
}

/// Learning rate at `step`: linear warm-up to `lr`, then cosine decay to `lr / 100` at `steps`.
pub fn learning_rate(cfg: &TrainConfig, step: usize) -> f64 {
    if step < cfg.warmup_steps {
        return cfg.lr * (step + 1) as f64 / cfg.warmup_steps as f64;
    }
    let span = cfg.steps.saturating_sub(cfg.warmup_steps).max(1) as f64;
    let t = ((step - cfg.warmup_steps) as f64 / span).min(1.0);
    let min = cfg.lr / 100.0;
    min + 0.5 * (cfg.lr - min) * (1.0 + (std::f64::consts::PI * t).cos())
}

/// One dataset case: image and label file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaseFiles {
    /// Case identifier (`case_001`).
    pub id: String,
    /// `imagesTr/<id>_0000.nii.gz`.
    pub image: PathBuf,
    /// `labelsTr/<id>.nii.gz`.
    pub label: PathBuf,
    /// `negativesTr/<id>.nii.gz` when the dataset has one (see [`crate::negatives`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub negatives: Option<PathBuf>,
}

/// Lists the cases of an nnU-Net raw-layout dataset, sorted by id. Every image needs its label.
pub fn list_cases(data: &Path) -> Result<Vec<CaseFiles>, NetError> {
    let images = data.join("imagesTr");
    let labels = data.join("labelsTr");
    let err = |reason: String| NetError::Dataset { path: data.into(), reason };
    let rd = std::fs::read_dir(&images).map_err(|e| err(format!("imagesTr: {e}")))?;
    let mut cases = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| err(format!("imagesTr: {e}")))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(id) = name.strip_suffix("_0000.nii.gz").or_else(|| name.strip_suffix("_0000.nii")) else {
            continue;
        };
        let ext = if name.ends_with(".gz") { ".nii.gz" } else { ".nii" };
        let label = labels.join(format!("{id}{ext}"));
        if !label.is_file() {
            return Err(err(format!("case {id}: label {} missing", label.display())));
        }
        let negatives = Some(data.join(NEGATIVES_DIR).join(format!("{id}{ext}"))).filter(|p| p.is_file());
        cases.push(CaseFiles { id: id.to_string(), image: entry.path(), label, negatives });
    }
    if cases.is_empty() {
        return Err(err("no imagesTr/*_0000.nii.gz images".into()));
    }
    cases.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(cases)
}

/// Lists the cases of one or more datasets. With several, each id is prefixed by its dataset
/// folder's name (`train/case_000`), so equal case names stay distinct.
pub fn list_datasets(data: &[PathBuf]) -> Result<Vec<CaseFiles>, NetError> {
    let Some(first) = data.first() else {
        return Err(NetError::Dataset { path: PathBuf::new(), reason: "no dataset folder given".into() });
    };
    if data.len() == 1 {
        return list_cases(first);
    }
    let mut all = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for d in data {
        let name = d.file_name().unwrap_or_default().to_string_lossy().into_owned();
        for mut c in list_cases(d)? {
            c.id = format!("{name}/{}", c.id);
            if !seen.insert(c.id.clone()) {
                return Err(NetError::Dataset {
                    path: d.clone(),
                    reason: format!("case {} appears twice (two dataset folders with one name?)", c.id),
                });
            }
            all.push(c);
        }
    }
    Ok(all)
}

/// Seeded split: returns (training, validation) cases.
pub fn split_cases(cases: &[CaseFiles], val: usize, seed: u64) -> (Vec<CaseFiles>, Vec<CaseFiles>) {
    let mut idx: Vec<usize> = (0..cases.len()).collect();
    let mut rng = Rng::new(seed ^ 0x5EED_5011);
    for i in (1..idx.len()).rev() {
        idx.swap(i, rng.below(i + 1));
    }
    let val = val.min(cases.len().saturating_sub(1));
    let mut v: Vec<CaseFiles> = idx[..val].iter().map(|&i| cases[i].clone()).collect();
    let mut t: Vec<CaseFiles> = idx[val..].iter().map(|&i| cases[i].clone()).collect();
    v.sort_by(|a, b| a.id.cmp(&b.id));
    t.sort_by(|a, b| a.id.cmp(&b.id));
    (t, v)
}

/// A preprocessed training case.
pub struct TrainCase {
    /// Case id.
    pub id: String,
    /// Image pyramid on the model grid.
    pub pyramid: Pyramid,
    /// Binary node label on the model grid `[z, y, x]`.
    pub label: Array3<u8>,
    /// Voxel indices `[z, y, x]` of each node (one list per instance with voxels on the grid).
    pub nodes: Vec<Vec<[u32; 3]>>,
    /// Voxel indices `[z, y, x]` of the case's hard negatives (empty without a mask).
    pub negatives: Vec<[u32; 3]>,
}

/// Preprocesses one case for training from a CT (HU), its instance labels and optionally its
/// hard-negative mask, all on the same grid.
pub fn prepare_training_case(
    id: &str,
    ct: &Volume<i16>,
    labels: &Volume<u16>,
    negatives: Option<&Volume<u8>>,
    cfg: &ModelConfig,
) -> Result<TrainCase, NetError> {
    ct.check_same_grid(labels)?;
    if let Some(n) = negatives {
        ct.check_same_grid(n)?;
    }
    let prep = prepare(ct, &cfg.preprocessing)?;
    let g = prep.image.geometry();
    let inst = labels.resample_to(g, prep.image.dims(), Interpolation::Nearest, 0);
    let mut nodes: Vec<Vec<[u32; 3]>> = Vec::new();
    let mut slot = std::collections::HashMap::new();
    for ((z, y, x), &l) in inst.data().indexed_iter() {
        if l > 0 {
            let s = *slot.entry(l).or_insert_with(|| {
                nodes.push(Vec::new());
                nodes.len() - 1
            });
            nodes[s].push([z as u32, y as u32, x as u32]);
        }
    }
    let negatives = match negatives {
        Some(n) => n
            .resample_to(g, prep.image.dims(), Interpolation::Nearest, 0)
            .data()
            .indexed_iter()
            .filter(|(_, &v)| v > 0)
            .map(|((z, y, x), _)| [z as u32, y as u32, x as u32])
            .collect(),
        None => Vec::new(),
    };
    let label = inst.data().mapv(|l| u8::from(l > 0));
    let pyramid = Pyramid::new(prep.image.data(), cfg.arch.levels(), cfg.preprocessing.pad_value());
    Ok(TrainCase { id: id.into(), pyramid, label, nodes, negatives })
}

/// A validation case on its own CT grid.
pub struct ValCase {
    /// Case id.
    pub id: String,
    /// CT in HU.
    pub ct: Volume<i16>,
    /// Ground-truth instance labels.
    pub labels: Volume<u16>,
}

/// Validation metrics over the validation cases (evaluation protocol on the model's mask:
/// probability >= threshold, components below the peak cut-off or rejected by the model's
/// component filter removed).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ValMetrics {
    /// Cases evaluated.
    pub n_cases: usize,
    /// GT nodes.
    pub n_gt: usize,
    /// Localized / GT nodes.
    pub recall: f64,
    /// The recall a prediction identical to the ground truth reaches (GT nodes the protocol's size
    /// filter leaves countable / GT nodes); `None` without GT nodes.
    #[serde(default)]
    pub recall_ceiling: Option<f64>,
    /// Recall of the GT nodes a perfect segmentation localizes (the countable ones); `None`
    /// without such nodes.
    #[serde(default)]
    pub recall_countable: Option<f64>,
    /// False-positive components per scan.
    pub fp_per_scan: f64,
    /// Mean per-scan Dice (scans where it is defined).
    pub dice: Option<f64>,
    /// Recall of GT nodes with SAD >= 15 mm; `None` without such nodes.
    pub recall_sad_ge_15mm: Option<f64>,
    /// Recall of GT nodes with SAD >= 5 mm; `None` without such nodes.
    pub recall_sad_ge_5mm: Option<f64>,
    /// [`selection_score`] for the targets it was computed with.
    pub score: f64,
}

/// Counts summed over cases, turned into [`ValMetrics`] at the end.
#[derive(Clone, Default)]
pub(crate) struct ValTally {
    n_gt: usize,
    localized: usize,
    fp: usize,
    dices: Vec<f64>,
    /// (GT nodes, localized) with SAD >= 15 mm, with SAD >= 5 mm, and countable.
    ge15: (usize, usize),
    ge5: (usize, usize),
    countable: (usize, usize),
}

impl ValTally {
    pub(crate) fn add(&mut self, r: &nodal_eval::ScanResult) {
        self.n_gt += r.n_gt_nodes;
        self.localized += r.n_gt_localized;
        self.fp += r.n_fp;
        self.dices.extend(r.dice);
        for n in &r.nodes {
            for (counts, t) in [
                (n.sad_mm >= 15.0, &mut self.ge15),
                (n.sad_mm >= 5.0, &mut self.ge5),
                (n.countable, &mut self.countable),
            ] {
                if counts {
                    t.0 += 1;
                    t.1 += usize::from(n.localized);
                }
            }
        }
    }

    pub(crate) fn metrics(&self, n_cases: usize, targets: &SelectionTargets) -> ValMetrics {
        let ratio = |(n, l): (usize, usize)| (n > 0).then(|| l as f64 / n as f64);
        let recall = ratio((self.n_gt, self.localized)).unwrap_or(0.0);
        let fp_per_scan = self.fp as f64 / n_cases.max(1) as f64;
        let dice = (!self.dices.is_empty()).then(|| self.dices.iter().sum::<f64>() / self.dices.len() as f64);
        ValMetrics {
            n_cases,
            n_gt: self.n_gt,
            recall,
            recall_ceiling: ratio((self.n_gt, self.countable.0)),
            recall_countable: ratio(self.countable),
            fp_per_scan,
            dice,
            recall_sad_ge_15mm: ratio(self.ge15),
            recall_sad_ge_5mm: ratio(self.ge5),
            score: selection_score(recall, dice.unwrap_or(0.0), fp_per_scan, targets),
        }
    }
}

/// Runs inference on the validation cases and scores them with the evaluation protocol, at the
/// model's threshold and peak cut-off; the score is for the default [`SelectionTargets`].
pub fn validate(
    model: &LoadedModel,
    cases: &[ValCase],
    tile_out: Option<usize>,
) -> Result<ValMetrics, NetError> {
    let opts = InferOptions { tile_out, ..Default::default() };
    let point =
        OperatingPoint { threshold: model.config.threshold, min_peak: model.config.min_peak_probability };
    let mut m = validate_operating_points(model, cases, &opts, &[point], &SelectionTargets::default())?;
    Ok(m.remove(0))
}

/// Voxel thresholds of the operating-point grid.
pub const THRESHOLD_GRID: [f32; 6] = [0.2, 0.25, 0.3, 0.4, 0.5, 0.6];
/// Component peak cut-offs of the operating-point grid (`None`: no cut-off). The network's
/// probabilities saturate, so the useful cut-offs crowd below 1.
pub const PEAK_GRID: [Option<f32>; 8] =
    [None, Some(0.99), Some(0.995), Some(0.997), Some(0.998), Some(0.999), Some(0.9995), Some(0.9998)];

/// Mask thresholds tried for a model's kept components (`tune_mask` example); `None` keeps them
/// whole.
pub const MASK_THRESHOLD_GRID: [Option<f32>; 6] =
    [None, Some(0.3), Some(0.4), Some(0.5), Some(0.6), Some(0.7)];
/// Convex-fill size gates tried with them, mm: none, or every node of at least 10 mm short axis
/// (the usual size criterion of a suspicious cervical node).
pub const CONVEX_FILL_GRID: [Option<f64>; 2] = [None, Some(10.0)];

/// Every (threshold, peak cut-off) pair of [`THRESHOLD_GRID`] x [`PEAK_GRID`].
pub fn operating_point_grid() -> Vec<OperatingPoint> {
    THRESHOLD_GRID
        .iter()
        .flat_map(|&threshold| PEAK_GRID.iter().map(move |&min_peak| OperatingPoint { threshold, min_peak }))
        .collect()
}

/// Scores the grid ([`operating_point_grid`]) on `cases` and returns the index of the point with
/// the highest score (ties: the earlier point) and the whole table. A model with a component
/// filter is scored only at its own threshold: the filter's features (volume, shape, mean
/// probability) were learned from components cut at that threshold and mean something else at
/// another one.
pub fn tune_operating_point(
    model: &LoadedModel,
    cases: &[ValCase],
    opts: &InferOptions,
    targets: &SelectionTargets,
) -> Result<(usize, Vec<(OperatingPoint, ValMetrics)>), NetError> {
    let points = tuning_points(model);
    let metrics = validate_operating_points(model, cases, opts, &points, targets)?;
    let mut best = 0;
    for (i, m) in metrics.iter().enumerate() {
        if m.score > metrics[best].score {
            best = i;
        }
    }
    Ok((best, points.into_iter().zip(metrics).collect()))
}

/// The points [`tune_operating_point`] scores for `model`: the whole grid, or with a component
/// filter the grid's peak cut-offs at the model's own threshold.
fn tuning_points(model: &LoadedModel) -> Vec<OperatingPoint> {
    match model.component_filter {
        None => operating_point_grid(),
        Some(_) => PEAK_GRID
            .iter()
            .map(|&min_peak| OperatingPoint { threshold: model.config.threshold, min_peak })
            .collect(),
    }
}

/// A voxel threshold and a component peak cut-off (see `nodal_nodes::postprocess`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct OperatingPoint {
    /// Foreground is `p >= threshold`.
    pub threshold: f32,
    /// Components whose highest probability is below this are dropped; `None` keeps all.
    pub min_peak: Option<f32>,
}

/// As [`validate`] with inference options `opts`, once per operating point, from one inference per
/// case: the table an operating point is chosen from on tuning cases. The rest of the
/// post-processing is the model's ([`ModelConfig::at_operating_point`]).
pub fn validate_operating_points(
    model: &LoadedModel,
    cases: &[ValCase],
    opts: &InferOptions,
    points: &[OperatingPoint],
    targets: &SelectionTargets,
) -> Result<Vec<ValMetrics>, NetError> {
    let configs: Vec<PostProcessConfig> = points
        .iter()
        .map(|p| model.config.at_operating_point(p.threshold, p.min_peak).postprocess_config())
        .collect();
    validate_postprocessing(model, cases, opts, &configs, targets)
}

/// As [`validate`] with inference options `opts`, once per post-processing recipe, from one
/// inference per case. A model's component filter (see [`crate::filter`]) is applied after the
/// peak cut-off, and then the rest of the recipe, as `nodal segment` applies them.
pub fn validate_postprocessing(
    model: &LoadedModel,
    cases: &[ValCase],
    opts: &InferOptions,
    configs: &[PostProcessConfig],
    targets: &SelectionTargets,
) -> Result<Vec<ValMetrics>, NetError> {
    let mut tallies = vec![ValTally::default(); configs.len()];
    for c in cases {
        let out = predict(model, &c.ct, opts, None)?;
        let eval_err = |e: &dyn std::fmt::Display| NetError::Eval(format!("case {}: {e}", c.id));
        // The ground truth is prepared once for all the recipes.
        let gt = nodal_eval::PreparedGt::new(&c.labels).map_err(|e| eval_err(&e))?;
        // Components are labelled once per threshold (recipes of one threshold are adjacent in the
        // grid) and cut at each peak cut-off.
        let mut comps: Option<(f32, PeakComponents)> = None;
        for (tally, cfg) in tallies.iter_mut().zip(configs) {
            let (_, cc) = match comps.take() {
                Some((t, cc)) if t == cfg.threshold => comps.insert((t, cc)),
                _ => {
                    let cc = PeakComponents::new(&out.probability, cfg.threshold, cfg.connectivity)
                        .map_err(|e| eval_err(&e))?;
                    comps.insert((cfg.threshold, cc))
                }
            };
            let mut labels = cc.kept_labels(cfg.min_peak_probability).map_err(|e| eval_err(&e))?;
            if let Some(filter) = &model.component_filter {
                drop_filtered(&mut labels, &out.probability, &c.ct, filter).map_err(|e| eval_err(&e))?;
            }
            finish_components(&mut labels, Some(&out.probability), cfg).map_err(|e| eval_err(&e))?;
            let mask = labels.map(|l| u8::from(l > 0));
            let r = nodal_eval::evaluate_prepared(nodal_eval::Prediction::Mask(&mask), &gt, None)
                .map_err(|e| eval_err(&e))?;
            tally.add(&r);
        }
    }
    Ok(tallies.iter().map(|t| t.metrics(cases.len(), targets)).collect())
}

/// Selection score of a validation result: `1 + recall` when it meets the targets (false
/// positives within the budget, Dice at least the minimum); otherwise, always below 1, the
/// harmonic mean of recall and Dice minus 0.05 per false positive per scan beyond the budget.
/// (A sum of recall and Dice would reward one component covering the whole body: recall 1, no
/// false positive.)
pub fn selection_score(recall: f64, dice: f64, fp_per_scan: f64, targets: &SelectionTargets) -> f64 {
    if fp_per_scan <= targets.max_fp_per_scan && dice >= targets.min_dice {
        return 1.0 + recall;
    }
    let h = if recall + dice > 0.0 { 2.0 * recall * dice / (recall + dice) } else { 0.0 };
    h.min(1.0 - 1e-9) - 0.05 * (fp_per_scan - targets.max_fp_per_scan).max(0.0)
}

/// State saved with each checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// Steps completed.
    pub step: usize,
    /// Sampling RNG state after `step` steps.
    pub rng: Rng,
    /// Best validation score so far and its step.
    pub best: Option<(f64, usize)>,
    /// Wall time spent in previous sessions, s.
    pub elapsed_s: f64,
}

/// One log record (a training average or a validation).
#[derive(Clone, Debug, Serialize)]
struct LogRecord {
    step: usize,
    kind: &'static str,
    /// Where the step ran (`cpu`, `gpu`): a resumed run may change device.
    device: &'static str,
    lr: f64,
    loss: Option<f64>,
    ce: Option<f64>,
    soft_dice_loss: Option<f64>,
    seconds_per_step: Option<f64>,
    elapsed_s: f64,
    val: Option<ValMetrics>,
}

struct Logger {
    csv: std::fs::File,
    jsonl: std::fs::File,
}

impl Logger {
    fn open(run: &Path) -> Result<Self, NetError> {
        let csv_path = run.join("log.csv");
        let new = !csv_path.exists();
        let open = |p: &Path| {
            std::fs::OpenOptions::new().create(true).append(true).open(p).map_err(|e| NetError::io(p, e))
        };
        let mut csv = open(&csv_path)?;
        if new {
            writeln!(
                csv,
                "step,kind,lr,loss,ce,soft_dice_loss,seconds_per_step,elapsed_s,recall,fp_per_scan,dice,recall_sad_ge_15mm,score"
            )
            .map_err(|e| NetError::io(&csv_path, e))?;
        }
        Ok(Logger { csv, jsonl: open(&run.join("log.jsonl"))? })
    }

    fn write(&mut self, r: &LogRecord) -> Result<(), NetError> {
        let f = |v: Option<f64>| v.map(|x| format!("{x:.6}")).unwrap_or_default();
        let v = r.val.as_ref();
        let line = format!(
            "{},{},{:.3e},{},{},{},{},{:.1},{},{},{},{},{}",
            r.step,
            r.kind,
            r.lr,
            f(r.loss),
            f(r.ce),
            f(r.soft_dice_loss),
            f(r.seconds_per_step),
            r.elapsed_s,
            f(v.map(|m| m.recall)),
            f(v.map(|m| m.fp_per_scan)),
            f(v.and_then(|m| m.dice)),
            f(v.and_then(|m| m.recall_sad_ge_15mm)),
            f(v.map(|m| m.score)),
        );
        let json = serde_json::to_string(r).expect("log record serialises");
        writeln!(self.csv, "{line}")
            .and_then(|_| writeln!(self.jsonl, "{json}"))
            .map_err(|e| NetError::Io { path: "log".into(), source: e })
    }
}

/// Loss of one batch: `(total, ce, soft_dice_loss)`; logits `[b, 2, o, o, o]`, labels `[b, o, o, o]`
/// as 0/1 floats.
pub fn loss(logits: Tensor<5>, labels: Tensor<4>) -> (Tensor<1>, Tensor<1>, Tensor<1>) {
    let y1: Tensor<5> = labels.unsqueeze_dim(1); // [b, 1, o, o, o]
    let y0 = y1.clone().neg().add_scalar(1.0);
    let onehot = Tensor::cat(vec![y0, y1.clone()], 1);
    let n = onehot.dims().iter().product::<usize>() / 2;
    let ce = (log_softmax(logits.clone(), 1) * onehot).sum().div_scalar(n as f64).neg();
    let p1 = softmax(logits, 1).narrow(1, 1, 1);
    let inter = (p1.clone() * y1.clone()).sum();
    let denom = p1.sum() + y1.sum();
    let dice = inter.mul_scalar(2.0).add_scalar(1.0).div(denom.add_scalar(1.0)).neg().add_scalar(1.0);
    (ce.clone() + dice.clone(), ce, dice)
}

/// Index of a node drawn with weight `voxels^exponent`.
fn pick_node(nodes: &[Vec<[u32; 3]>], exponent: f64, rng: &mut Rng) -> usize {
    if exponent == 0.0 {
        return rng.below(nodes.len());
    }
    let weights: Vec<f64> = nodes.iter().map(|n| (n.len() as f64).powf(exponent)).collect();
    let mut u = rng.uniform(0.0, weights.iter().sum());
    for (i, w) in weights.iter().enumerate() {
        if u < *w {
            return i;
        }
        u -= w;
    }
    nodes.len() - 1
}

/// Draws one batch: per-level inputs `[b, 1, s, s, s]` and labels `[b, o, o, o]` (flat buffers).
fn draw_batch(cases: &[TrainCase], cfg: &TrainConfig, rng: &mut Rng) -> (Vec<Vec<f32>>, Vec<f32>) {
    let m = &cfg.model;
    let out = m.train_patch_out;
    let sizes = m.arch.input_sizes(out);
    let align = m.arch.alignment() as i64;
    let p = &m.preprocessing;
    let clip = [p.normalise(p.hu_clip[0]), p.normalise(p.hu_clip[1])];
    // Per-item RNG streams drawn sequentially keep the batch deterministic under parallel sampling.
    let items: Vec<(usize, [i64; 3], Augmentation, Rng)> = (0..cfg.batch_size)
        .map(|_| {
            let ci = rng.below(cases.len());
            let c = &cases[ci];
            let shape = c.pyramid.shape();
            // Within a quarter patch of voxel `v`, so the voxel is well inside the output patch.
            let near = |v: [u32; 3], rng: &mut Rng| -> [f64; 3] {
                let j = out as f64 / 4.0;
                std::array::from_fn(|a| v[a] as f64 + rng.uniform(-j, j))
            };
            let centre: [f64; 3] = if !c.nodes.is_empty() && rng.chance(cfg.foreground_fraction) {
                let node = &c.nodes[pick_node(&c.nodes, cfg.node_size_exponent, rng)];
                let v = node[rng.below(node.len())];
                near(v, rng)
            } else if !c.negatives.is_empty()
                && cfg.hard_negative_fraction > 0.0
                && rng.chance(cfg.hard_negative_fraction)
            {
                let v = c.negatives[rng.below(c.negatives.len())];
                near(v, rng)
            } else {
                std::array::from_fn(|a| rng.uniform(0.0, shape[a] as f64))
            };
            let snapped = centre.map(|v| ((v / align as f64).round() as i64) * align);
            let aug = if cfg.augment { Augmentation::random(rng) } else { Augmentation::identity() };
            (ci, snapped, aug, rng.fork())
        })
        .collect();
    let samples: Vec<(Vec<Array3<f32>>, Array3<u8>)> = items
        .into_par_iter()
        .map(|(ci, centre, aug, mut r)| {
            let c = &cases[ci];
            sample_training_patch(&c.pyramid, &c.label, centre, &sizes, out, &aug, &mut r, clip)
        })
        .collect();
    let mut inputs = vec![Vec::new(); sizes.len()];
    let mut labels = Vec::new();
    for (ins, lab) in samples {
        for (buf, p) in inputs.iter_mut().zip(ins) {
            buf.extend(p.iter());
        }
        labels.extend(lab.iter().map(|&v| v as f32));
    }
    (inputs, labels)
}

/// Loads and preprocesses the training cases (in parallel).
pub fn load_training_cases(cases: &[CaseFiles], model: &ModelConfig) -> Result<Vec<TrainCase>, NetError> {
    cases
        .par_iter()
        .map(|c| {
            let ct = nodal_io::read_nifti::<i16>(&c.image)?;
            let labels = nodal_io::read_nifti::<u16>(&c.label)?;
            let negatives = c.negatives.as_ref().map(nodal_io::read_nifti::<u8>).transpose()?;
            if let (Some(n), Some(path)) = (&negatives, &c.negatives) {
                ct.check_same_grid(n)
                    .map_err(|e| NetError::Dataset { path: path.clone(), reason: e.to_string() })?;
            }
            prepare_training_case(&c.id, &ct, &labels, negatives.as_ref(), model)
                .map_err(|e| NetError::Dataset { path: c.image.clone(), reason: e.to_string() })
        })
        .collect()
}

/// Case files from a flat `CT1 LABELS1 CT2 LABELS2 ...` list (command-line order); each id is the
/// CT path. A trailing unpaired path is ignored.
pub fn case_pairs(paths: &[String]) -> Vec<CaseFiles> {
    paths
        .chunks_exact(2)
        .map(|p| CaseFiles {
            id: p[0].clone(),
            image: p[0].clone().into(),
            label: p[1].clone().into(),
            negatives: None,
        })
        .collect()
}

/// Loads validation cases.
pub fn load_val_cases(cases: &[CaseFiles]) -> Result<Vec<ValCase>, NetError> {
    cases
        .iter()
        .map(|c| {
            let ct = nodal_io::read_nifti::<i16>(&c.image)?;
            let labels = nodal_io::read_nifti::<u16>(&c.label)?;
            ct.check_same_grid(&labels)
                .map_err(|e| NetError::Dataset { path: c.label.clone(), reason: e.to_string() })?;
            Ok(ValCase { id: c.id.clone(), ct, labels })
        })
        .collect()
}

/// What [`train`] returns.
#[derive(Clone, Debug, Serialize)]
pub struct TrainSummary {
    /// Steps completed.
    pub steps: usize,
    /// Losses of every step of this session (for tests and plots).
    pub losses: Vec<f64>,
    /// Last validation, if any.
    pub last_val: Option<ValMetrics>,
    /// Best validation score and step.
    pub best: Option<(f64, usize)>,
    /// Wall time of all sessions, s.
    pub elapsed_s: f64,
}

/// Where a run keeps things.
fn checkpoint_dir(run: &Path) -> PathBuf {
    run.join("checkpoint")
}

fn save_checkpoint(run: &Path, net: &Net, optim: &ModuleOptimizer, state: &RunState) -> Result<(), NetError> {
    let tmp = run.join(".checkpoint.tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| NetError::io(&tmp, e))?;
    let fail = |what: &str, e: String| NetError::Run { path: run.into(), reason: format!("{what}: {e}") };
    let mut store = BurnpackStore::from_file(tmp.join("model.bpk")).overwrite(true);
    net.save_into(&mut store).map_err(|e| fail("saving model", e.to_string()))?;
    optim.save(tmp.join("optim.bpk")).map_err(|e| fail("saving optimizer", format!("{e:?}")))?;
    let json = serde_json::to_string_pretty(state).expect("state serialises");
    std::fs::write(tmp.join("state.json"), json).map_err(|e| NetError::io(tmp.join("state.json"), e))?;
    let dst = checkpoint_dir(run);
    let old = run.join(".checkpoint.old");
    let _ = std::fs::remove_dir_all(&old);
    if dst.exists() {
        std::fs::rename(&dst, &old).map_err(|e| NetError::io(&dst, e))?;
    }
    std::fs::rename(&tmp, &dst).map_err(|e| NetError::io(&dst, e))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// Exports the run's current checkpoint as a model folder (`config.json` + `model.safetensors`).
pub fn export_checkpoint(run: &Path, out: &Path) -> Result<(), NetError> {
    let ckpt = checkpoint_dir(run);
    let run_err = |reason: String| NetError::Run { path: run.into(), reason };
    let text = std::fs::read_to_string(run.join("train_config.json")).map_err(|e| NetError::io(run, e))?;
    let cfg: TrainConfig =
        serde_json::from_str(&text).map_err(|e| run_err(format!("train_config.json: {e}")))?;
    let text = std::fs::read_to_string(ckpt.join("state.json")).map_err(|e| NetError::io(&ckpt, e))?;
    let state: RunState = serde_json::from_str(&text).map_err(|e| run_err(format!("state.json: {e}")))?;
    let mut net = cfg.model.arch.init(&crate::device())?;
    let mut store = BurnpackStore::from_file(ckpt.join("model.bpk"));
    net.load_from(&mut store).map_err(|e| run_err(format!("checkpoint model: {e}")))?;
    let mut c = cfg.model.clone();
    c.version = format!("{}-step{}", run.file_name().unwrap_or_default().to_string_lossy(), state.step);
    save_model(&net, &c, out)
}

/// Trains (or resumes) a run in folder `run` on the cases of the `data` folders. Validation cases
/// come from `val_data` (a separate dataset, e.g. `nodal dataset --split val`) when given, else
/// they are held out of `data` by the seeded split. With `resume`, the run's saved split and
/// checkpoint are used.
pub fn train(
    data: &[PathBuf],
    val_data: Option<&Path>,
    cfg: &TrainConfig,
    run: &Path,
    resume: bool,
    progress: Option<&ProgressBar>,
) -> Result<TrainSummary, NetError> {
    cfg.validate()?;
    std::fs::create_dir_all(run).map_err(|e| NetError::io(run, e))?;
    let run_err = |reason: String| NetError::Run { path: run.into(), reason };
    let ckpt = checkpoint_dir(run);
    if !resume && ckpt.exists() {
        return Err(run_err("already holds a checkpoint; pass --resume or choose a new folder".into()));
    }
    if resume && !ckpt.join("state.json").is_file() {
        return Err(run_err("no checkpoint to resume from".into()));
    }
    // Split: fixed by the seed and saved, so a resumed run validates on the same cases.
    let split_path = run.join("split.json");
    let (train_files, val_files) = if resume && split_path.is_file() {
        let text = std::fs::read_to_string(&split_path).map_err(|e| NetError::io(&split_path, e))?;
        serde_json::from_str::<(Vec<CaseFiles>, Vec<CaseFiles>)>(&text)
            .map_err(|e| run_err(format!("split.json: {e}")))?
    } else {
        let cases = list_datasets(data)?;
        let (mut t, v) = match val_data {
            Some(vd) => {
                let mut v = list_cases(vd)?;
                v.truncate(cfg.val_cases);
                (cases, v)
            }
            None => split_cases(&cases, cfg.val_cases, cfg.seed),
        };
        if let Some(n) = cfg.max_train_cases {
            t.truncate(n);
        }
        write_atomic(&split_path, serde_json::to_string_pretty(&(&t, &v)).expect("split").as_bytes())?;
        (t, v)
    };
    if train_files.is_empty() {
        return Err(NetError::Dataset {
            path: data.first().cloned().unwrap_or_default(),
            reason: "no training cases after the split".into(),
        });
    }
    write_atomic(&run.join("train_config.json"), serde_json::to_string_pretty(cfg).expect("cfg").as_bytes())?;

    let t_load = Instant::now();
    let cases = load_training_cases(&train_files, &cfg.model)?;
    let val_cases = load_val_cases(&val_files)?;
    if let Some(pb) = progress {
        pb.println(format!(
            "loaded {} training and {} validation cases in {:.1} s",
            cases.len(),
            val_cases.len(),
            t_load.elapsed().as_secs_f64()
        ));
    }

    let device = crate::device().autodiff();
    let mut net = cfg.model.arch.init_seeded(&device, cfg.seed)?;
    let mut optim = AdamWConfig::new()
        .with_weight_decay(cfg.weight_decay as f32)
        .with_grad_clipping(Some(GradientClippingConfig::Norm(12.0)))
        .init();
    let mut state = RunState { step: 0, rng: Rng::new(cfg.seed), best: None, elapsed_s: 0.0 };
    if let (Some(init), false) = (&cfg.init_from, resume) {
        let from = crate::load_model(init)?;
        if from.config.arch != cfg.model.arch || from.config.preprocessing != cfg.model.preprocessing {
            return Err(NetError::InvalidConfig(format!(
                "init_from {}: its architecture or preprocessing differs from the configured model",
                init.display()
            )));
        }
        crate::config::load_weights(&mut net, &init.join(crate::config::WEIGHTS_FILE))?;
    }
    if resume {
        let text = std::fs::read_to_string(ckpt.join("state.json")).map_err(|e| NetError::io(&ckpt, e))?;
        state = serde_json::from_str(&text).map_err(|e| run_err(format!("state.json: {e}")))?;
        let mut store = BurnpackStore::from_file(ckpt.join("model.bpk"));
        net.load_from(&mut store).map_err(|e| run_err(format!("checkpoint model: {e}")))?;
        optim = optim
            .load(ckpt.join("optim.bpk"))
            .map_err(|e| run_err(format!("checkpoint optimizer: {e:?}")))?;
    }
    let mut logger = Logger::open(run)?;
    let session = Instant::now();
    let elapsed = |state: &RunState| state.elapsed_s + session.elapsed().as_secs_f64();
    let out = cfg.model.train_patch_out;
    let sizes = cfg.model.arch.input_sizes(out);
    if let Some(pb) = progress {
        pb.set_length(cfg.steps as u64);
        pb.set_position(state.step as u64);
    }
    let mut losses = Vec::new();
    let mut acc = (0.0, 0.0, 0.0, 0usize);
    let mut last_val = None;
    let mut t_log = Instant::now();
    let session_start_elapsed = state.elapsed_s;
    let mut stop = false;
    while state.step < cfg.steps && !stop {
        let (inputs, labels) = draw_batch(&cases, cfg, &mut state.rng);
        let b = cfg.batch_size;
        let xs: Vec<Tensor<5>> = inputs
            .into_iter()
            .zip(&sizes)
            .map(|(buf, &s)| Tensor::from_data(TensorData::new(buf, [b, 1, s, s, s]), &device))
            .collect();
        let y = Tensor::<4>::from_data(TensorData::new(labels, [b, out, out, out]), &device);
        let logits = net.forward(xs);
        let (total, ce, dl) = loss(logits, y);
        let lr = learning_rate(cfg, state.step);
        // The first read-back of a step is where a GPU that ran out of memory reports it: an
        // error that says what to change, not a panic.
        let scalar = |t: &Tensor<1>| -> Result<f64, NetError> {
            let data = t.clone().try_into_data().map_err(|e| {
                NetError::Device(format!(
                    "training step {} failed on the {} device with batch {b} (a smaller \
                     `batch_size` or `train_patch_out` needs less device memory): {e}",
                    state.step,
                    crate::selected_compute().name()
                ))
            })?;
            let v = data.iter::<f32>().next().unwrap_or(f32::NAN);
            Ok(v as f64)
        };
        let (lv, cv, dv) = (scalar(&total)?, scalar(&ce)?, scalar(&dl)?);
        if !lv.is_finite() {
            return Err(run_err(format!("loss became {lv} at step {}", state.step)));
        }
        let grads = GradientsParams::from_grads(total.backward(), &net);
        net = optim.step(lr, net, grads);
        state.step += 1;
        losses.push(lv);
        acc = (acc.0 + lv, acc.1 + cv, acc.2 + dv, acc.3 + 1);
        if let Some(pb) = progress {
            pb.set_position(state.step as u64);
            pb.set_message(format!("loss {lv:.3} lr {lr:.1e}"));
        }
        if let Some(max) = cfg.max_minutes {
            stop = (elapsed(&state) - session_start_elapsed) / 60.0 >= max;
        }
        #[cfg(test)]
        if STOP_AFTER.with(|s| s.get()) == Some(state.step) {
            stop = true;
        }
        let last = state.step == cfg.steps || stop;
        if state.step % cfg.log_every == 0 || last {
            let n = acc.3.max(1) as f64;
            logger.write(&LogRecord {
                device: crate::selected_compute().name(),
                step: state.step,
                kind: "train",
                lr,
                loss: Some(acc.0 / n),
                ce: Some(acc.1 / n),
                soft_dice_loss: Some(acc.2 / n),
                seconds_per_step: Some(t_log.elapsed().as_secs_f64() / n),
                elapsed_s: elapsed(&state),
                val: None,
            })?;
            acc = (0.0, 0.0, 0.0, 0);
            t_log = Instant::now();
        }
        let do_val =
            !val_cases.is_empty() && ((cfg.val_every > 0 && state.step % cfg.val_every == 0) || last);
        if do_val {
            // No component filter: one fitted to other weights would not fit these.
            let model = LoadedModel {
                config: cfg.model.clone(),
                net: net.valid(),
                folder: run.into(),
                component_filter: None,
            };
            let (best_point, table) =
                tune_operating_point(&model, &val_cases, &InferOptions::default(), &cfg.selection)?;
            let (point, m) = table[best_point].clone();
            if let Some(pb) = progress {
                pb.println(format!(
                    "step {} (threshold {}, peak cut-off {:?}): recall {:.3} (ceiling {}), FP/scan {:.2}, \
                     Dice {}, recall SAD>=15 {}",
                    state.step,
                    point.threshold,
                    point.min_peak,
                    m.recall,
                    m.recall_ceiling.map(|d| format!("{d:.3}")).unwrap_or("-".into()),
                    m.fp_per_scan,
                    m.dice.map(|d| format!("{d:.3}")).unwrap_or("-".into()),
                    m.recall_sad_ge_15mm.map(|d| format!("{d:.3}")).unwrap_or("-".into()),
                ));
            }
            if state.best.is_none_or(|(s, _)| m.score > s) {
                state.best = Some((m.score, state.step));
                let mut c = cfg.model.at_operating_point(point.threshold, point.min_peak);
                c.version =
                    format!("{}-step{}", run.file_name().unwrap_or_default().to_string_lossy(), state.step);
                save_model(&model.net, &c, &run.join("best"))?;
                let record = serde_json::json!({ "operating_point": point, "metrics": m, "grid": table });
                write_atomic(
                    &run.join("best/metrics.json"),
                    serde_json::to_string_pretty(&record).expect("metrics serialise").as_bytes(),
                )?;
            }
            logger.write(&LogRecord {
                device: crate::selected_compute().name(),
                step: state.step,
                kind: "val",
                lr,
                loss: None,
                ce: None,
                soft_dice_loss: None,
                seconds_per_step: None,
                elapsed_s: elapsed(&state),
                val: Some(m.clone()),
            })?;
            last_val = Some(m);
            t_log = Instant::now();
        }
        if state.step % cfg.checkpoint_every == 0 || last {
            let mut s = state.clone();
            s.elapsed_s = elapsed(&state);
            save_checkpoint(run, &net, &optim, &s)?;
        }
    }
    // The last weights as a model folder too.
    let mut c = cfg.model.clone();
    c.version = format!("{}-step{}", run.file_name().unwrap_or_default().to_string_lossy(), state.step);
    save_model(&net.valid(), &c, &run.join("last"))?;
    Ok(TrainSummary { steps: state.step, losses, last_val, best: state.best, elapsed_s: elapsed(&state) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ArchConfig, FovealConfig};
    use nodal_core::Geometry;

    /// A tiny synthetic "CT": soft tissue body with bright-rimmed spheres as nodes.
    pub(crate) fn synthetic_case(seed: u64) -> (Volume<i16>, Volume<u16>) {
        let mut r = Rng::new(seed);
        let g = Geometry::axis_aligned([1.25, 1.25, 2.5], [0.0, 0.0, 0.0]);
        let dims = [40, 40, 20];
        let mut ct = Volume::filled(dims, g, -1000i16);
        let mut lab = Volume::<u16>::zeros(dims, g);
        let centres: Vec<[f64; 3]> =
            (0..3).map(|_| [r.uniform(14.0, 36.0), r.uniform(14.0, 36.0), r.uniform(14.0, 36.0)]).collect();
        {
            let mut d = ct.data_mut();
            for ((k, j, i), v) in d.indexed_iter_mut() {
                let w = g.index_to_world([i as f64, j as f64, k as f64]);
                let body = ((w[0] - 25.0).powi(2) + (w[1] - 25.0).powi(2)).sqrt() < 22.0;
                if body {
                    *v = (-80.0 + 10.0 * r.normal()) as i16; // fat
                }
            }
        }
        for (n, c) in centres.iter().enumerate() {
            let rad = 4.0 + n as f64;
            let mut d = ct.data_mut();
            let mut l = lab.data_mut();
            for ((k, j, i), v) in d.indexed_iter_mut() {
                let w = g.index_to_world([i as f64, j as f64, k as f64]);
                let dist = ((w[0] - c[0]).powi(2) + (w[1] - c[1]).powi(2) + (w[2] - c[2]).powi(2)).sqrt();
                if dist < rad {
                    *v = 40;
                    l[[k, j, i]] = n as u16 + 1;
                }
            }
        }
        (ct, lab)
    }

    pub(crate) fn write_dataset(dir: &Path, n: usize) {
        std::fs::create_dir_all(dir.join("imagesTr")).unwrap();
        std::fs::create_dir_all(dir.join("labelsTr")).unwrap();
        for i in 0..n {
            let (ct, lab) = synthetic_case(i as u64);
            nodal_io::write_nifti(&ct, dir.join(format!("imagesTr/case_{i:03}_0000.nii.gz"))).unwrap();
            nodal_io::write_nifti(&lab, dir.join(format!("labelsTr/case_{i:03}.nii.gz"))).unwrap();
        }
    }

    pub(crate) fn tiny_config() -> TrainConfig {
        let mut model = ModelConfig::default_foveal();
        model.arch =
            ArchConfig::Foveal(FovealConfig { channels: vec![4, 6], convs: vec![1, 1], merge_convs: 1 });
        model.train_patch_out = 8;
        model.infer_tile_out = 16;
        TrainConfig {
            model,
            seed: 5,
            steps: 4,
            batch_size: 2,
            lr: 1e-2,
            weight_decay: 0.0,
            warmup_steps: 1,
            foreground_fraction: 0.5,
            node_size_exponent: 0.0,
            hard_negative_fraction: 0.0,
            init_from: None,
            augment: true,
            val_cases: 1,
            val_every: 0,
            checkpoint_every: 2,
            log_every: 1,
            max_train_cases: None,
            max_minutes: None,
            selection: SelectionTargets::default(),
        }
    }

    #[test]
    fn learning_rate_schedule_by_hand() {
        let mut c = tiny_config();
        c.lr = 1.0;
        c.warmup_steps = 10;
        c.steps = 110;
        assert!((learning_rate(&c, 0) - 0.1).abs() < 1e-12);
        assert!((learning_rate(&c, 9) - 1.0).abs() < 1e-12);
        assert!((learning_rate(&c, 10) - 1.0).abs() < 1e-12);
        // Half way through the cosine: (1 + 0.01) / 2.
        assert!((learning_rate(&c, 60) - 0.505).abs() < 1e-12);
        assert!((learning_rate(&c, 110) - 0.01).abs() < 1e-12);
    }

    #[test]
    fn loss_by_hand() {
        let device = crate::device();
        // Logits (0, 0) everywhere: p = 0.5, CE = ln 2; two voxels, one node voxel:
        // Dice = (2 * 0.5 + 1) / (1 + 1 + 1) = 2/3 -> loss 1/3.
        let logits = Tensor::<5>::zeros([1, 2, 1, 1, 2], &device);
        let y = Tensor::<4>::from_data(TensorData::new(vec![1.0f32, 0.0], [1, 1, 1, 2]), &device);
        let (_, ce, dl) = loss(logits, y);
        assert!((ce.into_scalar::<f32>() as f64 - 2f64.ln()).abs() < 1e-6);
        assert!((dl.into_scalar::<f32>() as f64 - 1.0 / 3.0).abs() < 1e-6);
    }

    #[test]
    fn node_sampling_follows_the_size_exponent() {
        // One node of 1 voxel and one of 9: exponent 0 draws both equally, exponent 1 by voxels.
        let nodes = vec![vec![[0u32; 3]; 1], vec![[0u32; 3]; 9]];
        let mut rng = Rng::new(3);
        let n = 20_000;
        for (exp, expected) in [(0.0, 0.5), (1.0, 0.9), (0.5, 0.75)] {
            let big = (0..n).filter(|_| pick_node(&nodes, exp, &mut rng) == 1).count() as f64 / n as f64;
            assert!((big - expected).abs() < 0.015, "exponent {exp}: {big}");
        }
    }

    #[test]
    fn selection_score_does_not_reward_a_whole_body_blob() {
        // One component over the whole body: every node localized, no FP, Dice near 0.
        let t = SelectionTargets::default();
        let blob = selection_score(1.0, 0.002, 0.0, &t);
        let model = selection_score(0.68, 0.82, 7.0, &t);
        assert!(blob < 0.01 && model > 0.5, "{blob} {model}");
        assert!((selection_score(0.5, 0.5, 5.0, &t) - 0.4).abs() < 1e-12);
        assert_eq!(selection_score(0.0, 0.0, 0.0, &t), 0.0);
        // Meeting the targets (<= 3 FP/scan, Dice >= 0.8) beats any result that misses them, and
        // among those more recall wins.
        let meets = selection_score(0.5, 0.8, 3.0, &t);
        assert!((meets - 1.5).abs() < 1e-12);
        assert!(meets > selection_score(0.99, 0.99, 3.1, &t));
        assert!(meets > selection_score(0.99, 0.79, 0.0, &t));
        assert!(selection_score(0.6, 0.9, 1.0, &t) > meets);
    }

    /// Two scans at 1 mm: a 6x6x4 node found and a lone 3x3x3 node (SAD 4.24 mm, below the size
    /// filter) missed, then the same with the small node found by a larger component.
    #[test]
    fn tally_counts_recall_against_the_countable_nodes() {
        let g = Geometry::axis_aligned([1.0; 3], [0.0; 3]);
        let mut gt = Volume::<u16>::zeros([30, 20, 8], g);
        let mut pred = Volume::<u8>::zeros([30, 20, 8], g);
        for k in 1..5 {
            for j in 2..8 {
                for i in 2..8 {
                    gt.data_mut()[[k, j, i]] = 1;
                    pred.data_mut()[[k, j, i]] = 1;
                }
            }
        }
        for k in 1..4 {
            for j in 2..5 {
                for i in 20..23 {
                    gt.data_mut()[[k, j, i]] = 2;
                }
            }
        }
        let mut tally = ValTally::default();
        tally.add(&nodal_eval::evaluate_scan(nodal_eval::Prediction::Mask(&pred), &gt, None).unwrap());
        for k in 1..5 {
            for j in 1..7 {
                for i in 19..25 {
                    pred.data_mut()[[k, j, i]] = 1;
                }
            }
        }
        tally.add(&nodal_eval::evaluate_scan(nodal_eval::Prediction::Mask(&pred), &gt, None).unwrap());
        let m = tally.metrics(2, &SelectionTargets::default());
        assert_eq!((m.n_gt, m.recall), (4, 0.75));
        assert_eq!(m.recall_ceiling, Some(0.5), "the lone small node is countable in neither scan");
        assert_eq!(m.recall_countable, Some(1.0));
    }

    #[test]
    fn init_from_starts_at_the_given_weights_and_checks_the_architecture() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        write_dataset(&data, 2);
        let mut cfg = tiny_config();
        cfg.val_cases = 0;
        cfg.steps = 3;
        train(std::slice::from_ref(&data), None, &cfg, &dir.path().join("a"), false, None).unwrap();
        let init = dir.path().join("a/last");
        // One step at a negligible learning rate from those weights keeps them.
        let mut fine = cfg.clone();
        fine.init_from = Some(init.clone());
        fine.steps = 1;
        fine.lr = 1e-12;
        train(std::slice::from_ref(&data), None, &fine, &dir.path().join("b"), false, None).unwrap();
        let (ct, _) = synthetic_case(1);
        let p = |m: &Path| {
            let model = crate::load_model(m).unwrap();
            predict(&model, &ct, &InferOptions::default(), None).unwrap().probability
        };
        let (pa, pb) = (p(&init), p(&dir.path().join("b/last")));
        let max = pa.as_slice().iter().zip(pb.as_slice()).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(max < 1e-5, "max difference {max}");
        // A fresh random initialisation differs.
        let mut fresh = fine.clone();
        fresh.init_from = None;
        fresh.seed = 99;
        train(std::slice::from_ref(&data), None, &fresh, &dir.path().join("c"), false, None).unwrap();
        let pc = p(&dir.path().join("c/last"));
        assert!(pa.as_slice().iter().zip(pc.as_slice()).any(|(a, c)| (a - c).abs() > 1e-3));
        // Another architecture is refused.
        let mut other = fine.clone();
        other.model.arch =
            ArchConfig::Foveal(FovealConfig { channels: vec![4, 8], convs: vec![1, 1], merge_convs: 1 });
        let err =
            train(std::slice::from_ref(&data), None, &other, &dir.path().join("d"), false, None).unwrap_err();
        assert!(matches!(err, NetError::InvalidConfig(_)), "{err}");
    }

    #[test]
    fn several_datasets_are_joined_with_distinct_ids() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        write_dataset(&a, 2);
        write_dataset(&b, 1);
        let one = list_datasets(std::slice::from_ref(&a)).unwrap();
        assert_eq!(one.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["case_000", "case_001"]);
        let both = list_datasets(&[a.clone(), b]).unwrap();
        let ids: Vec<&str> = both.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["a/case_000", "a/case_001", "b/case_000"]);
        assert!(both[2].image.starts_with(dir.path().join("b")));
        // The same folder twice would train on its cases twice: refused.
        assert!(matches!(list_datasets(&[a.clone(), a]), Err(NetError::Dataset { .. })));
        assert!(list_datasets(&[]).is_err());
    }

    #[test]
    fn hard_negative_patches_are_centred_on_the_mask() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        write_dataset(&data, 1);
        // A bright cube (half-edge 7.5 mm) whose centre voxel is the only hard negative.
        let (mut ct, lab) = synthetic_case(0);
        let g = *ct.geometry();
        let mut neg = Volume::<u8>::zeros(ct.dims(), g);
        for ((k, j, i), v) in ct.data_mut().indexed_iter_mut() {
            let w = g.index_to_world([i as f64, j as f64, k as f64]);
            if w.iter().all(|c| (c - 25.0).abs() <= 7.5) {
                *v = 300;
            }
        }
        let centre = g.world_to_index([25.0; 3]).map(|c| c.round() as usize);
        neg.data_mut()[[centre[2], centre[1], centre[0]]] = 1;
        nodal_io::write_nifti(&ct, data.join("imagesTr/case_000_0000.nii.gz")).unwrap();
        nodal_io::write_nifti(&lab, data.join("labelsTr/case_000.nii.gz")).unwrap();
        std::fs::create_dir_all(data.join(NEGATIVES_DIR)).unwrap();
        nodal_io::write_nifti(&neg, data.join(NEGATIVES_DIR).join("case_000.nii.gz")).unwrap();

        let files = list_cases(&data).unwrap();
        assert!(files[0].negatives.is_some());
        let mut cfg = tiny_config();
        cfg.foreground_fraction = 0.0;
        cfg.augment = false;
        cfg.batch_size = 16;
        let cases = load_training_cases(&files, &cfg.model).unwrap();
        // One 1.25 x 1.25 x 2.5 mm voxel covers two 1.25 mm model voxels.
        assert_eq!(cases[0].negatives.len(), 2);
        // Mean normalised intensity of the central 2^3 voxels of each finest-level input patch:
        // 2.0 inside the cube ((300 - 50) / 125).
        let in_cube = |cfg: &TrainConfig| {
            let (inputs, _) = draw_batch(&cases, cfg, &mut Rng::new(3));
            let s = cfg.model.arch.input_sizes(cfg.model.train_patch_out)[0];
            let per = s * s * s;
            inputs[0]
                .chunks(per)
                .filter(|p| {
                    let (a, b) = (s / 2 - 1, s / 2 + 1);
                    let mut sum = 0.0;
                    for z in a..b {
                        for y in a..b {
                            for x in a..b {
                                sum += p[(z * s + y) * s + x];
                            }
                        }
                    }
                    sum / 8.0 > 1.9
                })
                .count()
        };
        cfg.hard_negative_fraction = 1.0;
        assert_eq!(in_cube(&cfg), 16);
        // Uniform centres land in the cube (2.5% of the grid) only now and then.
        cfg.hard_negative_fraction = 0.0;
        assert!(in_cube(&cfg) <= 4, "{}", in_cube(&cfg));
        // A mask on another grid is refused, naming the mask.
        let path = data.join(NEGATIVES_DIR).join("case_000.nii.gz");
        nodal_io::write_nifti(&Volume::<u8>::zeros([4, 4, 4], g), &path).unwrap();
        match load_training_cases(&files, &cfg.model) {
            Err(NetError::Dataset { path: p, .. }) => assert_eq!(p, path),
            other => panic!("{:?}", other.err()),
        }
    }

    #[test]
    fn split_is_seeded_and_disjoint() {
        let cases: Vec<CaseFiles> = (0..10)
            .map(|i| CaseFiles { id: format!("c{i}"), image: "i".into(), label: "l".into(), negatives: None })
            .collect();
        let (t, v) = split_cases(&cases, 3, 1);
        assert_eq!((t.len(), v.len()), (7, 3));
        assert!(v.iter().all(|c| !t.contains(c)));
        assert_eq!(split_cases(&cases, 3, 1), (t, v.clone()));
        assert_ne!(split_cases(&cases, 3, 2).1, v);
    }

    #[test]
    fn training_is_deterministic_and_resumes_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        write_dataset(&data, 3);
        let cfg = tiny_config();
        let a = train(std::slice::from_ref(&data), None, &cfg, &dir.path().join("a"), false, None).unwrap();
        let b = train(std::slice::from_ref(&data), None, &cfg, &dir.path().join("b"), false, None).unwrap();
        assert_eq!(a.losses, b.losses);
        assert_eq!(a.steps, 4);
        // Interrupted after 2 steps, then resumed: the same losses as the uninterrupted run.
        let run_c = dir.path().join("c");
        STOP_AFTER.with(|s| s.set(Some(2)));
        let first = train(std::slice::from_ref(&data), None, &cfg, &run_c, false, None);
        STOP_AFTER.with(|s| s.set(None));
        let first = first.unwrap();
        assert_eq!(first.steps, 2);
        let rest = train(std::slice::from_ref(&data), None, &cfg, &run_c, true, None).unwrap();
        assert_eq!(rest.steps, 4);
        let joined: Vec<f64> = first.losses.iter().chain(&rest.losses).copied().collect();
        assert_eq!(joined, a.losses);
        for f in [
            "log.csv",
            "log.jsonl",
            "split.json",
            "train_config.json",
            "checkpoint/state.json",
            "last/config.json",
        ] {
            assert!(run_c.join(f).is_file(), "{f}");
        }
        // A fresh run refuses to overwrite a checkpoint.
        assert!(matches!(
            train(std::slice::from_ref(&data), None, &cfg, &run_c, false, None),
            Err(NetError::Run { .. })
        ));
    }

    #[test]
    fn best_model_carries_the_operating_point_it_was_selected_at() {
        let dir = tempfile::tempdir().unwrap();
        let (data, val) = (dir.path().join("data"), dir.path().join("val"));
        write_dataset(&data, 2);
        std::fs::create_dir_all(val.join("imagesTr")).unwrap();
        std::fs::create_dir_all(val.join("labelsTr")).unwrap();
        let (ct, lab) = synthetic_case(7);
        nodal_io::write_nifti(&ct, val.join("imagesTr/case_007_0000.nii.gz")).unwrap();
        nodal_io::write_nifti(&lab, val.join("labelsTr/case_007.nii.gz")).unwrap();
        let mut cfg = tiny_config();
        (cfg.steps, cfg.augment, cfg.lr, cfg.checkpoint_every) = (40, false, 5e-3, 100);
        let run = dir.path().join("run");
        train(std::slice::from_ref(&data), Some(&val), &cfg, &run, false, None).unwrap();
        let best = run.join("best");
        let record: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(best.join("metrics.json")).unwrap()).unwrap();
        let grid = record["grid"].as_array().unwrap();
        assert_eq!(grid.len(), operating_point_grid().len());
        let top = grid.iter().map(|row| row[1]["score"].as_f64().unwrap()).fold(f64::MIN, f64::max);
        assert_eq!(record["metrics"]["score"].as_f64().unwrap(), top);
        // The saved config holds the chosen point, and validating the saved model at it gives
        // exactly the recorded metrics.
        let model = crate::load_model(&best).unwrap();
        let point =
            OperatingPoint { threshold: model.config.threshold, min_peak: model.config.min_peak_probability };
        assert_eq!(serde_json::to_value(point).unwrap(), record["operating_point"]);
        let cases = vec![ValCase { id: "case_007".into(), ct, labels: lab }];
        let m = validate(&model, &cases, None).unwrap();
        assert_eq!(serde_json::to_value(&m).unwrap(), record["metrics"]);
    }

    #[test]
    fn a_few_steps_reduce_the_loss_and_learn_the_nodes() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        write_dataset(&data, 2);
        let mut cfg = tiny_config();
        cfg.steps = 80;
        cfg.augment = false;
        cfg.lr = 5e-3;
        cfg.warmup_steps = 5;
        cfg.val_cases = 0;
        cfg.checkpoint_every = 100;
        cfg.foreground_fraction = 0.7;
        let run = dir.path().join("run");
        let s = train(std::slice::from_ref(&data), None, &cfg, &run, false, None).unwrap();
        let first: f64 = s.losses[..8].iter().sum::<f64>() / 8.0;
        let last: f64 = s.losses[72..].iter().sum::<f64>() / 8.0;
        assert!(last < 0.5 * first, "loss {first:.3} -> {last:.3}");
        // Not only the background prior: the trained net separates node from non-node voxels of
        // a training case (a network that predicts background everywhere fails this).
        let model = crate::load_model(&run.join("last")).unwrap();
        let (ct, lab) = synthetic_case(0);
        let p = predict(&model, &ct, &InferOptions::default(), None).unwrap().probability;
        let (mut inside, mut n_in, mut outside, mut n_out) = (0.0, 0, 0.0, 0);
        for (pv, lv) in p.as_slice().iter().zip(lab.as_slice()) {
            if *lv > 0 {
                inside += *pv as f64;
                n_in += 1;
            } else {
                outside += *pv as f64;
                n_out += 1;
            }
        }
        let (inside, outside) = (inside / n_in as f64, outside / n_out as f64);
        assert!(inside > 0.5 && outside < 0.1, "mean p inside {inside:.3}, outside {outside:.3}");
    }

    #[test]
    fn a_model_with_a_component_filter_is_tuned_only_at_its_own_threshold() {
        let cfg = tiny_config();
        let mut model = LoadedModel {
            config: ModelConfig { threshold: 0.3, ..cfg.model.clone() },
            net: cfg.model.arch.init(&crate::device()).unwrap(),
            folder: PathBuf::new(),
            component_filter: None,
        };
        assert_eq!(tuning_points(&model), operating_point_grid());
        use nodal_nodes::filter::{BoostConfig, ComponentFilter, N_FEATURES};
        let x = [[0.0; N_FEATURES], [1.0; N_FEATURES]];
        let boost = BoostConfig { min_samples_leaf: 1, ..Default::default() };
        let filter = ComponentFilter::fit(&x, &[false, true], None, None, boost).unwrap();
        model.component_filter = Some(filter);
        let points = tuning_points(&model);
        assert_eq!(points.len(), PEAK_GRID.len());
        assert!(points.iter().all(|p| p.threshold == 0.3));
        let peaks: Vec<_> = points.iter().map(|p| p.min_peak).collect();
        assert_eq!(peaks, PEAK_GRID.to_vec());
    }
}

#[cfg(test)]
thread_local! {
    /// Test hook: stop the training loop after this many steps (simulates an interrupted run).
    static STOP_AFTER: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}
