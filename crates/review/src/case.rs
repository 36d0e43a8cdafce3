//! One case folder under review: the CT, every node's voxels (rejected ones included), their
//! measurements, the review record, and saving it all back into the folder.
use crate::change::Change;
use crate::frame::{DisplayFrame, Index3, View};
use crate::record::{ModelOutputRef, NodeReview, ReviewRecord, Status, REVIEW_SCHEMA};
use crate::ReviewError;
use nodal_core::Volume;
use nodal_detect::output::{write_nodes_csv_with, write_nodes_json_with, Source};
use nodal_detect::Detection;
use nodal_nodes::measure::{measure_nodes, MeasureOptions, NodeMeasurement};
use serde::Serialize;
use sha2::Digest;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The corrected node label map (rejected nodes removed).
pub const NODES_FILE: &str = "nodes.nii.gz";
/// The rejected detections' voxels, by id.
pub const REJECTED_FILE: &str = "rejected.nii.gz";
/// The review record.
pub const REVIEW_FILE: &str = "review.json";
/// The untouched copy of the model output, made before the first save.
pub const MODEL_OUTPUT_DIR: &str = "model-output";
/// Held while a case is open, so two reviews never write one folder.
pub const LOCK_FILE: &str = ".nodal-review.lock";
/// The model output's files copied into [`MODEL_OUTPUT_DIR`].
const MODEL_FILES: &[&str] = &[NODES_FILE, "nodes.json", "nodes.csv"];

/// A case folder: a `segment`, `measure` or `demo` output with `nodes.nii.gz`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CaseFolder {
    /// The folder's name.
    pub case_id: String,
    pub folder: PathBuf,
}

impl CaseFolder {
    /// True when the case has been reviewed (it has `review.json`).
    pub fn is_reviewed(&self) -> bool {
        self.folder.join(REVIEW_FILE).is_file()
    }

    /// The number of nodes its nodes.json lists (`None` when it cannot be read).
    pub fn n_nodes(&self) -> Option<usize> {
        let v = read_json(&self.folder.join("nodes.json")).ok()?;
        v.get("nodes")?.as_array().map(Vec::len)
    }
}

/// The case folders of `dir`: `dir` itself when it holds `nodes.nii.gz`, else its subfolders that
/// do (a cohort), sorted by name.
pub fn find_case_folders(dir: &Path) -> Result<Vec<CaseFolder>, ReviewError> {
    let err = |reason: String| ReviewError::Folder { path: dir.to_path_buf(), reason };
    if !dir.is_dir() {
        return Err(err("not a folder (give a `nodal segment` output folder, or a folder of them)".into()));
    }
    let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if dir.join(NODES_FILE).is_file() {
        let canonical = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        return Ok(vec![CaseFolder { case_id: name(&canonical), folder: dir.to_path_buf() }]);
    }
    let entries = std::fs::read_dir(dir).map_err(|e| err(e.to_string()))?;
    let mut cases: Vec<CaseFolder> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir() && p.join(NODES_FILE).is_file() && !name(p).starts_with('.'))
        .map(|p| CaseFolder { case_id: name(&p), folder: p })
        .collect();
    if cases.is_empty() {
        return Err(err(format!(
            "no {NODES_FILE} in it or in its subfolders: give a `nodal segment` output folder, or a folder of them"
        )));
    }
    cases.sort_by(|a, b| a.case_id.cmp(&b.case_id));
    Ok(cases)
}

/// A case under review.
#[derive(Debug)]
pub struct Case {
    pub folder: CaseFolder,
    pub(crate) ct_path: PathBuf,
    pub(crate) ct: Volume<i16>,
    /// Every node's voxels by id on the CT grid, rejected ones included.
    pub(crate) labels: Volume<u32>,
    pub(crate) frame: DisplayFrame,
    pub(crate) record: ReviewRecord,
    pub(crate) measurements: BTreeMap<u32, NodeMeasurement>,
    /// The model's detections by id (probability, filter score), from the model output.
    model: BTreeMap<u32, Detection>,
    pub(crate) undo: Vec<Change>,
    pub(crate) redo: Vec<Change>,
    /// The folder's lock, released when the case is dropped.
    _lock: std::fs::File,
}

