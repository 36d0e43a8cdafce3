//! `nodal segment`: CT -> node probability (CNN, sliding window) -> instance labels and
//! measurements (`nodal_detect::segment_ct`).
//!
//! Outputs in `-o DIR`: `nodes.nii.gz` (u16 instance labels, 1 = largest short axis), `mask.nii.gz`
//! (u8), optional `probabilities.nii.gz` (f32), `nodes.json` / `nodes.csv`, `segment.json` (model,
//! timings per stage, configuration), `report.html` / `report.json` (`nodal_report`), and for DICOM
//! input `nodes.sr.dcm` (TID 1500 SR; it says so when no node was found) and, with at least one
//! node, `nodes.seg.dcm` (DICOM SEG), in series of their own per run. The
//! folder is written as one unit (`nodal_core::output`): checked and locked before any work, staged
//! beside DIR, committed when every file is complete.
//!
//! A cohort (`nodal_io::find_inputs`: a folder of NIfTI files or of DICOM studies, or a list file)
//! gets one such folder per case in `DIR`, with the model loaded once (`super::cohort`: resume,
//! `--shard`, a failed case reported while the rest go on).
use super::cohort::{record_matches, run_cohort, CaseJob, CohortArgs};
use crate::report_input::{report_data, stage_timings};
use anyhow::Context;
use indicatif::ProgressBar;
use nodal_core::output::OutputDir;
use nodal_core::vocab::MIN_SHORT_AXIS_MM;
use nodal_detect::model::FILTER_FILE;
use nodal_detect::{segment_ct, write_segmentation, Model};
use nodal_io::{CaseSource, Inputs};
use nodal_net::infer::InferOptions;
use nodal_report::{
    write_outputs, DicomOptions, DicomSource, REPORT_HTML, REPORT_JSON, RTSTRUCT_FILE, SEG_FILE, SR_FILE,
};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Arguments of `nodal segment`.
#[derive(clap::Args)]
pub struct Args {
    /// CT: a NIfTI file or DICOM study folder; or a cohort: a folder of NIfTI files, a folder of
    /// DICOM study folders, or a text file listing inputs one per line (one case folder each in -o).
    pub ct: PathBuf,
    #[command(flatten)]
    pub series: super::SeriesArg,
    /// Output folder (created; existing output files in it are replaced). For a cohort: the folder
    /// of the case folders, the cohort's nodes.csv and the run summary (cohort.json).
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
    #[command(flatten)]
    pub cohort: CohortArgs,
}

#[derive(Serialize)]
struct SegmentRecord<'a> {
    schema: &'static str,
    nodal_version: &'static str,
    input: String,
    /// How the DICOM series was chosen among several (none named with --series).
    series_choice: Option<&'a nodal_io::SeriesChoice>,
    /// The body regions the scan shows, how much of the neck, and the warnings.
    body_coverage: &'a nodal_nodes::coverage::BodyCoverage,
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
    RTSTRUCT_FILE,
    SEGMENT_RECORD,
];

/// The run's record in each output folder (and what a cohort rerun looks for).
const SEGMENT_RECORD: &str = "segment.json";

pub fn run(args: Args) -> anyhow::Result<()> {
    args.device.select()?;
    match super::cohort::find_inputs(&args.ct, &args.out)? {
        Inputs::One(path) => {
            // The output folder is checked and locked before any work.
            let out = OutputDir::open(&args.out)?;
            let mut job = SegmentJob::new(&args, true)?;
            let found = job.segment(&path, out)?;
            println!("{}: {found}", path.display());
            Ok(())
        }
        Inputs::Cohort(cases) => {
            if let Some(uid) = &args.series.uid {
                return Err(nodal_io::IoError::Cases {
                    path: args.ct.clone(),
                    reason: format!(
                        "--series {uid} names a series of one scan, but this is a cohort of {} cases",
                        cases.len()
                    ),
                }
                .into());
            }
            let mut job = SegmentJob::new(&args, false)?;
            run_cohort(&mut job, &args.ct, &cases, &args.out, &args.cohort)
        }
    }
}

/// `segment`'s work on one scan, with the model loaded once for a cohort.
struct SegmentJob<'a> {
    args: &'a Args,
    model: Model,
    t_model: f64,
    opts: InferOptions,
    /// Draw the network's tile bar (one scan; a cohort draws its own bar over cases).
    tile_bar: bool,
}

impl<'a> SegmentJob<'a> {
    fn new(args: &'a Args, tile_bar: bool) -> anyhow::Result<Self> {
        let t = Instant::now();
        let mut model = super::load_model_arg(args.model.as_deref())?;
        if let Some(min_score) = args.filter_min_score {
            set_filter_cutoff(&mut model, min_score)?;
        }
        let opts = InferOptions {
            tile_out: args.tile,
            tta: args.tta,
            batch: args.batch as usize,
            ..Default::default()
        };
        Ok(SegmentJob { args, model, t_model: t.elapsed().as_secs_f64(), opts, tile_bar })
    }

