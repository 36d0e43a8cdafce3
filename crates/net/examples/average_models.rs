//! Writes the weighted average of model folders of one architecture (a "model soup", see
//! `nodal_net::model::average_nets`): `config.json` is the first folder's, with the version naming
//! the mix; a component filter is not carried over (it was fitted to another network's output).
//! `cargo run --release -p nodal-net --example average_models -- OUT_DIR W1 MODEL_DIR1 W2 MODEL_DIR2 [...]`
use nodal_net::config::unfiltered_version;
use std::path::Path;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    assert!(a.len() >= 4 && a.len() % 2 == 0, "usage: average_models OUT_DIR (WEIGHT MODEL_DIR)+");
    let mut weights = Vec::new();
    let mut models = Vec::new();
    for pair in a[2..].chunks(2) {
        weights.push(pair[0].parse::<f64>().expect("weight"));
        models.push(nodal_net::load_model(pair[1].as_ref()).expect("model"));
    }
    for m in &models[1..] {
        assert_eq!(m.config.arch, models[0].config.arch, "{}: another architecture", m.folder.display());
    }
    let nets: Vec<&nodal_net::Net> = models.iter().map(|m| &m.net).collect();
    let net = nodal_net::model::average_nets(&nets, &weights).expect("average");
    let mut config = models[0].config.clone();
    let mix: Vec<String> = weights
        .iter()
        .zip(&models)
        .map(|(w, m)| format!("{w}*{}", unfiltered_version(&m.config.version)))
        .collect();
    config.version = format!("soup({})", mix.join(" + "));
    nodal_net::save_model(&net, &config, Path::new(&a[1])).expect("write");
    println!("{}: {}", a[1], config.version);
}
