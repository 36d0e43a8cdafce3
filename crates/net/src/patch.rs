//! Multi-level input patches.
//!
//! Coordinates here are *fine continuous voxel indices* `(z, y, x)` of the model-grid image: voxel
//! `[k, j, i]` has its centre at `(k, j, i)` and covers `±0.5` around it. A level-`l` voxel is the
//! mean of a `2^l`-cube of fine voxels aligned to index 0 (see [`Pyramid`]); its centre sits at
//! fine coordinate `(n + 0.5) * 2^l - 0.5`.
//!
//! A patch of `n` (even) voxels at level `l` centred on the fine voxel corner `m - 0.5` (with `m` a
//! multiple of `2^l`) covers exactly the pyramid voxels `m / 2^l - n / 2 ..  m / 2^l + n / 2`, so
//! inference patches are plain copies ([`extract_aligned`]). Training patches go through the same
//! geometry with a random affine + smooth deformation and trilinear interpolation
//! ([`sample_training_patch`]).
use ndarray::{Array3, ArrayView3, Zip};

use crate::rng::Rng;

/// Average-pooled image pyramid; voxels outside the image count as `pad`.
#[derive(Clone, Debug)]
pub struct Pyramid {
    /// `levels[l]`: shape `ceil(shape_0 / 2^l)`, `[z, y, x]`.
    pub levels: Vec<Array3<f32>>,
    /// Value outside the image (normalised air).
    pub pad: f32,
}

impl Pyramid {
    /// Builds `n_levels` levels from `image` `[z, y, x]`.
    pub fn new(image: ArrayView3<'_, f32>, n_levels: usize, pad: f32) -> Self {
        let mut levels = vec![image.to_owned()];
        for _ in 1..n_levels {
            let prev = levels.last().expect("level 0");
            let (d, h, w) = prev.dim();
            let next = Array3::from_shape_fn([d.div_ceil(2), h.div_ceil(2), w.div_ceil(2)], |(z, y, x)| {
                let mut s = 0.0f32;
                for dz in 0..2 {
                    for dy in 0..2 {
                        for dx in 0..2 {
                            let (zz, yy, xx) = (2 * z + dz, 2 * y + dy, 2 * x + dx);
                            s += if zz < d && yy < h && xx < w { prev[[zz, yy, xx]] } else { pad };
                        }
                    }
                }
                s / 8.0
            });
            levels.push(next);
        }
        Pyramid { levels, pad }
    }

    /// Shape of level 0 `[z, y, x]`.
    pub fn shape(&self) -> [usize; 3] {
        let (d, h, w) = self.levels[0].dim();
        [d, h, w]
    }
}

/// Copies the level-`l` patch of `size` voxels whose first voxel is pyramid index `start`
/// (may be negative or run past the end: those voxels get the pad value).
pub fn extract_aligned(pyr: &Pyramid, level: usize, start: [i64; 3], size: [usize; 3]) -> Array3<f32> {
    let src = &pyr.levels[level];
    let (d, h, w) = src.dim();
    let dims = [d as i64, h as i64, w as i64];
    let mut out = Array3::from_elem(size, pyr.pad);
    for z in 0..size[0] {
        let sz = start[0] + z as i64;
        if sz < 0 || sz >= dims[0] {
            continue;
        }
        for y in 0..size[1] {
            let sy = start[1] + y as i64;
            if sy < 0 || sy >= dims[1] {
                continue;
            }
            // Contiguous run along x.
            let x0 = (-start[2]).clamp(0, size[2] as i64) as usize;
            let x1 = (dims[2] - start[2]).clamp(0, size[2] as i64) as usize;
            for x in x0..x1 {
                out[[z, y, x]] = src[[sz as usize, sy as usize, (start[2] + x as i64) as usize]];
            }
        }
    }
    out
}

