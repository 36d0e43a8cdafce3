//! Resampling onto another grid, geometry-exact.
//!
//! Every target voxel centre is mapped to patient space and back into the source grid's continuous
//! index, so any combination of spacing, origin and direction is handled the same way. Because both
//! maps are affine, the source index moves by a constant step along each target row; the inner loop
//! is additions only.
use crate::{Geometry, Volume, Voxel};
use ndarray::{Array3, Axis};
use rayon::prelude::*;

/// How values between voxel centres are obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interpolation {
    /// Trilinear: for intensities and probabilities.
    Linear,
    /// Nearest neighbour: for masks and label maps (never invents a label).
    Nearest,
}

impl<T: Voxel> Volume<T> {
    /// Resamples onto `target` with `dims` (ni, nj, nk). Points outside the source get `fill`.
    pub fn resample_to(
        &self,
        target: &Geometry,
        dims: [usize; 3],
        interp: Interpolation,
        fill: T,
    ) -> Volume<T> {
        let src_g = self.geometry();
        // source continuous index of target voxel (i, j, k) = base + i*di + j*dj + k*dk
        let base = src_g.world_to_index(target.index_to_world([0.0; 3]));
        let step = |a: usize| {
            let mut e = [0.0; 3];
            e[a] = 1.0;
            let p = src_g.world_to_index(target.index_to_world(e));
            [p[0] - base[0], p[1] - base[1], p[2] - base[2]]
        };
        let (di, dj, dk) = (step(0), step(1), step(2));
        let src = self.data();
        let [sni, snj, snk] = self.dims();
        let mut out = Array3::from_elem([dims[2], dims[1], dims[0]], fill);
        out.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(k, mut slab)| {
            for j in 0..dims[1] {
                let row0 = [
                    base[0] + j as f64 * dj[0] + k as f64 * dk[0],
                    base[1] + j as f64 * dj[1] + k as f64 * dk[1],
                    base[2] + j as f64 * dj[2] + k as f64 * dk[2],
                ];
                for i in 0..dims[0] {
                    let p =
                        [row0[0] + i as f64 * di[0], row0[1] + i as f64 * di[1], row0[2] + i as f64 * di[2]];
                    let v = match interp {
                        Interpolation::Nearest => {
                            let (x, y, z) = (p[0].round(), p[1].round(), p[2].round());
                            if x < 0.0
                                || y < 0.0
                                || z < 0.0
                                || x >= sni as f64
                                || y >= snj as f64
                                || z >= snk as f64
                            {
                                continue;
                            }
                            src[[z as usize, y as usize, x as usize]]
                        }
                        Interpolation::Linear => match trilinear(&src, [sni, snj, snk], p) {
                            Some(v) => T::from_f64(v),
                            None => continue,
                        },
                    };
                    slab[[j, i]] = v;
                }
            }
        });
        Volume::new(out, *target).expect("target geometry is valid")
    }

    /// Resamples to a new spacing over the same field of view (see [`Geometry::respaced`]).
    pub fn resample_spacing(&self, spacing_mm: [f64; 3], interp: Interpolation, fill: T) -> Volume<T> {
        let (g, dims) = self.geometry().respaced(self.dims(), spacing_mm);
        self.resample_to(&g, dims, interp, fill)
    }
}

