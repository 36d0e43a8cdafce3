//! Binary morphology on the voxel array.
use ndarray::{Array3, Axis};

/// Box dilation of a 0/1 mask (shape `[nk, nj, ni]`) by `r` voxels per index axis (i, j, k):
/// a voxel is set when any voxel within `±r` along every axis is. Separable, one pass of prefix
/// sums per axis, so its cost does not grow with the radius.
pub fn dilate_box(mask: &Array3<u8>, r: [usize; 3]) -> Array3<u8> {
    let mut cur = mask.clone();
    for (axis, rad) in [(2usize, r[0]), (1, r[1]), (0, r[2])] {
        if rad == 0 {
            continue;
        }
        let src = cur.clone();
        let mut pre = Vec::new();
        for (mut o, s) in cur.lanes_mut(Axis(axis)).into_iter().zip(src.lanes(Axis(axis))) {
            let n = s.len();
            // Prefix sums: any one inside [x - rad, x + rad].
            pre.clear();
            pre.push(0u32);
            for x in 0..n {
                pre.push(pre[x] + u32::from(s[x] != 0));
            }
            for x in 0..n {
                let (a, b) = (x.saturating_sub(rad), (x + rad + 1).min(n));
                o[x] = u8::from(pre[b] > pre[a]);
            }
        }
    }
    cur
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn box_dilation_matches_brute_force(
            seed in 0u64..1000, nk in 1usize..5, nj in 1usize..6, ni in 1usize..7,
            ri in 0usize..3, rj in 0usize..3, rk in 0usize..3,
        ) {
            // A sparse pseudo-random mask from the seed.
            let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let mask = Array3::from_shape_fn([nk, nj, ni], |_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                u8::from((s >> 33) % 7 == 0)
            });
            let got = dilate_box(&mask, [ri, rj, rk]);
            for ((k, j, i), &v) in got.indexed_iter() {
                let want = mask.indexed_iter().any(|((kk, jj, ii), &m)| {
                    m == 1 && kk.abs_diff(k) <= rk && jj.abs_diff(j) <= rj && ii.abs_diff(i) <= ri
                });
                prop_assert_eq!(v == 1, want, "at ({}, {}, {})", i, j, k);
            }
        }
    }
}
