//! A model folder: `config.json` ([`ModelConfig`]: architecture, preprocessing, inference
//! defaults) beside `model.safetensors` (the weights). The network is always rebuilt from the
//! config and the weights are then applied, so a folder whose weights do not fit its config is
//! rejected with [`NetError::WeightsMismatch`] instead of running a different network.
//!
//! # Where the default model is found
//!
//! [`default_model`] looks, in order, at `$NODAL_MODEL` (a model folder), `models/default` next to
//! the executable and up to three folders above it (so `target/release/nodal` finds the repository's
//! `models/default`), `models/default` in the current directory, and finally the `models/default`
//! of the source tree the binary was built from. `cargo run` from the repository root therefore
//! always finds the shipped model.
use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use serde::{Deserialize, Serialize};

use crate::model::{ArchConfig, FovealConfig, Net};
use crate::preprocess::Preprocessing;
use crate::NetError;
use nodal_nodes::postprocess::PostProcessConfig;

/// Version of the config format.
pub const CONFIG_FORMAT: u32 = 1;

/// Everything needed to rebuild and run a trained network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Config format version ([`CONFIG_FORMAT`]).
    pub format: u32,
    /// Model name, e.g. "nodal-foveal".
    pub model_id: String,
    /// Model version (the training run and step it came from).
    pub version: String,
    /// The network.
    pub arch: ArchConfig,
    /// How a CT is turned into network input.
    pub preprocessing: Preprocessing,
    /// Output edge length (voxels) of training patches.
    pub train_patch_out: usize,
    /// Output edge length (voxels) of inference tiles (a multiple of the alignment).
    pub infer_tile_out: usize,
    /// Probability threshold for the node mask.
    pub threshold: f32,
    /// Components whose highest probability is below this are dropped (component-level
    /// confidence, chosen on tuning cases; see `nodal_nodes::postprocess`). `None` keeps all.
    #[serde(default)]
    pub min_peak_probability: Option<f32>,
    /// Components found at `threshold` (and kept) keep only their voxels with `p >= mask_threshold`
    /// (`nodal_nodes::postprocess`, step 3): the low threshold decides which nodes appear, this one
    /// how far each extends. `None` keeps them whole.
    #[serde(default)]
    pub mask_threshold: Option<f32>,
    /// Components with at least this axial short axis have each axial cross-section filled to its
    /// convex hull (`nodal_nodes::postprocess`, step 4), mm; `None` leaves them as they are.
    #[serde(default)]
    pub convex_fill_min_short_axis_mm: Option<f64>,
    /// A second network pass at a coarser spacing whose large components join the probability
    /// map ([`LargeNodePass`]); `None` runs the network once.
    #[serde(default)]
    pub large_node_pass: Option<LargeNodePass>,
}

/// A second pass of the same network over the scan resampled to `spacing_factor` times the model
/// spacing, to complete bulky nodes.
///
/// Why: the finest level sees about 85 mm around each output voxel, and a 35-50 mm mass —
/// homogeneous like muscle, or with a necrotic core — fills much of that view; its interior then
/// often stays below threshold. At twice the spacing the same mass looks like the 15-25 mm nodes
/// the network segments well, with twice the context. Coarse voxels blur small nodes and thin
/// structures, and at that scale whole organs of a chest CT look like nodes, so a component of the
/// coarse pass (at the model threshold, 26-connected) is merged only when it is node-sized (axial
/// short axis on the CT grid within [`min_short_axis_mm`, `max_short_axis_mm`]) and the first pass
/// saw it too (at least `min_fine_fraction` of its voxels reach the threshold there): the second
/// pass completes nodes, it does not find new ones. Merging is the voxel-wise maximum of the two
/// probability maps on those components; the merged map then goes through the usual
/// post-processing (peak and component filter, drawing, size filter) like any other.
///
/// [`min_short_axis_mm`]: LargeNodePass::min_short_axis_mm
/// [`max_short_axis_mm`]: LargeNodePass::max_short_axis_mm
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LargeNodePass {
    /// Spacing of the second pass relative to the model spacing (e.g. 2: 1.25 -> 2.5 mm).
    pub spacing_factor: f64,
    /// Smallest axial short axis of a merged coarse component, mm.
    pub min_short_axis_mm: f64,
    /// Largest axial short axis of a merged coarse component, mm.
    pub max_short_axis_mm: f64,
    /// Share of a coarse component's voxels that must reach the threshold in the first pass.
    pub min_fine_fraction: f64,
}

