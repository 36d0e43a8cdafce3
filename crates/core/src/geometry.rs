use crate::{CoreError, MAX_VOXELS};
use serde::{Deserialize, Serialize};

/// A point or vector in patient space, millimetres, LPS.
pub type Vec3 = [f64; 3];
/// A 3x3 matrix, row-major: `m[r][c]`.
pub type Mat3 = [[f64; 3]; 3];

/// Where a voxel grid sits in patient space (DICOM LPS frame, millimetres).
///
/// `world = origin_mm + sum_a direction[a] * spacing_mm[a] * index[a]` for index axes `a = i, j, k`.
/// `origin_mm` is the centre of voxel (0, 0, 0). `direction[a]` is the unit vector, in LPS, along
/// which index axis `a` increases — note this is the *transpose* of ITK's direction matrix, whose
/// columns are the axes.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Geometry {
    /// Voxel size along (i, j, k), mm.
    pub spacing_mm: Vec3,
    /// Centre of voxel (0, 0, 0), LPS mm.
    pub origin_mm: Vec3,
    /// `direction[a]` = LPS unit vector of index axis `a`.
    pub direction: Mat3,
}

const IDENTITY: Mat3 = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];

impl Geometry {
    /// Axis-aligned LPS geometry (identity direction).
    pub fn axis_aligned(spacing_mm: Vec3, origin_mm: Vec3) -> Self {
        Geometry { spacing_mm, origin_mm, direction: IDENTITY }
    }

    /// Checks spacing, origin and direction; returns a typed error for NaN, non-positive spacing or
    /// a non-orthonormal basis (tolerance 1e-3, which is what scanners write in practice).
    pub fn validate(&self) -> Result<(), CoreError> {
        if self.spacing_mm.iter().any(|s| !s.is_finite() || *s <= 0.0) {
            return Err(CoreError::InvalidSpacing { spacing_mm: self.spacing_mm });
        }
        if self.origin_mm.iter().any(|o| !o.is_finite()) {
            return Err(CoreError::InvalidOrigin { origin_mm: self.origin_mm });
        }
        let d = &self.direction;
        for a in 0..3 {
            for b in 0..3 {
                let dot = dot(d[a], d[b]);
                let want = if a == b { 1.0 } else { 0.0 };
                if !dot.is_finite() || (dot - want).abs() > 1e-3 {
                    return Err(CoreError::InvalidDirection { direction: self.direction });
                }
            }
        }
        Ok(())
    }

    /// Continuous voxel index (i, j, k) -> LPS mm.
    #[inline]
    pub fn index_to_world(&self, index: Vec3) -> Vec3 {
        let mut p = self.origin_mm;
        for a in 0..3 {
            let s = self.spacing_mm[a] * index[a];
            for c in 0..3 {
                p[c] += self.direction[a][c] * s;
            }
        }
        p
    }

    /// LPS mm -> continuous voxel index (i, j, k). Exact inverse of [`Self::index_to_world`] for an
    /// orthonormal direction.
    #[inline]
    pub fn world_to_index(&self, world: Vec3) -> Vec3 {
        let r = sub(world, self.origin_mm);
        let mut idx = [0.0; 3];
        for a in 0..3 {
            idx[a] = dot(self.direction[a], r) / self.spacing_mm[a];
        }
        idx
    }

    /// 4x4 index -> LPS affine, row-major (the DICOM/ITK convention; flip the first two rows for RAS).
    pub fn affine_lps(&self) -> [[f64; 4]; 4] {
        let mut m = [[0.0; 4]; 4];
        for r in 0..3 {
            for a in 0..3 {
                m[r][a] = self.direction[a][r] * self.spacing_mm[a];
            }
            m[r][3] = self.origin_mm[r];
        }
        m[3][3] = 1.0;
        m
    }

    /// The same as [`Self::affine_lps`] in RAS (NIfTI / nibabel convention).
    pub fn affine_ras(&self) -> [[f64; 4]; 4] {
        let mut m = self.affine_lps();
        for c in 0..4 {
            m[0][c] = -m[0][c];
            m[1][c] = -m[1][c];
        }
        m
    }

    /// Builds a geometry from a 4x4 (or 3x4) index -> LPS affine. Spacing is the column norms; the
    /// direction is the normalised columns. Fails on NaN, zero columns or a non-orthogonal matrix
    /// (a sheared grid has no voxel geometry).
    pub fn from_affine_lps(m: &[[f64; 4]; 4]) -> Result<Self, CoreError> {
        let mut spacing_mm = [0.0; 3];
        let mut direction = [[0.0; 3]; 3];
        for a in 0..3 {
            let col = [m[0][a], m[1][a], m[2][a]];
            let n = norm(col);
            spacing_mm[a] = n;
            if n > 0.0 && n.is_finite() {
                direction[a] = [col[0] / n, col[1] / n, col[2] / n];
            }
        }
        let g = Geometry { spacing_mm, origin_mm: [m[0][3], m[1][3], m[2][3]], direction };
        g.validate()?;
        Ok(g)
    }

    /// Physical size of one voxel, mm^3.
    pub fn voxel_volume_mm3(&self) -> f64 {
        self.spacing_mm.iter().product()
    }

