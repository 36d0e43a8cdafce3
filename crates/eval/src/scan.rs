//! Evaluation of one scan: post-processing, localization, segmentation quality (protocol sections
//! "Prediction post-processing", "Localization", "Segmentation quality").
//!
//! The stages, in order:
//! 1. the prediction (a binary mask, or a probability map thresholded at `p >= 0.5`) is split into
//!    26-connected components; components whose axial short axis is below 4.5 mm are removed and
//!    counted (`n_pred_removed_small`);
//! 2. per ground-truth node: sensitivity = |node ∩ kept prediction| / |node|; localized when
//!    sensitivity >= 0.4;
//! 3. a kept component is a true positive when it overlaps at least one localized node, otherwise a
//!    false positive;
//! 4. both masks are filtered (TP components; localized nodes) and compared globally (Dice and the
//!    surface distances of [`crate::distance`]).
//!
//! Every stage works on the runs of nonzero voxels (`crate::sparse`) and on boxes around the
//! nodes, with results equal bit for bit to the same stages on whole volumes.
use crate::axes::label_axes;
use crate::distance::{directed_runs, summarise};
use crate::meta::NodeMeta;
use crate::sparse::{components_26, ProbRuns, Runs};
use crate::EvalError;
use nodal_core::vocab::{LOCALIZED_MIN_SENSITIVITY, MIN_SHORT_AXIS_MM};
use nodal_core::{Geometry, Label, SadGroup, Volume};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::HashSet;

/// False positives at least this large (short axis, mm) are the paper's "significant" ones.
pub const SIGNIFICANT_FP_SAD_MM: f64 = 10.0;
/// Probability maps are binarised with `p >= PROBABILITY_THRESHOLD`.
pub const PROBABILITY_THRESHOLD: f64 = 0.5;
/// GT label ids above this are rejected (node ids index per-node tables).
pub const MAX_LABEL_ID: usize = 1 << 24;

/// Thresholds of the FROC curve: 0.05, 0.10, ..., 0.95.
pub fn froc_thresholds() -> Vec<f64> {
    // i * 5 / 100 rounds each threshold correctly (i * 0.05 would give 0.30000000000000004)
    (1..=19).map(|i| (i * 5) as f64 / 100.0).collect()
}

/// What a model predicted for one scan.
#[derive(Clone, Copy, Debug)]
pub enum Prediction<'a> {
    /// Binary mask, nonzero = node.
    Mask(&'a Volume<u8>),
    /// Node probability in [0, 1]; binarised at [`PROBABILITY_THRESHOLD`], and additionally
    /// evaluated at every FROC threshold.
    Probability(&'a Volume<f32>),
}

/// One ground-truth node.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeRow {
    /// Label value in the ground-truth map.
    pub id: u32,
    /// Axial short-axis diameter, mm.
    pub sad_mm: f64,
    /// Axial long-axis diameter, mm.
    pub lad_mm: f64,
    /// SAD group.
    pub sad_group: SadGroup,
    /// Voxels of the node.
    pub n_voxels: usize,
    /// Volume, mm^3.
    pub volume_mm3: f64,
    /// From the metadata; `None` when not given.
    pub metastatic: Option<bool>,
    /// |node ∩ filtered prediction| / |node|.
    pub sensitivity: f64,
    /// sensitivity >= 0.4.
    pub localized: bool,
    /// A prediction identical to the ground truth localizes this node. False for a node whose own
    /// component the size filter removes (SAD < 4.5 mm and touching no larger node): such a node
    /// is found only by a prediction larger than the node itself.
    pub countable: bool,
}

/// One false-positive component (after the small-component filter).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FpRow {
    /// Component number in the prediction's 26-connected labelling (raster order).
    pub component: u32,
    /// Axial short-axis diameter, mm.
    pub sad_mm: f64,
    /// Axial long-axis diameter, mm.
    pub lad_mm: f64,
    /// Voxels of the component.
    pub n_voxels: usize,
    /// Volume, mm^3.
    pub volume_mm3: f64,
    /// Centroid of the voxel centres, LPS mm.
    pub centroid_mm: [f64; 3],
}

/// Detection counts at one probability threshold (one FROC point of one scan).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct FrocCounts {
    /// Probability threshold (`p >= threshold`).
    pub threshold: f64,
    /// GT nodes.
    pub n_gt: usize,
    /// Localized GT nodes.
    pub n_localized: usize,
    /// False-positive components.
    pub n_fp: usize,
}

