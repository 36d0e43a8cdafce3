//! Direct valid 3x3x3 convolution on the CPU, with bias and LeakyReLU fused: the layer that takes
//! most of the foveal net's time. Vectorised along the row (x): each step multiplies 16
//! neighbouring input voxels by one weight of each of 4 output channels, so the accumulators stay
//! in registers for a whole kernel window. Written by hand because burn's CPU convolution
//! (im2col + GEMM) pays for copying 27 x C_in values per voxel, which dominates at the net's
//! 8-24 channels; compiled for AVX2 + FMA when the CPU has them (pulp picks at run time), else
//! for the baseline (unfused multiply-add on x86-64, fused on 64-bit ARM).
use rayon::prelude::*;

/// Output channels per register block.
const CO_BLOCK: usize = 4;
/// Output voxels along x per register block (two AVX vectors).
const X_BLOCK: usize = 16;

/// The shape of one sample: channels, then depth, height, width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape4 {
    pub c: usize,
    pub d: usize,
    pub h: usize,
    pub w: usize,
}

impl Shape4 {
    fn len(self) -> usize {
        self.c * self.d * self.h * self.w
    }
}

/// `out = act(conv(input, weight) + bias)` for one sample: `input` `[c_in][d][h][w]`, `weight`
/// `[c_out][c_in][3][3][3]` (burn's and PyTorch's layout), `bias` `[c_out]`, `out`
/// `[c_out][d-2][h-2][w-2]`; `leaky_slope` applies LeakyReLU. Returns the output shape.
///
/// # Panics
/// When a slice's length does not match the shapes, or a spatial size is below 3.
pub fn conv3x3x3_valid(
    input: &[f32],
    shape: Shape4,
    weight: &[f32],
    c_out: usize,
    bias: Option<&[f32]>,
    leaky_slope: Option<f32>,
    out: &mut [f32],
) -> Shape4 {
    conv_with(input, shape, weight, c_out, bias, leaky_slope, out, false)
}

/// [`conv3x3x3_valid`], on the baseline path whatever the CPU has when `baseline` (for tests).
#[allow(clippy::too_many_arguments)]
fn conv_with(
    input: &[f32],
    shape: Shape4,
    weight: &[f32],
    c_out: usize,
    bias: Option<&[f32]>,
    leaky_slope: Option<f32>,
    out: &mut [f32],
    baseline: bool,
) -> Shape4 {
    assert!(shape.d >= 3 && shape.h >= 3 && shape.w >= 3, "input {shape:?} smaller than the kernel");
    assert_eq!(input.len(), shape.len(), "input length");
    assert_eq!(weight.len(), c_out * shape.c * 27, "weight length");
    let os = Shape4 { c: c_out, d: shape.d - 2, h: shape.h - 2, w: shape.w - 2 };
    assert_eq!(out.len(), os.len(), "output length");
    if let Some(b) = bias {
        assert_eq!(b.len(), c_out, "bias length");
    }
    let packed = pack_weights(weight, c_out, shape.c);
    // One task per output z: the z-th plane of every output channel.
    let plane = os.h * os.w;
    let mut tasks: Vec<Vec<&mut [f32]>> = (0..os.d).map(|_| Vec::with_capacity(c_out)).collect();
    for channel in out.chunks_mut(os.d * plane) {
        for (z, slab) in channel.chunks_mut(plane).enumerate() {
            tasks[z].push(slab);
        }
    }
    tasks.into_par_iter().enumerate().for_each(|(z, mut planes)| {
        let job = Plane { input, shape, packed: &packed, bias, leaky_slope, z, out: &mut planes, os };
        #[cfg(target_arch = "x86_64")]
        if let Some(simd) = pulp::x86::V3::try_new().filter(|_| !baseline) {
            // Compiled for AVX2 + FMA inside (the whole job is inlined here).
            return simd.vectorize(|| job.run::<true>());
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = baseline;
        // Elsewhere on x86-64 a fused multiply-add would be a library call: multiply, then add.
        // Every 64-bit ARM CPU has it in hardware.
        job.run::<{ cfg!(target_arch = "aarch64") }>();
    });
    os
}

/// Weights per block of [`CO_BLOCK`] output channels: `[block][c_in][27][CO_BLOCK]`, zero-padded
/// past `c_out`, so the inner loop reads them in order.
fn pack_weights(weight: &[f32], c_out: usize, c_in: usize) -> Vec<f32> {
    let blocks = c_out.div_ceil(CO_BLOCK);
    let mut p = vec![0.0f32; blocks * c_in * 27 * CO_BLOCK];
    for co in 0..c_out {
        let (b, c) = (co / CO_BLOCK, co % CO_BLOCK);
        for ci in 0..c_in {
            for k in 0..27 {
                p[((b * c_in + ci) * 27 + k) * CO_BLOCK + c] = weight[(co * c_in + ci) * 27 + k];
            }
        }
    }
    p
}

/// One output z-plane of every output channel.
struct Plane<'a, 'b> {
    input: &'a [f32],
    shape: Shape4,
    packed: &'a [f32],
    bias: Option<&'a [f32]>,
    leaky_slope: Option<f32>,
    z: usize,
    out: &'b mut [&'a mut [f32]],
    os: Shape4,
}