/// The level-`l` patch of `size` voxels centred on fine corner `centre - 0.5` (per axis
/// `centre` a multiple of `2^level`): start index `centre / 2^l - size / 2`.
pub fn aligned_start(centre: [i64; 3], level: usize, size: [usize; 3]) -> [i64; 3] {
    std::array::from_fn(|a| centre[a].div_euclid(1 << level) - (size[a] / 2) as i64)
}

/// Random spatial and intensity augmentation of one training patch. The identity
/// ([`Augmentation::identity`]) reproduces the aligned inference patches exactly.
#[derive(Clone, Debug)]
pub struct Augmentation {
    /// Maps a patch offset from its centre (fine voxels, `[z, y, x]`) to an image offset.
    pub matrix: [[f64; 3]; 3],
    /// Smooth deformation: per axis `amp * sin(dot(k, offset) + phase)`, fine voxels.
    pub elastic: Option<[([f64; 3], f64, f64); 3]>,
    /// `v' = ((v - lo) / (hi - lo))^gamma * (hi - lo) + lo` on the clip range, then contrast and
    /// brightness: `v'' = v' * contrast + brightness`.
    pub gamma: f32,
    /// Multiplicative contrast.
    pub contrast: f32,
    /// Additive brightness, normalised units.
    pub brightness: f32,
    /// Gaussian noise standard deviation, normalised units.
    pub noise_std: f32,
    /// Separable [1 2 1]/4 blur of the finest level.
    pub blur: bool,
    /// Metal streaks: axial point `(y, x)` offset from the patch centre, z half-extent, rays
    /// `(angle, amplitude, width)`.
    pub streaks: Option<Streaks>,
}

/// Simulated metal streak artefact (radial lines in the axial plane through a point).
#[derive(Clone, Debug)]
pub struct Streaks {
    /// Source point offset from the patch centre, `[z, y, x]` fine voxels.
    pub source: [f64; 3],
    /// Streaks fade out beyond this axial distance (z), voxels.
    pub half_height: f64,
    /// Rays: angle (radians), amplitude (normalised units), width (voxels).
    pub rays: Vec<(f64, f32, f64)>,
}

impl Augmentation {
    /// No change.
    pub fn identity() -> Self {
        Augmentation {
            matrix: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
            elastic: None,
            gamma: 1.0,
            contrast: 1.0,
            brightness: 0.0,
            noise_std: 0.0,
            blur: false,
            streaks: None,
        }
    }

