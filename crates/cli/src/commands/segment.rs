//! `nodal segment`: CT -> node probability (CNN, sliding window) -> instance labels and
//! measurements (`nodal_nodes::postprocess`).
//!
//! Outputs in `-o DIR`: `nodes.nii.gz` (u16 instance labels, 1 = largest short axis), `mask.nii.gz`
//! (u8), optional `probabilities.nii.gz` (f32), `nodes.json` / `nodes.csv` and `segment.json` (model,
//! timings per stage, configuration). Everything is written into a temporary folder next to DIR and
//! moved into place only when all files are complete, so a failure leaves nothing half-written.
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use nodal_net::infer::{predict, InferOptions};
use nodal_nodes::output::{write_nodes_csv, write_nodes_json, Source};
use nodal_nodes::postprocess::{postprocess_probability, PostProcessConfig};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Arguments of `nodal segment`.
#[derive(clap::Args)]
pub struct Args {
    /// CT: NIfTI file or DICOM folder.
    pub ct: PathBuf,
    /// Output folder (created; existing output files in it are replaced).
    #[arg(short = 'o', long)]
    pub out: PathBuf,
    /// Model folder (config.json + model.safetensors). Default: $NODAL_MODEL, else models/default
    /// beside the executable or in the source tree.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Also write probabilities.nii.gz (float32 on the CT grid).
    #[arg(long)]
    pub probabilities: bool,
    /// Mirror test-time augmentation (about 4x the network time).
    #[arg(long)]
    pub tta: bool,
    /// Inference tile edge in model voxels (default: the model's).
    #[arg(long)]
    pub tile: Option<usize>,
}

#[derive(Serialize)]
struct SegmentRecord<'a> {
    schema: &'static str,
    nodal_version: &'static str,
    input: String,
    model_id: &'a str,
    model_version: &'a str,
    model_folder: String,
    model_config: &'a nodal_net::ModelConfig,
    tta: bool,
    tiles: usize,
    ct_dims: [usize; 3],
    ct_spacing_mm: [f64; 3],
    timings_s: Timings,
    postprocess: &'a nodal_nodes::postprocess::PostProcessReport,
    outputs: Vec<&'static str>,
}

#[derive(Serialize)]
struct Timings {
    read_ct: f64,
    load_model: f64,
    preprocess: f64,
    network: f64,
    map_back: f64,
    postprocess: f64,
    write: f64,
    total: f64,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let ct = nodal_io::read_ct(&args.ct).with_context(|| format!("reading CT {}", args.ct.display()))?;
    let t_read = t0.elapsed().as_secs_f64();

    let t = Instant::now();
    let model = match &args.model {
        Some(dir) => nodal_net::load_model(dir),
        None => nodal_net::default_model(),
    }
    .context("loading the model")?;
    let t_model = t.elapsed().as_secs_f64();

    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} tiles (eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let opts = InferOptions { tile_out: args.tile, tta: args.tta, ..Default::default() };
    let pred = predict(&model, &ct.hu, &opts, Some(&bar))
        .with_context(|| format!("segmenting {}", args.ct.display()))?;
    bar.finish_and_clear();

    let t = Instant::now();
    let pp_cfg = PostProcessConfig { threshold: model.config.threshold, ..Default::default() };
    let pp = postprocess_probability(&pred.probability, Some(&ct.hu), &pp_cfg).context("post-processing")?;
    let t_pp = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let tmp = staging_dir(&args.out)?;
    let result = (|| -> anyhow::Result<Vec<&'static str>> {
        let mut outputs = vec!["nodes.nii.gz", "mask.nii.gz", "nodes.json", "nodes.csv", "segment.json"];
        let n_max = pp.labels.as_slice().iter().copied().max().unwrap_or(0);
        anyhow::ensure!(n_max <= u16::MAX as u32, "{n_max} nodes do not fit a uint16 label map");
        nodal_io::write_nifti(&pp.labels.map(|l| l as u16), tmp.join("nodes.nii.gz"))?;
        nodal_io::write_nifti(&pp.labels.map(|l| u8::from(l > 0)), tmp.join("mask.nii.gz"))?;
        if args.probabilities {
            nodal_io::write_nifti(&pred.probability, tmp.join("probabilities.nii.gz"))?;
            outputs.push("probabilities.nii.gz");
        }
        let source = Source {
            labels: Some("nodes.nii.gz".into()),
            ct: Some(args.ct.display().to_string()),
            input_kind: "label_map".into(),
        };
        write_nodes_json(&tmp.join("nodes.json"), &pp.measurements, &source, Some(&pp.report))?;
        write_nodes_csv(&tmp.join("nodes.csv"), &pp.measurements)?;
        Ok(outputs)
    })();
    let outputs = match result {
        Ok(o) => o,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e.context(format!("writing outputs for {}", args.out.display())));
        }
    };
    let t_write = t.elapsed().as_secs_f64();
    let record = SegmentRecord {
        schema: "nodal.segment/1",
        nodal_version: env!("CARGO_PKG_VERSION"),
        input: args.ct.display().to_string(),
        model_id: &model.config.model_id,
        model_version: &model.config.version,
        model_folder: model.folder.display().to_string(),
        model_config: &model.config,
        tta: args.tta,
        tiles: pred.n_tiles,
        ct_dims: ct.hu.dims(),
        ct_spacing_mm: ct.hu.geometry().spacing_mm,
        timings_s: Timings {
            read_ct: t_read,
            load_model: t_model,
            preprocess: pred.timings.preprocess_s,
            network: pred.timings.network_s,
            map_back: pred.timings.map_back_s,
            postprocess: t_pp,
            write: t_write,
            total: t0.elapsed().as_secs_f64(),
        },
        postprocess: &pp.report,
        outputs,
    };
    let json = serde_json::to_string_pretty(&record)?;
    if let Err(e) = std::fs::write(tmp.join("segment.json"), json) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(anyhow::Error::new(e).context("writing segment.json"));
    }
    commit(&tmp, &args.out, &record.outputs)?;
    println!(
        "{}: {} nodes ({} removed below 4.5 mm short axis) in {:.1} s -> {}",
        args.ct.display(),
        pp.report.n_nodes,
        pp.report.n_removed_small,
        t0.elapsed().as_secs_f64(),
        args.out.display()
    );
    Ok(())
}

/// A fresh staging folder beside `out` (same file system, so the final moves are renames).
fn staging_dir(out: &Path) -> anyhow::Result<PathBuf> {
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "out".into());
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    Ok(tmp)
}

/// Moves the finished files from `tmp` into `out` (each a rename) and removes `tmp`. A stale
/// `probabilities.nii.gz` from an earlier run is removed when this run wrote none, so the folder
/// always describes one run.
fn commit(tmp: &Path, out: &Path, files: &[&str]) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    for f in files {
        std::fs::rename(tmp.join(f), out.join(f))
            .with_context(|| format!("moving {f} into {}", out.display()))?;
    }
    if !files.contains(&"probabilities.nii.gz") {
        let _ = std::fs::remove_file(out.join("probabilities.nii.gz"));
    }
    let _ = std::fs::remove_dir_all(tmp);
    Ok(())
}
