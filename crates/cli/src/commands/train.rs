//! `nodal train`: trains a segmentation network on an nnU-Net raw-layout dataset (see
//! `nodal_net::train`).
use anyhow::Context;
use nodal_detect::tune::ProtocolValidator;
use nodal_net::train::{train, TrainConfig};
use std::path::PathBuf;

/// Arguments of `nodal train`.
#[derive(clap::Args)]
pub struct Args {
    /// Dataset folder (imagesTr/, labelsTr/), e.g. written by `nodal dataset`; repeat to train on
    /// several (case ids are then prefixed by the folder name).
    #[arg(long, required = true)]
    pub data: Vec<PathBuf>,
    /// Separate validation dataset (e.g. `nodal dataset --split val`); default: cases held out of
    /// --data by the seeded split.
    #[arg(long)]
    pub val_data: Option<PathBuf>,
    /// Training configuration (JSON, see `nodal_net::train::TrainConfig`); default: the foveal
    /// net's defaults. Ignored with --resume (the run's saved config is used).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Run folder (checkpoint/, best/, last/, log.csv, log.jsonl, split.json, train_config.json).
    #[arg(short = 'o', long)]
    pub out: PathBuf,
    /// Continue the run in --out from its checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Total optimisation steps (overrides the config; also extends a resumed run).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Stop after this many minutes of training in this session (checkpoint + validation first).
    #[arg(long)]
    pub max_minutes: Option<f64>,
    #[command(flatten)]
    pub device: super::DeviceArg,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    args.device.select()?;
    let saved = args.out.join("train_config.json");
    let mut cfg = if args.resume && saved.is_file() {
        TrainConfig::load(&saved)?
    } else if let Some(p) = &args.config {
        TrainConfig::load(p)?
    } else {
        TrainConfig::default_foveal()
    };
    if let Some(n) = args.steps {
        cfg.steps = n;
    }
    if args.max_minutes.is_some() {
        cfg.max_minutes = args.max_minutes;
    }
    let bar = super::progress_bar(
        cfg.steps as u64,
        "{elapsed_precise} [{bar:40}] step {pos}/{len} {msg} (eta {eta})",
    );
    let validator = ProtocolValidator::default();
    let summary =
        train(&args.data, args.val_data.as_deref(), &cfg, &args.out, args.resume, Some(&bar), &validator)
            .with_context(|| format!("training into {}", args.out.display()))?;
    bar.finish();
    println!(
        "{} steps in {:.0} s; best validation score {} -> {}",
        summary.steps,
        summary.elapsed_s,
        summary.best.map(|(s, step)| format!("{s:.3} at step {step}")).unwrap_or_else(|| "-".into()),
        args.out.join("best").display()
    );
    Ok(())
}
