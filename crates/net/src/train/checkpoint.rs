//! Checkpoints: the model (burnpack, which keeps parameter ids so the optimizer state
//! re-attaches), the AdamW state and `state.json`, replaced atomically; and exporting one as a
//! model folder.
use std::path::{Path, PathBuf};

use burn::optim::ModuleOptimizer;
use burn::store::{BurnpackStore, ModuleSnapshot};
use serde::{Deserialize, Serialize};

use crate::config::save_model;
use crate::model::Net;
use crate::rng::Rng;
use crate::train::config::TrainConfig;
use crate::NetError;

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

/// Where a run keeps things.
pub(crate) fn checkpoint_dir(run: &Path) -> PathBuf {
    run.join("checkpoint")
}

pub(crate) fn save_checkpoint(
    run: &Path,
    net: &Net,
    optim: &ModuleOptimizer,
    state: &RunState,
) -> Result<(), NetError> {
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
