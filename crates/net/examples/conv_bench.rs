//! Times the hand-written valid 3x3x3 convolution (`nodal_net::cpu_conv`) against burn's on the
//! same input and weights, with LeakyReLU, at the foveal net's layer shapes, and checks they agree.
//! `cargo run -p nodal-net --example conv_bench --release`
use std::time::Instant;

use burn::nn::conv::Conv3dConfig;
use burn::nn::PaddingConfig3d;
use burn::prelude::*;
use burn::tensor::activation::leaky_relu;
use nodal_net::cpu_conv::{conv3x3x3_valid, Shape4};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let device = nodal_net::device();
    // (c_in, c_out, input edge): the shipped net's pathways and merges on one 64^3 tile.
    for (ci, co, n) in [(1, 8, 70), (8, 8, 68), (1, 16, 44), (16, 16, 42), (16, 16, 40), (24, 24, 26)] {
        let conv = Conv3dConfig::new([ci, co], [3, 3, 3]).with_padding(PaddingConfig3d::Valid).init(&device);
        let x = Tensor::<5>::random([1, ci, n, n, n], burn::tensor::Distribution::Default, &device);
        let input: Vec<f32> = x.clone().into_data().try_to_vec().unwrap();
        let weight: Vec<f32> = conv.weight.val().into_data().try_to_vec().unwrap();
        let bias: Vec<f32> = conv.bias.as_ref().unwrap().val().into_data().try_to_vec().unwrap();
        let shape = Shape4 { c: ci, d: n, h: n, w: n };
        let mut out = vec![0.0f32; co * (n - 2).pow(3)];
        let (mut tb, mut tk) = (vec![], vec![]);
        let mut reference = vec![];
        for _ in 0..5 {
            let t = Instant::now();
            reference = leaky_relu(conv.forward(x.clone()), 0.01).into_data().try_to_vec::<f32>().unwrap();
            tb.push(t.elapsed().as_secs_f64());
            let t = Instant::now();
            conv3x3x3_valid(&input, shape, &weight, co, Some(&bias), Some(0.01), &mut out);
            tk.push(t.elapsed().as_secs_f64());
        }
        let diff = reference.iter().zip(&out).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        let gflop = 2.0 * 27.0 * (ci * co) as f64 * ((n - 2) as f64).powi(3) / 1e9;
        let (b, k) = (median(tb), median(tk));
        println!(
            "{ci:>2} -> {co:>2} at {n}^3: burn {:.1} ms ({:.0} GFLOP/s), hand-written {:.1} ms ({:.0} GFLOP/s), {:.2}x; max |diff| {diff:.1e}",
            b * 1e3,
            gflop / b,
            k * 1e3,
            gflop / k,
            b / k
        );
    }
}
