//! The nonzero voxels of a mask or label map as runs along `i`, row by row.
//!
//! Nodes fill a tiny fraction of a CT, so a scan's evaluation works on runs (components, overlaps,
//! voxel counts) and on dense copies of small boxes (axes, surfaces), never on the whole volume:
//! its cost grows with the size of the nodes, and reading a file row by row
//! ([`nodal_io::NiftiRows`]) needs no full-size array at all.
//!
//! Row `r = k * nj + j` holds voxels `(0..ni, j, k)`. Rows are kept in ascending order and the runs
//! of a row in ascending `start`, so iterating the runs is iterating the voxels in raster order
//! (`i` fastest, then `j`, then `k`), the order [`nodal_nodes::label_components`] numbers by.
use ndarray::{Array3, ArrayView3, Axis};
use nodal_core::{Label, Volume};
use nodal_nodes::components::{find_root, row_runs};
use rayon::prelude::*;

/// Voxels `start..end` of row `(j, k)`, all holding `value` (nonzero).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Run {
    pub k: u32,
    pub j: u32,
    pub start: u32,
    pub end: u32,
    pub value: u32,
}

impl Run {
    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }
}

/// Runs of a volume of dims `(ni, nj, nk)`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Runs {
    pub dims: [usize; 3],
    /// Row index `k * nj + j` of every row holding runs, ascending.
    pub rows: Vec<usize>,
    /// The runs of `rows[x]` are `runs[row_start[x]..row_start[x + 1]]`.
    pub row_start: Vec<usize>,
    pub runs: Vec<Run>,
}

/// Inclusive box `[k, j, i]`.
pub(crate) type Bbox = ([usize; 3], [usize; 3]);

/// True when every value of `row` is `zero`. Compares blocks without an early exit inside a block,
/// which the compiler vectorises: rows are mostly background.
#[inline]
fn all_zero<T: PartialEq + Copy>(row: &[T], zero: T) -> bool {
    row.chunks(64).all(|c| c.iter().fold(true, |acc, &v| acc & (v == zero)))
}

impl Runs {
    pub fn new(dims: [usize; 3]) -> Self {
        Runs { dims, rows: Vec::new(), row_start: vec![0], runs: Vec::new() }
    }

    /// Voxels covered.
    pub fn n_voxels(&self) -> usize {
        self.runs.iter().map(Run::len).sum()
    }

    /// The runs of `rows[x]`.
    pub fn row_runs(&self, x: usize) -> &[Run] {
        &self.runs[self.row_start[x]..self.row_start[x + 1]]
    }

    /// Closes row `r` after its runs were pushed onto `self.runs` (nothing when there were none).
    fn close_row(&mut self, r: usize) {
        if self.runs.len() > *self.row_start.last().expect("row_start is never empty") {
            self.rows.push(r);
            self.row_start.push(self.runs.len());
        }
    }

    /// Appends the runs of row `r` (after every row already pushed): maximal stretches of nonzero
    /// voxels (`by_value == false`, value 1) or of equal nonzero values (`by_value == true`, value =
    /// the label, saturated to `u32`). Returns the largest label seen (0 for a background row).
    pub fn push_row<T: Label>(&mut self, r: usize, row: &[T], by_value: bool) -> usize {
        let zero = T::default();
        if all_zero(row, zero) {
            return 0;
        }
        let nj = self.dims[1];
        let (k, j) = ((r / nj) as u32, (r % nj) as u32);
        let mut max = 0;
        for (s, e, v) in row_runs(row, by_value) {
            let value = if by_value {
                max = max.max(v.as_usize());
                u32::try_from(v.as_usize()).unwrap_or(u32::MAX)
            } else {
                1
            };
            self.runs.push(Run { k, j, start: s as u32, end: e as u32, value });
        }
        self.close_row(r);
        max
    }

    /// Appends `other`, whose rows all come after this one's.
    fn append(&mut self, other: Runs) {
        let base = self.runs.len();
        self.rows.extend(other.rows);
        self.row_start.extend(other.row_start[1..].iter().map(|&s| s + base));
        self.runs.extend(other.runs);
    }

    /// The runs of a dense volume (see [`Runs::push_row`]) and the largest label, planes in
    /// parallel.
    pub fn from_volume<T: Label>(vol: &Volume<T>, by_value: bool) -> (Runs, usize) {
        Runs::from_view(vol.data(), by_value)
    }

