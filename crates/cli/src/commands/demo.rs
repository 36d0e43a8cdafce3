//! `nodal demo`: the whole product on one simulated neck CT — generate a phantom with known nodes,
//! segment it with the shipped model (the same pipeline as `nodal segment`), measure, score against
//! the phantom's ground truth with the evaluation protocol, and write the HTML report.
//!
//! Outputs in `-o DIR` (each file written atomically, so re-running into the same folder is safe):
//! `ct.nii.gz`, `gt_nodes.nii.gz` + `gt_nodes.json` (ground truth), `nodes.nii.gz`, `mask.nii.gz`,
//! `nodes.json`, `nodes.csv` (the segmentation), `report.html` + `report.json` (with an evaluation
//! section), and `evaluation/` (`nodal_eval::write_outputs`: evaluation.json, CSV tables, table1.md,
//! figures).
use crate::commands::segment::tile_bar;
use crate::report_input::{report_data, stage_timings};
use anyhow::Context;
use nodal_core::output::OutputDir;
use nodal_detect::{segment_ct, write_segmentation};
use nodal_eval::cohort::{CaseResult, CohortResult, PredictionKind};
use nodal_eval::{evaluate_scan, plots, summarise_cohort, NodeMeta, Prediction};
use nodal_net::infer::InferOptions;
use nodal_phantom::dataset::{case_seed, DatasetConfig, Split};
use nodal_phantom::output::{write_json, NodesFile};
use nodal_phantom::{generate_phantom, PhantomConfig, PhantomSize};
use nodal_report::{write_outputs, DicomOptions, EvaluationSection, Figure, Table, REPORT_HTML};
use std::path::PathBuf;
use std::time::Instant;

/// Seed of the dataset the shipped model was trained on (`nodal dataset --seed 1 --split train`).
const TRAINING_DATASET_SEED: u64 = 1;
/// Index of the demo case in the *validation* split of that dataset seed. Case seeds depend on the
/// split (`nodal_phantom::dataset::case_seed`), so no training case shares this seed. Index 100 lies
/// beyond the validation cases written during model development, so the demo case was not looked at
/// while choosing the model either.
const DEMO_VAL_INDEX: usize = 100;

/// The default demo seed: validation case [`DEMO_VAL_INDEX`] of dataset seed [`TRAINING_DATASET_SEED`].
pub fn default_seed() -> u64 {
    let cfg = DatasetConfig {
        n: DEMO_VAL_INDEX + 1,
        seed: TRAINING_DATASET_SEED,
        real_fraction: 0.0,
        split: Split::Val,
        phantom: PhantomConfig::default(),
        backgrounds: Vec::new(),
    };
    case_seed(&cfg, DEMO_VAL_INDEX)
}

/// Phantom size of the demo.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum DemoSize {
    /// 128 x 128 in-plane at 1.5-1.7 mm, 2.5 mm slices: seconds.
    Small,
    /// Clinical 512 x 512 matrix.
    Full,
}

/// Arguments of `nodal demo`.
#[derive(clap::Args)]
pub struct Args {
    /// Output folder.
    #[arg(short = 'o', long, default_value = "out/demo")]
    pub out: PathBuf,
    /// Phantom seed (default: a validation-split seed never used for training).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Phantom size (full: about 30 s on 2 cores in a release build; small: about 7 s).
    #[arg(long, value_enum, default_value = "full")]
    pub size: DemoSize,
    /// Model folder (default: as for `nodal segment`).
    #[arg(long)]
    pub model: Option<PathBuf>,
    #[command(flatten)]
    pub device: super::DeviceArg,
}

/// Everything the demo writes into its folder (`evaluation` is a folder).
const PRODUCTS: &[&str] = &[
    "ct.nii.gz",
    "gt_nodes.nii.gz",
    "gt_nodes.json",
    "nodes.nii.gz",
    "mask.nii.gz",
    "probabilities.nii.gz",
    "nodes.json",
    "nodes.csv",
    "evaluation",
    REPORT_HTML,
    nodal_report::REPORT_JSON,
];