    /// Draws an augmentation: rotation (about z up to ±15°, about y/x up to ±8°), scaling
    /// 0.85-1.15, mirroring (x: p 0.5, y/z: p 0.2), elastic (p 0.3), gamma 0.8-1.25 (p 0.3),
    /// contrast/brightness (p 0.5), noise (p 0.3), blur (p 0.2), metal streaks (p 0.15).
    pub fn random(rng: &mut Rng) -> Self {
        let deg = std::f64::consts::PI / 180.0;
        let rz = rng.uniform(-15.0, 15.0) * deg;
        let ry = rng.uniform(-8.0, 8.0) * deg;
        let rx = rng.uniform(-8.0, 8.0) * deg;
        let s = rng.uniform(0.85, 1.15);
        // Rotation about the z axis mixes (y, x); about y mixes (z, x); about x mixes (z, y).
        let rot_z = [[1.0, 0.0, 0.0], [0.0, rz.cos(), -rz.sin()], [0.0, rz.sin(), rz.cos()]];
        let rot_y = [[ry.cos(), 0.0, -ry.sin()], [0.0, 1.0, 0.0], [ry.sin(), 0.0, ry.cos()]];
        let rot_x = [[rx.cos(), -rx.sin(), 0.0], [rx.sin(), rx.cos(), 0.0], [0.0, 0.0, 1.0]];
        let mut m = matmul(&rot_z, &matmul(&rot_y, &rot_x));
        let flips = [rng.chance(0.2), rng.chance(0.2), rng.chance(0.5)];
        for r in m.iter_mut() {
            for c in 0..3 {
                r[c] *= s * if flips[c] { -1.0 } else { 1.0 };
            }
        }
        let elastic = rng.chance(0.3).then(|| {
            std::array::from_fn(|_| {
                let wavelength = rng.uniform(24.0, 56.0);
                let dir = [rng.normal(), rng.normal(), rng.normal()];
                let n = (dir[0] * dir[0] + dir[1] * dir[1] + dir[2] * dir[2]).sqrt().max(1e-9);
                let k = dir.map(|d| d / n * std::f64::consts::TAU / wavelength);
                (k, rng.uniform(0.5, 2.0), rng.uniform(0.0, std::f64::consts::TAU))
            })
        });
        let gamma = if rng.chance(0.3) { rng.uniform(0.8, 1.25) as f32 } else { 1.0 };
        let (contrast, brightness) = if rng.chance(0.5) {
            (rng.uniform(0.85, 1.15) as f32, rng.uniform(-0.1, 0.1) as f32)
        } else {
            (1.0, 0.0)
        };
        let noise_std = if rng.chance(0.3) { rng.uniform(0.0, 0.12) as f32 } else { 0.0 };
        let blur = rng.chance(0.2);
        let streaks = rng.chance(0.15).then(|| Streaks {
            source: [rng.uniform(-10.0, 10.0), rng.uniform(-40.0, 40.0), rng.uniform(-40.0, 40.0)],
            half_height: rng.uniform(2.0, 8.0),
            rays: (0..3 + rng.below(6))
                .map(|_| {
                    let sign = if rng.chance(0.5) { 1.0 } else { -1.0 };
                    (
                        rng.uniform(0.0, std::f64::consts::PI),
                        sign * rng.uniform(0.8, 4.0) as f32,
                        rng.uniform(0.6, 2.0),
                    )
                })
                .collect(),
        });
        Augmentation { matrix: m, elastic, gamma, contrast, brightness, noise_std, blur, streaks }
    }

    fn map_offset(&self, o: [f64; 3]) -> [f64; 3] {
        let m = &self.matrix;
        let mut p: [f64; 3] = std::array::from_fn(|r| m[r][0] * o[0] + m[r][1] * o[1] + m[r][2] * o[2]);
        if let Some(waves) = &self.elastic {
            for a in 0..3 {
                let (k, amp, phase) = waves[a];
                p[a] += amp * (k[0] * o[0] + k[1] * o[1] + k[2] * o[2] + phase).sin();
            }
        }
        p
    }

    fn streak_at(&self, o: [f64; 3]) -> f32 {
        let Some(s) = &self.streaks else { return 0.0 };
        let dz = o[0] - s.source[0];
        if dz.abs() > s.half_height {
            return 0.0;
        }
        let (dy, dx) = (o[1] - s.source[1], o[2] - s.source[2]);
        let mut v = 0.0f32;
        for &(angle, amp, width) in &s.rays {
            // Distance of (dy, dx) from the line through the source at `angle`.
            let d = (dx * angle.sin() - dy * angle.cos()).abs();
            v += amp * (-(d * d) / (2.0 * width * width)).exp() as f32;
        }
        v
    }
}

fn matmul(a: &[[f64; 3]; 3], b: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    std::array::from_fn(|r| std::array::from_fn(|c| (0..3).map(|k| a[r][k] * b[k][c]).sum()))
}