    /// [`Runs::from_volume`] of an array `[nk, nj, ni]`.
    pub fn from_view<T: Label>(data: ArrayView3<'_, T>, by_value: bool) -> (Runs, usize) {
        let (nk, nj, ni) = data.dim();
        let dims = [ni, nj, nk];
        let pieces: Vec<(Runs, usize)> = data
            .axis_iter(Axis(0))
            .into_par_iter()
            .enumerate()
            .map(|(k, plane)| {
                let mut part = Runs::new(dims);
                let mut max = 0;
                let mut copy = Vec::new();
                for (j, row) in plane.outer_iter().enumerate() {
                    let row = match row.to_slice() {
                        Some(s) => s,
                        None => {
                            copy.clear();
                            copy.extend(row.iter().copied());
                            &copy[..]
                        }
                    };
                    max = max.max(part.push_row(k * nj + j, row, by_value));
                }
                (part, max)
            })
            .collect();
        let mut out = Runs::new(dims);
        let mut max = 0;
        for (part, m) in pieces {
            out.append(part);
            max = max.max(m);
        }
        (out, max)
    }

    /// The binary run set of the runs that `keep` selects, neighbouring runs of a row merged (two
    /// touching labels become one stretch of foreground).
    pub fn select(&self, keep: impl Fn(&Run) -> bool) -> Runs {
        let mut out = Runs::new(self.dims);
        for (x, &r) in self.rows.iter().enumerate() {
            for run in self.row_runs(x).iter().filter(|run| keep(run)) {
                push_merged(&mut out.runs, *out.row_start.last().expect("non-empty"), run);
            }
            out.close_row(r);
        }
        out
    }

    /// The binary union of two run sets on the same grid.
    pub fn union(&self, other: &Runs) -> Runs {
        let mut out = Runs::new(self.dims);
        let (mut x, mut y) = (0, 0);
        while x < self.rows.len() || y < other.rows.len() {
            let ra = self.rows.get(x).copied().unwrap_or(usize::MAX);
            let rb = other.rows.get(y).copied().unwrap_or(usize::MAX);
            let r = ra.min(rb);
            let a = if ra == r { self.row_runs(x) } else { &[] };
            let b = if rb == r { other.row_runs(y) } else { &[] };
            let first = *out.row_start.last().expect("non-empty");
            let (mut p, mut q) = (0, 0);
            while p < a.len() || q < b.len() {
                let take_a = q == b.len() || (p < a.len() && a[p].start <= b[q].start);
                let run = if take_a {
                    p += 1;
                    &a[p - 1]
                } else {
                    q += 1;
                    &b[q - 1]
                };
                push_merged(&mut out.runs, first, run);
            }
            out.close_row(r);
            x += usize::from(ra == r);
            y += usize::from(rb == r);
        }
        out
    }

    /// Calls `f(a_run, b_run, overlap)` for every pair of runs of `self` and `other` that share
    /// voxels.
    pub fn for_each_overlap(&self, other: &Runs, mut f: impl FnMut(&Run, &Run, usize)) {
        let (mut x, mut y) = (0, 0);
        while x < self.rows.len() && y < other.rows.len() {
            let (ra, rb) = (self.rows[x], other.rows[y]);
            if ra < rb {
                x += 1;
                continue;
            }
            if rb < ra {
                y += 1;
                continue;
            }
            let (a, b) = (self.row_runs(x), other.row_runs(y));
            let (mut p, mut q) = (0, 0);
            while p < a.len() && q < b.len() {
                let lo = a[p].start.max(b[q].start);
                let hi = a[p].end.min(b[q].end);
                if lo < hi {
                    f(&a[p], &b[q], (hi - lo) as usize);
                }
                if a[p].end <= b[q].end {
                    p += 1;
                } else {
                    q += 1;
                }
            }
            x += 1;
            y += 1;
        }
    }

    /// Bounding box of all runs; `None` when empty.
    pub fn bbox(&self) -> Option<Bbox> {
        bbox_of(self.runs.iter())
    }

    /// A dense copy of the box `bx`: 1 where a run covers the voxel, 0 elsewhere.
    pub fn fill_box(&self, bx: Bbox) -> Array3<u8> {
        let (lo, hi) = bx;
        let nj = self.dims[1];
        let (bj, bi) = (hi[1] - lo[1] + 1, hi[2] - lo[2] + 1);
        let mut out = Array3::<u8>::zeros((hi[0] - lo[0] + 1, bj, bi));
        let flat = out.as_slice_mut().expect("a new array is contiguous");
        for k in lo[0]..=hi[0] {
            let (r0, r1) = (k * nj + lo[1], k * nj + hi[1]);
            let mut x = self.rows.partition_point(|&r| r < r0);
            while x < self.rows.len() && self.rows[x] <= r1 {
                let j = self.rows[x] - k * nj;
                let at = ((k - lo[0]) * bj + (j - lo[1])) * bi;
                let line = &mut flat[at..at + bi];
                for run in self.row_runs(x) {
                    let s = (run.start as usize).max(lo[2]);
                    let e = (run.end as usize).min(hi[2] + 1);
                    if s < e {
                        line[s - lo[2]..e - lo[2]].fill(1);
                    }
                }
                x += 1;
            }
        }
        out
    }

