//! Writes deterministic per-level input patches and the network's logits for a model folder, plus
//! the forward time, for `scripts/torch_twin.py` (the PyTorch re-implementation check).
//! `cargo run --release -p nodal-net --example net_twin_dump -- MODEL_DIR OUT_DIR [TILE]`
//! (`NODAL_DEVICE=gpu` runs it on the GPU, in builds with the `gpu` feature).
//!
//! OUT_DIR gets `input_<level>.f32`, `logits.f32` (raw little-endian float32, C order) and
//! `meta.json` (shapes, seconds per forward).
use std::io::Write;
use std::time::Instant;

use burn::prelude::*;

fn write_f32(path: &std::path::Path, v: &[f32]) {
    let mut f = std::fs::File::create(path).expect("create");
    for x in v {
        f.write_all(&x.to_le_bytes()).expect("write");
    }
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    assert!(a.len() >= 3, "usage: net_twin_dump MODEL_DIR OUT_DIR [TILE]");
    if let Ok(name) = std::env::var("NODAL_DEVICE") {
        nodal_net::select_compute(nodal_net::Compute::parse(&name).expect("device")).expect("device");
    }
    let model = nodal_net::load_model(a[1].as_ref()).expect("model");
    let out_dir = std::path::PathBuf::from(&a[2]);
    std::fs::create_dir_all(&out_dir).expect("out dir");
    let tile: usize = a.get(3).map(|s| s.parse().expect("tile")).unwrap_or(model.config.infer_tile_out);
    let sizes = model.config.arch.input_sizes(tile);
    let device = nodal_net::device();
    let mut rng = nodal_net::rng::Rng::new(42);
    let mut shapes = Vec::new();
    let mut inputs = Vec::new();
    for (l, &s) in sizes.iter().enumerate() {
        let v: Vec<f32> = (0..s * s * s).map(|_| rng.normal() as f32).collect();
        write_f32(&out_dir.join(format!("input_{l}.f32")), &v);
        shapes.push([1, 1, s, s, s]);
        inputs.push(v);
    }
    let make = || -> Vec<Tensor<5>> {
        inputs
            .iter()
            .zip(&shapes)
            .map(|(v, &sh)| Tensor::from_data(TensorData::new(v.clone(), sh), &device))
            .collect()
    };
    let logits = model.net.forward(make());
    let dims = logits.dims();
    let v = logits.into_data().try_to_vec::<f32>().expect("f32");
    write_f32(&out_dir.join("logits.f32"), &v);
    let mut times = Vec::new();
    // A GPU compiles (and may tune) its kernels on first use: one more untimed pass.
    let _ = model.net.forward(make()).into_data();
    for _ in 0..5 {
        let t = Instant::now();
        let _ = model.net.forward(make()).into_data();
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let meta = serde_json::json!({
        "input_shapes": shapes,
        "logits_shape": dims,
        "seconds_per_forward_median": times[2],
        "tile": tile,
        "device": nodal_net::selected_compute().name(),
    });
    std::fs::write(out_dir.join("meta.json"), serde_json::to_string_pretty(&meta).expect("json"))
        .expect("meta");
    println!("{meta}");
}
