//! The exact Euclidean distance transform on anisotropic grids, shared by the evaluation's
//! surface distances and post-processing's splitting of touching nodes.
//!
//! Felzenszwalb and Huttenlocher's separable algorithm: one 1D lower envelope of parabolas per
//! line and axis, exact in squared distance, linear in the number of voxels.
use ndarray::{Array3, ArrayViewMut2, Axis};
use rayon::prelude::*;

/// Volumes with fewer voxels are transformed on one thread: their callers already run in
/// parallel (one component each), and splitting a small box costs more than it saves.
const PAR_MIN_VOXELS: usize = 1 << 16;

/// Exact squared Euclidean distance (mm^2) from every voxel to the nearest `true` voxel of
/// `features` (`[nk, nj, ni]`, `spacing` per array axis). Voxels with no feature get infinity.
pub fn edt_squared(features: &Array3<bool>, spacing: [f64; 3]) -> Array3<f64> {
    let mut d = features.map(|&f| if f { 0.0 } else { f64::INFINITY });
    let parallel = d.len() >= PAR_MIN_VOXELS;
    for axis in [2usize, 1, 0] {
        let n = d.len_of(Axis(axis));
        let s = spacing[axis];
        // Over an outer axis other than `axis`; within each 2D sub-view the lanes along `axis` are
        // transformed one by one with a scratch buffer per thread.
        let (outer, inner) = match axis {
            0 => (1, 0), // sub-view [k, i]: lanes along its axis 0 (k)
            1 => (0, 0), // sub-view [j, i]: lanes along its axis 0 (j)
            _ => (0, 1), // sub-view [j, i]: lanes along its axis 1 (i)
        };
        let lanes = |scratch: &mut Scratch, mut view: ArrayViewMut2<'_, f64>| {
            for mut lane in view.lanes_mut(Axis(inner)) {
                let mut any = false;
                for (x, v) in scratch.f.iter_mut().zip(lane.iter()) {
                    *x = *v;
                    any |= v.is_finite();
                }
                // A lane without a finite value is all infinity, and stays so.
                if !any {
                    continue;
                }
                transform_1d(scratch, s);
                for (v, x) in lane.iter_mut().zip(scratch.out.iter()) {
                    *v = *x;
                }
            }
        };
        if parallel {
            d.axis_iter_mut(Axis(outer)).into_par_iter().for_each_init(|| Scratch::new(n), lanes);
        } else {
            let mut scratch = Scratch::new(n);
            d.axis_iter_mut(Axis(outer)).for_each(|view| lanes(&mut scratch, view));
        }
    }
    d
}

/// Buffers of the 1D transform (one per worker thread).
struct Scratch {
    f: Vec<f64>,
    out: Vec<f64>,
    v: Vec<usize>,
    z: Vec<f64>,
}

impl Scratch {
    fn new(n: usize) -> Self {
        Scratch { f: vec![0.0; n], out: vec![0.0; n], v: vec![0; n], z: vec![0.0; n + 1] }
    }
}

/// 1D squared distance transform of sampled function `f` with sample spacing `s`:
/// out[p] = min_q f[q] + (s (p - q))^2, by the lower envelope of parabolas rooted at the finite
/// samples (Felzenszwalb & Huttenlocher). Infinite samples are not parabolas and are skipped.
fn transform_1d(sc: &mut Scratch, s: f64) {
    let n = sc.f.len();
    let f = &sc.f;
    let pos = |q: usize| q as f64 * s;
    let mut k: usize = 0; // number of parabolas in the envelope minus one
    let mut started = false;
    for q in 0..n {
        if !f[q].is_finite() {
            continue;
        }
        if !started {
            sc.v[0] = q;
            sc.z[0] = f64::NEG_INFINITY;
            sc.z[1] = f64::INFINITY;
            started = true;
            continue;
        }
        let (fq, xq) = (f[q], pos(q));
        loop {
            let vk = sc.v[k];
            let (fv, xv) = (f[vk], pos(vk));
            // abscissa where the parabola at q overtakes the one at v_k
            let inter = ((fq + xq * xq) - (fv + xv * xv)) / (2.0 * (xq - xv));
            if inter <= sc.z[k] && k > 0 {
                k -= 1;
                continue;
            }
            if inter <= sc.z[k] {
                // k == 0 and z[0] = -inf: cannot happen, but keep the envelope valid
                sc.v[0] = q;
                sc.z[1] = f64::INFINITY;
                break;
            }
            k += 1;
            sc.v[k] = q;
            sc.z[k] = inter;
            sc.z[k + 1] = f64::INFINITY;
            break;
        }
    }
    if !started {
        sc.out.fill(f64::INFINITY);
        return;
    }
    let mut j = 0;
    for p in 0..n {
        let xp = pos(p);
        while sc.z[j + 1] < xp {
            j += 1;
        }
        let vj = sc.v[j];
        let dx = xp - pos(vj);
        sc.out[p] = dx * dx + f[vj];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Brute force: squared distance from every voxel to the nearest feature.
    fn naive(features: &Array3<bool>, sp: [f64; 3]) -> Array3<f64> {
        let pts: Vec<[usize; 3]> =
            features.indexed_iter().filter(|(_, f)| **f).map(|((k, j, i), _)| [k, j, i]).collect();
        Array3::from_shape_fn(features.dim(), |(k, j, i)| {
            pts.iter()
                .map(|p| {
                    let d = [
                        (p[0] as f64 - k as f64) * sp[0],
                        (p[1] as f64 - j as f64) * sp[1],
                        (p[2] as f64 - i as f64) * sp[2],
                    ];
                    d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
                })
                .fold(f64::INFINITY, f64::min)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn edt_equals_brute_force(
            dims in (1usize..7, 1usize..7, 1usize..7),
            seed in proptest::collection::vec(any::<bool>(), 343),
            density in 1u32..6,
            sp in (0.3f64..3.0, 0.3f64..3.0, 0.3f64..3.0),
        ) {
            let (nk, nj, ni) = dims;
            let mut idx = 0;
            let f = Array3::from_shape_fn((nk, nj, ni), |_| {
                idx += 1;
                seed[idx % 343] && (idx as u32).is_multiple_of(density)
            });
            let sp = [sp.0, sp.1, sp.2];
            let fast = edt_squared(&f, sp);
            let slow = naive(&f, sp);
            for (a, b) in fast.iter().zip(slow.iter()) {
                if b.is_infinite() {
                    prop_assert!(a.is_infinite());
                } else {
                    prop_assert!((a - b).abs() <= 1e-9 * (1.0 + b), "{} vs {}", a, b);
                }
            }
        }
    }
}
