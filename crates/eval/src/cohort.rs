//! A cohort: pairing files into cases, evaluating every scan, and the cohort-level figures
//! (means over scans, Table 1, statistics, FROC).
//!
//! # Case ids
//! A file's case id is its name without `.nii.gz` / `.nii`, and without a trailing nnU-Net channel
//! suffix `_0000` (so `case_001_0000.nii.gz` and `case_001.nii.gz` pair). Predictions and ground
//! truths are paired by case id; a case present on only one side is an error (a silently smaller
//! cohort would change every figure). A manifest CSV (`case_id,pred,gt[,meta]`, paths relative to
//! the manifest's folder) replaces the pairing.
//!
//! # Metadata
//! `--meta DIR` looks for `<case>.json`, `<case>_nodes.json` or `<case>/nodes.json` in DIR (a case
//! without a file has unknown metastatic status); `--meta FILE.csv` reads `case_id,node_id,metastatic`.
use crate::meta::{read_meta_csv, NodeMeta};
use crate::scan::{evaluate_runs, min_threshold, PredictionRuns, PreparedGt, ScanResult};
use crate::sparse::{ProbRuns, Runs};
use crate::stats::{self, DunnPair, TestResult};
use crate::EvalError;
use nodal_core::vocab::{LOCALIZED_MIN_SENSITIVITY, MIN_SHORT_AXIS_MM};
use nodal_core::SadGroup;
use nodal_core::{Label, Voxel};
use nodal_io::{read_nifti_header, NiftiDtype, NiftiHeader, NiftiRows};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Version of the `evaluation.json` layout.
pub const SCHEMA: &str = "nodal.evaluation/3";

/// One case to evaluate.
#[derive(Clone, Debug)]
pub struct CaseInput {
    /// Case id (see the module docs).
    pub case_id: String,
    /// Prediction NIfTI: a binary mask (integer dtype) or a probability map (float dtype).
    pub pred: PathBuf,
    /// Ground-truth instance label map NIfTI.
    pub gt: PathBuf,
    /// Node metadata, when known.
    pub meta: Option<NodeMeta>,
}

/// The case id of a file name (module docs): [`nodal_io::nifti_case_id`].
pub use nodal_io::nifti_case_id as case_id_of;

/// The NIfTI files of `dir` by case id; with `case_folders`, also the case folders of a cohort
/// `nodal segment` output (`<case>/nodes.nii.gz`, id = the folder's name), so the shards of a
/// cohort run are evaluated together from the folder they share.
fn nifti_files(dir: &Path, case_folders: bool) -> Result<BTreeMap<String, PathBuf>, EvalError> {
    let mut out = BTreeMap::new();
    let rd = std::fs::read_dir(dir).map_err(|e| EvalError::io(dir, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| EvalError::io(dir, e))?;
        let path = entry.path();
        let found = if path.is_file() {
            case_id_of(&path).map(|id| (id, path.clone()))
        } else if case_folders && path.join(SEGMENT_LABELS).is_file() {
            path.file_name().and_then(|n| n.to_str()).map(|id| (id.to_string(), path.join(SEGMENT_LABELS)))
        } else {
            None
        };
        if let Some((id, file)) = found {
            if let Some(prev) = out.insert(id.clone(), file.clone()) {
                return Err(EvalError::Pairing(format!(
                    "{} and {} both have case id {id:?}",
                    prev.display(),
                    file.display()
                )));
            }
        }
    }
    Ok(out)
}

/// The instance labels a `nodal segment` case folder holds.
const SEGMENT_LABELS: &str = "nodes.nii.gz";

/// Where node metadata comes from.
#[derive(Clone, Debug)]
pub enum MetaSource {
    /// No metadata: metastatic status unknown for every node.
    None,
    /// A folder of per-case `nodes.json` files.
    Dir(PathBuf),
    /// One CSV `case_id,node_id,metastatic`.
    Csv(PathBuf),
}