impl Plane<'_, '_> {
    /// `FMA`: fused multiply-adds (only where the CPU has them).
    #[inline(always)]
    fn run<const FMA: bool>(self) {
        let Plane { input, shape, packed, bias, leaky_slope, z, out, os } = self;
        let (c_in, h, w) = (shape.c, shape.h, shape.w);
        for block in 0..os.c.div_ceil(CO_BLOCK) {
            let wb = &packed[block * c_in * 27 * CO_BLOCK..][..c_in * 27 * CO_BLOCK];
            let n_co = CO_BLOCK.min(os.c - block * CO_BLOCK);
            let mut b = [0.0f32; CO_BLOCK];
            if let Some(bias) = bias {
                b[..n_co].copy_from_slice(&bias[block * CO_BLOCK..][..n_co]);
            }
            for y in 0..os.h {
                let mut x = 0;
                while x < os.w {
                    // A full block of 16, else the last columns one at a time... in a block of
                    // 16 that ends at the row's end (recomputing a few columns is cheaper).
                    let x0 = if x + X_BLOCK <= os.w { x } else { os.w.saturating_sub(X_BLOCK) };
                    if x0 + X_BLOCK <= os.w {
                        let acc = block_16::<FMA>(input, c_in, h, w, z, y, x0, wb);
                        for c in 0..n_co {
                            let row = &mut out[block * CO_BLOCK + c][y * os.w + x0..][..X_BLOCK];
                            for (o, a) in row.iter_mut().zip(acc[c]) {
                                *o = activate(a + b[c], leaky_slope);
                            }
                        }
                        x = x0 + X_BLOCK;
                    } else {
                        // Rows narrower than a block.
                        for xs in x..os.w {
                            let acc = single::<FMA>(input, c_in, h, w, z, y, xs, wb);
                            for c in 0..n_co {
                                out[block * CO_BLOCK + c][y * os.w + xs] =
                                    activate(acc[c] + b[c], leaky_slope);
                            }
                        }
                        x = os.w;
                    }
                }
            }
        }
    }
}

/// `a * b + c`, fused when `FMA`.
#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

#[inline(always)]
fn activate(v: f32, leaky_slope: Option<f32>) -> f32 {
    match leaky_slope {
        Some(s) if v < 0.0 => v * s,
        _ => v,
    }
}

/// Sums of 16 output voxels at (z, y, x0..x0+16) for [`CO_BLOCK`] channels.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn block_16<const FMA: bool>(
    input: &[f32],
    c_in: usize,
    h: usize,
    w: usize,
    z: usize,
    y: usize,
    x0: usize,
    wb: &[f32],
) -> [[f32; X_BLOCK]; CO_BLOCK] {
    let d = input.len() / (c_in * h * w);
    let mut acc = [[0.0f32; X_BLOCK]; CO_BLOCK];
    for ci in 0..c_in {
        for kd in 0..3 {
            for kh in 0..3 {
                let row = &input[((ci * d + z + kd) * h + y + kh) * w + x0..][..X_BLOCK + 2];
                let k0 = (ci * 27 + kd * 9 + kh * 3) * CO_BLOCK;
                for kw in 0..3 {
                    let v: &[f32; X_BLOCK] = row[kw..kw + X_BLOCK].try_into().expect("16 values");
                    let wk: &[f32; CO_BLOCK] =
                        wb[k0 + kw * CO_BLOCK..][..CO_BLOCK].try_into().expect("4 weights");
                    for c in 0..CO_BLOCK {
                        for l in 0..X_BLOCK {
                            acc[c][l] = madd::<FMA>(v[l], wk[c], acc[c][l]);
                        }
                    }
                }
            }
        }
    }
    acc
}

