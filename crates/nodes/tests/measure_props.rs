//! Measurements do not depend on how the same patient-space voxels are stored: flipping or
//! permuting index axes (with the geometry adjusted so every voxel keeps its world position) must
//! give the same values.
use ndarray::{Array3, Axis};
use nodal_core::{Geometry, Volume, Voxel};
use nodal_nodes::measure::{measure_nodes, MeasureOptions, NodeMeasurement};
use proptest::prelude::*;

/// Reverses index axis `a`; the voxel at new index n-1-x is the old voxel x.
fn flip<T: Voxel>(v: &Volume<T>, a: usize) -> Volume<T> {
    let g = *v.geometry();
    let mut first = [0.0; 3];
    first[a] = (v.dims()[a] - 1) as f64;
    let mut g2 = g;
    g2.origin_mm = g.index_to_world(first);
    g2.direction[a] = g.direction[a].map(|x| -x);
    let mut d = v.data().to_owned();
    d.invert_axis(Axis(2 - a));
    Volume::new(d, g2).unwrap()
}

/// Swaps index axes `a` and `b`.
fn swap<T: Voxel>(v: &Volume<T>, a: usize, b: usize) -> Volume<T> {
    let g = *v.geometry();
    let mut g2 = g;
    g2.spacing_mm.swap(a, b);
    g2.direction.swap(a, b);
    let d = v.data().to_owned();
    let mut order = [0, 1, 2];
    order.swap(2 - a, 2 - b);
    Volume::new(d.permuted_axes(order).as_standard_layout().into_owned(), g2).unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-7 * (1.0 + a.abs().max(b.abs()))
}

fn same(m: &NodeMeasurement, n: &NodeMeasurement) -> Result<(), String> {
    let mut pairs = vec![
        ("volume", m.volume_mm3, n.volume_mm3),
        ("sad", m.axes.short_axis_mm, n.axes.short_axis_mm),
        ("lad", m.axes.long_axis_mm, n.axes.long_axis_mm),
        ("d3", m.max_diameter_3d_mm, n.max_diameter_3d_mm),
        ("area", m.surface_area_mm2, n.surface_area_mm2),
        ("sph", m.sphericity, n.sphericity),
    ];
    for c in 0..3 {
        pairs.push(("centroid", m.centroid_mm[c], n.centroid_mm[c]));
        pairs.push(("bbox_min", m.bbox_min_mm[c], n.bbox_min_mm[c]));
        pairs.push(("bbox_max", m.bbox_max_mm[c], n.bbox_max_mm[c]));
    }
    if let (Some(a), Some(b)) = (&m.hu, &n.hu) {
        pairs.extend([
            ("mean", a.mean_hu, b.mean_hu),
            ("std", a.std_hu, b.std_hu),
            ("p10", a.p10_hu, b.p10_hu),
            ("p90", a.p90_hu, b.p90_hu),
        ]);
    }
    for (name, a, b) in pairs {
        if !close(a, b) {
            return Err(format!("label {}: {name} {a} vs {b}", m.node_id));
        }
    }
    if m.voxel_count != n.voxel_count
        || m.interior_voxel_count != n.interior_voxel_count
        || m.necrosis_fraction != n.necrosis_fraction
        || m.side != n.side
        || m.recist_category != n.recist_category
    {
        return Err(format!("label {}: counts/classes differ\n{m:?}\n{n:?}", m.node_id));
    }
    Ok(())
}

#[derive(Debug, Clone)]
struct Case {
    labels: Volume<u8>,
    ct: Volume<i16>,
    ops: Vec<(bool, usize, usize)>,
}

fn case() -> impl Strategy<Value = Case> {
    let dims = (5usize..14, 5usize..14, 3usize..10);
    let spacing = (0.4f64..2.0, 0.4f64..2.0, 0.5f64..3.0);
    let balls = proptest::collection::vec((0.0f64..1.0, 0.0f64..1.0, 0.0f64..1.0, 0.8f64..5.0, 1u8..4), 1..5);
    let ops = proptest::collection::vec((any::<bool>(), 0usize..3, 0usize..3), 1..4);
    (dims, spacing, balls, ops, any::<u64>()).prop_map(|((ni, nj, nk), (si, sj, sk), balls, ops, seed)| {
        let sp = [si, sj, sk];
        let dims = [ni, nj, nk];
        let g = Geometry::axis_aligned(sp, [-3.0, 7.0, 11.0]);
        let labels = Array3::from_shape_fn([nk, nj, ni], |(k, j, i)| {
            let p = [i as f64 * sp[0], j as f64 * sp[1], k as f64 * sp[2]];
            let mut l = 0;
            for &(x, y, z, r, id) in &balls {
                let c = [x * dims[0] as f64 * sp[0], y * dims[1] as f64 * sp[1], z * dims[2] as f64 * sp[2]];
                if (p[0] - c[0]).powi(2) + (p[1] - c[1]).powi(2) + (p[2] - c[2]).powi(2) <= r * r {
                    l = id;
                }
            }
            l
        });
        let ct = Array3::from_shape_fn([nk, nj, ni], |(k, j, i)| {
            let h = (i as u64 * 73 + j as u64 * 151 + k as u64 * 313).wrapping_mul(seed | 1) >> 40;
            (h % 200) as i16 - 60
        });
        Case { labels: Volume::new(labels, g).unwrap(), ct: Volume::new(ct, g).unwrap(), ops }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]
    #[test]
    fn invariant_under_flips_and_permutations(c in case()) {
        let opts = MeasureOptions { midline_x_mm: Some(1.0), ..Default::default() };
        let want = measure_nodes(&c.labels, Some(&c.ct), &opts).unwrap();
        let (mut l, mut ct) = (c.labels.clone(), c.ct.clone());
        for &(is_flip, a, b) in &c.ops {
            if is_flip {
                l = flip(&l, a);
                ct = flip(&ct, a);
            } else if a != b {
                l = swap(&l, a, b);
                ct = swap(&ct, a, b);
            }
        }
        let got = measure_nodes(&l, Some(&ct), &opts).unwrap();
        prop_assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            prop_assert_eq!(g.node_id, w.node_id);
            if let Err(e) = same(g, w) {
                return Err(TestCaseError::fail(format!("{e} after {:?}", c.ops)));
            }
        }
    }
}
