//! Axial short and long axes of labelled runs, equal bit for bit to
//! [`nodal_nodes::measure::axial_axes`] on the full label map.
//!
//! On a grid with an index axis along S-I, `axial_axes` measures each label inside its bounding box
//! from the first and last voxel of every row of every axial slice, in index coordinates of the
//! whole volume. Here each label's box is filled from its runs and measured by the same function
//! ([`axial_axes_in_box`], global indices, the volume's geometry), so the results are identical
//! while nothing full-size is built.
//! Oblique grids need the library's axial reformation; there the full label map is rebuilt and
//! handed to `axial_axes` itself.
use crate::sparse::{bbox_of, group_by_label, Bbox, Runs};
use ndarray::Array3;
use nodal_core::{Geometry, Volume};
use nodal_nodes::measure::{axial_axes, axial_axes_in_box, has_axial_index_axis};
use rayon::prelude::*;

/// `(short_axis_mm, long_axis_mm)` of every label `1..` of `runs` (value = label), indexed by label:
/// `None` for labels without voxels. The vector has `max label + 1` entries (at least one).
pub(crate) fn label_axes(runs: &Runs, geom: &Geometry) -> Vec<Option<(f64, f64)>> {
    if !has_axial_index_axis(geom) {
        let vol = Volume::new(runs.to_dense(), *geom).expect("the runs' grid is a valid volume");
        return axial_axes(&vol).into_iter().map(|a| a.map(|a| (a.short_axis_mm, a.long_axis_mm))).collect();
    }
    let groups = group_by_label(runs.runs.iter().map(|r| r.value));
    let n = groups.last().map_or(1, |(l, _)| *l as usize + 1);
    let measured: Vec<(u32, Option<(f64, f64)>)> = groups
        .par_iter()
        .map(|(label, idx)| {
            let bx = bbox_of(idx.iter().map(|&x| &runs.runs[x])).expect("a group has runs");
            (*label, axes_in_box(&runs.fill_some(idx, bx), bx, geom))
        })
        .collect();
    let mut out = vec![None; n];
    for (label, ax) in measured {
        out[label as usize] = ax;
    }
    out
}

/// The measurement of `nodal_nodes::measure` for one label inside its box. `member` is indexed
/// `[k, j, i]` relative to `bx.0`.
fn axes_in_box(member: &Array3<bool>, bx: Bbox, g: &Geometry) -> Option<(f64, f64)> {
    // bounds per original index axis (i, j, k); the box is [k, j, i]
    let min = [bx.0[2], bx.0[1], bx.0[0]];
    let max = [bx.1[2], bx.1[1], bx.1[0]];
    let ax =
        axial_axes_in_box(g, min, max, |idx| member[[idx[2] - bx.0[0], idx[1] - bx.0[1], idx[0] - bx.0[2]]])?;
    Some((ax.short_axis_mm, ax.long_axis_mm))
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