    /// True when two grids coincide to within `tol_mm` at every corner (given the same dims).
    pub fn same_grid(&self, other: &Geometry, dims: [usize; 3], tol_mm: f64) -> bool {
        let last = [
            dims[0].saturating_sub(1) as f64,
            dims[1].saturating_sub(1) as f64,
            dims[2].saturating_sub(1) as f64,
        ];
        for corner in 0..8 {
            let idx = [
                if corner & 1 != 0 { last[0] } else { 0.0 },
                if corner & 2 != 0 { last[1] } else { 0.0 },
                if corner & 4 != 0 { last[2] } else { 0.0 },
            ];
            let d = norm(sub(self.index_to_world(idx), other.index_to_world(idx)));
            if d.is_nan() || d > tol_mm {
                return false;
            }
        }
        // Corners alone cannot tell spacing/direction apart on degenerate (size-1) axes.
        (0..3).all(|a| (self.spacing_mm[a] - other.spacing_mm[a]).abs() <= tol_mm)
    }

    /// The grid that covers the same field of view (voxel *corners* kept in place) at a new spacing.
    /// Returns the new geometry and its dims. Used to resample to a model's spacing and back.
    pub fn respaced(&self, dims: [usize; 3], spacing_mm: Vec3) -> (Geometry, [usize; 3]) {
        let mut new_dims = [0usize; 3];
        let mut origin_idx = [0.0; 3]; // new voxel 0 centre, in old continuous index
        for a in 0..3 {
            let extent = dims[a] as f64 * self.spacing_mm[a];
            let n = (extent / spacing_mm[a]).round().max(1.0) as usize;
            new_dims[a] = n;
            // corner of old grid at -0.5; new centre 0 at corner + half new voxel, centred on extent
            let new_extent = n as f64 * spacing_mm[a];
            let start_mm = -0.5 * self.spacing_mm[a] + 0.5 * (extent - new_extent);
            origin_idx[a] = (start_mm + 0.5 * spacing_mm[a]) / self.spacing_mm[a];
        }
        let g =
            Geometry { spacing_mm, origin_mm: self.index_to_world(origin_idx), direction: self.direction };
        (g, new_dims)
    }

    /// The unit slice normal (k axis direction).
    pub fn slice_normal(&self) -> Vec3 {
        self.direction[2]
    }
}

/// Checks dims are non-zero and the product stays below [`MAX_VOXELS`] (overflow-safe).
pub(crate) fn check_dims(dims: [usize; 3]) -> Result<usize, CoreError> {
    if dims.contains(&0) {
        return Err(CoreError::InvalidDims { dims, reason: "a dimension is 0".into() });
    }
    let n =
        dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)).filter(|&n| n <= MAX_VOXELS).ok_or_else(
            || CoreError::InvalidDims { dims, reason: format!("more than {MAX_VOXELS} voxels") },
        )?;
    Ok(n)
}

#[inline]
pub(crate) fn dot(a: Vec3, b: Vec3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}
#[inline]
pub(crate) fn sub(a: Vec3, b: Vec3) -> Vec3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
#[inline]
pub(crate) fn norm(a: Vec3) -> f64 {
    dot(a, a).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oblique() -> Geometry {
        let (s, c) = (0.3f64.sin(), 0.3f64.cos());
        Geometry {
            spacing_mm: [0.7, 0.8, 2.5],
            origin_mm: [10.0, -5.0, 100.0],
            direction: [[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, -1.0]],
        }
    }

    #[test]
    fn index_world_round_trip() {
        let g = oblique();
        g.validate().unwrap();
        let idx = [3.25, -1.5, 7.0];
        let back = g.world_to_index(g.index_to_world(idx));
        for a in 0..3 {
            assert!((back[a] - idx[a]).abs() < 1e-12);
        }
    }

    #[test]
    fn affine_round_trip() {
        let g = oblique();
        let g2 = Geometry::from_affine_lps(&g.affine_lps()).unwrap();
        assert!(g.same_grid(&g2, [10, 10, 10], 1e-9));
        let ras = g.affine_ras();
        assert_eq!(ras[0][3], -10.0);
        assert_eq!(ras[1][3], 5.0);
    }

    #[test]
    fn invalid_geometry_is_rejected() {
        let mut g = oblique();
        g.spacing_mm[1] = f64::NAN;
        assert!(matches!(g.validate(), Err(CoreError::InvalidSpacing { .. })));
        let mut g = oblique();
        g.direction[0] = [1.0, 1.0, 0.0];
        assert!(matches!(g.validate(), Err(CoreError::InvalidDirection { .. })));
        assert!(check_dims([0, 1, 1]).is_err());
        assert!(check_dims([usize::MAX, 2, 2]).is_err());
        assert!(check_dims([100_000, 100_000, 1]).is_err());
        assert_eq!(check_dims([2, 3, 4]).unwrap(), 24);
    }

    #[test]
    fn respaced_keeps_field_of_view() {
        let g = oblique();
        let dims = [100, 80, 40];
        let (g2, d2) = g.respaced(dims, [1.4, 1.6, 5.0]);
        assert_eq!(d2, [50, 40, 20]);
        // The first corner of both grids coincides.
        let c1 = g.index_to_world([-0.5, -0.5, -0.5]);
        let c2 = g2.index_to_world([-0.5, -0.5, -0.5]);
        for c in 0..3 {
            assert!((c1[c] - c2[c]).abs() < 1e-9);
        }
    }
}
