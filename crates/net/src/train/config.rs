//! What a training run is configured by ([`TrainConfig`], saved as `train_config.json`) and its
//! learning-rate schedule.
use nodal_eval::SelectionTargets;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use crate::config::ModelConfig;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::testing::tiny_config;
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
}
