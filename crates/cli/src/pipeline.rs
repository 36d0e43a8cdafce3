//! The segmentation pipeline shared by `nodal segment` and `nodal demo`: CT -> node probability
//! (CNN, sliding window, on the CT's own grid) -> post-processed instance labels with measurements
//! ([`segment_ct`]); the output files of a segmentation ([`write_segmentation`]) and the report's
//! input ([`report_data`]).
use anyhow::Context;
use indicatif::ProgressBar;
use nodal_core::Volume;
use nodal_net::infer::{predict, InferOptions};
use nodal_net::LoadedModel;
use nodal_nodes::output::{write_nodes_csv, write_nodes_json, Source};
use nodal_nodes::postprocess::{postprocess_probability_filtered, PostProcessed};
use nodal_report::{EvaluationSection, ModelInfo, NodeRecord, ReportData, ScanInfo, StageTiming};
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

/// The model in `--model DIR`, else the default model (see `nodal_net::default_model`).
pub fn load_model_arg(dir: Option<&Path>) -> anyhow::Result<LoadedModel> {
    match dir {
        Some(dir) => nodal_net::load_model(dir),
        None => nodal_net::default_model(),
    }
    .context("loading the model")
}

/// Seconds spent in each stage of [`segment_ct`].
#[derive(Clone, Debug, Default, Serialize)]
pub struct SegmentTimings {
    /// Reorientation, body crop, resampling, normalisation.
    pub preprocess_s: f64,
    /// Sliding-window network evaluation.
    pub network_s: f64,
    /// Probability map back onto the CT grid.
    pub map_back_s: f64,
    /// Threshold, components, size filter, hole filling, measurements.
    pub postprocess_s: f64,
}

/// The result of [`segment_ct`]; every volume is on the input CT's grid.
pub struct Segmentation {
    /// Node probability in [0, 1].
    pub probability: Volume<f32>,
    /// Instance labels (1 = largest short axis), measurements and the post-processing record.
    pub postprocessed: PostProcessed,
    /// Network tiles evaluated (x TTA flips).
    pub n_tiles: usize,
    pub timings: SegmentTimings,
}

/// Segments one CT in HU with `model`: probability on the CT grid, then the protocol's
/// post-processing at the model's threshold (and its component filter, when it has one), measured
/// against the CT's HU values.
pub fn segment_ct(
    ct: &Volume<i16>,
    model: &LoadedModel,
    opts: &InferOptions,
    progress: Option<&ProgressBar>,
) -> anyhow::Result<Segmentation> {
    let pred = predict(model, ct, opts, progress).context("running the network")?;
    // The label map must lie on the CT's own grid: the DICOM SEG references slice k of the source
    // series by `sop_instance_uids[k]`, and the evaluation compares voxel by voxel.
    pred.probability.check_same_grid(ct).context("probability map is not on the CT grid")?;
    let t = Instant::now();
    let cfg = model.config.postprocess_config();
    let postprocessed =
        postprocess_probability_filtered(&pred.probability, Some(ct), &cfg, model.component_filter.as_ref())
            .context("post-processing")?;
    Ok(Segmentation {
        probability: pred.probability,
        postprocessed,
        n_tiles: pred.n_tiles,
        timings: SegmentTimings {
            preprocess_s: pred.timings.preprocess_s,
            network_s: pred.timings.network_s,
            map_back_s: pred.timings.map_back_s,
            postprocess_s: t.elapsed().as_secs_f64(),
        },
    })
}

/// Files written by [`write_segmentation`] (besides the optional probabilities).
pub const SEGMENTATION_FILES: [&str; 4] = ["nodes.nii.gz", "mask.nii.gz", "nodes.json", "nodes.csv"];

/// Writes `nodes.nii.gz` (u16 instance labels), `mask.nii.gz` (u8), `nodes.json`, `nodes.csv` and,
/// with `probabilities`, `probabilities.nii.gz` into `dir`; each file atomically. Returns the names.
pub fn write_segmentation(
    dir: &Path,
    seg: &Segmentation,
    ct_source: &str,
    probabilities: bool,
) -> anyhow::Result<Vec<&'static str>> {
    let pp = &seg.postprocessed;
    let mut outputs = SEGMENTATION_FILES.to_vec();
    let n_max = pp.labels.as_slice().iter().copied().max().unwrap_or(0);
    anyhow::ensure!(n_max <= u16::MAX as u32, "{n_max} nodes do not fit a uint16 label map");
    nodal_io::write_nifti(&pp.labels.map(|l| l as u16), dir.join("nodes.nii.gz"))?;
    nodal_io::write_nifti(&pp.labels.map(|l| u8::from(l > 0)), dir.join("mask.nii.gz"))?;
    if probabilities {
        nodal_io::write_nifti(&seg.probability, dir.join("probabilities.nii.gz"))?;
        outputs.push("probabilities.nii.gz");
    }
    let source = Source {
        labels: Some("nodes.nii.gz".into()),
        ct: Some(ct_source.to_string()),
        input_kind: "label_map".into(),
    };
    write_nodes_json(&dir.join("nodes.json"), &pp.measurements, &source, Some(&pp.report))?;
    write_nodes_csv(&dir.join("nodes.csv"), &pp.measurements)?;
    Ok(outputs)
}

/// Stage timings as the report lists them: `before` (e.g. reading the CT, loading the model), the
/// four stages of [`segment_ct`], then `after`.
pub fn stage_timings(before: &[(&str, f64)], t: &SegmentTimings, after: &[(&str, f64)]) -> Vec<StageTiming> {
    let mid = [
        ("preprocess", t.preprocess_s),
        ("network", t.network_s),
        ("map back to CT grid", t.map_back_s),
        ("post-process + measure", t.postprocess_s),
    ];
    before
        .iter()
        .chain(mid.iter())
        .chain(after.iter())
        .map(|(stage, seconds)| StageTiming { stage: stage.to_string(), seconds: *seconds })
        .collect()
}

/// The report's input for a segmentation of `ct` (described by `source`).
pub fn report_data(
    source: &str,
    ct: &Volume<i16>,
    model: &LoadedModel,
    seg: &Segmentation,
    timings: Vec<StageTiming>,
    evaluation: Option<EvaluationSection>,
) -> ReportData {
    ReportData {
        scan: ScanInfo::from_volume(source, ct),
        model: Some(ModelInfo {
            id: model.config.model_id.clone(),
            version: model.config.version.clone(),
            filter_min_score: model.component_filter.as_ref().map(|f| f.min_score),
        }),
        timings,
        nodes: seg.postprocessed.measurements.iter().map(NodeRecord::from).collect(),
        evaluation,
        created: now_rfc3339(),
        software_version: concat!("nodal ", env!("CARGO_PKG_VERSION")).to_string(),
    }
}

/// The current UTC time as RFC 3339 (seconds), from the system clock.
fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    rfc3339_utc(secs)
}

/// Seconds since the Unix epoch as an RFC 3339 UTC time.
fn rfc3339_utc(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (proleptic Gregorian; H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_matches_gnu_date() {
        // Reference values from `date -u -d @SECS +%FT%TZ`.
        assert_eq!(super::rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339_utc(1_795_000_000), "2026-11-18T11:06:40Z");
        assert_eq!(super::rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
    }
}
