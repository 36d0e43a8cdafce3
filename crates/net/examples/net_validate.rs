//! Scores a model folder on CT / label pairs with the evaluation protocol (the same numbers the
//! trainer logs): recall (and the ceiling a perfect segmentation would reach), FP/scan, Dice, recall
//! for SAD >= 15 mm.
//! `cargo run --release -p nodal-net --example net_validate -- MODEL_DIR CT1 LABELS1 [CT2 LABELS2 ...]`
use nodal_net::train::{case_pairs, load_val_cases, validate};

fn main() {
    let a: Vec<String> = std::env::args().collect();
    assert!(a.len() >= 4 && a.len() % 2 == 0, "usage: net_validate MODEL_DIR (CT LABELS)+");
    let model = nodal_net::load_model(a[1].as_ref()).expect("model");
    let cases = load_val_cases(&case_pairs(&a[2..])).expect("CT / label pairs");
    let t = std::time::Instant::now();
    let m = validate(&model, &cases, None).expect("validate");
    println!("{}", serde_json::to_string_pretty(&m).expect("json"));
    eprintln!("{} cases in {:.1} s", cases.len(), t.elapsed().as_secs_f64());
}
