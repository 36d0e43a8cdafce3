//! Chooses a model's operating point — voxel `threshold` and component `min_peak_probability` in
//! its `config.json` — on tuning cases: one inference per case, then the evaluation protocol at each
//! point of a grid. Prints one JSON line per point and the chosen one: the highest recall with at
//! most `MAX_FP` false positives per scan and a Dice of at least `MIN_DICE` (ties: fewer false
//! positives). Use cases the model was not trained on and that will not validate it.
//! `cargo run --release -p nodal-net --example tune_operating_point -- MODEL_DIR MAX_FP MIN_DICE CT1 LABELS1 [CT2 LABELS2 ...]`
//! With `NODAL_TTA=1` inference uses mirror test-time augmentation.
use nodal_net::infer::InferOptions;
use nodal_net::train::{validate_operating_points, OperatingPoint, ValCase};

const THRESHOLDS: [f32; 6] = [0.2, 0.25, 0.3, 0.4, 0.5, 0.6];
const PEAK_CUTOFFS: [f32; 10] = [0.9, 0.95, 0.98, 0.99, 0.995, 0.997, 0.998, 0.999, 0.9995, 0.9998];

fn main() {
    let a: Vec<String> = std::env::args().collect();
    assert!(
        a.len() >= 6 && a.len() % 2 == 0,
        "usage: tune_operating_point MODEL_DIR MAX_FP MIN_DICE (CT LABELS)+"
    );
    let model = nodal_net::load_model(a[1].as_ref()).expect("model");
    let max_fp: f64 = a[2].parse().expect("MAX_FP must be a number");
    let min_dice: f64 = a[3].parse().expect("MIN_DICE must be a number");
    let cases: Vec<ValCase> = a[4..]
        .chunks(2)
        .map(|p| ValCase {
            id: p[0].clone(),
            ct: nodal_io::read_ct(&p[0]).expect("ct").hu,
            labels: nodal_io::read_nifti::<u16>(&p[1]).expect("labels"),
        })
        .collect();
    let points: Vec<OperatingPoint> = THRESHOLDS
        .iter()
        .flat_map(|&threshold| {
            std::iter::once(None)
                .chain(PEAK_CUTOFFS.iter().map(|&c| Some(c)))
                .map(move |min_peak| OperatingPoint { threshold, min_peak })
        })
        .collect();
    let opts = InferOptions { tta: std::env::var("NODAL_TTA").is_ok_and(|v| v == "1"), ..Default::default() };
    let t = std::time::Instant::now();
    let metrics = validate_operating_points(&model, &cases, &opts, &points).expect("validate");
    for (p, m) in points.iter().zip(&metrics) {
        println!(
            "{}",
            serde_json::json!({ "threshold": p.threshold, "min_peak_probability": p.min_peak, "metrics": m })
        );
    }
    let best = points
        .iter()
        .zip(&metrics)
        .filter(|(_, m)| m.fp_per_scan <= max_fp && m.dice.is_some_and(|d| d >= min_dice))
        .max_by(|a, b| a.1.recall.total_cmp(&b.1.recall).then(b.1.fp_per_scan.total_cmp(&a.1.fp_per_scan)));
    match best {
        Some((p, m)) => println!(
            "chosen threshold {} min_peak_probability {:?}: recall {:.3}, {:.2} FP/scan, Dice {:?}",
            p.threshold, p.min_peak, m.recall, m.fp_per_scan, m.dice
        ),
        None => println!("no operating point reaches {max_fp} FP/scan with Dice >= {min_dice}"),
    }
    eprintln!("{} cases in {:.1} s", cases.len(), t.elapsed().as_secs_f64());
}