impl MetaSource {
    /// A folder is [`MetaSource::Dir`], anything else a CSV file.
    pub fn from_path(path: Option<&Path>) -> Self {
        match path {
            None => MetaSource::None,
            Some(p) if p.is_dir() => MetaSource::Dir(p.to_path_buf()),
            Some(p) => MetaSource::Csv(p.to_path_buf()),
        }
    }
}

/// Loads the metadata of every case from `source` into `cases` (leaving cases already holding
/// metadata alone).
pub fn attach_meta(cases: &mut [CaseInput], source: &MetaSource) -> Result<(), EvalError> {
    match source {
        MetaSource::None => {}
        MetaSource::Csv(path) => {
            let mut all = read_meta_csv(path)?;
            for c in cases.iter_mut().filter(|c| c.meta.is_none()) {
                c.meta = all.remove(&c.case_id);
            }
        }
        MetaSource::Dir(dir) => {
            for c in cases.iter_mut().filter(|c| c.meta.is_none()) {
                let candidates = [
                    dir.join(format!("{}.json", c.case_id)),
                    dir.join(format!("{}_nodes.json", c.case_id)),
                    dir.join(&c.case_id).join("nodes.json"),
                ];
                if let Some(p) = candidates.iter().find(|p| p.is_file()) {
                    c.meta = Some(NodeMeta::from_json_file(p)?);
                }
            }
        }
    }
    Ok(())
}

/// Pairs the NIfTI files of two folders by case id; the predictions may also be the case folders
/// of a cohort `nodal segment` run (`<case>/nodes.nii.gz`).
pub fn pair_dirs(pred_dir: &Path, gt_dir: &Path) -> Result<Vec<CaseInput>, EvalError> {
    let preds = nifti_files(pred_dir, true)?;
    let gts = nifti_files(gt_dir, false)?;
    let only_pred: Vec<&String> = preds.keys().filter(|k| !gts.contains_key(*k)).collect();
    let only_gt: Vec<&String> = gts.keys().filter(|k| !preds.contains_key(*k)).collect();
    if !only_pred.is_empty() || !only_gt.is_empty() {
        return Err(EvalError::Pairing(format!(
            "cases without ground truth in {}: {only_pred:?}; cases without prediction in {}: {only_gt:?}",
            gt_dir.display(),
            pred_dir.display()
        )));
    }
    if preds.is_empty() {
        return Err(EvalError::Pairing(format!("no .nii/.nii.gz files in {}", pred_dir.display())));
    }
    Ok(preds
        .into_iter()
        .map(|(case_id, pred)| {
            let gt = gts[&case_id].clone();
            CaseInput { case_id, pred, gt, meta: None }
        })
        .collect())
}

/// Reads a manifest CSV `case_id,pred,gt[,meta]`; relative paths are relative to its folder. A
/// `meta` cell names a per-case `nodes.json`.
pub fn read_manifest(path: &Path) -> Result<Vec<CaseInput>, EvalError> {
    let base = path.parent().unwrap_or(Path::new("."));
    let rows = crate::table::read_csv_with(path, &["case_id", "pred", "gt"], &["meta"])?;
    if rows.is_empty() {
        return Err(EvalError::BadTable { path: path.into(), reason: "no cases".into() });
    }
    let mut seen = std::collections::HashSet::new();
    let mut cases = Vec::new();
    for (line, r) in rows {
        if !seen.insert(r[0].clone()) {
            return Err(EvalError::BadTable {
                path: path.into(),
                reason: format!("line {line}: case {:?} repeated", r[0]),
            });
        }
        let meta = if r[3].is_empty() { None } else { Some(NodeMeta::from_json_file(&base.join(&r[3]))?) };
        cases.push(CaseInput { case_id: r[0].clone(), pred: base.join(&r[1]), gt: base.join(&r[2]), meta });
    }
    Ok(cases)
}

/// Whether a prediction file was a mask or a probability map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PredictionKind {
    /// Integer dtype: nonzero = node.
    Mask,
    /// Float dtype: probability, thresholded at 0.5 (and evaluated for FROC).
    Probability,
}

