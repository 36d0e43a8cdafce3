//! Connected components in 3D (6-, 18- or 26-connectivity).
//!
//! # Algorithm
//!
//! Voxels are grouped into *runs* (maximal stretches of foreground along a row, `i` fastest), and runs
//! are joined with a union-find wherever they touch a run of an earlier row under the chosen
//! connectivity. A row only has to look at up to four earlier rows — `(k, j-1)`, `(k-1, j)`,
//! `(k-1, j-1)`, `(k-1, j+1)` — so the work is proportional to the number of runs, not voxels,
//! once the rows are scanned. The volume is cut into slabs along `k` that are labelled in parallel
//! (rayon); the slabs' union-finds are then concatenated and joined across each slab border.
//!
//! # Numbering
//!
//! Labels are `1..=n` in **raster order of each component's first voxel**: scanning voxels in memory
//! order (`i` fastest, then `j`, then `k`), the first component met is 1, the next new one 2, and so
//! on. The result therefore does not depend on the number of threads, and equals the order
//! `scipy.ndimage.label` and `cc3d` use.
use ndarray::{Array3, ArrayView2, ArrayView3, Axis};
use nodal_core::{Label, Volume};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Which neighbours of a voxel count as touching.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Connectivity {
    /// Face neighbours only (6).
    Six,
    /// Face and edge neighbours (18).
    Eighteen,
    /// Face, edge and corner neighbours (26) — the protocol's choice for predicted nodes.
    #[default]
    TwentySix,
}

impl Connectivity {
    /// The neighbour count: 6, 18 or 26.
    pub fn neighbours(self) -> usize {
        match self {
            Connectivity::Six => 6,
            Connectivity::Eighteen => 18,
            Connectivity::TwentySix => 26,
        }
    }

    /// From a neighbour count (6, 18, 26).
    pub fn from_neighbours(n: usize) -> Option<Self> {
        match n {
            6 => Some(Connectivity::Six),
            18 => Some(Connectivity::Eighteen),
            26 => Some(Connectivity::TwentySix),
            _ => None,
        }
    }

    /// True when voxel offset `(di, dj, dk)` (each in -1..=1, not all zero) is a neighbour.
    pub fn is_neighbour(self, d: [i64; 3]) -> bool {
        let l1 = d[0].abs() + d[1].abs() + d[2].abs();
        match self {
            Connectivity::Six => l1 == 1,
            Connectivity::Eighteen => (1..=2).contains(&l1),
            Connectivity::TwentySix => (1..=3).contains(&l1),
        }
    }

    /// All neighbour offsets `(di, dj, dk)`.
    pub fn offsets(self) -> Vec<[i64; 3]> {
        let mut v = Vec::with_capacity(26);
        for dk in -1..=1 {
            for dj in -1..=1 {
                for di in -1..=1 {
                    if self.is_neighbour([di, dj, dk]) {
                        v.push([di, dj, dk]);
                    }
                }
            }
        }
        v
    }
}

/// Labels the connected components of the foreground (every nonzero voxel) of `mask`.
///
/// Returns the component map (0 = background, components `1..=n` numbered in raster order of their
/// first voxel, see the module docs) on the same grid, and `n`. Different nonzero values are *not*
/// kept apart; see [`label_components_of_labels`] for that.
pub fn label_components<T: Label>(mask: &Volume<T>, conn: Connectivity) -> (Volume<u32>, usize) {
    label_impl::<T, false>(mask, conn)
}

/// Connected components within each label value separately: two touching voxels belong to the same
/// component only when they hold the same nonzero value. Touching nodes with different ids stay
/// distinct; one id split into two blobs becomes two components. Numbering as in
/// [`label_components`].
pub fn label_components_of_labels<T: Label>(labels: &Volume<T>, conn: Connectivity) -> (Volume<u32>, usize) {
    label_impl::<T, true>(labels, conn)
}

/// Checks that a volume declared to be a mask holds only 0 and 1.
///
/// # Errors
/// [`crate::NodesError::NotBinary`] naming the first other value.
pub fn check_binary<T: Label>(mask: &Volume<T>) -> Result<(), crate::NodesError> {
    let one = T::from_usize(1);
    match mask.as_slice().iter().find(|&&v| v != T::default() && v != one) {
        Some(v) => Err(crate::NodesError::NotBinary { value: v.to_f64() as i64 }),
        None => Ok(()),
    }
}

