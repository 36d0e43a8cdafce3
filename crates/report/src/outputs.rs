//! Everything a run writes into its output folder, in one call.
use crate::dcm::{DicomOptions, DicomSource};
use crate::rtstruct::{write_rtstruct, RtStructInstance};
use crate::seg::{segments_for, write_seg, SegInstance};
use crate::sr::{write_sr, SrInstance};
use crate::{summarize, write_report, write_report_json, ReportData, ReportError};
use nodal_core::{Label, Volume};
use std::path::{Path, PathBuf};

/// File names inside the output folder.
pub const REPORT_HTML: &str = "report.html";
pub const REPORT_JSON: &str = "report.json";
pub const SEG_FILE: &str = "nodes.seg.dcm";
pub const SR_FILE: &str = "nodes.sr.dcm";
pub const RTSTRUCT_FILE: &str = "nodes.rtstruct.dcm";

/// What [`write_outputs`] wrote.
#[derive(Clone, Debug)]
pub struct WrittenOutputs {
    pub html: PathBuf,
    pub json: PathBuf,
    /// The SEG, when the input was DICOM and at least one node was found.
    pub seg: Option<(PathBuf, SegInstance)>,
    /// The SR, whenever the input was DICOM (stating "none found" without nodes).
    pub sr: Option<(PathBuf, SrInstance)>,
    /// The RT Structure Set, when the input was DICOM and at least one node was found.
    pub rtstruct: Option<(PathBuf, RtStructInstance)>,
}

/// Writes `report.html` and `report.json` into `dir` (created if missing) and, when `dicom` is
/// given, `nodes.sr.dcm` and (with at least one node) `nodes.seg.dcm` and `nodes.rtstruct.dcm`. Every file is written
/// atomically, so re-running into the same folder replaces the previous outputs.
pub fn write_outputs<L: Label>(
    dir: &Path,
    data: &ReportData,
    ct: &Volume<i16>,
    labels: &Volume<L>,
    dicom: Option<&DicomSource>,
    opts: &DicomOptions,
) -> Result<WrittenOutputs, ReportError> {
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Write { path: dir.to_path_buf(), source })?;
    let html = dir.join(REPORT_HTML);
    write_report(&html, data, ct, labels)?;
    let json = dir.join(REPORT_JSON);
    write_report_json(&json, data)?;
    let (mut seg, mut sr, mut rtstruct) = (None, None, None);
    if let Some(src) = dicom {
        // Study and series UIDs the source lacks are generated once here, so that the SEG, SR and
        // RT Structure Set of one run name the same study and source series.
        let (study_instance_uid, series_instance_uid) = crate::dcm::source_uids(src, &mut Vec::new());
        let src = &DicomSource { study_instance_uid, series_instance_uid, ..src.clone() };
        let summary = summarize(data);
        if !summary.nodes.is_empty() {
            let segments = segments_for(&summary);
            let seg_path = dir.join(SEG_FILE);
            seg = Some((seg_path.clone(), write_seg(&seg_path, labels, &segments, src, opts)?));
            let rt_path = dir.join(RTSTRUCT_FILE);
            rtstruct = Some((rt_path.clone(), write_rtstruct(&rt_path, labels, &segments, src, opts)?));
        }
        // Also without nodes (then without a SEG, which cannot be empty): "none found" is a result.
        let sr_path = dir.join(SR_FILE);
        let r = write_sr(&sr_path, &summary, seg.as_ref().map(|(_, s)| s), src, opts)?;
        sr = Some((sr_path, r));
    }
    Ok(WrittenOutputs { html, json, seg, sr, rtstruct })
}