/// One evaluated case.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CaseResult {
    /// Case id.
    pub case_id: String,
    /// Prediction file (or a description for in-memory inputs).
    pub pred: String,
    /// Ground-truth file.
    pub gt: String,
    /// How the prediction was read.
    pub prediction_kind: PredictionKind,
    /// The scan's results.
    #[serde(flatten)]
    pub result: ScanResult,
}

fn read_err(path: &Path, source: nodal_io::IoError) -> EvalError {
    EvalError::Read { path: path.to_path_buf(), source }
}

/// Streams the rows of a NIfTI file as `T` (converted like [`nodal_io::read_nifti`]) into
/// `row(state, r, values)`, `state` made from the header by `init`.
fn read_rows<T: Voxel, S>(
    path: &Path,
    init: impl FnOnce(&NiftiHeader) -> S,
    mut row: impl FnMut(&mut S, usize, &[T]),
) -> Result<(S, NiftiHeader), EvalError> {
    let mut rows = NiftiRows::<T>::open(path).map_err(|e| read_err(path, e))?;
    let mut state = init(rows.header());
    let ni = rows.header().dims[0];
    let mut block = Vec::new();
    loop {
        block.clear();
        let Some(first) = rows.next_rows(&mut block).map_err(|e| read_err(path, e))? else { break };
        for (x, values) in block.chunks(ni).enumerate() {
            row(&mut state, first + x, values);
        }
    }
    Ok((state, rows.header().clone()))
}

/// Ground truth read as `u32` label ids (`nodal_io::read_labels`' rule) into runs of equal labels,
/// with the largest label and the header. Unscaled 8- and 16-bit unsigned labels are read as
/// themselves: the same values, without widening every voxel.
fn read_gt_runs(path: &Path) -> Result<(Runs, usize, NiftiHeader), EvalError> {
    fn read<T: Label>(path: &Path) -> Result<(Runs, usize, NiftiHeader), EvalError> {
        let ((runs, max), header) = read_rows::<T, _>(
            path,
            |h| (Runs::new(h.dims), 0usize),
            |(runs, max), r, row| *max = (*max).max(runs.push_row(r, row, true)),
        )?;
        Ok((runs, max, header))
    }
    /// Any other stored type: every value must be a label id (`nodal_io::label_id`); a negative
    /// or fractional one would otherwise drop or merge nodes.
    fn read_checked(path: &Path) -> Result<(Runs, usize, NiftiHeader), EvalError> {
        let ((runs, max, _, bad), header) = read_rows::<f64, _>(
            path,
            |h| (Runs::new(h.dims), 0usize, Vec::<u32>::new(), None),
            |(runs, max, ids, bad), r, row| {
                if bad.is_some() {
                    return;
                }
                ids.clear();
                for &v in row {
                    match nodal_io::label_id(v) {
                        Ok(id) => ids.push(id),
                        Err(reason) => {
                            *bad = Some((v, reason));
                            return;
                        }
                    }
                }
                *max = (*max).max(runs.push_row(r, ids, true));
            },
        )?;
        match bad {
            Some((value, reason)) => Err(read_err(
                path,
                nodal_io::IoError::InvalidLabel { path: path.to_path_buf(), value, reason },
            )),
            None => Ok((runs, max, header)),
        }
    }
    let header = read_nifti_header(path).map_err(|e| read_err(path, e))?;
    match (header.dtype, header.scaling) {
        (NiftiDtype::U8, None) => read::<u8>(path),
        (NiftiDtype::U16, None) => read::<u16>(path),
        _ => read_checked(path),
    }
}

