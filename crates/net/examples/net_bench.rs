//! Times the forward pass of a model configuration on one inference tile and one training step.
//! `cargo run -p nodal-net --example net_bench --release [-- CONFIG.json]`
use std::time::Instant;

use burn::prelude::*;
use nodal_net::ModelConfig;

fn main() {
    let cfg = match std::env::args().nth(1) {
        Some(p) => ModelConfig::load(std::path::Path::new(&p)).expect("config"),
        None => ModelConfig::default_foveal(),
    };
    let device = nodal_net::device();
    let net = cfg.arch.init(&device).expect("net");
    for out in [cfg.train_patch_out, cfg.infer_tile_out] {
        let sizes = cfg.arch.input_sizes(out);
        let inputs = || -> Vec<Tensor<5>> {
            sizes
                .iter()
                .map(|&s| Tensor::<5>::random([1, 1, s, s, s], burn::tensor::Distribution::Default, &device))
                .collect()
        };
        let _ = net.forward(inputs()).into_data();
        let t = Instant::now();
        let n = 3;
        for _ in 0..n {
            let _ = net.forward(inputs()).into_data();
        }
        let dt = t.elapsed().as_secs_f64() / n as f64;
        println!(
            "forward out {out}^3 inputs {sizes:?}: {dt:.3} s/tile, {:.2} us/output voxel",
            dt * 1e6 / (out * out * out) as f64
        );
    }
}
