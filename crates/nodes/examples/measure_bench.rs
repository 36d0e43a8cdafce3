//! Times `measure_nodes` (with a CT) on 100 ball-shaped nodes in a 512 x 512 x 300 label map.
//!
//! `cargo run --release -p nodal-nodes --example measure_bench [-- --repeat N]`
//!
//! Prints one JSON line with the best time over the repeats.
use nodal_core::{Geometry, Volume};
use nodal_nodes::measure::{measure_nodes, MeasureOptions};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let repeat: usize =
        std::env::args().skip_while(|a| a != "--repeat").nth(1).map_or(Ok(3), |s| s.parse())?;
    let dims = [512usize, 512, 300];
    let sp = [0.7, 0.7, 1.0];
    let g = Geometry::axis_aligned(sp, [-180.0, -180.0, -150.0]);
    let mut labels = Volume::<u16>::zeros(dims, g);
    let mut ct = Volume::<i16>::filled(dims, g, -50);
    // A deterministic scatter of 100 balls, radius 3..15 mm, on a 5 x 5 x 4 lattice so none overlap.
    let mut state = 12345u64;
    let mut rnd = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut id = 0u16;
    for a in 0..5 {
        for b in 0..5 {
            for c in 0..4 {
                id += 1;
                let r = 3.0 + 12.0 * rnd();
                let centre = [40.0 + a as f64 * 70.0, 40.0 + b as f64 * 70.0, 38.0 + c as f64 * 70.0];
                let lo =
                    (0..3).map(|x| ((centre[x] - r) / sp[x]).floor().max(0.0) as usize).collect::<Vec<_>>();
                let hi = (0..3)
                    .map(|x| (((centre[x] + r) / sp[x]).ceil() as usize).min(dims[x] - 1))
                    .collect::<Vec<_>>();
                let mut l = labels.data_mut();
                for k in lo[2]..=hi[2] {
                    for j in lo[1]..=hi[1] {
                        for i in lo[0]..=hi[0] {
                            let d2 = (i as f64 * sp[0] - centre[0]).powi(2)
                                + (j as f64 * sp[1] - centre[1]).powi(2)
                                + (k as f64 * sp[2] - centre[2]).powi(2);
                            if d2 <= r * r {
                                l[[k, j, i]] = id;
                            }
                        }
                    }
                }
                let mut h = ct.data_mut();
                for k in lo[2]..=hi[2] {
                    for j in lo[1]..=hi[1] {
                        for i in lo[0]..=hi[0] {
                            h[[k, j, i]] = 30 + ((i * 7 + j * 13 + k * 3) % 40) as i16;
                        }
                    }
                }
            }
        }
    }
    let mut times = Vec::new();
    let mut n = 0;
    for _ in 0..repeat.max(1) {
        let t = Instant::now();
        let m = measure_nodes(&labels, Some(&ct), &MeasureOptions::default())?;
        times.push(t.elapsed().as_secs_f64());
        n = m.len();
    }
    let best = times.iter().copied().fold(f64::INFINITY, f64::min);
    println!(
        "{{\"nodes\": {n}, \"dims\": {dims:?}, \"seconds_best\": {best:.4}, \"seconds_all\": {times:?}, \"threads\": {}}}",
        rayon::current_num_threads()
    );
    Ok(())
}