/// All results of one scan. `Option` fields are `None` (JSON null) where the protocol leaves the
/// quantity undefined; counts are always defined.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScanResult {
    /// GT nodes (distinct nonzero labels).
    pub n_gt_nodes: usize,
    /// GT nodes with sensitivity >= 0.4.
    pub n_gt_localized: usize,
    /// 26-connected components of the prediction, before the size filter.
    pub n_pred_components: usize,
    /// Components removed because SAD < 4.5 mm.
    pub n_pred_removed_small: usize,
    /// Components kept (= TP + FP).
    pub n_pred: usize,
    /// Kept components overlapping at least one localized GT node.
    pub n_tp: usize,
    /// Kept components overlapping no localized GT node.
    pub n_fp: usize,
    /// False positives with SAD >= 10 mm.
    pub n_fp_sad_ge_10mm: usize,
    /// Localized / GT nodes; `None` without GT nodes.
    pub recall: Option<f64>,
    /// GT nodes a prediction identical to the ground truth localizes ([`NodeRow::countable`]).
    pub n_gt_countable: usize,
    /// The recall of a prediction identical to the ground truth, `n_gt_countable / n_gt_nodes`:
    /// below 1 when GT nodes are smaller than the size filter; `None` without GT nodes.
    pub recall_ceiling: Option<f64>,
    /// TP / kept components; `None` without kept components.
    pub precision: Option<f64>,
    /// 2PR / (P + R); 0 when both are 0; `None` when either is undefined.
    pub f1: Option<f64>,
    /// Global Dice of the filtered masks; `None` when either filtered mask is empty.
    pub dice: Option<f64>,
    /// Surface distances of the filtered masks, mm (see [`crate::distance`]); `None` when either
    /// filtered mask is empty.
    pub assd: Option<f64>,
    /// Mean of the two directed mean surface distances, mm.
    pub avg_hd: Option<f64>,
    /// Maximum of the two directed mean surface distances, mm.
    pub mhd: Option<f64>,
    /// Hausdorff distance, mm.
    pub hd: Option<f64>,
    /// Maximum of the two directed 95th-percentile surface distances, mm.
    pub hd95: Option<f64>,
    /// One row per GT node, by ascending id.
    pub nodes: Vec<NodeRow>,
    /// One row per false-positive component.
    pub fps: Vec<FpRow>,
    /// Per-threshold counts when the prediction is a probability map.
    pub froc: Option<Vec<FrocCounts>>,
    /// `Some(n)` when the ground truth was a binary mask: one label whose voxels form `n > 1`
    /// separate 26-connected components, scored as `n` nodes (ids in raster order of each
    /// component's first voxel), as the protocol splits a prediction. `None` for a label map.
    pub gt_split_from_binary: Option<usize>,
}

/// Voxel counts per GT label id and the ids present.
struct GtIndex {
    /// voxels per label id (index 0 unused)
    counts: Vec<usize>,
    /// ids with at least one voxel, ascending
    ids: Vec<u32>,
}

impl GtIndex {
    /// `max_label`: the largest label of the map (0 when it is all background).
    fn new(gt: &Runs, max_label: usize) -> Result<Self, EvalError> {
        if max_label > MAX_LABEL_ID {
            return Err(EvalError::LabelTooLarge { label: max_label, max: MAX_LABEL_ID });
        }
        let mut counts = vec![0usize; max_label + 1];
        for r in &gt.runs {
            counts[r.value as usize] += r.len();
        }
        let ids = (1..=max_label).filter(|&i| counts[i] > 0).map(|i| i as u32).collect();
        Ok(GtIndex { counts, ids })
    }
}

/// Components of a prediction after the size filter, and their overlap with the GT nodes.
struct Detection {
    /// the prediction's runs, value = 26-connected component id
    comps: Runs,
    n_components: usize,
    /// per component id: kept after the SAD filter
    kept: Vec<bool>,
    /// per component id: SAD and LAD, mm
    sad_mm: Vec<f64>,
    lad_mm: Vec<f64>,
    n_removed_small: usize,
    /// per GT id: voxels covered by kept components
    inter: Vec<usize>,
    /// (component, GT id) pairs that overlap, kept components only
    pairs: HashSet<(u32, u32)>,
    /// per GT id: localized
    localized: Vec<bool>,
    /// per component id: true positive
    tp: Vec<bool>,
}