/// Locks a case folder for this process ([`LOCK_FILE`]).
fn lock_case(dir: &Path) -> Result<std::fs::File, ReviewError> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| ReviewError::write(&path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(ReviewError::Folder {
            path: dir.to_path_buf(),
            reason: "another nodal review (or export) has this case open".into(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(ReviewError::write(&path, e)),
    }
}

/// One node as the page lists it.
#[derive(Clone, Debug, Serialize)]
pub struct NodeView {
    #[serde(flatten)]
    pub review: NodeReview,
    pub short_axis_mm: f64,
    pub long_axis_mm: f64,
    pub volume_mm3: f64,
    pub voxel_count: usize,
    pub mean_hu: Option<f64>,
    pub side: nodal_core::Side,
    /// The model's component-filter score, for nodes the model drew and nobody edited.
    pub filter_score: Option<f64>,
    /// Display index of the node's voxel nearest its centroid.
    pub centre: Index3,
    pub bbox_min: Index3,
    pub bbox_max: Index3,
}

/// The state the page shows after each edit.
#[derive(Clone, Debug, Serialize)]
pub struct StateView {
    pub case_id: String,
    pub generation: u64,
    pub can_undo: bool,
    pub can_redo: bool,
    pub nodes: Vec<NodeView>,
}

/// What the page needs to lay out a case.
#[derive(Clone, Debug, Serialize)]
pub struct VolumeView {
    pub case_id: String,
    pub dims: [usize; 3],
    pub spacing_mm: [f64; 3],
    pub orientation: &'static str,
    pub ct: String,
}

/// A node's review as nodes.json and nodes.csv carry it.
fn review_fields(r: &NodeReview) -> Vec<(&'static str, serde_json::Value)> {
    use serde_json::{json, Value};
    let metastatic = match r.class {
        Some(crate::record::NodeClass::Metastatic) => json!(true),
        Some(crate::record::NodeClass::Benign) => json!(false),
        _ => Value::Null,
    };
    let as_value = |v: serde_json::Result<Value>| v.unwrap_or(Value::Null);
    vec![
        ("status", as_value(serde_json::to_value(r.status))),
        ("class", as_value(serde_json::to_value(r.class))),
        ("level", json!(r.level)),
        ("note", json!(r.note)),
        ("origin", as_value(serde_json::to_value(r.origin))),
        ("metastatic", metastatic),
    ]
}

fn read_json(path: &Path) -> Result<serde_json::Value, ReviewError> {
    let bytes = std::fs::read(path)
        .map_err(|e| ReviewError::File { path: path.to_path_buf(), reason: e.to_string() })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ReviewError::File { path: path.to_path_buf(), reason: format!("not valid JSON: {e}") })
}

/// The CT of a case folder: `segment.json`'s input, else the CT `nodes.json` was measured on,
/// else `ct.nii.gz` in the folder (`nodal demo`). Returns the path and the DICOM series chosen
/// when the run recorded one.
fn find_ct(folder: &Path) -> Result<(PathBuf, Option<String>), ReviewError> {
    let mut named: Vec<(PathBuf, Option<String>, PathBuf)> = Vec::new();
    let segment = folder.join("segment.json");
    if segment.is_file() {
        let v = read_json(&segment)?;
        if let Some(input) = v.pointer("/input").and_then(|x| x.as_str()) {
            let series = v.pointer("/series_choice/series_instance_uid").and_then(|x| x.as_str());
            named.push((input.into(), series.map(str::to_string), segment.clone()));
        }
    }
    for nodes in [folder.join(MODEL_OUTPUT_DIR).join("nodes.json"), folder.join("nodes.json")] {
        if nodes.is_file() {
            if let Some(ct) = read_json(&nodes)?.pointer("/source/ct").and_then(|x| x.as_str()) {
                named.push((ct.into(), None, nodes.clone()));
            }
        }
    }
    for (path, series, _) in &named {
        // As recorded (relative to where the command ran), else relative to the case folder.
        for p in [path.clone(), folder.join(path)] {
            if p.exists() {
                return Ok((p, series.clone()));
            }
        }
    }
    let demo = folder.join("ct.nii.gz");
    if demo.is_file() {
        return Ok((demo, None));
    }
    let reason = match named.first() {
        Some((p, _, from)) => format!(
            "the CT {} named by {} is not there; give it with --ct",
            p.display(),
            from.file_name().unwrap_or_default().to_string_lossy()
        ),
        None => "no CT: no segment.json naming it and no ct.nii.gz; give it with --ct".into(),
    };
    Err(ReviewError::Folder { path: folder.to_path_buf(), reason })
}

fn sha256_file(path: &Path) -> Result<String, ReviewError> {
    let bytes = std::fs::read(path)
        .map_err(|e| ReviewError::File { path: path.to_path_buf(), reason: e.to_string() })?;
    Ok(format!("{:x}", sha2::Sha256::digest(&bytes)))
}

/// The model's detections in a nodes.json, by id (none when the file has no detections).
fn read_detections(path: &Path) -> Result<BTreeMap<u32, Detection>, ReviewError> {
    if !path.is_file() {
        return Ok(BTreeMap::new());
    }
    let v = read_json(path)?;
    let nodes = v.get("nodes").cloned().unwrap_or(serde_json::Value::Array(vec![]));
    let list: Vec<Detection> = serde_json::from_value(nodes).map_err(|e| ReviewError::File {
        path: path.to_path_buf(),
        reason: format!("its nodes are not nodal.nodes/1 records: {e}"),
    })?;
    Ok(list.into_iter().map(|d| (d.measurement.node_id, d)).collect())
}

fn read_label_map(path: &Path) -> Result<Volume<u32>, ReviewError> {
    Ok(nodal_io::read_labels(path)?)
}

/// Writes a label map as `nodal segment` does: uint16 when the largest id fits, else uint32.
/// Writes the ids of `labels` that `keep` keeps as a label map, as `nodal segment` writes one:
/// uint16 when the largest kept id fits, else uint32. One pass over the voxels (a full scan's map
/// is written after every edit).
pub(crate) fn write_label_map(
    labels: &Volume<u32>,
    keep: impl Fn(u32) -> bool + Sync + Send,
    max_id: u32,
    path: &Path,
) -> Result<(), ReviewError> {
    if max_id <= u16::MAX as u32 {
        nodal_io::write_nifti(&labels.map(|v| if v != 0 && keep(v) { v as u16 } else { 0 }), path)?;
    } else {
        nodal_io::write_nifti(&labels.map(|v| if v != 0 && keep(v) { v } else { 0 }), path)?;
    }
    Ok(())
}

impl Case {
    /// Opens a case folder: the CT (`ct`, else the one its records name), the model's nodes, and
    /// the review so far when there is one.
    pub fn open(folder: &CaseFolder, ct: Option<&Path>) -> Result<Case, ReviewError> {
        let dir = &folder.folder;
        let lock = lock_case(dir)?;
        let (ct_path, series) = match ct {
            Some(p) => (p.to_path_buf(), None),
            None => find_ct(dir)?,
        };
        let scan = nodal_io::read_ct_choosing(&ct_path, series.as_deref())?;
        let ct = scan.hu;
        let review_path = dir.join(REVIEW_FILE);
        let mut labels = read_label_map(&dir.join(NODES_FILE))?;
        let grid = |what: &Path, e: nodal_core::CoreError| ReviewError::File {
            path: what.to_path_buf(),
            reason: format!("not on the grid of the CT {}: {e}", ct_path.display()),
        };
        labels.check_same_grid(&ct).map_err(|e| grid(&dir.join(NODES_FILE), e))?;
        let model_dir = dir.join(MODEL_OUTPUT_DIR);
        let model_nodes = if model_dir.join("nodes.json").is_file() {
            model_dir.join("nodes.json")
        } else {
            dir.join("nodes.json")
        };
        let model = read_detections(&model_nodes)?;

        let record = if review_path.is_file() {
            let rejected_path = dir.join(REJECTED_FILE);
            if rejected_path.is_file() {
                let rejected = read_label_map(&rejected_path)?;
                rejected.check_same_grid(&ct).map_err(|e| grid(&rejected_path, e))?;
                for (l, &r) in labels.as_slice_mut().iter_mut().zip(rejected.as_slice()) {
                    if r != 0 {
                        if *l != 0 && *l != r {
                            return Err(ReviewError::File {
                                path: rejected_path,
                                reason: format!("a voxel is both node {} and rejected node {r}", *l),
                            });
                        }
                        *l = r;
                    }
                }
            }
            let text = std::fs::read_to_string(&review_path)
                .map_err(|e| ReviewError::File { path: review_path.clone(), reason: e.to_string() })?;
            let record: ReviewRecord = serde_json::from_str(&text).map_err(|e| ReviewError::File {
                path: review_path.clone(),
                reason: format!("not a {REVIEW_SCHEMA} record: {e}"),
            })?;
            if record.schema != REVIEW_SCHEMA {
                return Err(ReviewError::File {
                    path: review_path,
                    reason: format!("schema {:?}, expected {REVIEW_SCHEMA}", record.schema),
                });
            }
            record
        } else {
            let segment = read_json(&dir.join("segment.json")).ok();
            let field = |k: &str| {
                segment.as_ref().and_then(|v| v.pointer(k)).and_then(|x| x.as_str()).map(str::to_string)
            };
            ReviewRecord {
                schema: REVIEW_SCHEMA.into(),
                case_id: folder.case_id.clone(),
                ct: ct_path.display().to_string(),
                generation: 0,
                next_node_id: 1,
                model_output: ModelOutputRef {
                    folder: MODEL_OUTPUT_DIR.into(),
                    nodes_sha256: sha256_file(&dir.join(NODES_FILE))?,
                    model_id: field("/model_id"),
                    model_version: field("/model_version"),
                },
                nodes: BTreeMap::new(),
                history: vec![],
                nodal_version: env!("CARGO_PKG_VERSION").into(),
            }
        };
        let frame = DisplayFrame::new(ct.dims(), ct.geometry());
        let mut case = Case {
            folder: folder.clone(),
            ct_path,
            ct,
            labels,
            frame,
            record,
            measurements: BTreeMap::new(),
            model,
            undo: vec![],
            redo: vec![],
            _lock: lock,
        };
        case.measure_all()?;
        case.reconcile();
        Ok(case)
    }

    /// Every id in the label map has a review and every review an id: a save interrupted between
    /// files, or a label map edited elsewhere, is taken as the label map says (logged).
    fn reconcile(&mut self) {
        let ids: Vec<u32> = self.measurements.keys().copied().collect();
        for &id in &ids {
            if !self.record.nodes.contains_key(&id) {
                if self.record.generation > 0 {
                    tracing::warn!(
                        "{}: node {id} has no review record; listed as unreviewed",
                        self.folder.case_id
                    );
                }
                self.record.nodes.insert(id, NodeReview::from_model(id));
            }
        }
        let gone: Vec<u32> =
            self.record.nodes.keys().filter(|id| !self.measurements.contains_key(id)).copied().collect();
        for id in gone {
            tracing::warn!("{}: node {id} of review.json has no voxels; dropped", self.folder.case_id);
            self.record.nodes.remove(&id);
        }
        let max = ids.iter().copied().max().unwrap_or(0);
        self.record.next_node_id = self.record.next_node_id.max(max + 1);
    }

    /// Measures every node (the same code as `nodal measure`).
    pub(crate) fn measure_all(&mut self) -> Result<(), ReviewError> {
        let list = measure_nodes(&self.labels, Some(&self.ct), &MeasureOptions::default())?;
        self.measurements = list.into_iter().map(|m| (m.node_id, m)).collect();
        Ok(())
    }

    /// The display frame.
    pub fn frame(&self) -> &DisplayFrame {
        &self.frame
    }

    /// The review record.
    pub fn record(&self) -> &ReviewRecord {
        &self.record
    }

    /// The node label map, rejected nodes included.
    pub fn labels(&self) -> &Volume<u32> {
        &self.labels
    }

    /// The CT.
    pub fn ct(&self) -> &Volume<i16> {
        &self.ct
    }

    /// Where the CT was read from.
    pub fn ct_path(&self) -> &Path {
        &self.ct_path
    }

    /// The node's review.
    pub fn node(&self, id: u32) -> Option<&NodeReview> {
        self.record.nodes.get(&id)
    }

    pub(crate) fn is_rejected(&self, id: u32) -> bool {
        self.record.nodes.get(&id).is_some_and(|n| n.status == Status::Rejected)
    }

    /// Layout of the case for the page.
    pub fn volume_view(&self) -> VolumeView {
        VolumeView {
            case_id: self.folder.case_id.clone(),
            dims: self.frame.dims(),
            spacing_mm: self.frame.spacing_mm(),
            orientation: "LPS",
            ct: self.ct_path.display().to_string(),
        }
    }

    /// Slice `index` of `view`: `u32 width, u32 height`, the HU (`i16`) and the labels (`u32`,
    /// bit 31 set for rejected nodes), little-endian, rows top to bottom.
    pub fn slice(&self, view: View, index: usize) -> Result<Vec<u8>, ReviewError> {
        let flat = self.frame.slice_indices(view, index)?;
        let (w, h) = self.frame.slice_size(view);
        let mut out = Vec::with_capacity(8 + flat.len() * 6);
        out.extend_from_slice(&(w as u32).to_le_bytes());
        out.extend_from_slice(&(h as u32).to_le_bytes());
        let hu = self.ct.as_slice();
        for &f in &flat {
            out.extend_from_slice(&hu[f].to_le_bytes());
        }
        let labels = self.labels.as_slice();
        for &f in &flat {
            let id = labels[f];
            let v = if id != 0 && self.is_rejected(id) { id | 0x8000_0000 } else { id };
            out.extend_from_slice(&v.to_le_bytes());
        }
        Ok(out)
    }

    /// Flat stored indices of node `id`'s voxels.
    pub(crate) fn node_voxels(&self, id: u32) -> Vec<usize> {
        let Some(m) = self.measurements.get(&id) else { return vec![] };
        let [ni, nj, _] = self.labels.dims();
        let (lo, hi) = (m.bbox_min_index, m.bbox_max_index);
        let data = self.labels.as_slice();
        let mut out = Vec::with_capacity(m.voxel_count);
        for k in lo[2]..=hi[2] {
            for j in lo[1]..=hi[1] {
                let row = (k * nj + j) * ni;
                out.extend((row + lo[0]..=row + hi[0]).filter(|&f| data[f] == id));
            }
        }
        out
    }

    /// The page's view of the state.
    pub fn state(&self) -> StateView {
        let nodes = self
            .record
            .nodes
            .values()
            .filter_map(|r| {
                let m = self.measurements.get(&r.node_id)?;
                let voxels = self.node_voxels(r.node_id);
                let g = self.labels.geometry();
                let (ni, nj) = (self.labels.dims()[0], self.labels.dims()[1]);
                let world = |f: usize| {
                    g.index_to_world([(f % ni) as f64, ((f / ni) % nj) as f64, (f / (ni * nj)) as f64])
                };
                let dist2 = |f: usize| {
                    let w = world(f);
                    (0..3).map(|a| (w[a] - m.centroid_mm[a]).powi(2)).sum::<f64>()
                };
                let nearest = voxels.iter().copied().min_by(|&a, &b| dist2(a).total_cmp(&dist2(b)))?;
                let (mut lo, mut hi) = ([usize::MAX; 3], [0usize; 3]);
                for &f in &voxels {
                    let d = self.frame.display_of_flat(f);
                    for c in 0..3 {
                        lo[c] = lo[c].min(d[c]);
                        hi[c] = hi[c].max(d[c]);
                    }
                }
                let model_node = r.origin == crate::record::Origin::Model && !r.edited;
                Some(NodeView {
                    review: r.clone(),
                    short_axis_mm: m.axes.short_axis_mm,
                    long_axis_mm: m.axes.long_axis_mm,
                    volume_mm3: m.volume_mm3,
                    voxel_count: m.voxel_count,
                    mean_hu: m.hu.as_ref().map(|h| h.mean_hu),
                    side: m.side,
                    filter_score: self
                        .model
                        .get(&r.node_id)
                        .filter(|_| model_node)
                        .and_then(|d| d.filter.as_ref())
                        .map(|f| f.score),
                    centre: self.frame.display_of_flat(nearest),
                    bbox_min: lo,
                    bbox_max: hi,
                })
            })
            .collect();
        StateView {
            case_id: self.folder.case_id.clone(),
            generation: self.record.generation,
            can_undo: !self.undo.is_empty(),
            can_redo: !self.redo.is_empty(),
            nodes,
        }
    }

    /// The detections of the kept (not rejected) nodes, as nodes.json lists them: the model's
    /// probability and filter score stay with the nodes nobody edited.
    pub fn kept_detections(&self) -> Vec<Detection> {
        self.record
            .nodes
            .values()
            .filter(|r| r.status != Status::Rejected)
            .filter_map(|r| {
                let m = self.measurements.get(&r.node_id)?.clone();
                let model = self
                    .model
                    .get(&r.node_id)
                    .filter(|_| r.origin == crate::record::Origin::Model && !r.edited);
                Some(Detection {
                    measurement: m,
                    probability: model.and_then(|d| d.probability),
                    filter: model.and_then(|d| d.filter),
                })
            })
            .collect()
    }

    /// `nodes.json` and `nodes.csv` of the kept nodes, each node with its review (`status`,
    /// `class`, `level`, `note`, `origin`, and `metastatic` when classed metastatic or benign, which
    /// `nodal evaluate --meta` reads), and `nodes.json` with the generation it was saved at.
    pub(crate) fn write_nodes_files(
        &self,
        json_path: &Path,
        csv_path: &Path,
        detections: &[Detection],
        source: &Source,
    ) -> Result<(), ReviewError> {
        let review_of = |d: &Detection| self.record.nodes.get(&d.measurement.node_id).cloned();
        /// A node of nodes.json: the detection, its review beside it.
        #[derive(Serialize)]
        struct Reviewed<'a> {
            #[serde(flatten)]
            detection: &'a Detection,
            #[serde(flatten)]
            review: BTreeMap<&'static str, serde_json::Value>,
        }
        let nodes: Vec<Reviewed> = detections
            .iter()
            .map(|d| Reviewed {
                detection: d,
                review: review_of(d)
                    .map(|r| review_fields(&r))
                    .unwrap_or_default()
                    .into_iter()
                    // The metadata readers take `metastatic` as a boolean or not at all.
                    .filter(|(k, v)| !(*k == "metastatic" && v.is_null()))
                    .collect(),
            })
            .collect();
        let extra = BTreeMap::from([(
            "review",
            serde_json::json!({
                "generation": self.record.generation,
                "record": REVIEW_FILE,
                "reviewers": self.record.reviewers(),
            }),
        )]);
        write_nodes_json_with(json_path, &nodes, source, None, &extra)?;
        let header = ["status", "class", "level", "note", "origin", "metastatic"];
        write_nodes_csv_with(csv_path, detections, &header, |i| {
            let fields: BTreeMap<&str, serde_json::Value> = review_of(&detections[i])
                .map(|r| review_fields(&r).into_iter().collect())
                .unwrap_or_default();
            header
                .iter()
                .map(|h| match fields.get(h) {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(serde_json::Value::Null) | None => String::new(),
                    Some(v) => v.to_string(),
                })
                .collect()
        })?;
        Ok(())
    }

    /// Whether each id up to the largest is rejected (indexed by id).
    fn rejected_ids(&self) -> Vec<bool> {
        let mut out = vec![false; self.record.next_node_id as usize + 1];
        for r in self.record.nodes.values().filter(|r| r.status == Status::Rejected) {
            if let Some(x) = out.get_mut(r.node_id as usize) {
                *x = true;
            }
        }
        out
    }

    /// Writes the kept nodes' label map (`rejected`: the rejected ones' instead) to `path`.
    pub(crate) fn write_nodes_map(&self, rejected: bool, path: &Path) -> Result<(), ReviewError> {
        let rej = self.rejected_ids();
        let is_rejected = |v: u32| rej.get(v as usize).copied().unwrap_or(false);
        let max_id =
            self.record.nodes.keys().copied().filter(|&id| is_rejected(id) == rejected).max().unwrap_or(0);
        write_label_map(&self.labels, |v| is_rejected(v) == rejected, max_id, path)
    }

    /// The label map split into kept nodes and rejected ones.
    pub fn split_rejected(&self) -> (Volume<u32>, Volume<u32>) {
        let rej = self.rejected_ids();
        let is_rejected = |v: u32| rej.get(v as usize).copied().unwrap_or(false);
        (
            self.labels.map(|v| if is_rejected(v) { 0 } else { v }),
            self.labels.map(|v| if is_rejected(v) { v } else { 0 }),
        )
    }

    /// Copies the model output aside once, before the first save overwrites it.
    fn keep_model_output(&self) -> Result<(), ReviewError> {
        let dir = &self.folder.folder;
        let target = dir.join(MODEL_OUTPUT_DIR);
        if target.is_dir() {
            return Ok(());
        }
        let partial = dir.join(format!(".{MODEL_OUTPUT_DIR}.partial-{}", std::process::id()));
        let fail = |p: &Path, e: std::io::Error| ReviewError::write(p, e);
        let _ = std::fs::remove_dir_all(&partial);
        std::fs::create_dir(&partial).map_err(|e| fail(&partial, e))?;
        for f in MODEL_FILES {
            let from = dir.join(f);
            if from.is_file() {
                std::fs::copy(&from, partial.join(f)).map_err(|e| fail(&partial.join(f), e))?;
            }
        }
        // The copy appears whole or not at all.
        std::fs::rename(&partial, &target).map_err(|e| fail(&target, e))
    }

    /// Writes the reviewed state into the case folder: the model output copied aside (once), then
    /// `nodes.nii.gz`, `rejected.nii.gz`, `nodes.json`, `nodes.csv` and last `review.json`, each
    /// atomically.
    pub fn save(&self) -> Result<(), ReviewError> {
        self.save_maps(true, true)
    }

    /// [`Case::save`], rewriting the label maps only where an edit changed them (a full scan's map
    /// takes about half a second to compress; a note or a class changes neither).
    pub(crate) fn save_maps(&self, kept_changed: bool, rejected_changed: bool) -> Result<(), ReviewError> {
        let dir = &self.folder.folder;
        let first = !dir.join(MODEL_OUTPUT_DIR).is_dir() || !dir.join(REVIEW_FILE).is_file();
        self.keep_model_output()?;
        if first || kept_changed || rejected_changed {
            if first || kept_changed {
                self.write_nodes_map(false, &dir.join(NODES_FILE))?;
            }
            let rejected_path = dir.join(REJECTED_FILE);
            if first || rejected_changed {
                if self.record.nodes.values().any(|r| r.status == Status::Rejected) {
                    self.write_nodes_map(true, &rejected_path)?;
                } else if rejected_path.exists() {
                    std::fs::remove_file(&rejected_path)
                        .map_err(|e| ReviewError::write(&rejected_path, e))?;
                }
            }
        }
        let detections = self.kept_detections();
        let source = Source {
            labels: Some(NODES_FILE.into()),
            ct: Some(self.ct_path.display().to_string()),
            input_kind: "reviewed".into(),
        };
        self.write_nodes_files(&dir.join("nodes.json"), &dir.join("nodes.csv"), &detections, &source)?;
        let path = dir.join(REVIEW_FILE);
        let mut bytes =
            serde_json::to_vec_pretty(&self.record).map_err(|e| ReviewError::write(&path, e.into()))?;
        bytes.push(b'\n');
        nodal_core::fs::write_atomic(&path, &bytes).map_err(|e| ReviewError::write(&path, e))
    }
}