/// Sums of one output voxel for [`CO_BLOCK`] channels.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn single<const FMA: bool>(
    input: &[f32],
    c_in: usize,
    h: usize,
    w: usize,
    z: usize,
    y: usize,
    x: usize,
    wb: &[f32],
) -> [f32; CO_BLOCK] {
    let d = input.len() / (c_in * h * w);
    let mut acc = [0.0f32; CO_BLOCK];
    for ci in 0..c_in {
        for kd in 0..3 {
            for kh in 0..3 {
                for kw in 0..3 {
                    let v = input[((ci * d + z + kd) * h + y + kh) * w + x + kw];
                    let k = ((ci * 27 + kd * 9 + kh * 3) + kw) * CO_BLOCK;
                    for c in 0..CO_BLOCK {
                        acc[c] = madd::<FMA>(v, wb[k + c], acc[c]);
                    }
                }
            }
        }
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The definition, summed in f64.
    fn naive(
        input: &[f32],
        s: Shape4,
        weight: &[f32],
        c_out: usize,
        bias: &[f32],
        slope: Option<f32>,
    ) -> Vec<f32> {
        let (od, oh, ow) = (s.d - 2, s.h - 2, s.w - 2);
        let mut out = vec![0.0f32; c_out * od * oh * ow];
        for co in 0..c_out {
            for z in 0..od {
                for y in 0..oh {
                    for x in 0..ow {
                        let mut a = bias[co] as f64;
                        for ci in 0..s.c {
                            for k in 0..27 {
                                let (kd, kh, kw) = (k / 9, (k / 3) % 3, k % 3);
                                let v = input[((ci * s.d + z + kd) * s.h + y + kh) * s.w + x + kw] as f64;
                                a += v * weight[(co * s.c + ci) * 27 + k] as f64;
                            }
                        }
                        let a = a as f32;
                        out[((co * od + z) * oh + y) * ow + x] = match slope {
                            Some(sl) if a < 0.0 => a * sl,
                            _ => a,
                        };
                    }
                }
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
        /// Any channel counts (blocks cut short included) and sizes (rows narrower and wider than
        /// a block, ragged ends) agree with the definition.
        #[test]
        fn agrees_with_the_definition(
            c_in in 1usize..7, c_out in 1usize..11, d in 3usize..7, h in 3usize..8, w in 3usize..40,
            leaky in any::<bool>(), seed in any::<u64>(),
        ) {
            let s = Shape4 { c: c_in, d, h, w };
            let mut r = crate::rng::Rng::new(seed);
            let input: Vec<f32> = (0..s.len()).map(|_| r.normal() as f32).collect();
            let weight: Vec<f32> = (0..c_out * c_in * 27).map(|_| r.normal() as f32 * 0.3).collect();
            let bias: Vec<f32> = (0..c_out).map(|_| r.normal() as f32).collect();
            let slope = leaky.then_some(0.01);
            let want = naive(&input, s, &weight, c_out, &bias, slope);
            // The vectorised path this CPU takes, and the baseline path of CPUs without AVX2.
            for baseline in [false, true] {
                let mut got = vec![f32::NAN; want.len()];
                let os = conv_with(&input, s, &weight, c_out, Some(&bias), slope, &mut got, baseline);
                prop_assert_eq!(os, Shape4 { c: c_out, d: d - 2, h: h - 2, w: w - 2 });
                for (g, e) in got.iter().zip(&want) {
                    prop_assert!((g - e).abs() <= 1e-4 * (1.0 + e.abs()), "{} vs {}", g, e);
                }
            }
        }
    }
}