/// True when every voxel is 0 or 1.
pub fn is_binary<T: Label>(mask: &Volume<T>) -> bool {
    check_binary(mask).is_ok()
}

/// One run: voxels `start..end` of a row, all foreground (and, by value, all equal to `value`).
#[derive(Clone, Copy)]
struct Run<T> {
    start: u32,
    end: u32,
    label: u32,
    value: T,
}

/// A slab of planes `k0..k1` labelled on its own.
struct Slab<T> {
    k0: usize,
    /// All runs, row by row in raster order.
    runs: Vec<Run<T>>,
    /// `row_start[r]..row_start[r + 1]` are the runs of row `r = (k - k0) * nj + j`.
    row_start: Vec<usize>,
    /// Union-find parents of the slab's local labels.
    parent: Vec<u32>,
}

/// Root of `x` in a union-find forest stored as parent indices (`parent[r] == r` at a root), with
/// path halving. Shared by the labelling here and the evaluator's run-based components.
#[inline]
pub fn find_root(parent: &mut [u32], mut x: u32) -> u32 {
    while parent[x as usize] != x {
        let p = parent[x as usize];
        parent[x as usize] = parent[p as usize]; // path halving
        x = p;
    }
    x
}

#[inline]
fn union(parent: &mut [u32], a: u32, b: u32) {
    let (ra, rb) = (find_root(parent, a), find_root(parent, b));
    if ra != rb {
        let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
        parent[hi as usize] = lo;
    }
}

/// Joins every run of `cur` with each run of `prev` it touches. `expand`: diagonal contact along `i`
/// counts (the rows are face- or edge-neighbours in the j/k plane and the connectivity allows one
/// more step along `i`); otherwise the runs must share an `i`.
#[inline]
fn connect_rows<T: PartialEq + Copy, const BY_VALUE: bool>(
    cur: &[Run<T>],
    prev: &[Run<T>],
    expand: bool,
    parent: &mut [u32],
) {
    if prev.is_empty() {
        return;
    }
    let ex = u32::from(expand);
    let mut lo = 0;
    for a in cur {
        while lo < prev.len() && prev[lo].end + ex <= a.start {
            lo += 1;
        }
        let mut q = lo;
        while q < prev.len() && prev[q].start < a.end + ex {
            let b = &prev[q];
            if a.start < b.end + ex && (!BY_VALUE || a.value == b.value) {
                union(parent, a.label, b.label);
            }
            q += 1;
        }
    }
}

/// The earlier rows a row must be joined with: `(dj, dk, expand)`.
fn earlier_rows(conn: Connectivity) -> &'static [(i64, i64, bool)] {
    match conn {
        Connectivity::Six => &[(-1, 0, false), (0, -1, false)],
        Connectivity::Eighteen => &[(-1, 0, true), (0, -1, true), (-1, -1, false), (1, -1, false)],
        Connectivity::TwentySix => &[(-1, 0, true), (0, -1, true), (-1, -1, true), (1, -1, true)],
    }
}

/// Maximal stretches of a row's nonzero voxels as `(start, end, value)`, `end` exclusive: of equal
/// values when `by_value`, else of any nonzero values (`value` = the stretch's first voxel). The
/// run splitting of [`label_components`], for callers that keep masks as runs.
pub fn row_runs<T: Label>(row: &[T], by_value: bool) -> RowRuns<'_, T> {
    RowRuns { row, i: 0, by_value }
}

/// Iterator of [`row_runs`].
pub struct RowRuns<'a, T> {
    row: &'a [T],
    i: usize,
    by_value: bool,
}

impl<T: Label> Iterator for RowRuns<'_, T> {
    type Item = (usize, usize, T);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let zero = T::default();
        // Skip background with a tight loop (most of a row, usually).
        let s = self.i + self.row[self.i..].iter().position(|&v| v != zero)?;
        let v = self.row[s];
        let rest = &self.row[s + 1..];
        let len = if self.by_value {
            rest.iter().position(|&w| w != v).unwrap_or(rest.len())
        } else {
            rest.iter().position(|&w| w == zero).unwrap_or(rest.len())
        };
        self.i = s + 1 + len;
        Some((s, self.i, v))
    }
}

