//! `nodal hard-negatives`: runs a model over a training dataset and writes, per case, the mask of
//! its false-positive components to `negativesTr/<case>.nii.gz` (see `nodal_net::negatives`);
//! `nodal train` then centres `hard_negative_fraction` of its background patches on them.
//! `negativesTr/negatives.json` records the model and operating point that produced the masks.
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use nodal_net::config::write_atomic;
use nodal_net::infer::InferOptions;
use nodal_net::negatives::{hard_negatives, NEGATIVES_DIR};
use nodal_net::train::list_cases;
use serde::Serialize;
use std::path::PathBuf;

use crate::pipeline::load_model_arg;

/// Arguments of `nodal hard-negatives`.
#[derive(clap::Args)]
pub struct Args {
    /// Dataset folder (imagesTr/, labelsTr/); the masks go to its negativesTr/ (existing ones are
    /// replaced).
    #[arg(long)]
    pub data: PathBuf,
    /// Model folder whose false positives are mined (default: as `nodal segment`).
    #[arg(long)]
    pub model: Option<PathBuf>,
}

#[derive(Serialize)]
struct Record {
    schema: &'static str,
    nodal_version: &'static str,
    model_id: String,
    model_version: String,
    model_folder: String,
    threshold: f32,
    min_peak_probability: Option<f32>,
    definition: &'static str,
    cases: Vec<CaseRecord>,
}

#[derive(Serialize)]
struct CaseRecord {
    case: String,
    false_positive_components: usize,
    voxels: usize,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let model = load_model_arg(args.model.as_deref())?;
    let cases = list_cases(&args.data)?;
    let dir = args.data.join(NEGATIVES_DIR);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let bar = ProgressBar::new(cases.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] case {pos}/{len} {msg} (eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut records = Vec::new();
    for c in &cases {
        bar.set_message(c.id.clone());
        let ct = nodal_io::read_nifti::<i16>(&c.image)?;
        let labels = nodal_io::read_nifti::<u16>(&c.label)?;
        let neg = hard_negatives(&model, &ct, &labels, &InferOptions::default())
            .with_context(|| format!("case {} ({})", c.id, c.image.display()))?;
        let voxels = neg.mask.as_slice().iter().filter(|&&v| v > 0).count();
        nodal_io::write_nifti(&neg.mask, dir.join(format!("{}.nii.gz", c.id)))?;
        records.push(CaseRecord { case: c.id.clone(), false_positive_components: neg.n_components, voxels });
        bar.inc(1);
    }
    bar.finish_and_clear();
    let n: usize = records.iter().map(|r| r.false_positive_components).sum();
    let record = Record {
        schema: "nodal.hard_negatives/1",
        nodal_version: env!("CARGO_PKG_VERSION"),
        model_id: model.config.model_id.clone(),
        model_version: model.config.version.clone(),
        model_folder: model.folder.display().to_string(),
        threshold: model.config.threshold,
        min_peak_probability: model.config.min_peak_probability,
        definition: "components of the model's mask (26-connected, p >= threshold, peak >= \
                     min_peak_probability) that touch no ground-truth node voxel",
        cases: records,
    };
    let json = serde_json::to_string_pretty(&record)?;
    write_atomic(&dir.join("negatives.json"), json.as_bytes())?;
    println!(
        "{} cases: {n} false-positive components ({:.1} per case) -> {}",
        cases.len(),
        n as f64 / cases.len() as f64,
        dir.display()
    );
    Ok(())
}
