//! Chooses a model's operating point — voxel `threshold` and component `min_peak_probability` in
//! its `config.json` — on tuning cases, as the trainer does at each validation: one inference per
//! case, the evaluation protocol at each point of `nodal_net::train::operating_point_grid` (only
//! at the model's own threshold when it has a component filter, which was fitted there), and
//! the point with the best selection score for the targets (at most `MAX_FP` false positives per
//! scan with Dice >= `MIN_DICE`, then the most recall). Prints one JSON line per point and the
//! chosen one. Use cases the model was not trained on and that will not validate it.
//! `cargo run --release -p nodal-net --example tune_operating_point -- MODEL_DIR MAX_FP MIN_DICE CT1 LABELS1 [CT2 LABELS2 ...]`
//! With `NODAL_TTA=1` inference uses mirror test-time augmentation.
use nodal_net::infer::InferOptions;
use nodal_net::train::{case_pairs, load_val_cases, tune_operating_point, SelectionTargets};

fn main() {
    let a: Vec<String> = std::env::args().collect();
    assert!(
        a.len() >= 6 && a.len() % 2 == 0,
        "usage: tune_operating_point MODEL_DIR MAX_FP MIN_DICE (CT LABELS)+"
    );
    let model = nodal_net::load_model(a[1].as_ref()).expect("model");
    let targets = SelectionTargets {
        max_fp_per_scan: a[2].parse().expect("MAX_FP must be a number"),
        min_dice: a[3].parse().expect("MIN_DICE must be a number"),
    };
    let cases = load_val_cases(&case_pairs(&a[4..])).expect("CT / label pairs");
    let opts = InferOptions { tta: std::env::var("NODAL_TTA").is_ok_and(|v| v == "1"), ..Default::default() };
    let t = std::time::Instant::now();
    let (best, table) = tune_operating_point(&model, &cases, &opts, &targets).expect("validate");
    for (p, m) in &table {
        println!(
            "{}",
            serde_json::json!({ "threshold": p.threshold, "min_peak_probability": p.min_peak, "metrics": m })
        );
    }
    let (p, m) = &table[best];
    println!(
        "chosen threshold {} min_peak_probability {:?}: recall {:.3}, {:.2} FP/scan, Dice {:?}, targets met: {}",
        p.threshold,
        p.min_peak,
        m.recall,
        m.fp_per_scan,
        m.dice,
        m.score >= 1.0
    );
    eprintln!("{} cases in {:.1} s", cases.len(), t.elapsed().as_secs_f64());
}
