//! Chooses a model's peak-probability cut-off (`min_peak_probability` in its `config.json`) on
//! tuning cases: one inference per case, then the evaluation protocol at each cut-off. Prints one
//! JSON line per cut-off and the chosen one: the highest recall with at most `MAX_FP` false
//! positives per scan (ties: fewer false positives). Use cases the model was neither trained nor
//! will be validated on.
//! `cargo run --release -p nodal-net --example tune_peak -- MODEL_DIR MAX_FP CT1 LABELS1 [CT2 LABELS2 ...]`
use nodal_net::train::{validate_peak_cutoffs, ValCase};

const CUTOFFS: [f32; 10] = [0.9, 0.95, 0.98, 0.99, 0.995, 0.997, 0.998, 0.999, 0.9995, 0.9998];

fn main() {
    let a: Vec<String> = std::env::args().collect();
    assert!(a.len() >= 5 && a.len() % 2 == 1, "usage: tune_peak MODEL_DIR MAX_FP (CT LABELS)+");
    let model = nodal_net::load_model(a[1].as_ref()).expect("model");
    let max_fp: f64 = a[2].parse().expect("MAX_FP must be a number");
    let cases: Vec<ValCase> = a[3..]
        .chunks(2)
        .map(|p| ValCase {
            id: p[0].clone(),
            ct: nodal_io::read_ct(&p[0]).expect("ct").hu,
            labels: nodal_io::read_nifti::<u16>(&p[1]).expect("labels"),
        })
        .collect();
    let cutoffs: Vec<Option<f32>> = std::iter::once(None).chain(CUTOFFS.iter().map(|&c| Some(c))).collect();
    let t = std::time::Instant::now();
    let metrics = validate_peak_cutoffs(&model, &cases, None, &cutoffs).expect("validate");
    for (c, m) in cutoffs.iter().zip(&metrics) {
        println!("{}", serde_json::json!({ "min_peak_probability": c, "metrics": m }));
    }
    let best =
        cutoffs.iter().zip(&metrics).filter(|(_, m)| m.fp_per_scan <= max_fp).max_by(|a, b| {
            a.1.recall.total_cmp(&b.1.recall).then(b.1.fp_per_scan.total_cmp(&a.1.fp_per_scan))
        });
    match best {
        Some((c, m)) => println!(
            "chosen min_peak_probability {c:?}: recall {:.3}, {:.2} FP/scan, Dice {:?}",
            m.recall, m.fp_per_scan, m.dice
        ),
        None => println!("no cut-off reaches {max_fp} FP/scan"),
    }
    eprintln!("{} cases in {:.1} s", cases.len(), t.elapsed().as_secs_f64());
}
