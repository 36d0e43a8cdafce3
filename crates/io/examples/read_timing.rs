//! Times reading a CT (DICOM folder/file or NIfTI) and, optionally, a NIfTI write/read round trip.
//!
//! `cargo run --release -p nodal-io --example read_timing -- <path> [out.nii.gz]`
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: read_timing <ct path> [out.nii.gz]")?;
    let t = Instant::now();
    let scan = nodal_io::read_ct(&path)?;
    let (lo, hi) = scan.hu.min_max();
    println!(
        "read {path}: dims {:?}, spacing {:?} mm, HU {lo}..{hi}: {:.3} s",
        scan.hu.dims(),
        scan.hu.geometry().spacing_mm,
        t.elapsed().as_secs_f64()
    );
    if let Some(out) = args.next() {
        let t = Instant::now();
        nodal_io::write_nifti(&scan.hu, &out)?;
        let size = std::fs::metadata(&out)?.len();
        println!("write {out}: {:.1} MB: {:.3} s", size as f64 / 1e6, t.elapsed().as_secs_f64());
        let t = Instant::now();
        let back = nodal_io::read_nifti::<i16>(&out)?;
        println!("read {out}: {:.3} s", t.elapsed().as_secs_f64());
        assert_eq!(back.as_slice(), scan.hu.as_slice(), "round trip must be bit-exact");
    }
    Ok(())
}