/// A prediction read into runs. A mask is read as `u8` (or, for wider integer types, as `i32`) and
/// any nonzero value is foreground; a probability map is read as `f32`. A probability outside
/// [0, 1] is reported only once the whole file has been read, so read errors come first (as when
/// the file was read whole before being checked).
fn read_pred_runs(path: &Path, dtype: NiftiDtype, kind: PredictionKind) -> Result<PredictionRuns, EvalError> {
    let mask = |h: &NiftiHeader| Runs::new(h.dims);
    match kind {
        PredictionKind::Mask if dtype == NiftiDtype::U8 => {
            let (runs, _) = read_rows::<u8, _>(path, mask, |runs, r, row| {
                runs.push_row(r, row, false);
            })?;
            Ok(PredictionRuns::Mask(runs))
        }
        PredictionKind::Mask => {
            let (runs, _) = read_rows::<i32, _>(path, mask, |runs, r, row| {
                runs.push_row(r, row, false);
            })?;
            Ok(PredictionRuns::Mask(runs))
        }
        PredictionKind::Probability => {
            let ((p, bad), _) = read_rows::<f32, _>(
                path,
                |h| (ProbRuns::new(h.dims, min_threshold()), None::<f32>),
                |(p, bad), r, row| {
                    if bad.is_none() {
                        *bad = row.iter().copied().find(|v| !(0.0..=1.0).contains(v));
                    }
                    p.push_row(r, row);
                },
            )?;
            match bad {
                Some(v) => Err(EvalError::InvalidProbability { value: v as f64 }),
                None => Ok(PredictionRuns::Probability(p)),
            }
        }
    }
}

/// Reads and evaluates one case. The two files are read in parallel, row by row, straight into
/// runs of their nonzero voxels (see [`crate::sparse`]); errors are reported in the order of
/// reading the prediction's header, the ground truth, the grid check, then the prediction's voxels.
pub fn evaluate_case(case: &CaseInput) -> Result<CaseResult, EvalError> {
    let header = read_nifti_header(&case.pred).map_err(|e| read_err(&case.pred, e))?;
    let mismatch = |detail: String| EvalError::GridMismatch {
        case_id: case.case_id.clone(),
        pred: case.pred.clone(),
        gt: case.gt.clone(),
        detail,
    };
    let kind = match header.dtype {
        NiftiDtype::F32 | NiftiDtype::F64 => PredictionKind::Probability,
        _ if header.scaling.is_some() => PredictionKind::Probability,
        _ => PredictionKind::Mask,
    };
    let (gt, pred) =
        rayon::join(|| read_gt_runs(&case.gt), || read_pred_runs(&case.pred, header.dtype, kind));
    let (gt, max_label, gt_header) = gt?;
    let (gt_dims, gt_geom) = (gt_header.dims, gt_header.geometry);
    // A grid mismatch is reported before any problem with the prediction's voxels.
    let pred_geom_ok = header.dims == gt_dims && header.geometry.same_grid(&gt_geom, gt_dims, 1e-3);
    if !pred_geom_ok {
        return Err(mismatch(format!(
            "dims {:?} spacing {:?} origin {:?} vs dims {:?} spacing {:?} origin {:?}",
            header.dims,
            header.geometry.spacing_mm,
            header.geometry.origin_mm,
            gt_dims,
            gt_geom.spacing_mm,
            gt_geom.origin_mm
        )));
    }
    let pred = pred?;
    let result = evaluate_runs(&pred, &PreparedGt::from_runs(gt, max_label, gt_geom)?, case.meta.as_ref())?;
    Ok(CaseResult {
        case_id: case.case_id.clone(),
        pred: case.pred.display().to_string(),
        gt: case.gt.display().to_string(),
        prediction_kind: kind,
        result,
    })
}

/// Evaluates all cases in parallel and summarises the cohort. `progress` is called once per
/// finished case with its id (from worker threads).
pub fn evaluate_cohort(
    cases: &[CaseInput],
    progress: &(dyn Fn(&str) + Sync),
) -> Result<CohortResult, EvalError> {
    let results: Vec<CaseResult> = cases
        .par_iter()
        .map(|c| {
            let r = evaluate_case(c).map_err(|e| match e {
                // Already names the case and both files.
                e @ EvalError::GridMismatch { .. } => e,
                e => EvalError::Case {
                    case_id: c.case_id.clone(),
                    pred: c.pred.clone(),
                    gt: c.gt.clone(),
                    source: Box::new(e),
                },
            });
            progress(&c.case_id);
            r
        })
        .collect::<Result<_, _>>()?;
    Ok(summarise_cohort(results))
}

