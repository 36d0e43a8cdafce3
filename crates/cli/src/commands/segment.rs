//! `nodal segment`: CT -> node probability (CNN, sliding window) -> instance labels and
//! measurements (`nodal_detect::segment_ct`).
//!
//! Outputs in `-o DIR`: `nodes.nii.gz` (u16 instance labels, 1 = largest short axis), `mask.nii.gz`
//! (u8), optional `probabilities.nii.gz` (f32), `nodes.json` / `nodes.csv`, `segment.json` (model,
//! timings per stage, configuration), `report.html` / `report.json` (`nodal_report`), and for DICOM
//! input with at least one node `nodes.seg.dcm` (DICOM SEG) and `nodes.sr.dcm` (TID 1500 SR). The
//! folder is written as one unit (`nodal_core::output`): checked and locked before any work, staged
//! beside DIR, committed when every file is complete.
use crate::report_input::{report_data, stage_timings};
use anyhow::Context;
use indicatif::ProgressBar;
use nodal_core::output::OutputDir;
use nodal_core::vocab::MIN_SHORT_AXIS_MM;
use nodal_detect::model::FILTER_FILE;
use nodal_detect::{segment_ct, write_segmentation, Model};
use nodal_net::infer::InferOptions;
use nodal_report::{write_outputs, DicomOptions, DicomSource, REPORT_HTML, REPORT_JSON, SEG_FILE, SR_FILE};
use serde::Serialize;
use std::path::PathBuf;
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
    /// The component filter's cut-off, instead of the model's own (a score in [0, 1]): lower finds
    /// more nodes and more false ones, 0 keeps every component the filter scores. Each node's score
    /// is in nodes.json / nodes.csv whatever the cut-off, so a reader can also rank by it.
    #[arg(long, value_name = "SCORE")]
    pub filter_min_score: Option<f64>,
    /// Tiles per network call: more keep a GPU busier.
    #[arg(long, default_value_t = InferOptions::default().batch as u64, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub batch: u64,
    #[command(flatten)]
    pub device: super::DeviceArg,
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
    device: &'static str,
    batch: usize,
    tiles: usize,
    ct_dims: [usize; 3],
    ct_spacing_mm: [f64; 3],
    timings_s: Timings,
    postprocess: &'a nodal_detect::PostProcessReport,
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

/// Every file `segment` can write into its folder (optional ones included): a re-run replaces
/// these and keeps anything else there.
const PRODUCTS: &[&str] = &[
    "nodes.nii.gz",
    "mask.nii.gz",
    "probabilities.nii.gz",
    "nodes.json",
    "nodes.csv",
    REPORT_HTML,
    REPORT_JSON,
    SEG_FILE,
    SR_FILE,
    "segment.json",
];

pub fn run(args: Args) -> anyhow::Result<()> {
    args.device.select()?;
    // The output folder is checked and locked before any work.
    let out = OutputDir::open(&args.out)?;
    let t0 = Instant::now();
    let ct = nodal_io::read_ct(&args.ct).with_context(|| format!("reading CT {}", args.ct.display()))?;
    for w in &ct.warnings {
        eprintln!("warning: {w}");
    }
    let t_read = t0.elapsed().as_secs_f64();

    let t = Instant::now();
    let mut model = super::load_model_arg(args.model.as_deref())?;
    if let Some(min_score) = args.filter_min_score {
        set_filter_cutoff(&mut model, min_score)?;
    }
    let t_model = t.elapsed().as_secs_f64();

    let bar = tile_bar();
    let opts =
        InferOptions { tile_out: args.tile, tta: args.tta, batch: args.batch as usize, ..Default::default() };
    let seg = segment_ct(&ct.hu, &model, &opts, Some(&bar))
        .with_context(|| format!("segmenting {}", args.ct.display()))?;
    bar.finish_and_clear();
    let pp = &seg.detected;

    let t = Instant::now();
    let input = args.ct.display().to_string();
    let tmp = out.staging();
    let result = (|| -> anyhow::Result<Vec<&'static str>> {
        let mut outputs = write_segmentation(tmp, &seg, &input, args.probabilities)?;
        let timings = stage_timings(&[("read CT", t_read), ("load model", t_model)], &seg.timings, &[]);
        let data = report_data(&input, &ct.hu, &model, &seg, timings, None);
        let dicom = ct.dicom.as_ref().map(DicomSource::from);
        let written =
            write_outputs(tmp, &data, &ct.hu, &pp.labels, dicom.as_ref(), &DicomOptions::default())?;
        outputs.extend([REPORT_HTML, REPORT_JSON]);
        if written.seg.is_some() {
            outputs.push(SEG_FILE);
        }
        if written.sr.is_some() {
            outputs.push(SR_FILE);
        }
        outputs.push("segment.json");
        Ok(outputs)
    })();
    let outputs = result.with_context(|| format!("writing outputs for {}", args.out.display()))?;
    let t_write = t.elapsed().as_secs_f64();
    let record = SegmentRecord {
        schema: "nodal.segment/1",
        nodal_version: env!("CARGO_PKG_VERSION"),
        input,
        model_id: &model.config().model_id,
        model_version: &model.config().version,
        model_folder: model.folder().display().to_string(),
        model_config: model.config(),
        tta: args.tta,
        device: nodal_net::selected_compute().name(),
        batch: opts.batch,
        tiles: seg.n_tiles,
        ct_dims: ct.hu.dims(),
        ct_spacing_mm: ct.hu.geometry().spacing_mm,
        timings_s: Timings {
            read_ct: t_read,
            load_model: t_model,
            preprocess: seg.timings.preprocess_s,
            network: seg.timings.network_s,
            map_back: seg.timings.map_back_s,
            postprocess: seg.timings.postprocess_s,
            write: t_write,
            total: t0.elapsed().as_secs_f64(),
        },
        postprocess: &pp.report,
        outputs,
    };
    let json = serde_json::to_string_pretty(&record)?;
    std::fs::write(tmp.join("segment.json"), json).context("writing segment.json")?;
    out.commit(PRODUCTS)?;
    let cutoff = pp.report.filter_min_score.map(|s| format!(" at cut-off {s}")).unwrap_or_default();
    println!(
        "{}: {} nodes ({} removed below {MIN_SHORT_AXIS_MM} mm short axis, {} below the peak-probability \
         cut-off, {} by the component filter{cutoff}) in {:.1} s -> {} (report: {})",
        args.ct.display(),
        pp.report.n_nodes,
        pp.report.n_removed_small,
        pp.report.n_removed_low_peak,
        pp.report.n_removed_by_filter,
        t0.elapsed().as_secs_f64(),
        args.out.display(),
        args.out.join(REPORT_HTML).display()
    );
    Ok(())
}

/// Replaces the cut-off of `model`'s component filter by `min_score` (`--filter-min-score`).
fn set_filter_cutoff(model: &mut Model, min_score: f64) -> anyhow::Result<()> {
    anyhow::ensure!(
        (0.0..=1.0).contains(&min_score),
        "--filter-min-score {min_score}: must be a score in [0, 1]"
    );
    let folder = model.folder().display().to_string();
    let filter = model.filter.as_mut().with_context(|| {
        format!("--filter-min-score: the model in {folder} has no component filter ({FILTER_FILE})")
    })?;
    filter.min_score = min_score;
    Ok(())
}

/// Progress bar over the network's tiles.
pub(crate) fn tile_bar() -> ProgressBar {
    super::progress_bar(0, "{elapsed_precise} [{bar:40}] {pos}/{len} tiles {msg} (eta {eta})")
}
