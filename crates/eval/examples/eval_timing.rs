//! Times the stages of one scan's evaluation: `cargo run --release -p nodal-eval --example
//! eval_timing -- PRED.nii.gz GT.nii.gz`.
use nodal_core::Volume;
use nodal_eval::{evaluate_scan, Prediction};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: eval_timing PRED GT");
        std::process::exit(2);
    }
    let t = Instant::now();
    let pred: Volume<u8> = nodal_io::read_nifti(&args[1]).expect("prediction");
    println!("read pred      {:>8.3} s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let gt: Volume<u32> = nodal_io::read_nifti(&args[2]).expect("ground truth");
    println!("read gt        {:>8.3} s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let (comps, n) = nodal_nodes::label_components(&pred, nodal_nodes::Connectivity::TwentySix);
    println!("components     {:>8.3} s ({n})", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let _ = nodal_nodes::measure::axial_axes(&comps);
    println!("axes pred      {:>8.3} s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let _ = nodal_nodes::measure::axial_axes(&gt);
    println!("axes gt        {:>8.3} s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let d = nodal_eval::distance::surface_distances(
        pred.data(),
        gt.map(|v| u8::from(v != 0)).data(),
        gt.geometry().spacing_mm,
    );
    println!("distances      {:>8.3} s {:?}", t.elapsed().as_secs_f64(), d.map(|d| d.hd));
    let t = Instant::now();
    let r = evaluate_scan(Prediction::Mask(&pred), &gt, None).expect("evaluation");
    println!("evaluate_scan  {:>8.3} s (recall {:?})", t.elapsed().as_secs_f64(), r.recall);
}
