//! Chooses how a model's kept components are drawn — `mask_threshold` and
//! `convex_fill_min_short_axis_mm` in its `config.json` — on tuning cases, at the model's own
//! threshold, peak cut-off and component filter (so the same components are kept; only their
//! extent changes): one inference per case, the evaluation protocol for every pair of
//! `nodal_net::train::MASK_THRESHOLD_GRID` (values above the model's threshold) and
//! `CONVEX_FILL_GRID`, and the pair with the best selection score (default targets: <= 3 FP/scan,
//! Dice >= 0.80, then the most recall) among those that find at least as many nodes with SAD >=
//! 15 mm as the model's current recipe. Prints one JSON line per pair and the chosen one. Use
//! cases the model was not trained on and that will not validate it.
//! `cargo run --release -p nodal-net --example tune_mask -- MODEL_DIR CT1 LABELS1 [CT2 LABELS2 ...]`
use nodal_net::filter::{choose_point, LargeNodes};
use nodal_net::infer::InferOptions;
use nodal_net::train::{
    case_pairs, load_val_cases, validate_postprocessing, SelectionTargets, CONVEX_FILL_GRID,
    MASK_THRESHOLD_GRID,
};
use nodal_nodes::postprocess::PostProcessConfig;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    assert!(a.len() >= 4 && a.len() % 2 == 0, "usage: tune_mask MODEL_DIR (CT LABELS)+");
    let model = nodal_net::load_model(a[1].as_ref()).expect("model");
    let cases = load_val_cases(&case_pairs(&a[2..])).expect("CT / label pairs");
    let current = model.config.postprocess_config();
    let mut configs = vec![current];
    for &mask_threshold in MASK_THRESHOLD_GRID.iter().filter(|m| m.is_none_or(|m| m > current.threshold)) {
        for &convex_fill_min_short_axis_mm in &CONVEX_FILL_GRID {
            let c = PostProcessConfig { mask_threshold, convex_fill_min_short_axis_mm, ..current };
            if c != current {
                configs.push(c);
            }
        }
    }
    let t = std::time::Instant::now();
    let targets = SelectionTargets::default();
    let metrics = validate_postprocessing(&model, &cases, &InferOptions::default(), &configs, &targets)
        .expect("validate");
    for (c, m) in configs.iter().zip(&metrics) {
        println!(
            "{}",
            serde_json::json!({
                "mask_threshold": c.mask_threshold,
                "convex_fill_min_short_axis_mm": c.convex_fill_min_short_axis_mm,
                "metrics": m,
            })
        );
    }
    let best = choose_point(&metrics, 0, LargeNodes::NoLoss);
    let (c, m) = (&configs[best], &metrics[best]);
    println!(
        "chosen mask_threshold {:?} convex_fill_min_short_axis_mm {:?}: recall {:.3}, {:.2} FP/scan, Dice {:?}, \
         score {:.4} (current recipe: {:.4})",
        c.mask_threshold, c.convex_fill_min_short_axis_mm, m.recall, m.fp_per_scan, m.dice, m.score, metrics[0].score
    );
    eprintln!("{} cases in {:.1} s", cases.len(), t.elapsed().as_secs_f64());
}
