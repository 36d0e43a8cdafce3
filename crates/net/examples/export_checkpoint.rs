//! Exports a training run's checkpoint as a model folder.
//! `cargo run -p nodal-net --example export_checkpoint -- RUN OUT`
fn main() {
    let a: Vec<String> = std::env::args().collect();
    assert!(a.len() == 3, "usage: export_checkpoint RUN OUT");
    nodal_net::train::export_checkpoint(a[1].as_ref(), a[2].as_ref()).expect("export");
}