/// `mask`: binary runs of the prediction; `gt`: runs of equal labels.
fn detect(mask: &Runs, gt: &Runs, index: &GtIndex, geom: &Geometry) -> Detection {
    let (comp, n) = components_26(mask);
    let mut comps = mask.clone();
    for (r, c) in comps.runs.iter_mut().zip(comp) {
        r.value = c;
    }
    let axes = label_axes(&comps, geom);
    let mut sad_mm = vec![0.0; n + 1];
    let mut lad_mm = vec![0.0; n + 1];
    let mut kept = vec![false; n + 1];
    let mut n_removed_small = 0;
    for c in 1..=n {
        // Every component has at least one voxel, so its axes exist; a missing measurement is
        // treated as size 0 (removed), never as a large node.
        let (s, l) = axes.get(c).copied().flatten().unwrap_or((0.0, 0.0));
        sad_mm[c] = s;
        lad_mm[c] = l;
        kept[c] = s >= MIN_SHORT_AXIS_MM;
        n_removed_small += usize::from(!kept[c]);
    }
    let n_ids = index.counts.len();
    let mut inter = vec![0usize; n_ids];
    let mut pairs = HashSet::new();
    comps.for_each_overlap(gt, |c, g, overlap| {
        if kept[c.value as usize] {
            inter[g.value as usize] += overlap;
            pairs.insert((c.value, g.value));
        }
    });
    let mut localized = vec![false; n_ids];
    for &id in &index.ids {
        let id = id as usize;
        localized[id] = sensitivity(inter[id], index.counts[id]) >= LOCALIZED_MIN_SENSITIVITY;
    }
    let mut tp = vec![false; n + 1];
    for &(c, g) in &pairs {
        if localized[g as usize] {
            tp[c as usize] = true;
        }
    }
    Detection { comps, n_components: n, kept, sad_mm, lad_mm, n_removed_small, inter, pairs, localized, tp }
}

fn sensitivity(inter: usize, count: usize) -> f64 {
    inter as f64 / count as f64
}

impl Detection {
    fn n_kept(&self) -> usize {
        self.kept.iter().filter(|&&k| k).count()
    }
    fn n_tp(&self) -> usize {
        self.tp.iter().filter(|&&k| k).count()
    }
}

/// A prediction held as runs (see [`crate::sparse`]).
#[derive(Debug)]
pub(crate) enum PredictionRuns {
    /// Binary mask.
    Mask(Runs),
    /// Probability map, kept from the lowest threshold it is evaluated at ([`min_threshold`]).
    Probability(ProbRuns),
}

/// The lowest threshold a probability map is binarised at: [`PROBABILITY_THRESHOLD`] and the FROC
/// thresholds.
pub(crate) fn min_threshold() -> f64 {
    froc_thresholds().into_iter().fold(PROBABILITY_THRESHOLD, f64::min)
}

/// A ground truth ready to score predictions against: its runs, label index, node axes and the
/// nodes a perfect prediction localizes. [`evaluate_scan`] prepares one per call; to score many
/// predictions against one ground truth (an operating-point grid), prepare it once with
/// [`PreparedGt::new`] and score each with [`evaluate_prepared`].
pub struct PreparedGt {
    runs: Runs,
    geom: Geometry,
    index: GtIndex,
    /// per label id: (SAD, LAD) in mm
    axes: Vec<Option<(f64, f64)>>,
    /// per label id: localized by the ground truth itself as the prediction
    countable: Vec<bool>,
    /// see [`ScanResult::gt_split_from_binary`]
    split_from_binary: Option<usize>,
}

impl PreparedGt {
    /// Prepares an instance label map (0 = background, one id per node).
    ///
    /// # Errors
    /// [`EvalError::LabelTooLarge`] for label ids above [`MAX_LABEL_ID`].
    pub fn new<L: Label>(gt: &Volume<L>) -> Result<Self, EvalError> {
        let (runs, max_label) = Runs::from_volume(gt, true);
        PreparedGt::from_runs(runs, max_label, *gt.geometry())
    }

    /// From runs of equal labels on the grid `geom` (`max_label`: their largest label).
    ///
    /// A map holding the single label 1 in several 26-connected pieces is a binary mask (the
    /// common nnU-Net `labelsTr`), not one node: it is split into its components, as a prediction
    /// is. A single-label map in one piece reads the same either way.
    pub(crate) fn from_runs(runs: Runs, max_label: usize, geom: Geometry) -> Result<Self, EvalError> {
        let (runs, max_label, split_from_binary) = match max_label {
            1 => match components_26(&runs) {
                (comp, n) if n > 1 => {
                    let mut runs = runs;
                    for (r, c) in runs.runs.iter_mut().zip(comp) {
                        r.value = c;
                    }
                    (runs, n, Some(n))
                }
                _ => (runs, max_label, None),
            },
            _ => (runs, max_label, None),
        };
        let index = GtIndex::new(&runs, max_label)?;
        let (ceiling, axes) = rayon::join(
            // The ground truth as a binary mask (touching nodes merge, as they would in any mask)
            // is the best prediction there can be; what it does not localize, the size filter
            // removed.
            || detect(&runs.select(|_| true), &runs, &index, &geom),
            || label_axes(&runs, &geom),
        );
        Ok(PreparedGt { countable: ceiling.localized, runs, geom, index, axes, split_from_binary })
    }

