//! Writes a DICOM SEG and SR for synthetic nodes (balls) on the grid of a real DICOM CT series:
//! `cargo run -p nodal-report --example seg_roundtrip -- DICOM_DIR OUT_DIR`.
//!
//! Outputs in OUT_DIR: `nodes.seg.dcm`, `nodes.sr.dcm`, `labels.npy` (uint16, shape [nk, nj, ni],
//! k in the order of `roundtrip.json`'s `sop_instance_uids`), and `roundtrip.json` (balls in LPS mm,
//! the SEG/SR instances, the report summary). `tests/python/test_report_dicom.py` checks them with
//! highdicom.
#[path = "../tests/support/dicom_series.rs"]
mod dicom_series;

use nodal_core::Volume;
use nodal_nodes::measure::{measure_nodes, MeasureOptions};
use nodal_report::seg::{segments_for, write_seg};
use nodal_report::sr::write_sr;
use nodal_report::{summarize, DicomOptions, ReportData, ScanInfo};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Balls as (label, centre as a continuous voxel index (i, j, k), radius mm). Label ids are not in
/// size order, so segment numbers (by short axis) differ from label ids. Ball 3 is cut by the last
/// slice; ball 4 touches few slices.
pub const BALLS: [(u16, [f64; 3], f64); 4] = [
    (1, [150.0, 300.0, 10.0], 6.0),
    (2, [380.0, 260.0, 7.0], 9.5),
    (3, [260.0, 150.0, 18.5], 7.0),
    (4, [100.0, 120.0, 3.0], 3.2),
];

/// Writes a C-order uint16 .npy file.
fn write_npy(path: &Path, vol: &Volume<u16>) -> std::io::Result<()> {
    let [ni, nj, nk] = vol.dims();
    let mut header = format!("{{'descr': '<u2', 'fortran_order': False, 'shape': ({nk}, {nj}, {ni}), }}");
    // Magic (6) + version (2) + length (2) + header, padded with spaces to a multiple of 64, ends in \n.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    f.write_all(b"\x93NUMPY\x01\x00")?;
    f.write_all(&(header.len() as u16).to_le_bytes())?;
    f.write_all(header.as_bytes())?;
    for v in vol.as_slice() {
        f.write_all(&v.to_le_bytes())?;
    }
    f.flush()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        return Err("usage: seg_roundtrip DICOM_DIR OUT_DIR".into());
    }
    let (dicom_dir, out) = (PathBuf::from(&args[1]), PathBuf::from(&args[2]));
    std::fs::create_dir_all(&out)?;
    let (dims, geom, src) = dicom_series::read_series(&dicom_dir);
    let mut labels = Volume::<u16>::zeros(dims, geom);
    let mut balls = Vec::new();
    for (label, c_idx, r_mm) in BALLS {
        let c = geom.index_to_world(c_idx);
        balls.push(serde_json::json!({"node_id": label, "centre_mm": c, "radius_mm": r_mm}));
        for k in 0..dims[2] {
            for j in 0..dims[1] {
                for i in 0..dims[0] {
                    let p = geom.index_to_world([i as f64, j as f64, k as f64]);
                    let d2: f64 = (0..3).map(|a| (p[a] - c[a]).powi(2)).sum();
                    if d2 <= r_mm * r_mm {
                        labels.data_mut()[[k, j, i]] = label;
                    }
                }
            }
        }
    }
    let measured = measure_nodes(&labels, None, &MeasureOptions::default())?;
    let data = ReportData {
        scan: ScanInfo::from_volume(dicom_dir.display().to_string(), &labels),
        model: None,
        timings: vec![],
        nodes: measured
            .into_iter()
            .map(|m| nodal_report::NodeRecord::from(&nodal_detect::Detection::measured(m)))
            .collect(),
        evaluation: None,
        created: "example".into(),
        software_version: env!("CARGO_PKG_VERSION").into(),
    };
    let summary = summarize(&data);
    let segments = segments_for(&summary);
    let opts = DicomOptions::default();
    let seg = write_seg(&out.join("nodes.seg.dcm"), &labels, &segments, &src, &opts)?;
    let sr = write_sr(&out.join("nodes.sr.dcm"), &summary, Some(&seg), &src, &opts)?;
    write_npy(&out.join("labels.npy"), &labels)?;
    let meta = serde_json::json!({
        "sop_instance_uids": src.sop_instance_uids,
        "frame_of_reference_uid": src.frame_of_reference_uid,
        "geometry": geom,
        "balls": balls,
        "seg": seg,
        "sr": sr,
        "summary": summary,
    });
    std::fs::write(out.join("roundtrip.json"), serde_json::to_vec_pretty(&meta)?)?;
    println!(
        "SEG: {} frames, {} segments; SR: {} groups; warnings: {:?}",
        seg.n_frames,
        seg.segments.len(),
        sr.n_groups,
        seg.warnings
    );
    Ok(())
}
