//! Training on an nnU-Net raw-layout dataset (`imagesTr/<case>_0000.nii.gz`,
//! `labelsTr/<case>.nii.gz`, instance labels > 0 = node). One module per job: [`config`] (the
//! run's settings), [`dataset`] (cases, split, loading), `sampling` (patches), [`loss`],
//! `checkpoint` (save, resume, export), `log`, and here the run loop ([`train`]).
//!
//! * Cases are split once, by the seed, into training and held-out validation cases
//!   (`split.json` in the run folder); validation cases are never sampled for training.
//! * Each training case is preprocessed once (model grid, [`crate::patch::Pyramid`], binary label, node voxel
//!   lists). A batch draws patches with foreground oversampling (`foreground_fraction` of the
//!   patches are centred near a voxel of a node drawn with weight `voxels^node_size_exponent`) and
//!   random [`crate::patch::Augmentation`]. Of the other patches, `hard_negative_fraction` are
//!   centred near a voxel of the case's hard negatives ([`NEGATIVES_DIR`]) when it has
//!   them; the rest anywhere in the case.
//! * Loss = cross-entropy + soft Dice (batch Dice of the node channel); AdamW with gradient-norm
//!   clipping; learning rate: linear warm-up then cosine decay to 1% ([`learning_rate`]).
//! * Every `val_every` steps the caller's [`Validator`] scores the weights on the validation CTs
//!   (`nodal-detect`: the evaluation protocol at each operating point of a grid, from one
//!   inference per case, ranked by [`nodal_eval::selection_score`] for the run's
//!   [`SelectionTargets`]); the best result is exported to `best/` as a model folder whose config
//!   carries the operating point it chose.
//! * Every `checkpoint_every` steps `checkpoint/` is replaced atomically: model (burnpack, which
//!   keeps parameter ids so the optimizer state re-attaches), AdamW state, and `state.json` (step,
//!   RNG state, best score). `--resume` continues bit-for-bit from it.
//! * `log.csv` + `log.jsonl`: one record per `log_every` steps and per validation.

mod checkpoint;
pub mod config;
pub mod dataset;
mod log;
pub mod loss;
mod sampling;
#[doc(hidden)]
pub mod testing;

pub use checkpoint::{export_checkpoint, RunState};
pub use config::{learning_rate, TrainConfig};
pub use dataset::{
    list_cases, list_cases_in, list_datasets, load_training_cases, load_val_cases, prepare_training_case,
    split_cases, CaseFiles, TrainCase, ValCase, NEGATIVES_DIR,
};
pub use loss::loss;

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use burn::store::{BurnpackStore, ModuleSnapshot};
use indicatif::ProgressBar;
use nodal_eval::{SelectionTargets, ValMetrics};
use serde::Serialize;

use crate::config::{save_model, write_atomic, LoadedModel, ModelConfig};
use crate::rng::Rng;
use crate::NetError;
use checkpoint::{checkpoint_dir, save_checkpoint};
use log::{LogRecord, Logger};
use sampling::draw_batch;

/// Validation of a checkpoint, supplied by the caller: `nodal-detect` scores the evaluation
/// protocol at a grid of operating points, with the same recipe `nodal segment` applies.
pub trait Validator {
    /// Validates `model` on `cases` for `targets`.
    ///
    /// # Errors
    /// Whatever failed; [`train`] stops with [`NetError::Validation`] carrying it.
    fn validate(
        &self,
        model: &LoadedModel,
        cases: &[ValCase],
        targets: &SelectionTargets,
    ) -> Result<Validation, Box<dyn std::error::Error + Send + Sync>>;
}