    /// Dense membership of the runs `idx` in the box `bx`, which must hold them all.
    pub fn fill_some(&self, idx: &[usize], bx: Bbox) -> Array3<bool> {
        let (lo, hi) = bx;
        let (bj, bi) = (hi[1] - lo[1] + 1, hi[2] - lo[2] + 1);
        let mut m = Array3::from_elem((hi[0] - lo[0] + 1, bj, bi), false);
        let flat = m.as_slice_mut().expect("a new array is contiguous");
        for r in idx.iter().map(|&x| &self.runs[x]) {
            let at = ((r.k as usize - lo[0]) * bj + (r.j as usize - lo[1])) * bi;
            flat[at + r.start as usize - lo[2]..at + r.end as usize - lo[2]].fill(true);
        }
        m
    }

    /// A dense volume of the run values (0 elsewhere), for the rare paths that need one.
    pub fn to_dense(&self) -> Array3<u32> {
        let [ni, nj, nk] = self.dims;
        let mut out = Array3::<u32>::zeros((nk, nj, ni));
        let flat = out.as_slice_mut().expect("a new array is contiguous");
        for run in &self.runs {
            let at = (run.k as usize * nj + run.j as usize) * ni;
            flat[at + run.start as usize..at + run.end as usize].fill(run.value);
        }
        out
    }
}

/// Pushes `run` as binary foreground onto the runs of the row that starts at `first`, merging it
/// with the row's last run when they overlap or touch. Runs must come in ascending `start`.
fn push_merged(runs: &mut Vec<Run>, first: usize, run: &Run) {
    if runs.len() > first {
        let last = runs.last_mut().expect("non-empty");
        if run.start <= last.end {
            last.end = last.end.max(run.end);
            return;
        }
    }
    runs.push(Run { value: 1, ..*run });
}

/// Bounding box of some runs; `None` when there are none.
pub(crate) fn bbox_of<'a>(runs: impl Iterator<Item = &'a Run>) -> Option<Bbox> {
    let mut lo = [usize::MAX; 3];
    let mut hi = [0usize; 3];
    let mut any = false;
    for r in runs {
        any = true;
        let (k, j) = (r.k as usize, r.j as usize);
        lo = [lo[0].min(k), lo[1].min(j), lo[2].min(r.start as usize)];
        hi = [hi[0].max(k), hi[1].max(j), hi[2].max(r.end as usize - 1)];
    }
    any.then_some((lo, hi))
}

/// 26-connected components of a binary run set (runs of a row separated by background, as
/// [`Runs::push_row`] without `by_value`, [`Runs::select`] and [`Runs::union`] make them). Returns
/// the component of every run, numbered `1..=n` in raster order of each component's first voxel
/// (the numbering of [`nodal_nodes::label_components`]), and `n`.
pub(crate) fn components_26(runs: &Runs) -> (Vec<u32>, usize) {
    let nj = runs.dims[1];
    let mut parent: Vec<u32> = (0..runs.runs.len() as u32).collect();
    for (x, &r) in runs.rows.iter().enumerate() {
        let (k, j) = (r / nj, r % nj);
        // Earlier rows that can touch under 26-connectivity: (j - 1, k) and (j - 1 ..= j + 1, k - 1);
        // runs touch when they overlap along i or meet diagonally.
        let mut earlier = [usize::MAX; 4];
        if j > 0 {
            earlier[0] = r - 1;
        }
        if k > 0 {
            let below = r - nj;
            if j > 0 {
                earlier[1] = below - 1;
            }
            earlier[2] = below;
            if j + 1 < nj {
                earlier[3] = below + 1;
            }
        }
        let cur = runs.row_start[x]..runs.row_start[x + 1];
        for &e in earlier.iter().filter(|&&e| e != usize::MAX) {
            let y = runs.rows[..x].partition_point(|&q| q < e);
            if y == x || runs.rows[y] != e {
                continue;
            }
            let prev = runs.row_start[y]..runs.row_start[y + 1];
            let mut lo = prev.start;
            for a in cur.clone() {
                let ra = runs.runs[a];
                while lo < prev.end && runs.runs[lo].end < ra.start {
                    lo += 1;
                }
                let mut q = lo;
                while q < prev.end && runs.runs[q].start <= ra.end {
                    let (pa, pb) = (find_root(&mut parent, a as u32), find_root(&mut parent, q as u32));
                    if pa != pb {
                        let (l, h) = if pa < pb { (pa, pb) } else { (pb, pa) };
                        parent[h as usize] = l;
                    }
                    q += 1;
                }
            }
        }
    }
    // Runs are in raster order, so numbering roots as they are first met numbers components by
    // their first voxel.
    let mut id = vec![0u32; parent.len()];
    let mut comp = vec![0u32; parent.len()];
    let mut n = 0u32;
    for a in 0..parent.len() {
        let root = find_root(&mut parent, a as u32) as usize;
        if id[root] == 0 {
            n += 1;
            id[root] = n;
        }
        comp[a] = id[root];
    }
    (comp, n as usize)
}