/// A cohort mean over scans of a per-scan quantity that may be undefined.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ScanMean {
    /// Mean over the scans where it is defined; `None` when it is defined for none.
    pub mean: Option<f64>,
    /// Number of scans where it is defined.
    pub n_scans: usize,
}

impl ScanMean {
    fn of(values: impl Iterator<Item = Option<f64>>) -> Self {
        let v: Vec<f64> = values.flatten().collect();
        let n = v.len();
        ScanMean { mean: (n > 0).then(|| v.iter().sum::<f64>() / n as f64), n_scans: n }
    }
}

/// Cohort figures (means over scans, as the paper reports them, plus pooled counts).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CohortSummary {
    /// Scans evaluated.
    pub n_scans: usize,
    pub recall: ScanMean,
    /// Mean over scans of [`ScanResult::recall_ceiling`]: the recall a prediction identical to the
    /// ground truth reaches under this protocol.
    pub recall_ceiling: ScanMean,
    pub precision: ScanMean,
    pub f1: ScanMean,
    pub dice: ScanMean,
    pub assd: ScanMean,
    pub avg_hd: ScanMean,
    pub mhd: ScanMean,
    pub hd: ScanMean,
    pub hd95: ScanMean,
    /// Mean false positives per scan.
    pub fp_per_scan: f64,
    /// Mean false positives with SAD >= 10 mm per scan.
    pub fp_sad_ge_10mm_per_scan: f64,
    /// Mean SAD of all false positives, mm; `None` without FPs.
    pub fp_mean_sad_mm: Option<f64>,
    pub n_gt_nodes: usize,
    pub n_gt_localized: usize,
    /// GT nodes a prediction identical to the ground truth localizes.
    pub n_gt_countable: usize,
    /// Localized / GT nodes over the whole cohort; `None` without GT nodes.
    pub recall_pooled: Option<f64>,
    pub n_pred: usize,
    pub n_tp: usize,
    pub n_fp: usize,
    pub n_pred_removed_small: usize,
}

/// Nodal status column of Table 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Metastatic,
    NonMetastatic,
    /// Every node, including those of unknown status.
    All,
}

/// One cell group of Table 1.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Table1Row {
    /// `<5`, `5-9`, `10-14`, `>=15` or `all`.
    pub sad_group: String,
    pub status: Status,
    /// GT nodes.
    pub n: usize,
    pub n_localized: usize,
    /// n_localized / n; `None` when n = 0.
    pub recall: Option<f64>,
    /// Mean sensitivity of the localized nodes; `None` when none is localized.
    pub mean_sensitivity_localized: Option<f64>,
}

/// A Dunn comparison with group names.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NamedPair {
    pub group_a: String,
    pub group_b: String,
    pub z: f64,
    pub p_unadjusted: f64,
    pub p_bonferroni: f64,
}

