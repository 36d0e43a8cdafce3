//! Chooses the peak and filter cut-offs of a model folder's own component filter
//! (`component_filter.json`) on tuning cases, without fitting the filter again — for a filter
//! fitted to another network of the same architecture (e.g. the weights a soup averaged), or to
//! re-choose on your own annotated scans. One inference per case, every point of
//! `nodal_net::filter::tune_filter`'s grid with the folder's post-processing recipe, the trainer's
//! selection score. Large-node rule: by default `nodal train-filter`'s (no loss of the nodes of at
//! least 15 mm short axis against the model alone at its own peak cut-off); `--min-large-recall R`
//! allows instead the points whose recall of those nodes is at least R. Prints one JSON line per
//! point and the chosen one. Use cases the model and its filter were not trained on and that will
//! not validate it.
//! `cargo run --release -p nodal-net --example tune_filter_cutoffs -- MODEL_DIR [--min-large-recall R] CT1 LABELS1 [CT2 LABELS2 ...]`
use nodal_net::filter::{tune_filter, LargeNodes};
use nodal_net::infer::InferOptions;
use nodal_net::train::{case_pairs, load_val_cases, SelectionTargets};

fn main() {
    let mut a: Vec<String> = std::env::args().skip(1).collect();
    let min_large =
        take_value(&mut a, "--min-large-recall").map(|v| v.parse::<f64>().expect("--min-large-recall R"));
    assert!(
        a.len() >= 3 && a.len() % 2 == 1,
        "usage: tune_filter_cutoffs MODEL_DIR [--min-large-recall R] (CT LABELS)+"
    );
    let model = nodal_net::load_model(a[0].as_ref()).expect("model");
    let filter = model.component_filter.clone().expect("the model folder has no component_filter.json");
    let cases = load_val_cases(&case_pairs(&a[1..])).expect("CT / label pairs");
    let t = std::time::Instant::now();
    let targets = SelectionTargets::default();
    let rule = min_large.map_or(LargeNodes::NoLoss, LargeNodes::AtLeast);
    let table = tune_filter(&model, &filter, &cases, &InferOptions::default(), &targets, rule).expect("tune");
    let best = table.best;
    let row = |i: usize| serde_json::json!({ "point": table.points[i].0, "metrics": table.points[i].1 });
    for i in 0..table.points.len() {
        println!("{}", row(i));
    }
    println!("model alone: {}", row(table.model_alone));
    println!("chosen: {}", row(best));
    eprintln!("{} cases in {:.1} s", cases.len(), t.elapsed().as_secs_f64());
}

fn take_value(a: &mut Vec<String>, name: &str) -> Option<String> {
    let i = a.iter().position(|x| x == name)?;
    assert!(i + 1 < a.len(), "{name} needs a value");
    a.remove(i);
    Some(a.remove(i))
}
