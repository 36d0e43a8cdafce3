//! Connected components against a naive BFS flood fill on random small volumes.
use ndarray::Array3;
use nodal_core::{Geometry, Volume};
use nodal_nodes::{label_components, label_components_of_labels, Connectivity};
use proptest::prelude::*;
use std::collections::VecDeque;

/// Naive reference: flood fill from each unvisited foreground voxel in raster order; `same` decides
/// whether two foreground values may join.
fn naive(v: &Volume<u8>, conn: Connectivity, by_value: bool) -> (Vec<u32>, usize) {
    let [ni, nj, nk] = v.dims();
    let mut out = vec![0u32; ni * nj * nk];
    let idx = |i: usize, j: usize, k: usize| (k * nj + j) * ni + i;
    let offs = conn.offsets();
    let mut n = 0;
    for k in 0..nk {
        for j in 0..nj {
            for i in 0..ni {
                let val = v.get(i, j, k);
                if val == 0 || out[idx(i, j, k)] != 0 {
                    continue;
                }
                n += 1;
                out[idx(i, j, k)] = n;
                let mut q = VecDeque::from([(i, j, k)]);
                while let Some((a, b, c)) = q.pop_front() {
                    for d in &offs {
                        let (x, y, z) = (a as i64 + d[0], b as i64 + d[1], c as i64 + d[2]);
                        if x < 0 || y < 0 || z < 0 || x >= ni as i64 || y >= nj as i64 || z >= nk as i64 {
                            continue;
                        }
                        let (x, y, z) = (x as usize, y as usize, z as usize);
                        let w = v.get(x, y, z);
                        if w == 0 || out[idx(x, y, z)] != 0 || (by_value && w != val) {
                            continue;
                        }
                        out[idx(x, y, z)] = n;
                        q.push_back((x, y, z));
                    }
                }
            }
        }
    }
    (out, n as usize)
}

fn volume_strategy() -> impl Strategy<Value = Volume<u8>> {
    (1usize..9, 1usize..9, 1usize..40, 0.0f64..1.0, 1u8..4).prop_flat_map(|(ni, nj, nk, density, nvals)| {
        proptest::collection::vec((0.0f64..1.0, 1u8..=nvals), ni * nj * nk).prop_map(move |cells| {
            let data: Vec<u8> = cells.iter().map(|&(p, v)| if p < density { v } else { 0 }).collect();
            let a = Array3::from_shape_vec([nk, nj, ni], data).unwrap();
            Volume::new(a, Geometry::axis_aligned([1.0; 3], [0.0; 3])).unwrap()
        })
    })
}

const CONNS: [Connectivity; 3] = [Connectivity::Six, Connectivity::Eighteen, Connectivity::TwentySix];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Identical labels (including the raster-order numbering), for masks and per-value labelling,
    /// in all three connectivities. nk up to 39 makes several slabs, so slab merging is exercised.
    #[test]
    fn matches_naive_flood_fill(v in volume_strategy()) {
        for conn in CONNS {
            let (got, n) = label_components(&v, conn);
            let (want, wn) = naive(&v, conn, false);
            prop_assert_eq!(n, wn);
            prop_assert_eq!(got.as_slice(), &want[..]);
            let (got, n) = label_components_of_labels(&v, conn);
            let (want, wn) = naive(&v, conn, true);
            prop_assert_eq!(n, wn);
            prop_assert_eq!(got.as_slice(), &want[..]);
        }
    }
}

#[test]
fn empty_and_full() {
    let g = Geometry::axis_aligned([1.0; 3], [0.0; 3]);
    let (l, n) = label_components(&Volume::<u8>::zeros([5, 4, 3], g), Connectivity::TwentySix);
    assert_eq!(n, 0);
    assert!(l.as_slice().iter().all(|&x| x == 0));
    let (l, n) = label_components(&Volume::<u16>::filled([5, 4, 30], g, 9), Connectivity::Six);
    assert_eq!(n, 1);
    assert!(l.as_slice().iter().all(|&x| x == 1));
    assert_eq!(l.geometry(), &g);
}