    /// Errors unless `pred` lies on this ground truth's grid and, as a probability map, in [0, 1].
    fn check_prediction(&self, pred: Prediction<'_>) -> Result<(), EvalError> {
        self.check_grid(pred)?;
        check_probability_range(pred)
    }

    fn check_grid(&self, pred: Prediction<'_>) -> Result<(), EvalError> {
        let (dims, geom) = match pred {
            Prediction::Mask(m) => (m.dims(), m.geometry()),
            Prediction::Probability(p) => (p.dims(), p.geometry()),
        };
        if dims != self.runs.dims || !geom.same_grid(&self.geom, dims, 1e-3) {
            return Err(EvalError::Geometry(format!(
                "prediction dims {dims:?} spacing {:?} origin {:?} vs ground truth dims {:?} spacing {:?} origin {:?}",
                geom.spacing_mm, geom.origin_mm, self.runs.dims, self.geom.spacing_mm, self.geom.origin_mm
            )));
        }
        Ok(())
    }
}

fn check_probability_range(pred: Prediction<'_>) -> Result<(), EvalError> {
    if let Prediction::Probability(p) = pred {
        if let Some(bad) = p.as_slice().par_iter().find_any(|v| !(0.0..=1.0).contains(*v)) {
            return Err(EvalError::InvalidProbability { value: *bad as f64 });
        }
    }
    Ok(())
}

fn prediction_runs(pred: Prediction<'_>) -> PredictionRuns {
    match pred {
        Prediction::Mask(m) => PredictionRuns::Mask(Runs::from_volume(m, false).0),
        Prediction::Probability(p) => PredictionRuns::Probability(ProbRuns::from_volume(p, min_threshold())),
    }
}

/// Evaluates one scan. `gt` is an instance label map (0 = background, one id per node) on the
/// prediction's grid; `meta` gives the metastatic flag per id.
pub fn evaluate_scan<L: Label>(
    pred: Prediction<'_>,
    gt: &Volume<L>,
    meta: Option<&NodeMeta>,
) -> Result<ScanResult, EvalError> {
    match pred {
        Prediction::Mask(m) => m.check_same_grid(gt),
        Prediction::Probability(p) => p.check_same_grid(gt),
    }
    .map_err(|e| EvalError::Geometry(e.to_string()))?;
    check_probability_range(pred)?;
    let (prepared, pred_runs) = rayon::join(|| PreparedGt::new(gt), || prediction_runs(pred));
    evaluate_runs(&pred_runs, &prepared?, meta)
}

/// [`evaluate_scan`] against a ground truth prepared once.
///
/// # Errors
/// As [`evaluate_scan`].
pub fn evaluate_prepared(
    pred: Prediction<'_>,
    gt: &PreparedGt,
    meta: Option<&NodeMeta>,
) -> Result<ScanResult, EvalError> {
    gt.check_prediction(pred)?;
    evaluate_runs(&prediction_runs(pred), gt, meta)
}