impl ModelConfig {
    /// The default foveal-net configuration (see `models/default/MODEL_CARD.md` for the reasons).
    pub fn default_foveal() -> Self {
        ModelConfig {
            format: CONFIG_FORMAT,
            model_id: "nodal-foveal".into(),
            version: "untrained".into(),
            arch: ArchConfig::Foveal(FovealConfig {
                channels: vec![8, 16, 24],
                convs: vec![1, 2, 3],
                merge_convs: 1,
            }),
            preprocessing: Preprocessing::default(),
            train_patch_out: 32,
            infer_tile_out: 64,
            threshold: 0.5,
            min_peak_probability: None,
            mask_threshold: None,
            convex_fill_min_short_axis_mm: None,
            large_node_pass: None,
        }
    }

    /// Checks consistency.
    pub fn validate(&self) -> Result<(), NetError> {
        if self.format != CONFIG_FORMAT {
            return Err(NetError::InvalidConfig(format!(
                "config format {} (this build reads {CONFIG_FORMAT})",
                self.format
            )));
        }
        self.arch.validate()?;
        self.preprocessing.validate()?;
        let a = self.arch.alignment();
        for (name, v) in [("train_patch_out", self.train_patch_out), ("infer_tile_out", self.infer_tile_out)]
        {
            if v == 0 || v % (2 * a).max(2) != 0 || v > 256 {
                return Err(NetError::InvalidConfig(format!(
                    "{name} = {v} must be a positive multiple of {} and at most 256",
                    (2 * a).max(2)
                )));
            }
        }
        if !(self.threshold > 0.0 && self.threshold < 1.0) {
            return Err(NetError::InvalidConfig(format!("threshold {} outside (0, 1)", self.threshold)));
        }
        if let Some(p) = self.min_peak_probability.filter(|p| !(*p >= self.threshold && *p <= 1.0)) {
            return Err(NetError::InvalidConfig(format!(
                "min_peak_probability {p} outside [threshold = {}, 1]",
                self.threshold
            )));
        }
        if let Some(t) = self.mask_threshold.filter(|t| !(*t >= self.threshold && *t <= 1.0)) {
            return Err(NetError::InvalidConfig(format!(
                "mask_threshold {t} outside [threshold = {}, 1]",
                self.threshold
            )));
        }
        if let Some(m) = self.convex_fill_min_short_axis_mm.filter(|m| !(m.is_finite() && *m >= 0.0)) {
            return Err(NetError::InvalidConfig(format!(
                "convex_fill_min_short_axis_mm {m} must be >= 0 mm"
            )));
        }
        if let Some(pass) = &self.large_node_pass {
            if !(pass.spacing_factor.is_finite() && (1.0..=8.0).contains(&pass.spacing_factor)) {
                return Err(NetError::InvalidConfig(format!(
                    "large_node_pass.spacing_factor {} outside [1, 8]",
                    pass.spacing_factor
                )));
            }
            let (lo, hi) = (pass.min_short_axis_mm, pass.max_short_axis_mm);
            if !(lo.is_finite() && lo >= 0.0 && hi >= lo) {
                return Err(NetError::InvalidConfig(format!(
                    "large_node_pass: short axis range [{lo}, {hi}] mm must satisfy 0 <= min <= max"
                )));
            }
            if !(0.0..=1.0).contains(&pass.min_fine_fraction) {
                return Err(NetError::InvalidConfig(format!(
                    "large_node_pass.min_fine_fraction {} outside [0, 1]",
                    pass.min_fine_fraction
                )));
            }
        }
        Ok(())
    }

    /// This config at another operating point: voxel `threshold` and peak cut-off `min_peak`. A
    /// mask threshold applies only where it lies above the threshold.
    pub fn at_operating_point(&self, threshold: f32, min_peak: Option<f32>) -> Self {
        ModelConfig {
            threshold,
            min_peak_probability: min_peak,
            mask_threshold: self.mask_threshold.filter(|&m| m > threshold),
            ..self.clone()
        }
    }