pub fn run(args: Args) -> anyhow::Result<()> {
    args.device.select()?;
    let t0 = Instant::now();
    let seed = args.seed.unwrap_or_else(default_seed);
    let size = match args.size {
        DemoSize::Small => PhantomSize::Small,
        DemoSize::Full => PhantomSize::Full,
    };
    // Checked and locked before any work; written as one unit.
    let folder = OutputDir::open(&args.out)?;
    let out = folder.staging();
    // What the files say about where the CT is: its final place, not the staging folder.
    let final_ct = args.out.join("ct.nii.gz").display().to_string();

    let t = Instant::now();
    let phantom = generate_phantom(&PhantomConfig::preset(size), seed).context("generating the phantom")?;
    let t_gen = t.elapsed().as_secs_f64();
    nodal_io::write_nifti(&phantom.ct, out.join("ct.nii.gz"))?;
    nodal_io::write_nifti(&phantom.labels, out.join("gt_nodes.nii.gz"))?;
    write_json(&out.join("gt_nodes.json"), &NodesFile::of(&phantom, None))?;

    let t = Instant::now();
    let model = super::load_model_arg(args.model.as_deref())?;
    let t_model = t.elapsed().as_secs_f64();

    let bar = tile_bar();
    let seg = segment_ct(&phantom.ct, &model, &InferOptions::default(), Some(&bar))
        .context("segmenting the phantom")?;
    bar.finish_and_clear();
    let source = format!("phantom seed {seed} ({final_ct})");
    write_segmentation(out, &seg, &final_ct, false)?;

    let t = Instant::now();
    let meta =
        NodeMeta { metastatic: phantom.nodes.iter().map(|n| (u32::from(n.id), n.metastatic)).collect() };
    // Scores the nodes the demo writes (the model's operating point and filters), not the raw
    // probability map at the protocol's 0.5, so the figures describe nodes.nii.gz.
    let mask = seg.detected.labels.map(|l| u8::from(l > 0));
    let scan = evaluate_scan(Prediction::Mask(&mask), &phantom.labels, Some(&meta))
        .context("evaluating against the ground truth")?;
    let cohort = summarise_cohort(vec![CaseResult {
        case_id: format!("phantom_{seed}"),
        pred: "nodes.nii.gz".into(),
        gt: "gt_nodes.nii.gz".into(),
        prediction_kind: PredictionKind::Mask,
        result: scan,
    }]);
    nodal_eval::write_outputs(&cohort, &out.join("evaluation"))
        .with_context(|| format!("writing {}", args.out.join("evaluation").display()))?;
    let evaluation = evaluation_section(&cohort);
    let t_eval = t.elapsed().as_secs_f64();

    let timings = stage_timings(
        &[("generate phantom", t_gen), ("load model", t_model)],
        &seg.timings,
        &[("evaluate", t_eval)],
    );
    let data = report_data(&source, &phantom.ct, &model, &seg, timings.clone(), Some(evaluation));
    write_outputs(out, &data, &phantom.ct, &seg.detected.labels, None, &DicomOptions::default())
        .with_context(|| format!("writing the report into {}", args.out.display()))?;

    folder.commit(PRODUCTS)?;

    let s = &cohort.summary;
    let f = |v: Option<f64>| v.map_or("n/a".to_string(), |x| format!("{x:.3}"));
    let [ni, nj, nk] = phantom.ct.dims();
    println!(
        "phantom seed {seed}: {ni}x{nj}x{nk} voxels, model {} {}",
        model.config().model_id,
        model.config().version
    );
    println!(
        "nodes found: {}, GT nodes: {}, recall {} (perfect segmentation: {}), precision {}, FP/scan {:.0}, Dice {}",
        seg.detected.report.n_nodes,
        s.n_gt_nodes,
        f(s.recall.mean),
        f(s.recall_ceiling.mean),
        f(s.precision.mean),
        s.fp_per_scan,
        f(s.dice.mean)
    );
    let stages: Vec<String> = timings.iter().map(|t| format!("{} {:.1} s", t.stage, t.seconds)).collect();
    println!("time: {} (total {:.1} s)", stages.join(", "), t0.elapsed().as_secs_f64());
    println!("report: {}", args.out.join(REPORT_HTML).display());
    Ok(())
}

