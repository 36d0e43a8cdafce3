//! `nodal hard-negatives`: runs a model over a training dataset and writes, per case, the mask of
//! its false-positive components to `negativesTr/<case>.nii.gz` (see `nodal_net::negatives`);
//! `nodal train` then centres `hard_negative_fraction` of its background patches on them.
//! `negativesTr/negatives.json` records the model (with the SHA-256 of its weights) and operating
//! point that produced the masks, and is rewritten after every case: an interrupted run started
//! again with the same model continues where it stopped; another model starts over.
use anyhow::Context;
use nodal_net::config::write_atomic;
use nodal_net::infer::InferOptions;
use nodal_net::negatives::{hard_negatives, NEGATIVES_DIR};
use nodal_net::train::list_cases;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::ModelIdentity;
use crate::pipeline::load_model_arg;

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

#[derive(Serialize, Deserialize, PartialEq)]
struct Producer {
    #[serde(flatten)]
    model: ModelIdentity,
    min_peak_probability: Option<f32>,
}

#[derive(Serialize, Deserialize)]
struct Record {
    schema: String,
    nodal_version: String,
    model_folder: String,
    #[serde(flatten)]
    producer: Producer,
    definition: String,
    cases: Vec<CaseRecord>,
}

#[derive(Serialize, Deserialize)]
struct CaseRecord {
    case: String,
    false_positive_components: usize,
    voxels: usize,
}

const SCHEMA: &str = "nodal.hard_negatives/1";
const RECORD_FILE: &str = "negatives.json";

/// The cases an earlier run of the same producer finished (record listed and mask present).
fn finished_cases(dir: &Path, producer: &Producer) -> HashMap<String, CaseRecord> {
    let Ok(text) = std::fs::read_to_string(dir.join(RECORD_FILE)) else { return HashMap::new() };
    match serde_json::from_str::<Record>(&text) {
        Ok(r) if r.schema == SCHEMA && r.producer == *producer => r
            .cases
            .into_iter()
            .filter(|c| dir.join(format!("{}.nii.gz", c.case)).is_file())
            .map(|c| (c.case.clone(), c))
            .collect(),
        _ => HashMap::new(),
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    args.device.select()?;
    let model = load_model_arg(args.model.as_deref())?;
    let cases = list_cases(&args.data)?;
    let dir = args.data.join(NEGATIVES_DIR);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let producer = Producer {
        model: ModelIdentity::of(&model)?,
        min_peak_probability: model.config.min_peak_probability,
    };
    let mut done = finished_cases(&dir, &producer);
    let mut record = Record {
        schema: SCHEMA.into(),
        nodal_version: env!("CARGO_PKG_VERSION").into(),
        model_folder: model.folder.display().to_string(),
        producer,
        definition: "components of the model's mask (26-connected, p >= threshold, peak >= \
                     min_peak_probability) that touch no ground-truth node voxel"
            .into(),
        cases: Vec::new(),
    };
    let bar = super::progress_bar(
        cases.len() as u64,
        "{elapsed_precise} [{bar:40}] case {pos}/{len} {msg} (eta {eta})",
    );
    let save = |r: &Record| -> anyhow::Result<()> {
        Ok(write_atomic(&dir.join(RECORD_FILE), serde_json::to_string_pretty(r)?.as_bytes())?)
    };
    let mut n_kept = 0;
    for c in &cases {
        bar.set_message(c.id.clone());
        if let Some(r) = done.remove(&c.id) {
            record.cases.push(r);
            n_kept += 1;
            bar.inc(1);
            continue;
        }
        let ct = nodal_io::read_nifti::<i16>(&c.image)?;
        let labels = nodal_io::read_nifti::<u16>(&c.label)?;
        let neg = hard_negatives(&model, &ct, &labels, &InferOptions::default())
            .with_context(|| format!("case {} ({})", c.id, c.image.display()))?;
        let voxels = neg.mask.as_slice().iter().filter(|&&v| v > 0).count();
        nodal_io::write_nifti(&neg.mask, dir.join(format!("{}.nii.gz", c.id)))?;
        record.cases.push(CaseRecord {
            case: c.id.clone(),
            false_positive_components: neg.n_components,
            voxels,
        });
        // Rewritten after every case, so an interrupted run resumes from here.
        save(&record)?;
        bar.inc(1);
    }
    save(&record)?;
    bar.finish_and_clear();
    let n: usize = record.cases.iter().map(|r| r.false_positive_components).sum();
    let kept =
        if n_kept > 0 { format!(" ({n_kept} mined earlier by the same model, kept)") } else { String::new() };
    println!(
        "{} cases{kept}: {n} false-positive components ({:.1} per case) -> {}",
        cases.len(),
        n as f64 / cases.len() as f64,
        dir.display()
    );
    Ok(())
}
