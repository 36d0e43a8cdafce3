//! Measures an instance label map stored as NIfTI and prints the measurements as JSON (a list of
//! `NodeMeasurement`). Used by the Python cross-checks.
//!
//! `cargo run -p nodal-eval --example measure_nii -- LABELS.nii [CT.nii]`
use nodal_nodes::measure::{measure_nodes, MeasureOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args.first().ok_or("usage: measure_nii LABELS.nii [CT.nii]")?;
    let labels = nodal_io::read_nifti::<u32>(path)?;
    let ct = match args.get(1) {
        Some(p) => Some(nodal_io::read_nifti::<i16>(p)?),
        None => None,
    };
    let m = measure_nodes(&labels, ct.as_ref(), &MeasureOptions::default())?;
    println!("{}", serde_json::to_string(&m)?);
    Ok(())
}
