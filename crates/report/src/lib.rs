//! Reports for radiologists and researchers: a self-contained HTML report, DICOM SEG and DICOM SR.
//!
//! * [`ReportData`] — what the pipeline measured (scan, model, timings, [`NodeRecord`]s, optional
//!   [`EvaluationSection`]); filled by the caller. [`summarize`] derives the [`ReportSummary`]
//!   (nodes ranked by short axis, counts by RECIST category and side, N-staging [`Flag`]s) that the
//!   HTML shows; [`write_report_json`] saves both.
//! * [`render_report`] / [`write_report`] — one HTML file that opens offline: overview (coronal MIP
//!   with nodes coloured by category), node table, per-node axial and coronal thumbnails (W400/L40,
//!   contour, short/long axis lines, scale bar) in radiological display convention ([`views`]).
//! * [`seg`] — DICOM Segmentation (binary, one segment per node) referencing the source series.
//! * [`sr`] — DICOM Comprehensive 3D SR, TID 1500 measurement report with one TID 1411 group per node
//!   (short axis, long axis, volume) referencing its segment.
//!
//! * [`rtstruct`] — DICOM RT Structure Set, one ROI of closed planar contours per node.
//!
//! * [`write_outputs`] — all of the above into one folder (`report.html`, `report.json`, and for
//!   DICOM input `nodes.seg.dcm`, `nodes.sr.dcm` and `nodes.rtstruct.dcm`).
//!
//! Every file is written atomically (temporary file + rename), so re-running into the same folder
//! never leaves a half-written output.
//!
//! ```no_run
//! # fn demo(ct: &nodal_core::Volume<i16>, labels: &nodal_core::Volume<u32>, data: &nodal_report::ReportData)
//! # -> Result<(), nodal_report::ReportError> {
//! nodal_report::write_report(std::path::Path::new("out/report.html"), data, ct, labels)?;
//! # Ok(()) }
//! ```

pub mod atomic;
mod data;
mod dcm;
mod error;
mod html;
mod outputs;
pub mod raster;
pub mod rtstruct;
pub mod seg;
pub mod sr;
pub mod uid;
pub mod views;

pub use data::{
    summarize, EvaluationSection, Figure, Flag, ModelInfo, NodeRadsSize, NodeRecord, RankedNode,
    RecistCategory, RecistCounts, ReportData, ReportSummary, ScanInfo, Side, SideCounts, StageTiming, Table,
    MANY_NODES, N3_GREATEST_DIMENSION_MM,
};
pub use dcm::{DicomOptions, DicomSource};
pub use error::ReportError;
pub use html::{escape, png_bytes, render_report, write_report, write_report_json, MAX_THUMBNAILS};
pub use outputs::{
    write_outputs, WrittenOutputs, REPORT_HTML, REPORT_JSON, RTSTRUCT_FILE, SEG_FILE, SR_FILE,
};