    /// Segments the CT at `ct_path` into `out`; returns what it found in one line.
    fn segment(&mut self, ct_path: &Path, out: OutputDir) -> anyhow::Result<String> {
        let (args, model, opts) = (self.args, &self.model, &self.opts);
        let t0 = Instant::now();
        let ct = args.series.read_ct(ct_path)?;
        let t_read = t0.elapsed().as_secs_f64();

        let bar = if self.tile_bar { tile_bar() } else { ProgressBar::hidden() };
        let seg = segment_ct(&ct.hu, model, opts, Some(&bar))
            .with_context(|| format!("segmenting {}", ct_path.display()))?;
        bar.finish_and_clear();
        for w in &seg.coverage.warnings {
            tracing::warn!("{}: {w}", ct_path.display());
        }
        let pp = &seg.detected;

        let t = Instant::now();
        let input = ct_path.display().to_string();
        let tmp = out.staging();
        let result = (|| -> anyhow::Result<Vec<&'static str>> {
            let mut outputs = write_segmentation(tmp, &seg, &input, args.probabilities)?;
            let timings =
                stage_timings(&[("read CT", t_read), ("load model", self.t_model)], &seg.timings, &[]);
            let mut data = report_data(&input, &ct.hu, model, &seg, timings, None);
            if let Some(refs) = &ct.dicom {
                data.scan = data.scan.with_instance_numbers(&refs.instance_numbers);
            }
            let dicom = ct.dicom.as_ref().map(DicomSource::from);
            let c = model.config();
            let dicom_opts = DicomOptions::for_run(
                Some((c.model_id.clone(), c.version.clone())),
                nodal_core::time::UtcTime::now(),
            );
            let written = write_outputs(tmp, &data, &ct.hu, &pp.labels, dicom.as_ref(), &dicom_opts)?;
            outputs.extend([REPORT_HTML, REPORT_JSON]);
            if written.seg.is_some() {
                outputs.push(SEG_FILE);
            }
            if written.sr.is_some() {
                outputs.push(SR_FILE);
            }
            if written.rtstruct.is_some() {
                outputs.push(RTSTRUCT_FILE);
            }
            outputs.push(SEGMENT_RECORD);
            Ok(outputs)
        })();
        let outputs = result.with_context(|| format!("writing outputs for {}", out.out().display()))?;
        let t_write = t.elapsed().as_secs_f64();
        let record = SegmentRecord {
            schema: "nodal.segment/1",
            nodal_version: env!("CARGO_PKG_VERSION"),
            input,
            series_choice: ct.series_choice.as_ref(),
            body_coverage: &seg.coverage,
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
                load_model: self.t_model,
                preprocess: seg.timings.preprocess_s,
                network: seg.timings.network_s,
                map_back: seg.timings.map_back_s,
                postprocess: seg.timings.postprocess_s,
                write: t_write,
                total: t0.elapsed().as_secs_f64() + self.t_model,
            },
            postprocess: &pp.report,
            outputs,
        };
        let json = serde_json::to_string_pretty(&record)?;
        std::fs::write(tmp.join(SEGMENT_RECORD), json).context("writing segment.json")?;
        let out_path = out.out().to_path_buf();
        out.commit(PRODUCTS)?;
        let cutoff = pp.report.filter_min_score.map(|s| format!(" at cut-off {s}")).unwrap_or_default();
        Ok(format!(
            "{} nodes ({} removed below {MIN_SHORT_AXIS_MM} mm short axis, {} below the peak-probability \
             cut-off, {} by the component filter{cutoff}) in {:.1} s -> {} (report: {})",
            pp.report.n_nodes,
            pp.report.n_removed_small,
            pp.report.n_removed_low_peak,
            pp.report.n_removed_by_filter,
            t0.elapsed().as_secs_f64(),
            out_path.display(),
            out_path.join(REPORT_HTML).display()
        ))
    }
}

impl CaseJob for SegmentJob<'_> {
    fn command(&self) -> &'static str {
        "segment"
    }

    /// Done when the case folder's segment.json records this input and this model.
    fn is_done(&self, case: &CaseSource, folder: &Path) -> bool {
        let c = self.model.config();
        let input = case.path.display().to_string();
        record_matches(
            folder,
            SEGMENT_RECORD,
            &[("/input", &input), ("/model_id", &c.model_id), ("/model_version", &c.version)],
        )
    }

    fn run(&mut self, case: &CaseSource, out: OutputDir) -> anyhow::Result<String> {
        self.segment(&case.path, out)
    }
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
