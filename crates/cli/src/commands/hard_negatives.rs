//! `nodal hard-negatives`: runs a model over a training dataset and writes, per case, the mask of
//! its false-positive components to `negativesTr/<case>.nii.gz` (`nodal_detect::negatives`);
//! `nodal train` then centres `hard_negative_fraction` of its background patches on them.
//! `negativesTr/negatives.json` records the model (with the SHA-256 of its weights) and operating
//! point that produced the masks, and is rewritten after every case: an interrupted run started
//! again with the same model continues where it stopped; another model starts over.
use anyhow::Context;
use nodal_detect::negatives::mine;
use nodal_net::infer::InferOptions;
use std::path::PathBuf;

/// Arguments of `nodal hard-negatives`.
#[derive(clap::Args)]
pub struct Args {
    /// Dataset folder (imagesTr/, labelsTr/); the masks go to its negativesTr/. Cases already
    /// mined there by the same model are kept; masks of another model are replaced.
    #[arg(long)]
    pub data: PathBuf,
    /// Model folder whose false positives are mined (default: as `nodal segment`).
    #[arg(long)]
    pub model: Option<PathBuf>,
    #[command(flatten)]
    pub device: super::DeviceArg,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    args.device.select()?;
    let model = super::load_model_arg(args.model.as_deref())?;
    let bar = super::progress_bar(0, "{elapsed_precise} [{bar:40}] case {pos}/{len} {msg} (eta {eta})");
    let mined = mine(&model, &args.data, &InferOptions::default(), Some(&bar))
        .with_context(|| format!("mining hard negatives in {}", args.data.display()))?;
    bar.finish_and_clear();
    if let Some(why) = &mined.restarted {
        println!("the earlier record {why}: every case was mined again");
    }
    let n_cases = mined.cases.len();
    let n: usize = mined.cases.iter().map(|r| r.false_positive_components).sum();
    let kept = if mined.n_kept > 0 {
        format!(" ({} mined earlier by the same model, kept)", mined.n_kept)
    } else {
        String::new()
    };
    println!(
        "{n_cases} cases{kept}: {n} false-positive components ({:.1} per case) -> {}",
        n as f64 / n_cases.max(1) as f64,
        mined.dir.display()
    );
    Ok(())
}