/// Trilinear sample of level array `src` at continuous index `p` (z, y, x); outside -> `pad`.
fn trilinear(src: &Array3<f32>, p: [f64; 3], pad: f32) -> f32 {
    let (d, h, w) = src.dim();
    let dims = [d as i64, h as i64, w as i64];
    let f = p.map(f64::floor);
    let base = [f[0] as i64, f[1] as i64, f[2] as i64];
    let t = [p[0] - f[0], p[1] - f[1], p[2] - f[2]];
    let mut acc = 0.0f64;
    for corner in 0..8 {
        let idx = [base[0] + (corner >> 2 & 1), base[1] + (corner >> 1 & 1), base[2] + (corner & 1)];
        let mut wgt = 1.0;
        for a in 0..3 {
            wgt *= if idx[a] > base[a] { t[a] } else { 1.0 - t[a] };
        }
        if wgt == 0.0 {
            continue;
        }
        let inside = (0..3).all(|a| idx[a] >= 0 && idx[a] < dims[a]);
        let v = if inside { src[[idx[0] as usize, idx[1] as usize, idx[2] as usize]] } else { pad };
        acc += wgt * v as f64;
    }
    acc as f32
}

/// Samples one training example: per-level input patches (`sizes[l]` voxels, cubic) centred on
/// fine corner `centre - 0.5` with augmentation `aug`, and the label patch (`out` voxels) from
/// `label` by nearest neighbour. Returns `(inputs, labels)`.
pub fn sample_training_patch(
    pyr: &Pyramid,
    label: &Array3<u8>,
    centre: [i64; 3],
    sizes: &[usize],
    out: usize,
    aug: &Augmentation,
    rng: &mut Rng,
    clip_norm: [f32; 2],
) -> (Vec<Array3<f32>>, Array3<u8>) {
    let c = centre.map(|v| v as f64 - 0.5);
    let mut inputs = Vec::with_capacity(sizes.len());
    for (l, &n) in sizes.iter().enumerate() {
        let scale = (1u64 << l) as f64;
        let half = (n as f64 - 1.0) / 2.0;
        let src = &pyr.levels[l];
        let mut patch = Array3::from_shape_fn([n, n, n], |(z, y, x)| {
            let o = [(z as f64 - half) * scale, (y as f64 - half) * scale, (x as f64 - half) * scale];
            let q = aug.map_offset(o);
            let fine = [c[0] + q[0], c[1] + q[1], c[2] + q[2]];
            let p = fine.map(|v| (v + 0.5) / scale - 0.5);
            trilinear(src, p, pyr.pad) + aug.streak_at(o) / (1.0 + l as f32)
        });
        if aug.blur && l == 0 {
            blur121(&mut patch);
        }
        let (lo, hi) = (clip_norm[0], clip_norm[1]);
        let noise = aug.noise_std / (1u32 << l) as f32; // averaging reduces noise at coarse levels
        patch.mapv_inplace(|v| {
            let mut v = v.clamp(lo, hi);
            if aug.gamma != 1.0 {
                v = ((v - lo) / (hi - lo)).max(0.0).powf(aug.gamma) * (hi - lo) + lo;
            }
            v * aug.contrast + aug.brightness
        });
        if noise > 0.0 {
            patch.mapv_inplace(|v| v + noise * rng.normal() as f32);
        }
        inputs.push(patch);
    }
    let half = (out as f64 - 1.0) / 2.0;
    let (d, h, w) = label.dim();
    let labels = Array3::from_shape_fn([out, out, out], |(z, y, x)| {
        let o = [z as f64 - half, y as f64 - half, x as f64 - half];
        let q = aug.map_offset(o);
        let p = [c[0] + q[0], c[1] + q[1], c[2] + q[2]].map(f64::round);
        if p[0] < 0.0 || p[1] < 0.0 || p[2] < 0.0 || p[0] >= d as f64 || p[1] >= h as f64 || p[2] >= w as f64
        {
            0
        } else {
            label[[p[0] as usize, p[1] as usize, p[2] as usize]]
        }
    });
    (inputs, labels)
}