/// The statistical tests of the protocol. `None` where a test is undefined for the data (too few
/// nodes, a group empty, all values tied).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Statistics {
    /// Shapiro-Wilk on the sensitivity of every GT node.
    pub shapiro_sensitivity_all_nodes: Option<TestResult>,
    /// Kruskal-Wallis, metastatic vs non-metastatic, on the localized flag (0/1) of every node.
    pub kruskal_localized_mets_vs_nonmets: Option<TestResult>,
    /// Kruskal-Wallis, metastatic vs non-metastatic, on the sensitivity of localized nodes.
    pub kruskal_sensitivity_localized_mets_vs_nonmets: Option<TestResult>,
    /// Kruskal-Wallis, metastatic vs non-metastatic, on SAD.
    pub kruskal_sad_mets_vs_nonmets: Option<TestResult>,
    /// Kruskal-Wallis across the SAD groups on the localized flag of every node.
    pub kruskal_localized_by_sad_group: Option<TestResult>,
    /// Dunn's post hoc test (Bonferroni) for the previous test.
    pub dunn_localized_by_sad_group: Option<Vec<NamedPair>>,
    /// Kruskal-Wallis across the SAD groups on the sensitivity of localized nodes.
    pub kruskal_sensitivity_localized_by_sad_group: Option<TestResult>,
    /// Dunn's post hoc test (Bonferroni) for the previous test.
    pub dunn_sensitivity_localized_by_sad_group: Option<Vec<NamedPair>>,
    /// Pearson r and p between SAD and sensitivity, every GT node.
    pub pearson_sad_vs_sensitivity_all_nodes: Option<TestResult>,
    /// The same for nodes with SAD > 10 mm.
    pub pearson_sad_vs_sensitivity_sad_gt_10mm: Option<TestResult>,
}

/// One point of the cohort FROC curve.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct FrocPoint {
    pub threshold: f64,
    /// Localized / GT nodes pooled over the scans; `None` without GT nodes.
    pub recall: Option<f64>,
    /// False positives per scan.
    pub fp_per_scan: f64,
    /// Scans contributing (those with probability maps).
    pub n_scans: usize,
}

/// Everything `evaluation.json` holds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CohortResult {
    /// [`SCHEMA`].
    pub schema: &'static str,
    /// The fixed parameters of the protocol, so a reader knows which definitions were used.
    pub protocol: Protocol,
    pub summary: CohortSummary,
    pub table1: Vec<Table1Row>,
    pub statistics: Statistics,
    /// Present when at least one prediction is a probability map.
    pub froc: Option<Vec<FrocPoint>>,
    pub scans: Vec<CaseResult>,
}

/// Parameters and definitions applied (see the evaluation protocol).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Protocol {
    pub connectivity: u32,
    pub min_pred_sad_mm: f64,
    pub localized_min_sensitivity: f64,
    pub significant_fp_sad_mm: f64,
    pub probability_threshold: f64,
    pub surface_voxels: &'static str,
    pub hd95: &'static str,
    pub sad: &'static str,
    pub cohort_means: &'static str,
}

impl Default for Protocol {
    fn default() -> Self {
        use crate::scan::*;
        Protocol {
            connectivity: 26,
            min_pred_sad_mm: MIN_SHORT_AXIS_MM,
            localized_min_sensitivity: LOCALIZED_MIN_SENSITIVITY,
            significant_fp_sad_mm: SIGNIFICANT_FP_SAD_MM,
            probability_threshold: PROBABILITY_THRESHOLD,
            surface_voxels: "mask voxels with a 6-neighbour outside the mask or outside the volume",
            hd95: "max of the two directed 95th percentiles, numpy linear interpolation",
            sad: "largest axial short axis over slices, convex hull of pixel corners",
            cohort_means: "mean over scans where the metric is defined",
        }
    }
}