/// Run indices grouped by `label[run]` (labels `1..`, 0 = none): `(label, indices)` for every
/// label present, ascending, indices in raster order.
pub(crate) fn group_by_label(labels: impl Iterator<Item = u32>) -> Vec<(u32, Vec<usize>)> {
    let mut order: Vec<(u32, usize)> =
        labels.enumerate().filter(|&(_, l)| l != 0).map(|(x, l)| (l, x)).collect();
    order.sort_unstable();
    let mut out: Vec<(u32, Vec<usize>)> = Vec::new();
    for (l, x) in order {
        match out.last_mut() {
            Some((last, v)) if *last == l => v.push(x),
            _ => out.push((l, vec![x])),
        }
    }
    out
}

/// A probability map kept where `p >= t_min`, with the values, so that it can be thresholded at any
/// `t >= t_min` without the dense map.
#[derive(Clone, Debug)]
pub(crate) struct ProbRuns {
    /// Runs of `p >= t_min` (binary).
    pub support: Runs,
    /// The probabilities of the support's voxels, run after run.
    pub values: Vec<f32>,
    pub t_min: f64,
}

impl ProbRuns {
    pub fn new(dims: [usize; 3], t_min: f64) -> Self {
        ProbRuns { support: Runs::new(dims), values: Vec::new(), t_min }
    }

    /// Appends row `r` (after every row already pushed).
    pub fn push_row(&mut self, r: usize, row: &[f32]) {
        let t = self.t_min;
        // Same comparison as the binarisation (`p as f64 >= t`).
        let above = |v: f32| v as f64 >= t;
        if row.chunks(64).all(|c| c.iter().fold(true, |acc, &v| acc & !above(v))) {
            return;
        }
        let nj = self.support.dims[1];
        let (k, j) = ((r / nj) as u32, (r % nj) as u32);
        let mut i = 0;
        while i < row.len() {
            if !above(row[i]) {
                i += 1;
                continue;
            }
            let s = i;
            while i < row.len() && above(row[i]) {
                i += 1;
            }
            self.support.runs.push(Run { k, j, start: s as u32, end: i as u32, value: 1 });
            self.values.extend_from_slice(&row[s..i]);
        }
        self.support.close_row(r);
    }

    /// From a dense map.
    pub fn from_volume(p: &Volume<f32>, t_min: f64) -> Self {
        let mut out = ProbRuns::new(p.dims(), t_min);
        // rows in memory order are rows r = k * nj + j
        for (r, row) in p.as_slice().chunks(p.dims()[0]).enumerate() {
            out.push_row(r, row);
        }
        out
    }

