//! Axial short and long axes of labelled runs, equal bit for bit to
//! [`nodal_nodes::measure::axial_axes`] on the full label map.
//!
//! On a grid with an index axis along S-I, `axial_axes` measures each label inside its bounding box
//! from the first and last voxel of every row of every axial slice, in index coordinates of the
//! whole volume. Here each label's box is filled from its runs and measured with the same loop and
//! the same world-coordinate expression (global indices, the volume's geometry), so the points
//! handed to [`slice_axes`] and hence the results are identical while nothing full-size is built.
//! Oblique grids need the library's axial reformation; there the full label map is rebuilt and
//! handed to `axial_axes` itself.
use crate::sparse::{bbox_of, group_by_label, Bbox, Runs};
use ndarray::Array3;
use nodal_core::{Geometry, Volume};
use nodal_nodes::hull::{slice_axes, P3};
use nodal_nodes::measure::axial_axes;
use rayon::prelude::*;

/// Cosine tolerance for "this index axis runs along S-I" (as in `nodal_nodes::measure`).
const AXIAL_COS_TOL: f64 = 1e-6;

/// Original index axes (0 = i, 1 = j, 2 = k) of the in-plane column, row and the slice axis.
fn axial_frame(g: &Geometry) -> Option<[usize; 3]> {
    let a = (0..3).find(|&a| g.direction[a][2].abs() >= 1.0 - AXIAL_COS_TOL)?;
    let mut inplane = (0..3).filter(|&b| b != a);
    let c = inplane.next()?;
    let r = inplane.next()?;
    Some([c, r, a])
}

/// `(short_axis_mm, long_axis_mm)` of every label `1..` of `runs` (value = label), indexed by label:
/// `None` for labels without voxels. The vector has `max label + 1` entries (at least one).
pub(crate) fn label_axes(runs: &Runs, geom: &Geometry) -> Vec<Option<(f64, f64)>> {
    let Some(frame) = axial_frame(geom) else {
        let vol = Volume::new(runs.to_dense(), *geom).expect("the runs' grid is a valid volume");
        return axial_axes(&vol).into_iter().map(|a| a.map(|a| (a.short_axis_mm, a.long_axis_mm))).collect();
    };
    let groups = group_by_label(runs.runs.iter().map(|r| r.value));
    let n = groups.last().map_or(1, |(l, _)| *l as usize + 1);
    let measured: Vec<(u32, Option<(f64, f64)>)> = groups
        .par_iter()
        .map(|(label, idx)| {
            let bx = bbox_of(idx.iter().map(|&x| &runs.runs[x])).expect("a group has runs");
            (*label, axes_in_box(&runs.fill_some(idx, bx), bx, geom, frame))
        })
        .collect();
    let mut out = vec![None; n];
    for (label, ax) in measured {
        out[label as usize] = ax;
    }
    out
}

/// The measurement of `nodal_nodes::measure` for one label inside its box: for each slice, the
/// corners of the first and last pixel of every row, hull axes per slice, largest SAD and LAD with
/// ties to the lowest slice. `member` is indexed `[k, j, i]` relative to `bx.0`.
fn axes_in_box(member: &Array3<bool>, bx: Bbox, g: &Geometry, frame: [usize; 3]) -> Option<(f64, f64)> {
    let [ac, ar, as_] = frame;
    // bounds per original index axis (i, j, k); the box is [k, j, i]
    let min = [bx.0[2], bx.0[1], bx.0[0]];
    let max = [bx.1[2], bx.1[1], bx.1[0]];
    // Step in mm per unit of each original index axis.
    let e = |a: usize| g.direction[a].map(|d| d * g.spacing_mm[a]);
    let (ec, er, es) = (e(ac), e(ar), e(as_));
    let o = g.origin_mm;
    let world = |c: f64, r: f64, s: f64| -> P3 {
        [
            o[0] + c * ec[0] + r * er[0] + s * es[0],
            o[1] + c * ec[1] + r * er[1] + s * es[1],
            o[2] + c * ec[2] + r * er[2] + s * es[2],
        ]
    };
    let mut best: Option<(f64, f64)> = None;
    let mut pts: Vec<P3> = Vec::new();
    let mut idx = [0usize; 3];
    for s in min[as_]..=max[as_] {
        pts.clear();
        idx[as_] = s;
        for r in min[ar]..=max[ar] {
            idx[ar] = r;
            let (mut first, mut last) = (usize::MAX, 0usize);
            for c in min[ac]..=max[ac] {
                idx[ac] = c;
                if member[[idx[2] - bx.0[0], idx[1] - bx.0[1], idx[0] - bx.0[2]]] {
                    first = first.min(c);
                    last = c;
                }
            }
            if first == usize::MAX {
                continue;
            }
            let (c0, c1, r) = (first as f64 - 0.5, last as f64 + 0.5, r as f64);
            let sf = s as f64;
            pts.extend([
                world(c0, r - 0.5, sf),
                world(c0, r + 0.5, sf),
                world(c1, r - 0.5, sf),
                world(c1, r + 0.5, sf),
            ]);
        }
        let Some(ax) = slice_axes(&pts) else { continue };
        let b = best.get_or_insert((ax.short_axis_mm, ax.long_axis_mm));
        if ax.short_axis_mm > b.0 {
            b.0 = ax.short_axis_mm;
        }
        if ax.long_axis_mm > b.1 {
            b.1 = ax.long_axis_mm;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn geometries() -> Vec<Geometry> {
        let mut out = vec![
            Geometry::axis_aligned([0.7, 0.7, 1.5], [-180.3, 12.25, 733.1]),
            Geometry::axis_aligned([0.43, 0.91, 2.5], [1000.0, -0.1, 0.0]),
        ];
        // flipped and permuted (S-I along i or j, sagittal/coronal storage)
        let mut g = Geometry::axis_aligned([0.8, 0.6, 1.25], [15.5, -7.0, 101.0]);
        g.direction = [[-1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]];
        out.push(g);
        g.direction = [[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]];
        out.push(g);
        g.direction = [[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]];
        out.push(g);
        // oblique: no index axis along S-I
        let (s, c) = (0.3f64.sin(), 0.3f64.cos());
        g.direction = [[1.0, 0.0, 0.0], [0.0, c, s], [0.0, -s, c]];
        out.push(g);
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Equal (bit for bit) to `axial_axes` on the full label map, on every kind of grid.
        #[test]
        fn equals_axial_axes_of_the_full_map(
            dims in (2usize..12, 2usize..10, 2usize..7),
            cells in proptest::collection::vec(prop_oneof![4 => Just(0u16), 1 => Just(1u16), 1 => Just(2u16), 1 => Just(5u16)], 840),
            which in 0usize..6,
        ) {
            let g = geometries()[which];
            let a = Array3::from_shape_fn((dims.2, dims.1, dims.0), |(k, j, i)| cells[(k * dims.1 + j) * dims.0 + i]);
            let vol = Volume::new(a, g).unwrap();
            let (runs, _) = Runs::from_volume(&vol, true);
            let got = label_axes(&runs, &g);
            let want: Vec<Option<(f64, f64)>> =
                axial_axes(&vol).into_iter().map(|a| a.map(|a| (a.short_axis_mm, a.long_axis_mm))).collect();
            prop_assert_eq!(got, want);
        }
    }
}
