//! Orientation codes and exact reorientation to canonical LPS storage.
use crate::{Geometry, Volume, Voxel};
use ndarray::Axis;

/// Where an index axis points, named by the patient direction it increases towards
/// (nibabel's `aff2axcodes` convention: an identity LPS direction is "LPS", a RAS-stored NIfTI "RAS").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AxisCode {
    L,
    R,
    P,
    A,
    S,
    I,
}

impl AxisCode {
    /// The letter.
    pub fn letter(self) -> char {
        match self {
            AxisCode::L => 'L',
            AxisCode::R => 'R',
            AxisCode::P => 'P',
            AxisCode::A => 'A',
            AxisCode::S => 'S',
            AxisCode::I => 'I',
        }
    }
}

/// For each index axis (i, j, k): the world axis it is closest to and whether it runs along (+1) or
/// against (-1) it. World axes are LPS x, y, z. Ties are broken so each world axis is used once.
fn axis_assignment(g: &Geometry) -> [(usize, f64); 3] {
    let mut used = [false; 3];
    let mut out = [(0usize, 1.0f64); 3];
    // Assign axes in order of how decisive they are, so an oblique axis cannot steal a world axis
    // that another index axis matches better.
    let mut order: Vec<usize> = (0..3).collect();
    let best = |a: usize| g.direction[a].iter().fold(0.0f64, |m, v| m.max(v.abs()));
    order.sort_by(|&a, &b| best(b).partial_cmp(&best(a)).unwrap_or(std::cmp::Ordering::Equal));
    for a in order {
        let mut pick = None;
        for c in 0..3 {
            if used[c] {
                continue;
            }
            let v = g.direction[a][c];
            if pick.is_none_or(|(_, pv): (usize, f64)| v.abs() > pv.abs()) {
                pick = Some((c, v));
            }
        }
        let (c, v) = pick.expect("three axes");
        used[c] = true;
        out[a] = (c, if v < 0.0 { -1.0 } else { 1.0 });
    }
    out
}

/// Orientation code of a geometry, e.g. `[L, P, S]` or `[R, A, S]`.
pub fn axis_codes(g: &Geometry) -> [AxisCode; 3] {
    let asg = axis_assignment(g);
    asg.map(|(c, s)| match (c, s > 0.0) {
        (0, true) => AxisCode::L,
        (0, false) => AxisCode::R,
        (1, true) => AxisCode::P,
        (1, false) => AxisCode::A,
        (2, true) => AxisCode::S,
        _ => AxisCode::I,
    })
}

impl Geometry {
    /// Orientation code as a string, e.g. "LPS".
    pub fn orientation_string(&self) -> String {
        axis_codes(self).iter().map(|c| c.letter()).collect()
    }
}

impl<T: Voxel> Volume<T> {
    /// Reorders and flips axes so that storage is as close to LPS as the grid allows (i -> L,
    /// j -> P, k -> S). Exact: no interpolation, every voxel keeps its world position. An oblique
    /// grid stays oblique (only the axis order and signs change).
    pub fn reorient_canonical(&self) -> Volume<T> {
        let g = self.geometry();
        let asg = axis_assignment(g);
        // perm[c] = index axis that becomes new axis c.
        let mut perm = [0usize; 3];
        for (a, &(c, _)) in asg.iter().enumerate() {
            perm[c] = a;
        }
        let dims = self.dims();
        // The new origin is the world position of the old voxel that becomes (0,0,0).
        let mut first = [0.0; 3];
        for a in 0..3 {
            if asg[a].1 < 0.0 {
                first[a] = (dims[a] - 1) as f64;
            }
        }
        let mut new_geom =
            Geometry { spacing_mm: [0.0; 3], origin_mm: g.index_to_world(first), direction: [[0.0; 3]; 3] };
        for c in 0..3 {
            let a = perm[c];
            new_geom.spacing_mm[c] = g.spacing_mm[a];
            let s = asg[a].1;
            new_geom.direction[c] = g.direction[a].map(|v| v * s);
        }
        // Array axes are reversed index axes: array axis (2 - a) holds index axis a.
        let mut view = self.data();
        for a in 0..3 {
            if asg[a].1 < 0.0 {
                view.invert_axis(Axis(2 - a));
            }
        }
        // New array axis (2 - c) must hold old index axis perm[c], i.e. old array axis 2 - perm[c].
        let new_order = [2 - perm[2], 2 - perm[1], 2 - perm[0]];
        let data = view.permuted_axes(new_order).as_standard_layout().into_owned();
        Volume::new(data, new_geom).expect("reorientation keeps a valid geometry")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    fn ras_volume() -> Volume<i16> {
        // RAS storage: i -> R (-x), j -> A (-y), k -> S.
        let g = Geometry {
            spacing_mm: [0.5, 0.7, 2.0],
            origin_mm: [12.0, 30.0, -40.0],
            direction: [[-1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]],
        };
        let data = Array3::from_shape_fn([3, 4, 5], |(k, j, i)| (100 * k + 10 * j + i) as i16);
        Volume::new(data, g).unwrap()
    }

    #[test]
    fn codes() {
        assert_eq!(ras_volume().geometry().orientation_string(), "RAS");
        assert_eq!(Geometry::axis_aligned([1.0; 3], [0.0; 3]).orientation_string(), "LPS");
        let swapped = Geometry {
            spacing_mm: [1.0; 3],
            origin_mm: [0.0; 3],
            direction: [[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
        };
        assert_eq!(swapped.orientation_string(), "ILP");
    }

    #[test]
    fn reorient_keeps_world_values() {
        for v in [ras_volume(), permuted(ras_volume())] {
            let c = v.reorient_canonical();
            assert_eq!(c.geometry().orientation_string(), "LPS");
            let [ni, nj, nk] = v.dims();
            for k in 0..nk {
                for j in 0..nj {
                    for i in 0..ni {
                        let w = v.geometry().index_to_world([i as f64, j as f64, k as f64]);
                        let ci = c.geometry().world_to_index(w).map(|x| x.round() as usize);
                        assert_eq!(c.get(ci[0], ci[1], ci[2]), v.get(i, j, k));
                    }
                }
            }
        }
    }

    /// The same voxels stored with k as the fastest axis (a sagittal-like storage).
    fn permuted(v: Volume<i16>) -> Volume<i16> {
        let (data, g) = v.into_parts();
        let g2 = Geometry {
            spacing_mm: [g.spacing_mm[2], g.spacing_mm[0], g.spacing_mm[1]],
            origin_mm: g.origin_mm,
            direction: [g.direction[2], g.direction[0], g.direction[1]],
        };
        // new index (i', j', k') = old (k, i, j): array [k', j', i'] = old [j, i, k]
        let d2 = data.permuted_axes([1, 2, 0]).as_standard_layout().into_owned();
        Volume::new(d2, g2).unwrap()
    }
}
