//! `nodal validate`: scores a model with the evaluation protocol on annotated cases, at its own
//! recipe — the numbers the trainer logs and the model card reports.
use anyhow::Context;
use nodal_detect::validate::{load_cases, validate};
use nodal_eval::ValMetrics;
use nodal_net::infer::InferOptions;
use serde::Serialize;
use std::path::PathBuf;

/// Annotated cases: dataset folders and explicit pairs (shared by `validate` and `tune`); at least
/// one is required.
#[derive(clap::Args, Clone)]
#[group(required = true, multiple = true)]
pub struct CasesArg {
    /// Dataset folder in nnU-Net raw layout: imagesTr/ + labelsTr/, or a test set's imagesTs/ +
    /// labelsTs/ (repeatable).
    #[arg(long = "dataset", value_name = "DIR")]
    pub datasets: Vec<PathBuf>,
    /// A CT (NIfTI) and its instance label map on the same grid (repeatable).
    #[arg(long = "case", num_args = 2, value_names = ["CT", "LABELS"])]
    pub cases: Vec<PathBuf>,
}

impl CasesArg {
    /// Reads every case.
    pub fn load(&self) -> anyhow::Result<Vec<nodal_net::train::ValCase>> {
        let pairs: Vec<(PathBuf, PathBuf)> =
            self.cases.chunks_exact(2).map(|p| (p[0].clone(), p[1].clone())).collect();
        Ok(load_cases(&self.datasets, &pairs)?)
    }
}

/// Arguments of `nodal validate`.
#[derive(clap::Args)]
pub struct Args {
    /// Model folder (default: as `nodal segment`).
    #[arg(long)]
    pub model: Option<PathBuf>,
    #[command(flatten)]
    pub cases: CasesArg,
    /// Also write the figures as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Mirror test-time augmentation (about 4x the network time).
    #[arg(long)]
    pub tta: bool,
    #[command(flatten)]
    pub device: super::DeviceArg,
}

#[derive(Serialize)]
struct Record<'a> {
    schema: &'static str,
    model_id: &'a str,
    model_version: &'a str,
    model_folder: String,
    datasets: Vec<String>,
    cases: Vec<&'a str>,
    metrics: &'a ValMetrics,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    args.device.select()?;
    let model = super::load_model_arg(args.model.as_deref())?;
    let cases = args.cases.load()?;
    let opts = InferOptions { tta: args.tta, ..Default::default() };
    let t = std::time::Instant::now();
    let m = validate(&model, &cases, &opts).context("validating")?;
    println!("{}", describe(&m));
    tracing::info!("{} cases in {:.1} s", cases.len(), t.elapsed().as_secs_f64());
    if let Some(path) = &args.json {
        let record = Record {
            schema: "nodal.validation/1",
            model_id: &model.config().model_id,
            model_version: &model.config().version,
            model_folder: model.folder().display().to_string(),
            datasets: args.cases.datasets.iter().map(|d| d.display().to_string()).collect(),
            cases: cases.iter().map(|c| c.id.as_str()).collect(),
            metrics: &m,
        };
        let mut bytes = serde_json::to_vec_pretty(&record)?;
        bytes.push(b'\n');
        nodal_io::write_atomic(path, &bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The figures of a validation, one per line.
pub fn describe(m: &ValMetrics) -> String {
    let f = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.3}"));
    format!(
        "{} cases, {} GT nodes\nrecall                 {:.3}\nrecall (SAD >= 5 mm)   {}\nrecall ceiling         {}\n\
         recall (countable)     {}\nFP/scan                {:.2}\nDice                   {}\nrecall (SAD >= 15 mm)  {}",
        m.n_cases,
        m.n_gt,
        m.recall,
        f(m.recall_sad_ge_5mm),
        f(m.recall_ceiling),
        f(m.recall_countable),
        m.fp_per_scan,
        f(m.dice),
        f(m.recall_sad_ge_15mm)
    )
}