/// [`evaluate_scan`] of a prediction held as runs against a prepared ground truth on its grid.
/// Nothing full-size is built.
pub(crate) fn evaluate_runs(
    pred: &PredictionRuns,
    prepared: &PreparedGt,
    meta: Option<&NodeMeta>,
) -> Result<ScanResult, EvalError> {
    let PreparedGt { runs: gt, geom, index, axes: gt_axes, countable, split_from_binary } = prepared;
    let thresholded;
    let mask = match pred {
        PredictionRuns::Mask(m) => m,
        PredictionRuns::Probability(p) => {
            thresholded = p.threshold(PROBABILITY_THRESHOLD);
            &thresholded
        }
    };
    let det = detect(mask, gt, index, geom);
    let voxel_mm3 = geom.voxel_volume_mm3();

    // Per-component voxel counts and index sums, for FP volumes and centroids. The sums are exact
    // integers, as the per-voxel sums in f64 they replace were.
    let n_comp = det.n_components;
    let mut comp_voxels = vec![0usize; n_comp + 1];
    let mut comp_sums = vec![[0u128; 3]; n_comp + 1];
    for r in &det.comps.runs {
        let c = r.value as usize;
        let len = r.len() as u128;
        comp_voxels[c] += r.len();
        comp_sums[c][0] += (r.start as u128 + r.end as u128 - 1) * len / 2;
        comp_sums[c][1] += r.j as u128 * len;
        comp_sums[c][2] += r.k as u128 * len;
    }

    let mut fps = Vec::new();
    for c in 1..=n_comp {
        if det.kept[c] && !det.tp[c] {
            let nv = comp_voxels[c];
            let centroid_idx = comp_sums[c].map(|s| s as f64 / nv as f64);
            fps.push(FpRow {
                component: c as u32,
                sad_mm: det.sad_mm[c],
                lad_mm: det.lad_mm[c],
                n_voxels: nv,
                volume_mm3: nv as f64 * voxel_mm3,
                centroid_mm: geom.index_to_world(centroid_idx),
            });
        }
    }

    let nodes: Vec<NodeRow> = index
        .ids
        .iter()
        .map(|&id| {
            let i = id as usize;
            let (sad, lad) = gt_axes.get(i).copied().flatten().unwrap_or((0.0, 0.0));
            NodeRow {
                id,
                sad_mm: sad,
                lad_mm: lad,
                sad_group: SadGroup::of(sad),
                n_voxels: index.counts[i],
                volume_mm3: index.counts[i] as f64 * voxel_mm3,
                metastatic: meta.and_then(|m| m.is_metastatic(id)),
                sensitivity: sensitivity(det.inter[i], index.counts[i]),
                localized: det.localized[i],
                countable: countable[i],
            }
        })
        .collect();

    // Filtered masks: TP components / localized nodes.
    let pred_f = det.comps.select(|r| det.tp[r.value as usize]);
    let gt_f = gt.select(|r| det.localized[r.value as usize]);
    let mut both = 0usize;
    pred_f.for_each_overlap(&gt_f, |_, _, overlap| both += overlap);
    let (n_a, n_b) = (pred_f.n_voxels(), gt_f.n_voxels());
    let dice = (n_a > 0 && n_b > 0).then(|| 2.0 * both as f64 / (n_a + n_b) as f64);
    let dist = directed_runs(&pred_f, &gt_f, geom.spacing_mm).map(|d| summarise(&d));

    let n_gt = index.ids.len();
    let n_loc = nodes.iter().filter(|n| n.localized).count();
    let n_pred = det.n_kept();
    let n_tp = det.n_tp();
    let recall = (n_gt > 0).then(|| n_loc as f64 / n_gt as f64);
    let n_countable = nodes.iter().filter(|n| n.countable).count();
    let recall_ceiling = (n_gt > 0).then(|| n_countable as f64 / n_gt as f64);
    let precision = (n_pred > 0).then(|| n_tp as f64 / n_pred as f64);
    let f1 = match (precision, recall) {
        (Some(p), Some(r)) if p + r > 0.0 => Some(2.0 * p * r / (p + r)),
        (Some(_), Some(_)) => Some(0.0),
        _ => None,
    };
    let froc = match pred {
        PredictionRuns::Mask(_) => None,
        PredictionRuns::Probability(p) => Some(
            froc_thresholds()
                .into_par_iter()
                .map(|t| {
                    let d = detect(&p.threshold(t), gt, index, geom);
                    FrocCounts {
                        threshold: t,
                        n_gt,
                        n_localized: index.ids.iter().filter(|&&id| d.localized[id as usize]).count(),
                        n_fp: d.n_kept() - d.n_tp(),
                    }
                })
                .collect(),
        ),
    };
    debug_assert!(det.pairs.iter().all(|&(c, _)| det.kept[c as usize]));
    Ok(ScanResult {
        n_gt_nodes: n_gt,
        n_gt_localized: n_loc,
        n_pred_components: det.n_components,
        n_pred_removed_small: det.n_removed_small,
        n_pred,
        n_tp,
        n_fp: fps.len(),
        n_fp_sad_ge_10mm: fps.iter().filter(|f| f.sad_mm >= SIGNIFICANT_FP_SAD_MM).count(),
        recall,
        n_gt_countable: n_countable,
        recall_ceiling,
        precision,
        f1,
        dice,
        assd: dist.map(|d| d.assd),
        avg_hd: dist.map(|d| d.avg_hd),
        mhd: dist.map(|d| d.mhd),
        hd: dist.map(|d| d.hd),
        hd95: dist.map(|d| d.hd95),
        nodes,
        fps,
        froc,
        gt_split_from_binary: *split_from_binary,
    })
}
