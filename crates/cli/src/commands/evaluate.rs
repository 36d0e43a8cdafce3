//! `nodal evaluate`: scores predictions against ground-truth label maps with the evaluation
//! protocol and writes `evaluation.json`, CSV tables, `table1.md` and figures.
use anyhow::Context;
use nodal_core::output::OutputDir;
use nodal_eval::cohort::{attach_meta, MetaSource};
use nodal_eval::output::OUTPUT_FILES;
use nodal_eval::{evaluate_cohort, pair_dirs, read_manifest, write_outputs};
use std::path::PathBuf;

#[derive(clap::Args)]
#[command(after_help = "Case ids: file names without .nii/.nii.gz and without an nnU-Net channel suffix \
_0000, so case_001_0000.nii.gz pairs with case_001.nii.gz. Predictions with a float dtype are \
probability maps (thresholded at 0.5, and an FROC curve is added); integer dtypes are masks (nonzero \
= node). Ground truths are instance label maps (one id per node); a binary ground truth (the single \
label 1 in several separate pieces, as nnU-Net labelsTr) is split into its 26-connected components, \
which evaluation.json states per scan (gt_split_from_binary).")]
pub struct Args {
    /// Folder of predictions (.nii/.nii.gz): binary masks or probability maps; or the output folder
    /// of a cohort `nodal segment` run (its case folders' nodes.nii.gz, whichever shard wrote them).
    #[arg(long, required_unless_present = "manifest", requires = "gt")]
    pred: Option<PathBuf>,
    /// Folder of ground-truth instance label maps (.nii/.nii.gz).
    #[arg(long, required_unless_present = "manifest", requires = "pred")]
    gt: Option<PathBuf>,
    /// Node metadata: a folder of per-case nodes.json (<case>.json, <case>_nodes.json or
    /// <case>/nodes.json), or a CSV case_id,node_id,metastatic.
    #[arg(long)]
    meta: Option<PathBuf>,
    /// CSV case_id,pred,gt[,meta] instead of --pred/--gt (paths relative to the CSV's folder).
    #[arg(long, conflicts_with_all = ["pred", "gt"])]
    manifest: Option<PathBuf>,
    /// Output folder.
    #[arg(short = 'o', long = "out", visible_alias = "output")]
    out: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    // The output folder is checked and locked before any work, and written as one unit.
    let out = OutputDir::open(&args.out)?;
    let mut cases = match (&args.manifest, &args.pred, &args.gt) {
        (Some(m), _, _) => read_manifest(m)?,
        (None, Some(p), Some(g)) => pair_dirs(p, g)?,
        _ => anyhow::bail!("give --pred and --gt, or --manifest"),
    };
    attach_meta(&mut cases, &MetaSource::from_path(args.meta.as_deref()))?;
    let bar = super::progress_bar(
        cases.len() as u64,
        "{spinner} evaluating [{bar:30}] {pos}/{len} scans ({elapsed}) {msg}",
    );
    let result = evaluate_cohort(&cases, &|id| {
        bar.set_message(id.to_string());
        bar.inc(1);
    });
    bar.finish_and_clear();
    let result = result?;
    let split: Vec<String> = result
        .scans
        .iter()
        .filter_map(|s| s.result.gt_split_from_binary.map(|n| format!("{} ({n})", s.case_id)))
        .collect();
    if !split.is_empty() {
        tracing::info!(
            "binary ground truth split into 26-connected components, scored as nodes: {}",
            split.join(", ")
        );
    }
    let written = write_outputs(&result, out.staging())
        .with_context(|| format!("writing results to {}", args.out.display()))?;
    out.commit(OUTPUT_FILES)?;
    let s = &result.summary;
    let f = |v: Option<f64>| v.map_or("n/a".to_string(), |x| format!("{x:.3}"));
    println!(
        "{} scans, {} GT nodes: recall {} (mean over scans; {} for a prediction equal to the ground truth), \
         precision {}, F1 {}, FP/scan {:.2}, Dice {}, avg_hd {} mm",
        s.n_scans,
        s.n_gt_nodes,
        f(s.recall.mean),
        f(s.recall_ceiling.mean),
        f(s.precision.mean),
        f(s.f1.mean),
        s.fp_per_scan,
        f(s.dice.mean),
        f(s.avg_hd.mean)
    );
    println!("wrote {} files to {}", written.len(), args.out.display());
    Ok(())
}