/// Cohort figures from evaluated cases (in the given order).
pub fn summarise_cohort(mut scans: Vec<CaseResult>) -> CohortResult {
    scans.sort_by(|a, b| a.case_id.cmp(&b.case_id));
    let n = scans.len();
    let r = |f: fn(&ScanResult) -> Option<f64>| ScanMean::of(scans.iter().map(|s| f(&s.result)));
    let sum = |f: fn(&ScanResult) -> usize| scans.iter().map(|s| f(&s.result)).sum::<usize>();
    let all_fp_sad: Vec<f64> = scans.iter().flat_map(|s| s.result.fps.iter().map(|f| f.sad_mm)).collect();
    let n_gt = sum(|s| s.n_gt_nodes);
    let n_loc = sum(|s| s.n_gt_localized);
    let per_scan = |x: usize| if n == 0 { 0.0 } else { x as f64 / n as f64 };
    let summary = CohortSummary {
        n_scans: n,
        recall: r(|s| s.recall),
        recall_ceiling: r(|s| s.recall_ceiling),
        precision: r(|s| s.precision),
        f1: r(|s| s.f1),
        dice: r(|s| s.dice),
        assd: r(|s| s.assd),
        avg_hd: r(|s| s.avg_hd),
        mhd: r(|s| s.mhd),
        hd: r(|s| s.hd),
        hd95: r(|s| s.hd95),
        fp_per_scan: per_scan(sum(|s| s.n_fp)),
        fp_sad_ge_10mm_per_scan: per_scan(sum(|s| s.n_fp_sad_ge_10mm)),
        fp_mean_sad_mm: (!all_fp_sad.is_empty())
            .then(|| all_fp_sad.iter().sum::<f64>() / all_fp_sad.len() as f64),
        n_gt_nodes: n_gt,
        n_gt_localized: n_loc,
        n_gt_countable: sum(|s| s.n_gt_countable),
        recall_pooled: (n_gt > 0).then(|| n_loc as f64 / n_gt as f64),
        n_pred: sum(|s| s.n_pred),
        n_tp: sum(|s| s.n_tp),
        n_fp: sum(|s| s.n_fp),
        n_pred_removed_small: sum(|s| s.n_pred_removed_small),
    };
    let nodes: Vec<&crate::scan::NodeRow> = scans.iter().flat_map(|s| s.result.nodes.iter()).collect();
    let table1 = table1(&nodes);
    let statistics = statistics(&nodes);
    let froc = froc(&scans);
    CohortResult { schema: SCHEMA, protocol: Protocol::default(), summary, table1, statistics, froc, scans }
}

fn table1(nodes: &[&crate::scan::NodeRow]) -> Vec<Table1Row> {
    let mut rows = Vec::new();
    let groups: Vec<Option<SadGroup>> = SadGroup::ALL.iter().copied().map(Some).chain([None]).collect();
    for g in groups {
        for status in [Status::NonMetastatic, Status::Metastatic, Status::All] {
            let sel: Vec<&&crate::scan::NodeRow> = nodes
                .iter()
                .filter(|n| g.is_none_or(|g| n.sad_group == g))
                .filter(|n| match status {
                    Status::Metastatic => n.metastatic == Some(true),
                    Status::NonMetastatic => n.metastatic == Some(false),
                    Status::All => true,
                })
                .collect();
            let loc: Vec<f64> = sel.iter().filter(|n| n.localized).map(|n| n.sensitivity).collect();
            rows.push(Table1Row {
                sad_group: g.map_or("all", |g| g.name()).to_string(),
                status,
                n: sel.len(),
                n_localized: loc.len(),
                recall: (!sel.is_empty()).then(|| loc.len() as f64 / sel.len() as f64),
                mean_sensitivity_localized: (!loc.is_empty())
                    .then(|| loc.iter().sum::<f64>() / loc.len() as f64),
            });
        }
    }
    rows
}

fn named(pairs: Option<Vec<DunnPair>>) -> Option<Vec<NamedPair>> {
    pairs.map(|v| {
        v.into_iter()
            .map(|p| NamedPair {
                group_a: SadGroup::ALL[p.group_a].name().to_string(),
                group_b: SadGroup::ALL[p.group_b].name().to_string(),
                z: p.z,
                p_unadjusted: p.p_unadjusted,
                p_bonferroni: p.p_bonferroni,
            })
            .collect()
    })
}

