//! Scores a model folder on CT / label pairs with the evaluation protocol (the same numbers the
//! trainer logs): recall, FP/scan, Dice, recall for SAD >= 15 mm.
//! `cargo run --release -p nodal-net --example net_validate -- MODEL_DIR CT1 LABELS1 [CT2 LABELS2 ...]`
use nodal_net::train::{validate, ValCase};

fn main() {
    let a: Vec<String> = std::env::args().collect();
    assert!(a.len() >= 4 && a.len() % 2 == 0, "usage: net_validate MODEL_DIR (CT LABELS)+");
    let model = nodal_net::load_model(a[1].as_ref()).expect("model");
    let cases: Vec<ValCase> = a[2..]
        .chunks(2)
        .map(|p| ValCase {
            id: p[0].clone(),
            ct: nodal_io::read_ct(&p[0]).expect("ct").hu,
            labels: nodal_io::read_nifti::<u16>(&p[1]).expect("labels"),
        })
        .collect();
    let t = std::time::Instant::now();
    let m = validate(&model, &cases, None).expect("validate");
    println!("{}", serde_json::to_string_pretty(&m).expect("json"));
    eprintln!("{} cases in {:.1} s", cases.len(), t.elapsed().as_secs_f64());
}
