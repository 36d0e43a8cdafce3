//! The report's input for a segmentation: glue between `nodal-detect`'s result and
//! `nodal-report`'s [`ReportData`], shared by `nodal segment` and `nodal demo`.
use nodal_core::Volume;
use nodal_detect::segment::SegmentTimings;
use nodal_detect::{Model, Segmentation};
use nodal_report::{EvaluationSection, ModelInfo, NodeRecord, ReportData, ScanInfo, StageTiming};

/// Stage timings as the report lists them: `before` (e.g. reading the CT, loading the model), the
/// four stages of `segment_ct`, then `after`.
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
    model: &Model,
    seg: &Segmentation,
    timings: Vec<StageTiming>,
    evaluation: Option<EvaluationSection>,
) -> ReportData {
    ReportData {
        scan: ScanInfo::from_volume(source, ct).with_coverage(seg.coverage.clone()),
        model: Some(ModelInfo {
            id: model.config().model_id.clone(),
            version: model.config().version.clone(),
            filter_min_score: model.filter.as_ref().map(|f| f.min_score),
        }),
        timings,
        nodes: seg.detected.detections.iter().map(NodeRecord::from).collect(),
        evaluation,
        created: nodal_core::time::UtcTime::now().rfc3339(),
        software_version: env!("CARGO_PKG_VERSION").to_string(),
    }
}
