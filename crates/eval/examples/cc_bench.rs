//! Times 3D connected components on a NIfTI mask and optionally writes the labels.
//!
//! `cargo run --release -p nodal-eval --example cc_bench -- MASK.nii [--connectivity 6|18|26]
//! [--repeat N] [--out LABELS.nii]`
//!
//! Prints one JSON line: `{"components": n, "seconds_best": t, "seconds_all": [...], ...}`.
use nodal_nodes::{label_components, Connectivity};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut path = None;
    let mut conn = Connectivity::TwentySix;
    let mut repeat = 3usize;
    let mut out = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--connectivity" => {
                let n: usize = it.next().ok_or("--connectivity needs a value")?.parse()?;
                conn = Connectivity::from_neighbours(n).ok_or("connectivity must be 6, 18 or 26")?;
            }
            "--repeat" => repeat = it.next().ok_or("--repeat needs a value")?.parse()?,
            "--out" => out = Some(it.next().ok_or("--out needs a path")?.clone()),
            p => path = Some(p.to_string()),
        }
    }
    let path = path.ok_or("usage: cc_bench MASK.nii [--connectivity N] [--repeat N] [--out LABELS.nii]")?;
    let mask = nodal_io::read_nifti::<u8>(&path)?;
    let mut times = Vec::new();
    let mut result = None;
    for _ in 0..repeat.max(1) {
        let t = Instant::now();
        let r = label_components(&mask, conn);
        times.push(t.elapsed().as_secs_f64());
        result = Some(r);
    }
    let (labels, n) = result.ok_or("no run")?;
    if let Some(out) = out {
        nodal_io::write_nifti(&labels, &out)?;
    }
    let best = times.iter().copied().fold(f64::INFINITY, f64::min);
    println!(
        "{{\"components\": {n}, \"seconds_best\": {best:.4}, \"seconds_all\": {times:?}, \"threads\": {}, \"dims\": {:?}}}",
        rayon::current_num_threads(),
        mask.dims()
    );
    Ok(())
}
