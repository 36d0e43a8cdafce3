//! `nodal tune`: chooses part of a model's recipe on annotated cases, from one inference per case,
//! by the selection score (at most `--max-fp-per-scan` false positives per scan with Dice of at
//! least `--min-dice`, then the most recall), and with `-o` writes the model with the choice to a
//! new folder. Use cases the model was not trained on and that will not validate it.
use super::validate::CasesArg;
use anyhow::Context;
use nodal_detect::fit::tune_filter;
use nodal_detect::fit::write_model_folder;
use nodal_detect::select::LargeNodes;
use nodal_detect::tune::{tune_mask, tune_operating_point};
use nodal_eval::{SelectionTargets, ValMetrics};
use nodal_net::infer::InferOptions;
use serde::Serialize;
use std::path::PathBuf;

/// What to tune.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Voxel threshold x component peak cut-off (only peak cut-offs at the model's threshold when
    /// it has a component filter, which was fitted there).
    OperatingPoint(Args),
    /// Peak cut-off x the component filter's cut-off, without fitting the filter again.
    FilterCutoffs(Args),
    /// How kept components are drawn: mask threshold x convex-fill size gate.
    Mask(Args),
}

/// Arguments shared by the `tune` subcommands.
#[derive(clap::Args)]
pub struct Args {
    /// Model folder (default: as `nodal segment`).
    #[arg(long)]
    pub model: Option<PathBuf>,
    #[command(flatten)]
    pub cases: CasesArg,
    /// False-positive budget per scan of the selection score.
    #[arg(long, default_value_t = SelectionTargets::default().max_fp_per_scan)]
    pub max_fp_per_scan: f64,
    /// Lowest acceptable Dice of the selection score.
    #[arg(long, default_value_t = SelectionTargets::default().min_dice)]
    pub min_dice: f64,
    /// `filter-cutoffs` and `mask`: `no-loss` allows only points that find as many nodes >= 15 mm
    /// as the current setting (the model alone, for filter cut-offs); `any` allows every point.
    #[arg(long, value_enum, default_value_t = super::train_filter::LargeNodesArg::NoLoss)]
    pub large_nodes: super::train_filter::LargeNodesArg,
    /// Instead of `--large-nodes`: only points whose recall of nodes >= 15 mm is at least this.
    #[arg(long, conflicts_with = "large_nodes")]
    pub min_large_recall: Option<f64>,
    /// Write a copy of the model folder with the chosen setting here.
    #[arg(short = 'o', long = "out")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub device: super::DeviceArg,
}

#[derive(Serialize)]
struct Row<'a, P: Serialize> {
    point: &'a P,
    metrics: &'a ValMetrics,
}

fn print_table<P: Serialize>(points: &[(P, ValMetrics)], current: usize, best: usize) -> anyhow::Result<()> {
    for (p, m) in points {
        println!("{}", serde_json::to_string(&Row { point: p, metrics: m })?);
    }
    let line = |i: usize| -> anyhow::Result<String> {
        let (p, m) = &points[i];
        Ok(format!(
            "{}: recall {:.3}, FP/scan {:.2}, Dice {}, recall SAD >= 15 mm {}, score {:.4}",
            serde_json::to_string(p)?,
            m.recall,
            m.fp_per_scan,
            m.dice.map_or("-".into(), |d| format!("{d:.3}")),
            m.recall_sad_ge_15mm.map_or("-".into(), |r| format!("{r:.3}")),
            m.score
        ))
    };
    println!("current {}", line(current)?);
    println!("chosen  {}", line(best)?);
    Ok(())
}

pub fn run(command: Command) -> anyhow::Result<()> {
    let (kind, args) = match command {
        Command::OperatingPoint(a) => ("operating-point", a),
        Command::FilterCutoffs(a) => ("filter-cutoffs", a),
        Command::Mask(a) => ("mask", a),
    };
    args.device.select()?;
    anyhow::ensure!(
        args.max_fp_per_scan.is_finite() && args.max_fp_per_scan >= 0.0,
        "--max-fp-per-scan {}: must be a number >= 0",
        args.max_fp_per_scan
    );
    anyhow::ensure!((0.0..=1.0).contains(&args.min_dice), "--min-dice {}: must be in [0, 1]", args.min_dice);
    if let Some(r) = args.min_large_recall {
        anyhow::ensure!((0.0..=1.0).contains(&r), "--min-large-recall {r}: must be a fraction in [0, 1]");
    }
    let mut model = super::load_model_arg(args.model.as_deref())?;
    let cases = args.cases.load()?;
    let targets = SelectionTargets { max_fp_per_scan: args.max_fp_per_scan, min_dice: args.min_dice };
    let rule = args.min_large_recall.map_or(LargeNodes::from(args.large_nodes), LargeNodes::AtLeast);
    let opts = InferOptions::default();
    let bar =
        super::progress_bar(cases.len() as u64, "{elapsed_precise} [{bar:40}] case {pos}/{len} (eta {eta})");
    let mut config = model.config().clone();
    match kind {
        "operating-point" => {
            let table =
                tune_operating_point(&model, &cases, &opts, &targets, Some(&bar)).context("tuning")?;
            bar.finish_and_clear();
            print_table(&table.points, table.current, table.best)?;
            let p = table.points[table.best].0;
            config = config.at_operating_point(p.threshold, p.min_peak);
        }
        "filter-cutoffs" => {
            let folder = model.folder().display().to_string();
            let filter = model.filter.clone().with_context(|| {
                format!(
                    "the model in {folder} has no component filter ({})",
                    nodal_detect::model::FILTER_FILE
                )
            })?;
            let table = tune_filter(&model.net, &filter, &cases, &opts, &targets, rule).context("tuning")?;
            bar.finish_and_clear();
            print_table(&table.points, table.model_alone, table.best)?;
            let p = table.points[table.best].0;
            config = config.at_operating_point(config.threshold, p.min_peak);
            if let Some(f) = model.filter.as_mut() {
                f.min_score = p.min_score;
            }
        }
        _ => {
            let table = tune_mask(&model, &cases, &opts, &targets, rule, Some(&bar)).context("tuning")?;
            bar.finish_and_clear();
            print_table(&table.points, table.current, table.best)?;
            let s = table.points[table.best].0;
            config.mask_threshold = s.mask_threshold;
            config.convex_fill_min_short_axis_mm = s.convex_fill_min_short_axis_mm;
        }
    }
    if let Some(out) = &args.out {
        anyhow::ensure!(
            !out.exists() || out.read_dir().is_ok_and(|mut d| d.next().is_none()),
            "{}: exists and is not empty; choose a new folder for the tuned model",
            out.display()
        );
        config.version = format!("{}+tuned-{kind}", config.version);
        write_model_folder(&model.net, &config, model.filter.as_ref(), out)
            .with_context(|| format!("writing the tuned model to {}", out.display()))?;
        println!("tuned model -> {}", out.display());
    }
    Ok(())
}