fn statistics(nodes: &[&crate::scan::NodeRow]) -> Statistics {
    let flag = |n: &&crate::scan::NodeRow| if n.localized { 1.0 } else { 0.0 };
    let by_status = |m: bool| nodes.iter().filter(move |n| n.metastatic == Some(m));
    let loc_mets: Vec<f64> = by_status(true).map(flag).collect();
    let loc_non: Vec<f64> = by_status(false).map(flag).collect();
    let sens_mets: Vec<f64> = by_status(true).filter(|n| n.localized).map(|n| n.sensitivity).collect();
    let sens_non: Vec<f64> = by_status(false).filter(|n| n.localized).map(|n| n.sensitivity).collect();
    let sad_mets: Vec<f64> = by_status(true).map(|n| n.sad_mm).collect();
    let sad_non: Vec<f64> = by_status(false).map(|n| n.sad_mm).collect();
    let group = |g: SadGroup| nodes.iter().filter(move |n| n.sad_group == g);
    let loc_by_group: Vec<Vec<f64>> = SadGroup::ALL.iter().map(|&g| group(g).map(flag).collect()).collect();
    let sens_by_group: Vec<Vec<f64>> = SadGroup::ALL
        .iter()
        .map(|&g| group(g).filter(|n| n.localized).map(|n| n.sensitivity).collect())
        .collect();
    fn slices(v: &[Vec<f64>]) -> Vec<&[f64]> {
        v.iter().map(|x| x.as_slice()).collect()
    }
    let sens_all: Vec<f64> = nodes.iter().map(|n| n.sensitivity).collect();
    let sad_all: Vec<f64> = nodes.iter().map(|n| n.sad_mm).collect();
    let big: Vec<&&crate::scan::NodeRow> = nodes.iter().filter(|n| n.sad_mm > 10.0).collect();
    let sad_big: Vec<f64> = big.iter().map(|n| n.sad_mm).collect();
    let sens_big: Vec<f64> = big.iter().map(|n| n.sensitivity).collect();
    Statistics {
        shapiro_sensitivity_all_nodes: stats::shapiro(&sens_all),
        kruskal_localized_mets_vs_nonmets: two_groups(&loc_mets, &loc_non),
        kruskal_sensitivity_localized_mets_vs_nonmets: two_groups(&sens_mets, &sens_non),
        kruskal_sad_mets_vs_nonmets: two_groups(&sad_mets, &sad_non),
        kruskal_localized_by_sad_group: stats::kruskal(&slices(&loc_by_group)),
        dunn_localized_by_sad_group: named(stats::dunn(&slices(&loc_by_group))),
        kruskal_sensitivity_localized_by_sad_group: stats::kruskal(&slices(&sens_by_group)),
        dunn_sensitivity_localized_by_sad_group: named(stats::dunn(&slices(&sens_by_group))),
        pearson_sad_vs_sensitivity_all_nodes: stats::pearson(&sad_all, &sens_all),
        pearson_sad_vs_sensitivity_sad_gt_10mm: stats::pearson(&sad_big, &sens_big),
    }
}

/// Kruskal-Wallis of two groups, undefined unless both are non-empty.
fn two_groups(a: &[f64], b: &[f64]) -> Option<TestResult> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    stats::kruskal(&[a, b])
}

fn froc(scans: &[CaseResult]) -> Option<Vec<FrocPoint>> {
    let with: Vec<&Vec<crate::scan::FrocCounts>> =
        scans.iter().filter_map(|s| s.result.froc.as_ref()).collect();
    if with.is_empty() {
        return None;
    }
    let n_thr = with[0].len();
    Some(
        (0..n_thr)
            .map(|t| {
                let n_gt: usize = with.iter().map(|f| f[t].n_gt).sum();
                let n_loc: usize = with.iter().map(|f| f[t].n_localized).sum();
                let n_fp: usize = with.iter().map(|f| f[t].n_fp).sum();
                FrocPoint {
                    threshold: with[0][t].threshold,
                    recall: (n_gt > 0).then(|| n_loc as f64 / n_gt as f64),
                    fp_per_scan: n_fp as f64 / with.len() as f64,
                    n_scans: with.len(),
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_ids() {
        assert_eq!(case_id_of(Path::new("/a/case_001_0000.nii.gz")).as_deref(), Some("case_001"));
        assert_eq!(case_id_of(Path::new("case_001.nii")).as_deref(), Some("case_001"));
        assert_eq!(case_id_of(Path::new("x_0001.nii.gz")).as_deref(), Some("x_0001"));
        assert_eq!(case_id_of(Path::new("notes.txt")), None);
    }
}