    /// The post-processing at this model's operating point, as `nodal segment` applies it (and
    /// validation scores it): the protocol's defaults with the model's thresholds, peak cut-off and
    /// convex fill.
    pub fn postprocess_config(&self) -> PostProcessConfig {
        PostProcessConfig {
            threshold: self.threshold,
            mask_threshold: self.mask_threshold,
            min_peak_probability: self.min_peak_probability,
            convex_fill_min_short_axis_mm: self.convex_fill_min_short_axis_mm,
            ..Default::default()
        }
    }

    /// Reads and validates `config.json`.
    pub fn load(path: &Path) -> Result<Self, NetError> {
        let text = std::fs::read_to_string(path).map_err(|e| NetError::io(path, e))?;
        let cfg: ModelConfig = serde_json::from_str(&text)
            .map_err(|e| NetError::ModelFolder { path: path.into(), reason: format!("config.json: {e}") })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Writes `config.json` atomically.
    pub fn save(&self, path: &Path) -> Result<(), NetError> {
        let text = serde_json::to_string_pretty(self).expect("config serialises");
        write_atomic(path, text.as_bytes())
    }
}

/// A network with its configuration and where it came from.
#[derive(Debug)]
pub struct LoadedModel {
    /// The configuration.
    pub config: ModelConfig,
    /// The network (on the plain, non-autodiff device).
    pub net: Net,
    /// The folder it was loaded from.
    pub folder: PathBuf,
}

/// Weights file name in a model folder.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// Config file name in a model folder.
pub const CONFIG_FILE: &str = "config.json";
/// Loads a model folder's network (`config.json` + `model.safetensors`); other files in the
/// folder (a component filter) belong to `nodal-detect`.
pub fn load_model(folder: &Path) -> Result<LoadedModel, NetError> {
    let cfg_path = folder.join(CONFIG_FILE);
    let w_path = folder.join(WEIGHTS_FILE);
    for p in [&cfg_path, &w_path] {
        if !p.is_file() {
            return Err(NetError::ModelFolder {
                path: folder.into(),
                reason: format!("missing {}", p.file_name().unwrap_or_default().to_string_lossy()),
            });
        }
    }
    let config = ModelConfig::load(&cfg_path)?;
    let device = crate::device();
    let mut net = config.arch.init(&device)?;
    load_weights(&mut net, &w_path)?;
    Ok(LoadedModel { config, net, folder: folder.into() })
}

/// Applies the weights in `path` to `net`; any missing, extra or mis-shaped tensor is an error.
pub fn load_weights(net: &mut Net, path: &Path) -> Result<(), NetError> {
    let mut store = SafetensorsStore::from_file(path);
    let res = net
        .load_from(&mut store)
        .map_err(|e| NetError::WeightsMismatch { path: path.into(), reason: e.to_string() })?;
    if !res.errors.is_empty() || !res.missing.is_empty() || !res.unused.is_empty() {
        return Err(NetError::WeightsMismatch {
            path: path.into(),
            reason: format!(
                "{} errors, missing {:?}, unused {:?}",
                res.errors.len(),
                res.missing.iter().map(|m| &m.0).collect::<Vec<_>>(),
                res.unused
            ),
        });
    }
    Ok(())
}

/// Writes a model folder: `config.json` and `model.safetensors` (each atomically).
pub fn save_model(net: &Net, config: &ModelConfig, folder: &Path) -> Result<(), NetError> {
    std::fs::create_dir_all(folder).map_err(|e| NetError::io(folder, e))?;
    let w_path = folder.join(WEIGHTS_FILE);
    let tmp = folder.join(format!(".{WEIGHTS_FILE}.tmp"));
    let mut store =
        SafetensorsStore::from_file(&tmp).overwrite(true).metadata("model_id", config.model_id.clone());
    // Weights are saved from the plain (non-autodiff) copy.
    net.valid()
        .save_into(&mut store)
        .map_err(|e| NetError::Run { path: w_path.clone(), reason: format!("saving weights: {e}") })?;
    std::fs::rename(&tmp, &w_path).map_err(|e| NetError::io(&w_path, e))?;
    config.save(&folder.join(CONFIG_FILE))
}

/// Candidate folders for the default model, in search order (see the module docs).
pub fn default_model_candidates() -> Vec<PathBuf> {
    let mut c = Vec::new();
    if let Some(p) = std::env::var_os("NODAL_MODEL") {
        c.push(PathBuf::from(p));
    }
    if let Ok(exe) = std::env::current_exe() {
        let mut dir = exe.parent().map(Path::to_path_buf);
        for _ in 0..4 {
            let Some(d) = dir else { break };
            c.push(d.join("models/default"));
            dir = d.parent().map(Path::to_path_buf);
        }
    }
    c.push(PathBuf::from("models/default"));
    c.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/default"));
    c
}

/// Loads the default model (see the module docs for where it is looked for).
pub fn default_model() -> Result<LoadedModel, NetError> {
    let candidates = default_model_candidates();
    for c in &candidates {
        if c.join(CONFIG_FILE).is_file() {
            return load_model(c);
        }
    }
    Err(NetError::ModelFolder {
        path: PathBuf::from("models/default"),
        reason: format!("no default model found; looked in {candidates:?} (set NODAL_MODEL or pass --model)"),
    })
}

/// Writes `bytes` to `path` atomically (the one writer of `nodal_core::fs`).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), NetError> {
    nodal_core::fs::write_atomic(path, bytes).map_err(|e| NetError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_round_trip_gives_same_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = ModelConfig::default_foveal();
        cfg.arch =
            ArchConfig::Foveal(FovealConfig { channels: vec![3, 4], convs: vec![1, 1], merge_convs: 1 });
        cfg.train_patch_out = 8;
        cfg.infer_tile_out = 8;
        let device = crate::device();
        let net = cfg.arch.init(&device).unwrap();
        save_model(&net, &cfg, dir.path()).unwrap();
        let loaded = load_model(dir.path()).unwrap();
        assert_eq!(loaded.config, cfg);
        let sizes = cfg.arch.input_sizes(8);
        let inputs = |_: ()| {
            sizes
                .iter()
                .map(|&s| {
                    let data: Vec<f32> =
                        (0..s * s * s).map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0).collect();
                    Tensor::<5>::from_data(TensorData::new(data, [1, 1, s, s, s]), &device)
                })
                .collect::<Vec<_>>()
        };
        let a = net.forward(inputs(())).into_data().try_to_vec::<f32>().unwrap();
        let b = loaded.net.forward(inputs(())).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn weights_of_another_architecture_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = ModelConfig::default_foveal();
        let net = cfg.arch.init(&crate::device()).unwrap();
        save_model(&net, &cfg, dir.path()).unwrap();
        // Same folder, config edited to a wider network: the weights no longer fit.
        let mut other = cfg.clone();
        other.arch = ArchConfig::Foveal(FovealConfig {
            channels: vec![9, 16, 24],
            convs: vec![1, 2, 3],
            merge_convs: 1,
        });
        other.save(&dir.path().join(CONFIG_FILE)).unwrap();
        assert!(matches!(load_model(dir.path()), Err(NetError::WeightsMismatch { .. })));
        // A missing weights file is a folder error.
        std::fs::remove_file(dir.path().join(WEIGHTS_FILE)).unwrap();
        assert!(matches!(load_model(dir.path()), Err(NetError::ModelFolder { .. })));
        // A config that does not parse is a folder error too.
        std::fs::write(dir.path().join(CONFIG_FILE), "{").unwrap();
        save_model(&net, &cfg, &dir.path().join("x")).unwrap();
        std::fs::write(dir.path().join("x").join(CONFIG_FILE), "{\"format\": 1}").unwrap();
        assert!(matches!(load_model(&dir.path().join("x")), Err(NetError::ModelFolder { .. })));
    }

    #[test]
    fn peak_cutoff_is_optional_and_checked() {
        // A config written before the cut-off existed still loads, without one.
        let mut v = serde_json::to_value(ModelConfig::default_foveal()).unwrap();
        v.as_object_mut().unwrap().remove("min_peak_probability");
        let old: ModelConfig = serde_json::from_value(v).unwrap();
        assert_eq!(old.min_peak_probability, None);
        let mut cfg = ModelConfig::default_foveal();
        for (p, ok) in
            [(0.999, true), (1.0, true), (0.5, true), (0.4, false), (1.5, false), (f32::NAN, false)]
        {
            cfg.min_peak_probability = Some(p);
            assert_eq!(cfg.validate().is_ok(), ok, "min_peak_probability {p}");
        }
    }

    #[test]
    fn mask_threshold_and_convex_fill_are_optional_checked_and_reach_the_post_processing() {
        // A config written before the convex fill existed still loads, without it.
        let mut v = serde_json::to_value(ModelConfig::default_foveal()).unwrap();
        v.as_object_mut().unwrap().remove("convex_fill_min_short_axis_mm");
        v.as_object_mut().unwrap().remove("mask_threshold");
        let old: ModelConfig = serde_json::from_value(v).unwrap();
        assert_eq!((old.convex_fill_min_short_axis_mm, old.mask_threshold), (None, None));
        let mut cfg = ModelConfig::default_foveal();
        for (m, ok) in [(10.0, true), (0.0, true), (-1.0, false), (f64::NAN, false), (f64::INFINITY, false)] {
            cfg.convex_fill_min_short_axis_mm = Some(m);
            assert_eq!(cfg.validate().is_ok(), ok, "convex_fill_min_short_axis_mm {m}");
        }
        cfg.convex_fill_min_short_axis_mm = None;
        cfg.threshold = 0.3;
        for (t, ok) in [(0.5, true), (0.3, true), (1.0, true), (0.2, false), (f32::NAN, false)] {
            cfg.mask_threshold = Some(t);
            assert_eq!(cfg.validate().is_ok(), ok, "mask_threshold {t}");
        }
        cfg.mask_threshold = Some(0.5);
        cfg.min_peak_probability = Some(0.99);
        cfg.convex_fill_min_short_axis_mm = Some(10.0);
        let pp = cfg.postprocess_config();
        assert_eq!(
            (pp.threshold, pp.mask_threshold, pp.min_peak_probability, pp.convex_fill_min_short_axis_mm),
            (0.3, Some(0.5), Some(0.99), Some(10.0))
        );
        assert_eq!(pp.min_short_axis_mm, Some(4.5), "the protocol's size filter stays");
        assert!(pp.fill_holes);
        // At another operating point the mask threshold applies only above the new threshold, so
        // the config stays valid.
        for (t, mask) in [(0.25, Some(0.5)), (0.5, None), (0.6, None)] {
            let c = cfg.at_operating_point(t, None);
            assert_eq!((c.threshold, c.mask_threshold, c.min_peak_probability), (t, mask, None));
            c.validate().unwrap();
        }
    }

    #[test]
    fn large_node_pass_is_optional_checked_and_round_trips() {
        let mut v = serde_json::to_value(ModelConfig::default_foveal()).unwrap();
        v.as_object_mut().unwrap().remove("large_node_pass");
        let old: ModelConfig = serde_json::from_value(v).unwrap();
        assert_eq!(old.large_node_pass, None);
        let mut cfg = ModelConfig::default_foveal();
        let pass = |spacing_factor, min_short_axis_mm, max_short_axis_mm, min_fine_fraction| LargeNodePass {
            spacing_factor,
            min_short_axis_mm,
            max_short_axis_mm,
            min_fine_fraction,
        };
        for (p, ok) in [
            (pass(2.0, 15.0, 60.0, 0.1), true),
            (pass(1.0, 0.0, 0.0, 0.0), true),
            (pass(8.0, 15.0, f64::INFINITY, 1.0), true),
            (pass(0.5, 15.0, 60.0, 0.1), false),
            (pass(9.0, 15.0, 60.0, 0.1), false),
            (pass(f64::NAN, 15.0, 60.0, 0.1), false),
            (pass(2.0, -1.0, 60.0, 0.1), false),
            (pass(2.0, 15.0, 10.0, 0.1), false),
            (pass(2.0, f64::INFINITY, f64::INFINITY, 0.1), false),
            (pass(2.0, 15.0, f64::NAN, 0.1), false),
            (pass(2.0, 15.0, 60.0, 1.5), false),
            (pass(2.0, 15.0, 60.0, f64::NAN), false),
        ] {
            cfg.large_node_pass = Some(p.clone());
            assert_eq!(cfg.validate().is_ok(), ok, "{p:?}");
        }
        cfg.large_node_pass = Some(pass(2.0, 15.0, 60.0, 0.1));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        cfg.save(&path).unwrap();
        assert_eq!(ModelConfig::load(&path).unwrap(), cfg);
        assert_eq!(cfg.at_operating_point(0.4, None).large_node_pass, cfg.large_node_pass);
    }
}