/// Trilinear interpolation at continuous index `p` (i, j, k). Points up to half a voxel beyond the
/// outermost centres clamp to the edge (they are still inside the image's field of view); points
/// further out return `None`.
#[inline]
fn trilinear<T: Voxel>(src: &ndarray::ArrayView3<'_, T>, dims: [usize; 3], p: [f64; 3]) -> Option<f64> {
    let mut lo = [0usize; 3];
    let mut hi = [0usize; 3];
    let mut w = [0.0f64; 3];
    for a in 0..3 {
        let n = dims[a] as f64;
        if p[a] < -0.5 || p[a] > n - 0.5 {
            return None;
        }
        let x = p[a].clamp(0.0, n - 1.0);
        let f = x.floor();
        lo[a] = f as usize;
        hi[a] = (lo[a] + 1).min(dims[a] - 1);
        w[a] = x - f;
    }
    let g = |i: usize, j: usize, k: usize| src[[k, j, i]].to_f64();
    let c00 = g(lo[0], lo[1], lo[2]) * (1.0 - w[0]) + g(hi[0], lo[1], lo[2]) * w[0];
    let c10 = g(lo[0], hi[1], lo[2]) * (1.0 - w[0]) + g(hi[0], hi[1], lo[2]) * w[0];
    let c01 = g(lo[0], lo[1], hi[2]) * (1.0 - w[0]) + g(hi[0], lo[1], hi[2]) * w[0];
    let c11 = g(lo[0], hi[1], hi[2]) * (1.0 - w[0]) + g(hi[0], hi[1], hi[2]) * w[0];
    let c0 = c00 * (1.0 - w[1]) + c10 * w[1];
    let c1 = c01 * (1.0 - w[1]) + c11 * w[1];
    Some(c0 * (1.0 - w[2]) + c1 * w[2])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linear_field(g: Geometry, dims: [usize; 3]) -> Volume<f32> {
        // f(world) = 2x - 3y + 0.5z: trilinear interpolation must reproduce it exactly inside.
        let data = Array3::from_shape_fn([dims[2], dims[1], dims[0]], |(k, j, i)| {
            let w = g.index_to_world([i as f64, j as f64, k as f64]);
            (2.0 * w[0] - 3.0 * w[1] + 0.5 * w[2]) as f32
        });
        Volume::new(data, g).unwrap()
    }

    #[test]
    fn linear_reproduces_affine_field_on_oblique_grid() {
        let src_g = Geometry::axis_aligned([0.8, 0.8, 2.0], [0.0, 0.0, 0.0]);
        let src = linear_field(src_g, [40, 40, 20]);
        let (s, c) = (0.2f64.sin(), 0.2f64.cos());
        let tgt = Geometry {
            spacing_mm: [1.1, 0.9, 1.3],
            origin_mm: [8.0, 6.0, 6.0],
            direction: [[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]],
        };
        let out = src.resample_to(&tgt, [10, 10, 10], Interpolation::Linear, f32::NAN);
        let mut checked = 0;
        for k in 0..10 {
            for j in 0..10 {
                for i in 0..10 {
                    let w = tgt.index_to_world([i as f64, j as f64, k as f64]);
                    let want = 2.0 * w[0] - 3.0 * w[1] + 0.5 * w[2];
                    let got = out.get(i, j, k) as f64;
                    assert!((got - want).abs() < 1e-3, "{got} vs {want}");
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 1000);
    }

    #[test]
    fn nearest_keeps_labels_and_identity_is_exact() {
        let g = Geometry::axis_aligned([0.5, 0.5, 1.0], [1.0, 2.0, 3.0]);
        let data = Array3::from_shape_fn([6, 7, 8], |(k, j, i)| ((i + 2 * j + 3 * k) % 5) as u16);
        let v = Volume::new(data, g).unwrap();
        let same = v.resample_to(&g, v.dims(), Interpolation::Nearest, 0);
        assert_eq!(same, v);
        let lin = v.map(|x| x as f32).resample_to(&g, v.dims(), Interpolation::Linear, 0.0);
        assert_eq!(lin, v.map(|x| x as f32));
        let down = v.resample_spacing([1.0, 1.0, 2.0], Interpolation::Nearest, 0);
        assert_eq!(down.dims(), [4, 4, 3]);
        assert!(down.as_slice().iter().all(|&x| x < 5));
    }

    #[test]
    fn outside_gets_fill() {
        let g = Geometry::axis_aligned([1.0; 3], [0.0; 3]);
        let v = Volume::filled([4, 4, 4], g, 7i16);
        let far = Geometry::axis_aligned([1.0; 3], [100.0, 0.0, 0.0]);
        let out = v.resample_to(&far, [2, 2, 2], Interpolation::Linear, -1024);
        assert!(out.as_slice().iter().all(|&x| x == -1024));
    }
}
