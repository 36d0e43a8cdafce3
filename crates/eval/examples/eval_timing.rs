//! Times the stages of one scan's evaluation: `cargo run --release -p nodal-eval --example
//! eval_timing -- PRED.nii.gz GT.nii.gz [repeats]`.
//!
//! Prints, per stage, the best of `repeats` runs (default 3): decoding the two files row by row
//! without keeping anything (the floor any reader pays), reading them whole, and the public
//! stages on whole volumes (components, axes, surface distances, `evaluate_scan`); then
//! `evaluate_case`, which reads both files into runs and evaluates them, as `nodal evaluate` does.
use nodal_core::Volume;
use nodal_eval::{evaluate_case, evaluate_scan, CaseInput, Prediction};
use nodal_io::NiftiRows;
use std::path::PathBuf;
use std::time::Instant;

fn best<R>(repeats: usize, mut f: impl FnMut() -> R) -> (f64, R) {
    let mut out = None;
    let mut secs = f64::INFINITY;
    for _ in 0..repeats {
        let t = Instant::now();
        let r = f();
        secs = secs.min(t.elapsed().as_secs_f64());
        out = Some(r);
    }
    (secs, out.expect("at least one run"))
}

/// Decodes every row as `T` and drops it: inflate plus conversion.
fn decode_only<T: nodal_core::Voxel>(path: &str) -> usize {
    let mut rows = NiftiRows::<T>::open(path).expect("readable");
    let mut block = Vec::new();
    let mut n = 0;
    loop {
        block.clear();
        if rows.next_rows(&mut block).expect("readable").is_none() {
            break;
        }
        n += block.len();
    }
    n
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !(3..=4).contains(&args.len()) {
        eprintln!("usage: eval_timing PRED GT [repeats]");
        std::process::exit(2);
    }
    let repeats: usize = args.get(3).map_or(3, |s| s.parse().expect("repeats is a number"));
    let (pred_path, gt_path) = (&args[1], &args[2]);
    let line = |name: &str, secs: f64, note: String| println!("{name:<26} {secs:>8.3} s {note}");

    let (s, n) = best(repeats, || decode_only::<u8>(pred_path));
    line("decode pred rows (u8)", s, format!("({n} voxels)"));
    // u16 is the stored type of the benchmark's label maps, which evaluate_case reads as itself
    let (s, _) = best(repeats, || decode_only::<u16>(gt_path));
    line("decode gt rows (u16)", s, String::new());
    let (s, pred) = best(repeats, || nodal_io::read_nifti::<u8>(pred_path).expect("prediction"));
    line("read_nifti pred (u8)", s, String::new());
    let (s, gt) = best(repeats, || nodal_io::read_nifti::<u32>(gt_path).expect("ground truth"));
    line("read_nifti gt (u32)", s, String::new());
    let pred: Volume<u8> = pred;
    let gt: Volume<u32> = gt;

    let (s, (comps, n)) =
        best(repeats, || nodal_nodes::label_components(&pred, nodal_nodes::Connectivity::TwentySix));
    line("label_components pred", s, format!("({n} components)"));
    let (s, _) = best(repeats, || nodal_nodes::measure::axial_axes(&comps));
    line("axial_axes pred", s, String::new());
    let (s, _) = best(repeats, || nodal_nodes::measure::axial_axes(&gt));
    line("axial_axes gt", s, String::new());
    let gt_mask = gt.map(|v| u8::from(v != 0));
    let (s, d) = best(repeats, || {
        nodal_eval::distance::surface_distances(pred.data(), gt_mask.data(), gt.geometry().spacing_mm)
    });
    line("surface_distances (all)", s, format!("(hd {:?})", d.map(|d| d.hd)));
    let (s, r) = best(repeats, || evaluate_scan(Prediction::Mask(&pred), &gt, None).expect("evaluation"));
    line("evaluate_scan (volumes)", s, format!("(recall {:?}, hd {:?})", r.recall, r.hd));
    drop((pred, gt, comps, gt_mask));

    let case = CaseInput {
        case_id: "scan".into(),
        pred: PathBuf::from(pred_path),
        gt: PathBuf::from(gt_path),
        meta: None,
    };
    let (s, c) = best(repeats, || evaluate_case(&case).expect("evaluation"));
    line("evaluate_case (files)", s, format!("(recall {:?}, hd {:?})", c.result.recall, c.result.hd));
    assert_eq!(c.result, r, "evaluate_case and evaluate_scan disagree");
}
