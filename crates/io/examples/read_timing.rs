//! Times reading a CT (DICOM folder/file or NIfTI) and, optionally, writing and re-reading it as
//! NIfTI, with the slices repeated `tile_k` times along k to reach a full-size scan.
//!
//! `cargo run --release -p nodal-io --example read_timing -- <ct path> [out.nii.gz [tile_k]]`
use ndarray::{concatenate, Axis};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: read_timing <ct path> [out.nii.gz [tile_k]]")?;
    let t = Instant::now();
    let scan = nodal_io::read_ct(&path)?;
    let secs = t.elapsed().as_secs_f64();
    let (lo, hi) = scan.hu.min_max();
    println!(
        "read {path}: dims {:?}, spacing {:?} mm, HU {lo}..{hi}: {secs:.3} s",
        scan.hu.dims(),
        scan.hu.geometry().spacing_mm
    );
    if let Some(out) = args.next() {
        let tile: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1);
        let views = vec![scan.hu.data(); tile];
        let vol = nodal_core::Volume::new(concatenate(Axis(0), &views)?, *scan.hu.geometry())?;
        let t = Instant::now();
        nodal_io::write_nifti(&vol, &out)?;
        let size = std::fs::metadata(&out)?.len();
        println!(
            "write {out}: dims {:?}, {:.1} MB on disk: {:.3} s",
            vol.dims(),
            size as f64 / 1e6,
            t.elapsed().as_secs_f64()
        );
        let t = Instant::now();
        let back = nodal_io::read_nifti::<i16>(&out)?;
        println!("read {out}: {:.3} s", t.elapsed().as_secs_f64());
        if back.as_slice() != vol.as_slice() {
            return Err("round trip is not bit-exact".into());
        }
    }
    Ok(())
}
