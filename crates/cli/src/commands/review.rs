//! `nodal review`: a page in the browser to check, correct and annotate the nodes of `segment`
//! output folders, every edit saved in the case folder (`nodal_review`, docs/review.md); with
//! `--export-dataset`, the reviewed cases as a dataset `nodal train` fine-tunes on.
use anyhow::Context;
use nodal_review::{find_case_folders, serve, ServeOptions};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// A `nodal segment` (or `measure --ct`, `demo`) output folder, or a folder of them (a cohort).
    dir: PathBuf,
    /// Who reviews: recorded with every edit in review.json.
    #[arg(long, env = "NODAL_REVIEWER", default_value = "reviewer")]
    reviewer: String,
    /// Address to serve on (port 0: a free port). Loopback only unless --allow-remote.
    #[arg(long, default_value = "127.0.0.1:0")]
    bind: String,
    /// Allow a --bind address other machines can reach (the page shows patient images and edits
    /// files; anyone with the printed address and its token can).
    #[arg(long)]
    allow_remote: bool,
    /// Print the address without opening a browser.
    #[arg(long)]
    no_open: bool,
    /// The CT of a single case folder, when its records do not name one that is there.
    #[arg(long)]
    ct: Option<PathBuf>,
    /// Write the reviewed cases as an nnU-Net dataset into this folder (DatasetNNN_Name) and exit,
    /// instead of serving the page.
    #[arg(long, value_name = "OUT")]
    export_dataset: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let cases = find_case_folders(&args.dir)?;
    if let Some(out) = &args.export_dataset {
        let bar =
            super::progress_bar(cases.len() as u64, "{elapsed_precise} [{bar:40}] {pos}/{len} cases {msg}");
        let summary = nodal_review::export::export_dataset(&cases, out, &|id| {
            bar.set_message(id.to_string());
            bar.inc(1);
        })
        .with_context(|| {
            format!("exporting the reviewed cases of {} to {}", args.dir.display(), out.display())
        })?;
        bar.finish_and_clear();
        if !summary.not_reviewed.is_empty() {
            tracing::warn!("not reviewed, left out: {}", summary.not_reviewed.join(", "));
        }
        let nodes: usize = summary.cases.iter().map(|c| c.accepted + c.unreviewed).sum();
        let negatives: usize = summary.cases.iter().map(|c| c.rejected).sum();
        println!(
            "{} reviewed cases ({nodes} nodes, {negatives} rejected detections as hard negatives) -> {}",
            summary.cases.len(),
            out.display()
        );
        return Ok(());
    }
    if args.ct.is_some() && cases.len() > 1 {
        anyhow::bail!(nodal_review::ReviewError::Folder {
            path: args.dir.clone(),
            reason: format!("--ct names the CT of one case, but this is a cohort of {} cases", cases.len()),
        });
    }
    let n = cases.len();
    let opts = ServeOptions {
        bind: args.bind.clone(),
        allow_remote: args.allow_remote,
        reviewer: args.reviewer,
        ct: args.ct,
    };
    let server = serve(cases, opts)?;
    let url = server.url();
    // The one line a script waits for.
    println!("{url}");
    tracing::info!(
        "{n} case(s) of {} under review; every edit is saved in its case folder. Ctrl-C to stop.",
        args.dir.display()
    );
    if !args.no_open && webbrowser::open(&url).is_err() {
        tracing::info!("no browser opened: open the address above");
    }
    server.run();
    Ok(())
}