    /// The binary mask `p >= t` (`t >= t_min`).
    pub fn threshold(&self, t: f64) -> Runs {
        debug_assert!(t >= self.t_min);
        let s = &self.support;
        let mut out = Runs::new(s.dims);
        let mut off = 0;
        for (x, &r) in s.rows.iter().enumerate() {
            for run in s.row_runs(x) {
                let vals = &self.values[off..off + run.len()];
                off += run.len();
                let mut i = 0;
                while i < vals.len() {
                    if (vals[i] as f64) < t {
                        i += 1;
                        continue;
                    }
                    let b = i;
                    while i < vals.len() && vals[i] as f64 >= t {
                        i += 1;
                    }
                    out.runs.push(Run { start: run.start + b as u32, end: run.start + i as u32, ..*run });
                }
            }
            out.close_row(r);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nodal_core::Geometry;
    use nodal_nodes::{label_components, Connectivity};
    use proptest::prelude::*;

    fn volume(dims: [usize; 3], cells: &[u8]) -> Volume<u8> {
        let a = Array3::from_shape_fn((dims[2], dims[1], dims[0]), |(k, j, i)| {
            cells[(k * dims[1] + j) * dims[0] + i]
        });
        Volume::new(a, Geometry::axis_aligned([1.0; 3], [0.0; 3])).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Components on runs equal `label_components` voxel for voxel (same numbering).
        #[test]
        fn components_equal_label_components(
            dims in (1usize..9, 1usize..7, 1usize..6),
            cells in proptest::collection::vec(prop_oneof![3 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)], 378),
        ) {
            let dims = [dims.0, dims.1, dims.2];
            let v = volume(dims, &cells);
            let (runs, _) = Runs::from_volume(&v, false);
            let (comp, n) = components_26(&runs);
            let (want, want_n) = label_components(&v, Connectivity::TwentySix);
            prop_assert_eq!(n, want_n);
            let mut got = Runs { runs: runs.runs.clone(), ..runs.clone() };
            for (r, c) in got.runs.iter_mut().zip(&comp) {
                r.value = *c;
            }
            prop_assert_eq!(got.to_dense(), want.data().to_owned());
            // dense -> runs -> dense is the identity on the foreground
            prop_assert_eq!(runs.to_dense().mapv(|x| x as u8), v.data().mapv(|x| u8::from(x != 0)));
        }

        /// Union, selection, overlaps and boxes equal their voxel-wise definitions.
        #[test]
        fn set_operations_equal_voxelwise(
            dims in (1usize..9, 1usize..7, 1usize..6),
            a in proptest::collection::vec(0u8..4, 378),
            b in proptest::collection::vec(prop_oneof![2 => Just(0u8), 1 => Just(1u8)], 378),
        ) {
            let dims = [dims.0, dims.1, dims.2];
            let (va, vb) = (volume(dims, &a), volume(dims, &b));
            let (ra, max) = Runs::from_volume(&va, true);
            let (rb, _) = Runs::from_volume(&vb, false);
            prop_assert_eq!(max, va.as_slice().iter().map(|&x| x as usize).max().unwrap());
            prop_assert_eq!(ra.to_dense().mapv(|x| x as u8), va.data().to_owned());
            let u = ra.union(&rb).to_dense();
            let sel = ra.select(|r| r.value >= 2).to_dense();
            let mut both = 0;
            ra.for_each_overlap(&rb, |_, _, n| both += n);
            let mut want_both = 0;
            for ((x, y), (p, q)) in va.as_slice().iter().zip(vb.as_slice()).zip(u.iter().zip(sel.iter())) {
                prop_assert_eq!(*p, u32::from(*x != 0 || *y != 0));
                prop_assert_eq!(*q, u32::from(*x >= 2));
                want_both += usize::from(*x != 0 && *y != 0);
            }
            prop_assert_eq!(both, want_both);
            // a selection is binary and merged: runs of a row are separated by background
            let s = ra.select(|r| r.value >= 1);
            for x in 0..s.rows.len() {
                for w in s.row_runs(x).windows(2) {
                    prop_assert!(w[0].end < w[1].start);
                }
            }
            if let Some((lo, hi)) = ra.bbox() {
                let dense = ra.fill_box((lo, hi));
                prop_assert_eq!(dense.iter().filter(|&&x| x != 0).count(), ra.n_voxels());
                let inner = ([lo[0], lo[1], lo[2]], [hi[0], hi[1], hi[2].saturating_sub(1).max(lo[2])]);
                let part = ra.fill_box(inner);
                let full = ra.to_dense();
                for ((k, j, i), &x) in part.indexed_iter() {
                    prop_assert_eq!(x, u8::from(full[[k + lo[0], j + lo[1], i + lo[2]]] != 0));
                }
            } else {
                prop_assert!(va.as_slice().iter().all(|&x| x == 0));
            }
        }

        /// Thresholding kept values equals thresholding the dense map.
        #[test]
        fn probability_threshold_equals_dense(
            dims in (1usize..9, 1usize..5, 1usize..4),
            p in proptest::collection::vec(0.0f32..=1.0, 108),
            t in 0.05f64..0.95,
        ) {
            let dims = [dims.0, dims.1, dims.2];
            let a = Array3::from_shape_fn((dims[2], dims[1], dims[0]), |(k, j, i)| p[(k * dims[1] + j) * dims[0] + i]);
            let v = Volume::new(a, Geometry::axis_aligned([1.0; 3], [0.0; 3])).unwrap();
            let pr = ProbRuns::from_volume(&v, 0.05);
            let got = pr.threshold(t).to_dense();
            let want = v.data().mapv(|x| u32::from(x as f64 >= t));
            prop_assert_eq!(got, want);
        }
    }
}