/// What validating a checkpoint found.
#[derive(Clone, Debug)]
pub struct Validation {
    /// The model's configuration at the operating point the validation chose (saved with the
    /// weights when this checkpoint is the best so far).
    pub config: ModelConfig,
    /// Metrics at that point; `metrics.score` ranks checkpoints.
    pub metrics: ValMetrics,
    /// Saved as `best/metrics.json` beside the best weights (the whole table, for people).
    pub record: serde_json::Value,
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

/// Trains (or resumes) a run in folder `run` on the cases of the `data` folders. Validation cases
/// come from `val_data` (a separate dataset, e.g. `nodal dataset --split val`) when given, else
/// they are held out of `data` by the seeded split. With `resume`, the run's saved split and
/// checkpoint are used. Each validation is `validator`'s; the best one's weights are saved to
/// `best/` with the configuration it chose.
pub fn train(
    data: &[PathBuf],
    val_data: Option<&Path>,
    cfg: &TrainConfig,
    run: &Path,
    resume: bool,
    progress: Option<&ProgressBar>,
    validator: &dyn Validator,
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
        if state.step.is_multiple_of(cfg.log_every) || last {
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
        let do_val = !val_cases.is_empty()
            && ((cfg.val_every > 0 && state.step.is_multiple_of(cfg.val_every)) || last);
        if do_val {
            let model = LoadedModel { config: cfg.model.clone(), net: net.valid(), folder: run.into() };
            let Validation { config, metrics: m, record } = validator
                .validate(&model, &val_cases, &cfg.selection)
                .map_err(|source| NetError::Validation { step: state.step, source })?;
            if let Some(pb) = progress {
                pb.println(format!(
                    "step {} (threshold {}, peak cut-off {:?}): recall {:.3} (ceiling {}), FP/scan {:.2}, \
                     Dice {}, recall SAD>=15 {}",
                    state.step,
                    config.threshold,
                    config.min_peak_probability,
                    m.recall,
                    m.recall_ceiling.map(|d| format!("{d:.3}")).unwrap_or("-".into()),
                    m.fp_per_scan,
                    m.dice.map(|d| format!("{d:.3}")).unwrap_or("-".into()),
                    m.recall_sad_ge_15mm.map(|d| format!("{d:.3}")).unwrap_or("-".into()),
                ));
            }
            if state.best.is_none_or(|(s, _)| m.score > s) {
                state.best = Some((m.score, state.step));
                let mut c = config;
                c.version =
                    format!("{}-step{}", run.file_name().unwrap_or_default().to_string_lossy(), state.step);
                save_model(&model.net, &c, &run.join("best"))?;
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
        if state.step.is_multiple_of(cfg.checkpoint_every) || last {
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
    use crate::infer::{predict, InferOptions};
    use crate::model::{ArchConfig, FovealConfig};
    use crate::train::testing::{synthetic_case, tiny_config, write_dataset};

    /// A validation that scores every checkpoint the same, at the model's own configuration:
    /// the loop's bookkeeping without the protocol (which `nodal-detect` tests with it).
    struct Constant;

    impl Validator for Constant {
        fn validate(
            &self,
            model: &LoadedModel,
            cases: &[ValCase],
            _: &SelectionTargets,
        ) -> Result<Validation, Box<dyn std::error::Error + Send + Sync>> {
            let metrics = ValMetrics { n_cases: cases.len(), ..Default::default() };
            Ok(Validation { config: model.config.clone(), metrics, record: serde_json::Value::Null })
        }
    }

    #[test]
    fn init_from_starts_at_the_given_weights_and_checks_the_architecture() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        write_dataset(&data, 2);
        let mut cfg = tiny_config();
        cfg.val_cases = 0;
        cfg.steps = 3;
        train(std::slice::from_ref(&data), None, &cfg, &dir.path().join("a"), false, None, &Constant)
            .unwrap();
        let init = dir.path().join("a/last");
        // One step at a negligible learning rate from those weights keeps them.
        let mut fine = cfg.clone();
        fine.init_from = Some(init.clone());
        fine.steps = 1;
        fine.lr = 1e-12;
        train(std::slice::from_ref(&data), None, &fine, &dir.path().join("b"), false, None, &Constant)
            .unwrap();
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
        train(std::slice::from_ref(&data), None, &fresh, &dir.path().join("c"), false, None, &Constant)
            .unwrap();
        let pc = p(&dir.path().join("c/last"));
        assert!(pa.as_slice().iter().zip(pc.as_slice()).any(|(a, c)| (a - c).abs() > 1e-3));
        // Another architecture is refused.
        let mut other = fine.clone();
        other.model.arch =
            ArchConfig::Foveal(FovealConfig { channels: vec![4, 8], convs: vec![1, 1], merge_convs: 1 });
        let err =
            train(std::slice::from_ref(&data), None, &other, &dir.path().join("d"), false, None, &Constant)
                .unwrap_err();
        assert!(matches!(err, NetError::InvalidConfig(_)), "{err}");
    }

    #[test]
    fn training_is_deterministic_and_resumes_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        write_dataset(&data, 3);
        let cfg = tiny_config();
        let a = train(std::slice::from_ref(&data), None, &cfg, &dir.path().join("a"), false, None, &Constant)
            .unwrap();
        let b = train(std::slice::from_ref(&data), None, &cfg, &dir.path().join("b"), false, None, &Constant)
            .unwrap();
        assert_eq!(a.losses, b.losses);
        assert_eq!(a.steps, 4);
        // Interrupted after 2 steps, then resumed: the same losses as the uninterrupted run.
        let run_c = dir.path().join("c");
        STOP_AFTER.with(|s| s.set(Some(2)));
        let first = train(std::slice::from_ref(&data), None, &cfg, &run_c, false, None, &Constant);
        STOP_AFTER.with(|s| s.set(None));
        let first = first.unwrap();
        assert_eq!(first.steps, 2);
        let rest = train(std::slice::from_ref(&data), None, &cfg, &run_c, true, None, &Constant).unwrap();
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
            train(std::slice::from_ref(&data), None, &cfg, &run_c, false, None, &Constant),
            Err(NetError::Run { .. })
        ));
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
        let s = train(std::slice::from_ref(&data), None, &cfg, &run, false, None, &Constant).unwrap();
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
}

#[cfg(test)]
thread_local! {
    /// Test hook: stop the training loop after this many steps (simulates an interrupted run).
    static STOP_AFTER: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}