/// Splits one row into runs, appending them with fresh local labels.
#[inline]
fn scan_row<T: Label, const BY_VALUE: bool>(row: &[T], runs: &mut Vec<Run<T>>, parent: &mut Vec<u32>) {
    for (s, e, v) in row_runs(row, BY_VALUE) {
        let label = parent.len() as u32;
        parent.push(label);
        runs.push(Run { start: s as u32, end: e as u32, label, value: v });
    }
}

fn label_slab<T: Label, const BY_VALUE: bool>(
    data: &ArrayView3<'_, T>,
    k0: usize,
    k1: usize,
    conn: Connectivity,
) -> Slab<T> {
    let nj = data.shape()[1];
    let mut runs: Vec<Run<T>> = Vec::new();
    let mut parent: Vec<u32> = Vec::new();
    let mut row_start = Vec::with_capacity((k1 - k0) * nj + 1);
    let rows = earlier_rows(conn);
    for k in k0..k1 {
        let plane: ArrayView2<'_, T> = data.index_axis(Axis(0), k);
        for j in 0..nj {
            row_start.push(runs.len());
            let row = plane.index_axis(Axis(0), j);
            let first = runs.len();
            match row.as_slice() {
                Some(s) => scan_row::<T, BY_VALUE>(s, &mut runs, &mut parent),
                None => scan_row::<T, BY_VALUE>(&row.to_vec(), &mut runs, &mut parent),
            }
            if first == runs.len() {
                continue;
            }
            for &(dj, dk, expand) in rows {
                let (pj, pk) = (j as i64 + dj, k as i64 + dk);
                if pj < 0 || pj >= nj as i64 || pk < k0 as i64 {
                    continue;
                }
                let pr = (pk as usize - k0) * nj + pj as usize;
                let (ps, pe) = (row_start[pr], row_start[pr + 1]);
                let (before, cur) = runs.split_at(first);
                connect_rows::<T, BY_VALUE>(cur, &before[ps..pe], expand, &mut parent);
            }
        }
    }
    row_start.push(runs.len());
    Slab { k0, runs, row_start, parent }
}