/// In-place separable [1, 2, 1] / 4 smoothing (edges replicate).
fn blur121(a: &mut Array3<f32>) {
    for axis in 0..3 {
        let src = a.clone();
        let n = src.shape()[axis];
        Zip::indexed(&mut *a).for_each(|(z, y, x), v| {
            let idx = [z, y, x];
            let i = idx[axis];
            let mut lo = idx;
            lo[axis] = i.saturating_sub(1);
            let mut hi = idx;
            hi[axis] = (i + 1).min(n - 1);
            *v = 0.25 * src[lo] + 0.5 * src[idx] + 0.25 * src[hi];
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(shape: [usize; 3]) -> Array3<f32> {
        Array3::from_shape_fn(shape, |(z, y, x)| (z * 100 + y * 10 + x) as f32)
    }

    #[test]
    fn pyramid_is_block_mean_with_pad() {
        let img = ramp([3, 4, 4]);
        let pyr = Pyramid::new(img.view(), 2, -1.0);
        assert_eq!(pyr.levels[1].dim(), (2, 2, 2));
        // Block (0..2, 0..2, 0..2): mean of z*100 + y*10 + x = 50 + 5 + 0.5.
        assert!((pyr.levels[1][[0, 0, 0]] - 55.5).abs() < 1e-4);
        // Block z = 2..4 has only z = 2 inside: (4 * (200 + 5 + 0.5) - 4) / 8.
        let want = (4.0 * 205.5 - 4.0) / 8.0;
        assert!((pyr.levels[1][[1, 0, 0]] - want).abs() < 1e-4);
    }

    #[test]
    fn identity_sampling_equals_aligned_copy() {
        let img = ramp([20, 18, 22]);
        let pyr = Pyramid::new(img.view(), 3, -5.0);
        let label = img.mapv(|v| (v as u32 % 7) as u8);
        let centre = [8, 4, 12]; // multiples of 4 (coarsest level alignment)
        let sizes = [6, 6, 4];
        let mut rng = Rng::new(0);
        let (inputs, labels) = sample_training_patch(
            &pyr,
            &label,
            centre,
            &sizes,
            4,
            &Augmentation::identity(),
            &mut rng,
            [-1e9, 1e9],
        );
        for (l, &n) in sizes.iter().enumerate() {
            let want = extract_aligned(&pyr, l, aligned_start(centre, l, [n; 3]), [n; 3]);
            let diff = (&inputs[l] - &want).mapv(f32::abs).fold(0.0f32, |m, &v| m.max(v));
            assert!(diff < 1e-3, "level {l}: max diff {diff}");
        }
        // The label patch of 4 around corner (7.5, 3.5, 11.5) starts at voxel (6, 2, 10).
        assert_eq!(labels[[0, 0, 0]], label[[6, 2, 10]]);
        assert_eq!(labels[[3, 3, 3]], label[[9, 5, 13]]);
        // Level 0 of the input around the same corner, size 6, starts at (5, 1, 9).
        assert_eq!(inputs[0][[0, 0, 0]], img[[5, 1, 9]]);
    }

    #[test]
    fn aligned_copy_pads_outside() {
        let img = ramp([4, 4, 4]);
        let pyr = Pyramid::new(img.view(), 1, -7.0);
        let p = extract_aligned(&pyr, 0, [-1, 2, 3], [3, 3, 3]);
        assert_eq!(p[[0, 0, 0]], -7.0);
        assert_eq!(p[[1, 0, 0]], img[[0, 2, 3]]);
        assert_eq!(p[[1, 0, 1]], -7.0);
        assert_eq!(p[[1, 2, 0]], -7.0);
    }

    #[test]
    fn random_augmentations_stay_finite() {
        let img = ramp([24, 24, 24]).mapv(|v| v / 1000.0);
        let pyr = Pyramid::new(img.view(), 2, -1.0);
        let label = Array3::<u8>::zeros([24, 24, 24]);
        let mut rng = Rng::new(3);
        for _ in 0..20 {
            let aug = Augmentation::random(&mut rng);
            let (inputs, _) =
                sample_training_patch(&pyr, &label, [12, 12, 12], &[8, 8], 4, &aug, &mut rng, [-2.0, 2.0]);
            assert!(inputs.iter().all(|p| p.iter().all(|v| v.is_finite())));
        }
    }
}