/// Headline metrics, Table 1 and the protocol's figures for the report.
fn evaluation_section(r: &CohortResult) -> EvaluationSection {
    let s = &r.summary;
    let f = |v: Option<f64>| v.map_or("n/a".to_string(), |x| format!("{x:.3}"));
    let metrics = vec![
        ("GT nodes".to_string(), s.n_gt_nodes.to_string()),
        ("GT nodes localized".to_string(), s.n_gt_localized.to_string()),
        ("recall".to_string(), f(s.recall.mean)),
        ("recall of a perfect segmentation".to_string(), f(s.recall_ceiling.mean)),
        ("precision".to_string(), f(s.precision.mean)),
        ("F1".to_string(), f(s.f1.mean)),
        ("false positives per scan".to_string(), format!("{:.0}", s.fp_per_scan)),
        ("Dice".to_string(), f(s.dice.mean)),
        ("ASSD (mm)".to_string(), f(s.assd.mean)),
        ("HD95 (mm)".to_string(), f(s.hd95.mean)),
    ];
    EvaluationSection {
        metrics,
        tables: markdown_tables(&nodal_eval::output::table1_md(r)),
        figures: vec![
            Figure {
                caption: "Per-node sensitivity: all nodes, and by metastatic status".into(),
                svg: plots::sensitivity_boxplot(r),
            },
            Figure { caption: "SAD of ground-truth nodes by status".into(), svg: plots::sad_violin(r) },
            Figure { caption: "Sensitivity against SAD".into(), svg: plots::sad_vs_sensitivity(r) },
        ],
        note: Some(format!(
            "Scored with the evaluation protocol ({}): a ground-truth node counts as found when at least \
             40% of its voxels are predicted; predicted components with short axis < 4.5 mm are removed, so \
             ground-truth nodes smaller than that are found only by a prediction larger than the node \
             (the recall of a perfect segmentation shows how many that leaves countable).",
            nodal_eval::cohort::SCHEMA
        )),
    }
}

/// The pipe tables of a markdown document; a `# ` heading above a table becomes its caption.
fn markdown_tables(md: &str) -> Vec<Table> {
    let mut tables = Vec::new();
    let mut caption = String::new();
    let mut rows: Vec<Vec<String>> = Vec::new();
    let cells = |line: &str| -> Vec<String> {
        line.trim().trim_matches('|').split('|').map(|c| c.trim().to_string()).collect()
    };
    let mut flush = |rows: &mut Vec<Vec<String>>, caption: &str| {
        if rows.len() >= 2 {
            let header = rows[0].clone();
            // rows[1] is the |---| separator.
            tables.push(Table { caption: caption.to_string(), header, rows: rows[2..].to_vec() });
        }
        rows.clear();
    };
    for line in md.lines() {
        let l = line.trim();
        if l.starts_with('|') {
            rows.push(cells(l));
        } else {
            flush(&mut rows, &caption);
            if let Some(h) = l.strip_prefix('#') {
                caption = h.trim_start_matches('#').trim().to_string();
            }
        }
    }
    flush(&mut rows, &caption);
    tables
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_table_parsed() {
        let md = "# Table 1: x\n\n| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |\n\nnote\n";
        let t = markdown_tables(md);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].caption, "Table 1: x");
        assert_eq!(t[0].header, vec!["a", "b"]);
        assert_eq!(t[0].rows, vec![vec!["1", "2"], vec!["3", "4"]]);
    }

    #[test]
    fn default_seed_is_a_validation_seed() {
        let mut cfg = DatasetConfig {
            n: 1,
            seed: TRAINING_DATASET_SEED,
            real_fraction: 0.0,
            split: Split::Train,
            phantom: PhantomConfig::default(),
            backgrounds: Vec::new(),
        };
        let s = default_seed();
        assert!((0..1000).all(|i| case_seed(&cfg, i) != s));
        cfg.split = Split::Val;
        assert_eq!(case_seed(&cfg, DEMO_VAL_INDEX), s);
    }
}