fn label_impl<T: Label, const BY_VALUE: bool>(vol: &Volume<T>, conn: Connectivity) -> (Volume<u32>, usize) {
    let data = vol.data();
    let [_, nj, nk] = vol.dims();
    // Several slabs per thread balance uneven foreground; a slab is at least 4 planes so border
    // merging stays a small fraction of the work.
    let n_slabs = (rayon::current_num_threads() * 4).min(nk.div_ceil(4)).max(1);
    let slab_k = nk.div_ceil(n_slabs);
    let bounds: Vec<(usize, usize)> = (0..nk).step_by(slab_k).map(|k0| (k0, (k0 + slab_k).min(nk))).collect();
    let mut slabs: Vec<Slab<T>> =
        bounds.par_iter().map(|&(k0, k1)| label_slab::<T, BY_VALUE>(&data, k0, k1, conn)).collect();

    // One global union-find: slab s's local label l becomes offset[s] + l.
    let total: usize = slabs.iter().map(|s| s.parent.len()).sum();
    let mut parent: Vec<u32> = Vec::with_capacity(total);
    let mut offset = 0u32;
    for slab in &mut slabs {
        parent.extend(slab.parent.iter().map(|&p| p + offset));
        for r in &mut slab.runs {
            r.label += offset;
        }
        offset += slab.parent.len() as u32;
        slab.parent = Vec::new();
    }

    // Join across slab borders: the first plane of slab s with the last plane of slab s-1.
    let rows = earlier_rows(conn);
    for s in 1..slabs.len() {
        let (before, after) = slabs.split_at(s);
        let (lower, upper) = (&before[s - 1], &after[0]);
        let lower_planes = (lower.row_start.len() - 1) / nj;
        for j in 0..nj {
            let cur = &upper.runs[upper.row_start[j]..upper.row_start[j + 1]];
            if cur.is_empty() {
                continue;
            }
            for &(dj, dk, expand) in rows {
                if dk != -1 {
                    continue;
                }
                let pj = j as i64 + dj;
                if pj < 0 || pj >= nj as i64 {
                    continue;
                }
                let pr = (lower_planes - 1) * nj + pj as usize;
                let prev = &lower.runs[lower.row_start[pr]..lower.row_start[pr + 1]];
                connect_rows::<T, BY_VALUE>(cur, prev, expand, &mut parent);
            }
        }
        debug_assert_eq!(upper.k0, lower.k0 + lower_planes);
    }

    // Final ids in raster order of first voxel: runs are stored in raster order, slab by slab.
    let mut final_id = vec![0u32; total];
    let mut n = 0u32;
    for slab in &mut slabs {
        for r in &mut slab.runs {
            let root = find_root(&mut parent, r.label) as usize;
            if final_id[root] == 0 {
                n += 1;
                final_id[root] = n;
            }
            r.label = final_id[root];
        }
    }

    let shape = data.raw_dim();
    let mut out = Array3::<u32>::zeros(shape);
    out.axis_chunks_iter_mut(Axis(0), slab_k).into_par_iter().zip(slabs.par_iter()).for_each(
        |(mut chunk, slab)| {
            let planes = chunk.shape()[0];
            for r in 0..planes * nj {
                let (kk, j) = (r / nj, r % nj);
                let mut plane = chunk.index_axis_mut(Axis(0), kk);
                let mut row = plane.index_axis_mut(Axis(0), j);
                let row = row.as_slice_mut().expect("standard layout");
                for run in &slab.runs[slab.row_start[r]..slab.row_start[r + 1]] {
                    row[run.start as usize..run.end as usize].fill(run.label);
                }
            }
        },
    );
    let out = vol.with_data(out).expect("output has the input's shape");
    (out, n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nodal_core::Geometry;

    fn vol(dims: [usize; 3], f: impl Fn(usize, usize, usize) -> u8) -> Volume<u8> {
        let a = Array3::from_shape_fn([dims[2], dims[1], dims[0]], |(k, j, i)| f(i, j, k));
        Volume::new(a, Geometry::axis_aligned([1.0; 3], [0.0; 3])).unwrap()
    }

    #[test]
    fn diagonal_pairs_depend_on_connectivity() {
        // Voxels (0,0,0) and (1,1,0) share an edge; (0,0,0) and (1,1,1) only a corner.
        let edge = vol([2, 2, 2], |i, j, k| u8::from((i, j, k) == (0, 0, 0) || (i, j, k) == (1, 1, 0)));
        assert_eq!(label_components(&edge, Connectivity::Six).1, 2);
        assert_eq!(label_components(&edge, Connectivity::Eighteen).1, 1);
        let corner = vol([2, 2, 2], |i, j, k| u8::from((i, j, k) == (0, 0, 0) || (i, j, k) == (1, 1, 1)));
        assert_eq!(label_components(&corner, Connectivity::Eighteen).1, 2);
        assert_eq!(label_components(&corner, Connectivity::TwentySix).1, 1);
    }

    #[test]
    fn raster_order_numbering() {
        // Two bars: the one whose first voxel comes first in memory order gets label 1.
        let v = vol([6, 4, 3], |i, j, k| u8::from((k == 2 && j == 0 && i < 3) || (k == 1 && i == 5)));
        let (l, n) = label_components(&v, Connectivity::Six);
        assert_eq!(n, 2);
        assert_eq!(l.get(5, 0, 1), 1);
        assert_eq!(l.get(0, 0, 2), 2);
    }

    #[test]
    fn values_kept_apart() {
        let v = vol([4, 1, 1], |i, _, _| if i < 2 { 3 } else { 7 });
        assert_eq!(label_components(&v, Connectivity::Six).1, 1);
        let (l, n) = label_components_of_labels(&v, Connectivity::Six);
        assert_eq!(n, 2);
        assert_eq!(l.as_slice(), &[1, 1, 2, 2]);
    }
}
