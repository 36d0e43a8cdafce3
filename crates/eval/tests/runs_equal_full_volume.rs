//! The fast evaluation (runs of nonzero voxels, small boxes, files streamed row by row) against
//! the full-volume computation it replaced, kept here verbatim as the reference: every result must
//! be equal bit for bit, on random scans with nodes touching the volume border, anisotropic and
//! flipped grids, empty masks and probability maps.
#![allow(dead_code)]

/// The full-volume evaluation: every stage on whole arrays (components and their labelling,
/// overlaps, filtered masks, the distance boxes found on a labelled union volume).
mod full {
    use ndarray::{Array3, ArrayView3, Axis, Zip};
    use nodal_core::vocab::{LOCALIZED_MIN_SENSITIVITY, MIN_SHORT_AXIS_MM};
    use nodal_core::SadGroup;
    use nodal_core::{Geometry, Label, Volume};
    use nodal_eval::distance::{summarise, DirectedDistances, SurfaceDistances};
    use nodal_eval::scan::{
        froc_thresholds, FpRow, FrocCounts, NodeRow, Prediction, ScanResult, MAX_LABEL_ID,
        PROBABILITY_THRESHOLD, SIGNIFICANT_FP_SAD_MM,
    };
    use nodal_eval::EvalError;
    use nodal_eval::NodeMeta;
    use nodal_nodes::components::{label_components, Connectivity};
    use nodal_nodes::measure::axial_axes;
    use rayon::prelude::*;
    use std::collections::HashSet;
    use std::sync::OnceLock;

    /// Exact squared Euclidean distance (mm^2) from every voxel to the nearest `true` voxel of
    /// `features` (`[nk, nj, ni]`, `spacing` per array axis). Voxels with no feature get infinity.
    fn edt_squared(features: &Array3<bool>, spacing: [f64; 3]) -> Array3<f64> {
        let mut d = features.map(|&f| if f { 0.0 } else { f64::INFINITY });
        for axis in [2usize, 1, 0] {
            let n = d.len_of(Axis(axis));
            let s = spacing[axis];
            // Parallel over an outer axis other than `axis`; within each 2D sub-view the lanes along
            // `axis` are transformed one by one with a per-thread scratch buffer.
            let (outer, inner) = match axis {
                0 => (1, 0), // sub-view [k, i]: lanes along its axis 0 (k)
                1 => (0, 0), // sub-view [j, i]: lanes along its axis 0 (j)
                _ => (0, 1), // sub-view [j, i]: lanes along its axis 1 (i)
            };
            d.axis_iter_mut(Axis(outer)).into_par_iter().for_each_init(
                || Scratch::new(n),
                |scratch, mut view| {
                    for mut lane in view.lanes_mut(Axis(inner)) {
                        for (x, v) in scratch.f.iter_mut().zip(lane.iter()) {
                            *x = *v;
                        }
                        transform_1d(scratch, s);
                        for (v, x) in lane.iter_mut().zip(scratch.out.iter()) {
                            *v = *x;
                        }
                    }
                },
            );
        }
        d
    }

    /// Buffers of the 1D transform (one per worker thread).
    struct Scratch {
        f: Vec<f64>,
        out: Vec<f64>,
        v: Vec<usize>,
        z: Vec<f64>,
    }

    impl Scratch {
        fn new(n: usize) -> Self {
            Scratch { f: vec![0.0; n], out: vec![0.0; n], v: vec![0; n], z: vec![0.0; n + 1] }
        }
    }

    /// 1D squared distance transform of sampled function `f` with sample spacing `s`:
    /// out[p] = min_q f[q] + (s (p - q))^2, by the lower envelope of parabolas rooted at the finite
    /// samples (Felzenszwalb & Huttenlocher). Infinite samples are not parabolas and are skipped.
    fn transform_1d(sc: &mut Scratch, s: f64) {
        let n = sc.f.len();
        let f = &sc.f;
        let pos = |q: usize| q as f64 * s;
        let mut k: usize = 0; // number of parabolas in the envelope minus one
        let mut started = false;
        for q in 0..n {
            if !f[q].is_finite() {
                continue;
            }
            if !started {
                sc.v[0] = q;
                sc.z[0] = f64::NEG_INFINITY;
                sc.z[1] = f64::INFINITY;
                started = true;
                continue;
            }
            let (fq, xq) = (f[q], pos(q));
            loop {
                let vk = sc.v[k];
                let (fv, xv) = (f[vk], pos(vk));
                // abscissa where the parabola at q overtakes the one at v_k
                let inter = ((fq + xq * xq) - (fv + xv * xv)) / (2.0 * (xq - xv));
                if inter <= sc.z[k] && k > 0 {
                    k -= 1;
                    continue;
                }
                if inter <= sc.z[k] {
                    // k == 0 and z[0] = -inf: cannot happen, but keep the envelope valid
                    sc.v[0] = q;
                    sc.z[1] = f64::INFINITY;
                    break;
                }
                k += 1;
                sc.v[k] = q;
                sc.z[k] = inter;
                sc.z[k + 1] = f64::INFINITY;
                break;
            }
        }
        if !started {
            sc.out.fill(f64::INFINITY);
            return;
        }
        let mut j = 0;
        for p in 0..n {
            let xp = pos(p);
            while sc.z[j + 1] < xp {
                j += 1;
            }
            let vj = sc.v[j];
            let dx = xp - pos(vj);
            sc.out[p] = dx * dx + f[vj];
        }
    }

    fn surface_distances(
        a: ArrayView3<'_, u8>,
        b: ArrayView3<'_, u8>,
        spacing_mm: [f64; 3],
    ) -> Option<SurfaceDistances> {
        let d = directed_surface_distances(a, b, spacing_mm)?;
        Some(summarise(&d))
    }

    /// Directed surface distances between two masks on the same grid (`[nk, nj, ni]` arrays, nonzero =
    /// foreground, `spacing_mm` in (i, j, k) order). `None` when either mask is empty.
    pub fn directed_surface_distances(
        a: ArrayView3<'_, u8>,
        b: ArrayView3<'_, u8>,
        spacing_mm: [f64; 3],
    ) -> Option<DirectedDistances> {
        debug_assert_eq!(a.shape(), b.shape());
        let everything = union_bbox(a, b)?;
        let union = Zip::from(a).and(b).par_map_collect(|&x, &y| u8::from(x != 0 || y != 0));
        let geom = Geometry::axis_aligned(spacing_mm, [0.0; 3]);
        let union = Volume::new(union, geom).ok()?;
        let (labels, n) = label_components(&union, Connectivity::TwentySix);
        drop(union);
        let boxes = component_boxes(labels.data(), n);
        // spacing per array axis [k, j, i]
        let sp = [spacing_mm[2], spacing_mm[1], spacing_mm[0]];
        let lab = labels.data();
        let directed = |from: ArrayView3<'_, u8>, to: ArrayView3<'_, u8>| -> Vec<f64> {
            // squared distances to `to`'s surface over the box of everything, computed at most once
            let fallback = OnceLock::new();
            let per: Vec<Vec<f64>> = (1..=n)
                .into_par_iter()
                .map(|c| directed_in_component(from, to, lab, c as u32, boxes[c], everything, &fallback, sp))
                .collect();
            let mut all: Vec<f64> = per.into_iter().flatten().collect();
            all.par_sort_unstable_by(f64::total_cmp);
            all
        };
        let a_to_b = directed(a, b);
        let b_to_a = directed(b, a);
        if a_to_b.is_empty() || b_to_a.is_empty() {
            return None;
        }
        Some(DirectedDistances { a_to_b, b_to_a })
    }

    /// An inclusive box `[k, j, i]`.
    type Bbox = ([usize; 3], [usize; 3]);

    /// Bounding boxes of labels `1..=n` (index 0 unused).
    fn component_boxes(labels: ArrayView3<'_, u32>, n: usize) -> Vec<Bbox> {
        let empty = || vec![([usize::MAX; 3], [0usize; 3]); n + 1];
        labels
            .axis_iter(Axis(0))
            .into_par_iter()
            .enumerate()
            .fold(empty, |mut acc, (k, slab)| {
                for ((j, i), &c) in slab.indexed_iter() {
                    if c != 0 {
                        let b = &mut acc[c as usize];
                        b.0 = [b.0[0].min(k), b.0[1].min(j), b.0[2].min(i)];
                        b.1 = [b.1[0].max(k), b.1[1].max(j), b.1[2].max(i)];
                    }
                }
                acc
            })
            .reduce(empty, |mut x, y| {
                for (p, q) in x.iter_mut().zip(y) {
                    p.0 = [0, 1, 2].map(|a| p.0[a].min(q.0[a]));
                    p.1 = [0, 1, 2].map(|a| p.1[a].max(q.1[a]));
                }
                x
            })
    }

    /// True when voxel `[k, j, i]` of `m` is foreground with a 6-neighbour that is background or
    /// outside the volume.
    #[inline]
    fn is_surface(m: &ArrayView3<'_, u8>, k: usize, j: usize, i: usize) -> bool {
        let (nk, nj, ni) = m.dim();
        if m[[k, j, i]] == 0 {
            return false;
        }
        k == 0
            || j == 0
            || i == 0
            || k + 1 == nk
            || j + 1 == nj
            || i + 1 == ni
            || m[[k - 1, j, i]] == 0
            || m[[k + 1, j, i]] == 0
            || m[[k, j - 1, i]] == 0
            || m[[k, j + 1, i]] == 0
            || m[[k, j, i - 1]] == 0
            || m[[k, j, i + 1]] == 0
    }

    /// Surface flags of `to` inside the box (true neighbours looked up in the full volume).
    fn surface_in_box(to: &ArrayView3<'_, u8>, bx: Bbox) -> Array3<bool> {
        let (lo, hi) = bx;
        let dims = (hi[0] - lo[0] + 1, hi[1] - lo[1] + 1, hi[2] - lo[2] + 1);
        let mut features = Array3::from_elem(dims, false);
        features.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(dk, mut slab)| {
            for ((dj, di), f) in slab.indexed_iter_mut() {
                *f = is_surface(to, lo[0] + dk, lo[1] + dj, lo[2] + di);
            }
        });
        features
    }

    /// Distances (mm) from the points `pts` (`[k, j, i]`, inside `bx`) to the nearest surface voxel of
    /// `to` inside `bx`; infinity where there is none.
    fn distances_in_box(to: &ArrayView3<'_, u8>, bx: Bbox, pts: &[[usize; 3]], sp: [f64; 3]) -> Vec<f64> {
        let lo = bx.0;
        let d2 = edt_squared(&surface_in_box(to, bx), sp);
        pts.iter().map(|p| d2[[p[0] - lo[0], p[1] - lo[1], p[2] - lo[2]]].sqrt()).collect()
    }

    /// Distances from the surface voxels of `from` in component `c` to the surface of `to` (module
    /// docs: local box, then the box grown by the largest local distance).
    fn directed_in_component(
        from: ArrayView3<'_, u8>,
        to: ArrayView3<'_, u8>,
        labels: ArrayView3<'_, u32>,
        c: u32,
        bx: Bbox,
        everything: Bbox,
        fallback: &OnceLock<Array3<f64>>,
        sp: [f64; 3],
    ) -> Vec<f64> {
        let (lo, hi) = bx;
        let mut pts = Vec::new();
        for k in lo[0]..=hi[0] {
            for j in lo[1]..=hi[1] {
                for i in lo[2]..=hi[2] {
                    if labels[[k, j, i]] == c && is_surface(&from, k, j, i) {
                        pts.push([k, j, i]);
                    }
                }
            }
        }
        if pts.is_empty() {
            return Vec::new();
        }
        let local = distances_in_box(&to, bx, &pts, sp);
        if local.iter().any(|d| d.is_infinite()) {
            // no surface of `to` in this component's box: use the box of everything (it holds every
            // component), shared by all such components
            let (e0, _) = everything;
            let d2 = fallback.get_or_init(|| edt_squared(&surface_in_box(&to, everything), sp));
            return pts.iter().map(|p| d2[[p[0] - e0[0], p[1] - e0[1], p[2] - e0[2]]].sqrt()).collect();
        }
        let reach = local.iter().copied().fold(0.0f64, f64::max);
        let dims = to.dim();
        let dims = [dims.0, dims.1, dims.2];
        let g = [0, 1, 2].map(|a| (reach / sp[a]).ceil() as usize);
        let grown: Bbox = (
            [0, 1, 2].map(|a| lo[a].saturating_sub(g[a])),
            [0, 1, 2].map(|a| (hi[a] + g[a]).min(dims[a] - 1)),
        );
        if grown == bx {
            return local;
        }
        distances_in_box(&to, grown, &pts, sp)
    }

    /// Inclusive bounding box `[k, j, i]` of the union of two masks; `None` if either is empty.
    fn union_bbox(a: ArrayView3<'_, u8>, b: ArrayView3<'_, u8>) -> Option<([usize; 3], [usize; 3])> {
        let (ba, bb) = (bbox(a)?, bbox(b)?);
        let lo = [0, 1, 2].map(|x| ba.0[x].min(bb.0[x]));
        let hi = [0, 1, 2].map(|x| ba.1[x].max(bb.1[x]));
        Some((lo, hi))
    }

    /// Inclusive bounding box `[k, j, i]` of the nonzero voxels.
    fn bbox(m: ArrayView3<'_, u8>) -> Option<([usize; 3], [usize; 3])> {
        let per_slab: Vec<Option<([usize; 3], [usize; 3])>> = m
            .axis_iter(Axis(0))
            .into_par_iter()
            .enumerate()
            .map(|(k, slab)| {
                let mut lo = [usize::MAX; 3];
                let mut hi = [0usize; 3];
                let mut any = false;
                for ((j, i), &v) in slab.indexed_iter() {
                    if v != 0 {
                        any = true;
                        lo = [k, lo[1].min(j), lo[2].min(i)];
                        hi = [k, hi[1].max(j), hi[2].max(i)];
                    }
                }
                any.then_some((lo, hi))
            })
            .collect();
        per_slab
            .into_iter()
            .flatten()
            .reduce(|x, y| ([0, 1, 2].map(|a| x.0[a].min(y.0[a])), [0, 1, 2].map(|a| x.1[a].max(y.1[a]))))
    }

    /// Counts voxels where both masks are set, and the voxels of each (for Dice).
    fn overlap_counts(a: ArrayView3<'_, u8>, b: ArrayView3<'_, u8>) -> (usize, usize, usize) {
        let mut both = 0usize;
        let mut na = 0usize;
        let mut nb = 0usize;
        Zip::from(a).and(b).for_each(|&x, &y| {
            let (x, y) = (x != 0, y != 0);
            na += x as usize;
            nb += y as usize;
            both += (x && y) as usize;
        });
        (both, na, nb)
    }

    /// Voxel counts per GT label id and the ids present.
    struct GtIndex {
        /// voxels per label id (index 0 unused)
        counts: Vec<usize>,
        /// ids with at least one voxel, ascending
        ids: Vec<u32>,
    }

    impl GtIndex {
        fn new<L: Label>(gt: &Volume<L>) -> Result<Self, EvalError> {
            let max = gt.as_slice().par_iter().map(|v| v.as_usize()).max().unwrap_or(0);
            if max > MAX_LABEL_ID {
                return Err(EvalError::LabelTooLarge { label: max, max: MAX_LABEL_ID });
            }
            let counts = gt
                .as_slice()
                .par_chunks(1 << 16)
                .fold(
                    || vec![0usize; max + 1],
                    |mut acc, chunk| {
                        for v in chunk {
                            acc[v.as_usize()] += 1;
                        }
                        acc
                    },
                )
                .reduce(|| vec![0usize; max + 1], add_vecs);
            let ids = (1..=max).filter(|&i| counts[i] > 0).map(|i| i as u32).collect();
            Ok(GtIndex { counts, ids })
        }
    }

    fn add_vecs(mut a: Vec<usize>, b: Vec<usize>) -> Vec<usize> {
        for (x, y) in a.iter_mut().zip(b) {
            *x += y;
        }
        a
    }

    /// Components of a prediction after the size filter, and their overlap with the GT nodes.
    struct Detection {
        /// 26-connected component ids, `[nk, nj, ni]`
        comps: Volume<u32>,
        n_components: usize,
        /// per component id: kept after the SAD filter
        kept: Vec<bool>,
        /// per component id: SAD and LAD, mm
        sad_mm: Vec<f64>,
        lad_mm: Vec<f64>,
        n_removed_small: usize,
        /// per GT id: voxels covered by kept components
        inter: Vec<usize>,
        /// (component, GT id) pairs that overlap, kept components only
        pairs: HashSet<(u32, u32)>,
        /// per GT id: localized
        localized: Vec<bool>,
        /// per component id: true positive
        tp: Vec<bool>,
    }

    fn detect<L: Label>(mask: &Volume<u8>, gt: &Volume<L>, index: &GtIndex) -> Detection {
        let (comps, n) = label_components(mask, Connectivity::TwentySix);
        let axes = axial_axes(&comps);
        let mut sad_mm = vec![0.0; n + 1];
        let mut lad_mm = vec![0.0; n + 1];
        let mut kept = vec![false; n + 1];
        let mut n_removed_small = 0;
        for c in 1..=n {
            // Every component has at least one voxel, so its axes exist; a missing measurement is
            // treated as size 0 (removed), never as a large node.
            let (s, l) = axes
                .get(c)
                .and_then(|a| a.as_ref())
                .map_or((0.0, 0.0), |a| (a.short_axis_mm, a.long_axis_mm));
            sad_mm[c] = s;
            lad_mm[c] = l;
            kept[c] = s >= MIN_SHORT_AXIS_MM;
            n_removed_small += usize::from(!kept[c]);
        }
        let n_ids = index.counts.len();
        let (inter, pairs) = comps
            .as_slice()
            .par_chunks(1 << 16)
            .zip(gt.as_slice().par_chunks(1 << 16))
            .fold(
                || (vec![0usize; n_ids], HashSet::new()),
                |(mut inter, mut pairs), (cs, gs)| {
                    let mut last = (0u32, 0u32);
                    for (&c, g) in cs.iter().zip(gs) {
                        let g = g.as_usize();
                        if c == 0 || g == 0 || !kept[c as usize] {
                            continue;
                        }
                        inter[g] += 1;
                        if (c, g as u32) != last {
                            last = (c, g as u32);
                            pairs.insert(last);
                        }
                    }
                    (inter, pairs)
                },
            )
            .reduce(
                || (vec![0usize; n_ids], HashSet::new()),
                |(a, mut pa), (b, pb)| {
                    pa.extend(pb);
                    (add_vecs(a, b), pa)
                },
            );
        let mut localized = vec![false; n_ids];
        for &id in &index.ids {
            let id = id as usize;
            localized[id] = sensitivity(inter[id], index.counts[id]) >= LOCALIZED_MIN_SENSITIVITY;
        }
        let mut tp = vec![false; n + 1];
        for &(c, g) in &pairs {
            if localized[g as usize] {
                tp[c as usize] = true;
            }
        }
        Detection {
            comps,
            n_components: n,
            kept,
            sad_mm,
            lad_mm,
            n_removed_small,
            inter,
            pairs,
            localized,
            tp,
        }
    }

    fn sensitivity(inter: usize, count: usize) -> f64 {
        inter as f64 / count as f64
    }

    impl Detection {
        fn n_kept(&self) -> usize {
            self.kept.iter().filter(|&&k| k).count()
        }
        fn n_tp(&self) -> usize {
            self.tp.iter().filter(|&&k| k).count()
        }
    }

    /// Evaluates one scan. `gt` is an instance label map (0 = background, one id per node) on the
    /// prediction's grid; `meta` gives the metastatic flag per id.
    /// The protocol on full volumes; a ground truth holding only label 1 in several 26-connected
    /// pieces is a binary mask, scored as its components.
    pub fn evaluate_scan_full<L: Label>(
        pred: Prediction<'_>,
        gt: &Volume<L>,
        meta: Option<&NodeMeta>,
    ) -> Result<ScanResult, EvalError> {
        if gt.as_slice().iter().all(|v| v.as_usize() <= 1) {
            let (labels, n) = label_components(gt, Connectivity::TwentySix);
            if n > 1 {
                let mut r = evaluate_labels(pred, &labels, meta)?;
                r.gt_split_from_binary = Some(n);
                return Ok(r);
            }
        }
        evaluate_labels(pred, gt, meta)
    }

    fn evaluate_labels<L: Label>(
        pred: Prediction<'_>,
        gt: &Volume<L>,
        meta: Option<&NodeMeta>,
    ) -> Result<ScanResult, EvalError> {
        let (mask, probability) = match pred {
            Prediction::Mask(m) => {
                m.check_same_grid(gt).map_err(|e| EvalError::Geometry(e.to_string()))?;
                (None, None)
            }
            Prediction::Probability(p) => {
                p.check_same_grid(gt).map_err(|e| EvalError::Geometry(e.to_string()))?;
                if let Some(bad) = p.as_slice().par_iter().find_any(|v| !(0.0..=1.0).contains(*v)) {
                    return Err(EvalError::InvalidProbability { value: *bad as f64 });
                }
                (Some(threshold(p, PROBABILITY_THRESHOLD)), Some(p))
            }
        };
        let mask: &Volume<u8> = match (&pred, &mask) {
            (Prediction::Mask(m), _) => m,
            (_, Some(m)) => m,
            _ => unreachable!("a probability map is always thresholded above"),
        };
        let index = GtIndex::new(gt)?;
        let det = detect(mask, gt, &index);
        let ceiling = detect(&gt.map(|g| u8::from(g.as_usize() != 0)), gt, &index);
        let geom = *gt.geometry();
        let voxel_mm3 = geom.voxel_volume_mm3();

        // Per-component voxel counts and index sums, for FP volumes and centroids.
        let [ni, nj, _] = mask.dims();
        let n_comp = det.n_components;
        let (comp_voxels, comp_sums) = det
            .comps
            .data()
            .axis_iter(ndarray::Axis(0))
            .into_par_iter()
            .enumerate()
            .fold(
                || (vec![0usize; n_comp + 1], vec![[0.0f64; 3]; n_comp + 1]),
                |(mut cnt, mut sum), (k, slab)| {
                    for j in 0..nj {
                        for i in 0..ni {
                            let c = slab[[j, i]] as usize;
                            if c != 0 {
                                cnt[c] += 1;
                                sum[c][0] += i as f64;
                                sum[c][1] += j as f64;
                                sum[c][2] += k as f64;
                            }
                        }
                    }
                    (cnt, sum)
                },
            )
            .reduce(
                || (vec![0usize; n_comp + 1], vec![[0.0f64; 3]; n_comp + 1]),
                |(a, mut sa), (b, sb)| {
                    for (x, y) in sa.iter_mut().zip(sb) {
                        for t in 0..3 {
                            x[t] += y[t];
                        }
                    }
                    (add_vecs(a, b), sa)
                },
            );

        let mut fps = Vec::new();
        for c in 1..=n_comp {
            if det.kept[c] && !det.tp[c] {
                let nv = comp_voxels[c];
                let centroid_idx = comp_sums[c].map(|s| s / nv as f64);
                fps.push(FpRow {
                    component: c as u32,
                    sad_mm: det.sad_mm[c],
                    lad_mm: det.lad_mm[c],
                    n_voxels: nv,
                    volume_mm3: nv as f64 * voxel_mm3,
                    centroid_mm: geom.index_to_world(centroid_idx),
                });
            }
        }

        let gt_axes = axial_axes(gt);
        let nodes: Vec<NodeRow> = index
            .ids
            .iter()
            .map(|&id| {
                let i = id as usize;
                let (sad, lad) = gt_axes
                    .get(i)
                    .and_then(|a| a.as_ref())
                    .map_or((0.0, 0.0), |a| (a.short_axis_mm, a.long_axis_mm));
                NodeRow {
                    id,
                    sad_mm: sad,
                    lad_mm: lad,
                    sad_group: SadGroup::of(sad),
                    n_voxels: index.counts[i],
                    volume_mm3: index.counts[i] as f64 * voxel_mm3,
                    metastatic: meta.and_then(|m| m.is_metastatic(id)),
                    sensitivity: sensitivity(det.inter[i], index.counts[i]),
                    localized: det.localized[i],
                    countable: ceiling.localized[i],
                }
            })
            .collect();

        // Filtered masks: TP components / localized nodes.
        let pred_f = det.comps.map(|c| u8::from(c != 0 && det.tp[c as usize]));
        let gt_f = gt.map(|g| u8::from(g.as_usize() != 0 && det.localized[g.as_usize()]));
        let (both, n_a, n_b) = overlap_counts(pred_f.data(), gt_f.data());
        let dice = (n_a > 0 && n_b > 0).then(|| 2.0 * both as f64 / (n_a + n_b) as f64);
        let dist = surface_distances(pred_f.data(), gt_f.data(), geom.spacing_mm);

        let n_gt = index.ids.len();
        let n_loc = nodes.iter().filter(|n| n.localized).count();
        let n_pred = det.n_kept();
        let n_tp = det.n_tp();
        let recall = (n_gt > 0).then(|| n_loc as f64 / n_gt as f64);
        let n_gt_countable = nodes.iter().filter(|n| n.countable).count();
        let recall_ceiling = (n_gt > 0).then(|| n_gt_countable as f64 / n_gt as f64);
        let precision = (n_pred > 0).then(|| n_tp as f64 / n_pred as f64);
        let f1 = match (precision, recall) {
            (Some(p), Some(r)) if p + r > 0.0 => Some(2.0 * p * r / (p + r)),
            (Some(_), Some(_)) => Some(0.0),
            _ => None,
        };
        let froc = probability.map(|p| {
            froc_thresholds()
                .into_iter()
                .map(|t| {
                    let m = threshold(p, t);
                    let d = detect(&m, gt, &index);
                    FrocCounts {
                        threshold: t,
                        n_gt,
                        n_localized: index.ids.iter().filter(|&&id| d.localized[id as usize]).count(),
                        n_fp: d.n_kept() - d.n_tp(),
                    }
                })
                .collect()
        });
        debug_assert!(det.pairs.iter().all(|&(c, _)| det.kept[c as usize]));
        Ok(ScanResult {
            n_gt_nodes: n_gt,
            n_gt_localized: n_loc,
            n_pred_components: det.n_components,
            n_pred_removed_small: det.n_removed_small,
            n_pred,
            n_tp,
            n_fp: fps.len(),
            n_fp_sad_ge_10mm: fps.iter().filter(|f| f.sad_mm >= SIGNIFICANT_FP_SAD_MM).count(),
            recall,
            n_gt_countable,
            recall_ceiling,
            precision,
            f1,
            dice,
            assd: dist.map(|d| d.assd),
            avg_hd: dist.map(|d| d.avg_hd),
            mhd: dist.map(|d| d.mhd),
            hd: dist.map(|d| d.hd),
            hd95: dist.map(|d| d.hd95),
            nodes,
            fps,
            froc,
            gt_split_from_binary: None,
        })
    }

    /// Binary mask `p >= t` (the f32 probability compared exactly, widened to f64).
    fn threshold(p: &Volume<f32>, t: f64) -> Volume<u8> {
        p.map(move |v| u8::from(v as f64 >= t))
    }
}

use nodal_core::{Geometry, Volume, Voxel};
use nodal_eval::distance::directed_surface_distances;
use nodal_eval::{
    evaluate_case, evaluate_prepared, evaluate_scan, CaseInput, EvalError, Prediction, PreparedGt, ScanResult,
};
use nodal_io::{read_nifti, write_nifti};

/// xorshift64*: deterministic scans from a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
}

/// Axis-aligned, flipped, S-I along i (sagittal storage), or oblique (no index axis along S-I).
fn geometry(rng: &mut Rng) -> Geometry {
    let sp = [rng.range(0.6, 1.6), rng.range(0.6, 1.6), rng.range(0.8, 3.0)];
    let mut g = Geometry::axis_aligned(
        sp,
        [rng.range(-200.0, 200.0), rng.range(-200.0, 200.0), rng.range(-50.0, 900.0)],
    );
    match rng.below(6) {
        0 | 1 => {}
        2 | 3 => g.direction = [[-1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]],
        4 => g.direction = [[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]],
        _ => {
            let (s, c) = (0.2f64.sin(), 0.2f64.cos());
            g.direction = [[1.0, 0.0, 0.0], [0.0, c, s], [0.0, -s, c]];
        }
    }
    g
}

/// An ellipsoid or a box, often cut by the volume border: `(centre, radii)` in voxels.
fn blob(rng: &mut Rng, dims: [usize; 3]) -> ([f64; 3], [f64; 3], bool) {
    let centre = [0, 1, 2].map(|a| rng.range(-1.5, dims[a] as f64 + 0.5));
    let radii = [rng.range(0.5, 6.0), rng.range(0.5, 6.0), rng.range(0.5, 3.5)];
    (centre, radii, rng.below(3) == 0)
}

fn paint<T: Voxel>(
    v: &mut Volume<T>,
    b: &([f64; 3], [f64; 3], bool),
    value: impl Fn(&mut Rng) -> T,
    rng: &mut Rng,
) {
    let [ni, nj, nk] = v.dims();
    let (c, r, cube) = b;
    for k in 0..nk {
        for j in 0..nj {
            for i in 0..ni {
                let d = [(i as f64 - c[0]) / r[0], (j as f64 - c[1]) / r[1], (k as f64 - c[2]) / r[2]];
                let inside = if *cube {
                    d.iter().all(|x| x.abs() <= 1.0)
                } else {
                    d.iter().map(|x| x * x).sum::<f64>() <= 1.0
                };
                if inside {
                    v.data_mut()[[k, j, i]] = value(rng);
                }
            }
        }
    }
}

struct Scan {
    gt: Volume<u16>,
    mask: Volume<u8>,
    prob: Volume<f32>,
}

/// GT: up to 7 blobs with ids 1..=6 (an id may repeat: a node in two pieces; later blobs paint over
/// earlier ones, so nodes touch). Prediction: most nodes again, displaced and resized, plus false
/// positives; the probability map has per-voxel values on the same support.
fn scan(seed: u64) -> Scan {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let dims = [12 + rng.below(28), 10 + rng.below(20), 3 + rng.below(9)];
    let g = geometry(&mut rng);
    let mut gt = Volume::<u16>::zeros(dims, g);
    let mut mask = Volume::<u8>::zeros(dims, g);
    let mut prob = Volume::<f32>::zeros(dims, g);
    let n_gt = rng.below(8);
    for _ in 0..n_gt {
        let b = blob(&mut rng, dims);
        let id = 1 + rng.below(6) as u16;
        paint(&mut gt, &b, |_| id, &mut rng);
        if rng.below(5) != 0 {
            let (mut c, mut r, cube) = b;
            for a in 0..3 {
                c[a] += rng.range(-1.5, 1.5);
                r[a] *= rng.range(0.6, 1.3);
            }
            let level = rng.range(0.3, 1.0) as f32;
            paint(&mut mask, &(c, r, cube), |_| 1, &mut rng);
            paint(&mut prob, &(c, r, cube), |g| (level * g.range(0.7, 1.0) as f32).min(1.0), &mut rng);
        }
    }
    for _ in 0..rng.below(4) {
        let b = blob(&mut rng, dims);
        let level = rng.range(0.02, 1.0) as f32;
        paint(&mut mask, &b, |g| 1 + g.below(3) as u8, &mut rng);
        paint(&mut prob, &b, |g| (level * g.range(0.5, 1.0) as f32).min(1.0), &mut rng);
    }
    Scan { gt, mask, prob }
}

/// What a set of random scans exercised, so that the comparison cannot pass vacuously.
#[derive(Default, Debug)]
struct Coverage {
    distances: usize,
    fps: usize,
    removed: usize,
    empty_pred: usize,
    empty_gt: usize,
    partial_localization: usize,
    binary_split: usize,
}

impl Coverage {
    fn add(&mut self, r: &ScanResult) {
        self.distances += usize::from(r.hd.is_some());
        self.fps += usize::from(!r.fps.is_empty());
        self.removed += usize::from(r.n_pred_removed_small > 0);
        self.empty_pred += usize::from(r.n_pred_components == 0);
        self.empty_gt += usize::from(r.n_gt_nodes == 0);
        self.partial_localization += usize::from(r.n_gt_localized > 0 && r.n_gt_localized < r.n_gt_nodes);
    }
    fn check(&self) {
        assert!(self.distances >= 20, "{self:?}");
        assert!(self.fps >= 10, "{self:?}");
        assert!(self.removed >= 10, "{self:?}");
        assert!(self.empty_pred >= 3, "{self:?}");
        assert!(self.empty_gt >= 3, "{self:?}");
        assert!(self.partial_localization >= 5, "{self:?}");
    }
}

#[test]
fn masks_give_the_full_volume_results_bit_for_bit() {
    let mut cov = Coverage::default();
    for seed in 0..300 {
        let s = scan(seed);
        let fast = evaluate_scan(Prediction::Mask(&s.mask), &s.gt, None).unwrap();
        let full = full::evaluate_scan_full(Prediction::Mask(&s.mask), &s.gt, None).unwrap();
        assert_eq!(fast, full, "seed {seed}");
        // One prepared ground truth serves several predictions.
        let prepared = PreparedGt::new(&s.gt).unwrap();
        assert_eq!(
            evaluate_prepared(Prediction::Mask(&s.mask), &prepared, None).unwrap(),
            full,
            "seed {seed}"
        );
        let other = s.gt.map(|v| u8::from(v % 2 == 1));
        let other_full = full::evaluate_scan_full(Prediction::Mask(&other), &s.gt, None).unwrap();
        assert_eq!(
            evaluate_prepared(Prediction::Mask(&other), &prepared, None).unwrap(),
            other_full,
            "seed {seed}"
        );
        cov.add(&fast);
        // The same nodes as a binary ground truth: split into components on both sides.
        let binary = s.gt.map(|v| u16::from(v != 0));
        let fast = evaluate_scan(Prediction::Mask(&s.mask), &binary, None).unwrap();
        let full = full::evaluate_scan_full(Prediction::Mask(&s.mask), &binary, None).unwrap();
        assert_eq!(fast, full, "seed {seed}, binary ground truth");
        cov.binary_split += usize::from(fast.gt_split_from_binary.is_some());
    }
    cov.check();
    assert!(cov.binary_split >= 20, "{cov:?}");
}

#[test]
fn a_prepared_ground_truth_refuses_other_grids_and_bad_probabilities() {
    let s = scan(7);
    let prepared = PreparedGt::new(&s.gt).unwrap();
    let [ni, nj, nk] = s.gt.dims();
    let smaller = Volume::<u8>::zeros([ni, nj, nk + 1], *s.gt.geometry());
    assert!(matches!(
        evaluate_prepared(Prediction::Mask(&smaller), &prepared, None),
        Err(EvalError::Geometry(_))
    ));
    let mut g = *s.gt.geometry();
    g.origin_mm[2] += 0.5;
    let shifted = Volume::<u8>::zeros(s.gt.dims(), g);
    assert!(matches!(
        evaluate_prepared(Prediction::Mask(&shifted), &prepared, None),
        Err(EvalError::Geometry(_))
    ));
    let mut p = s.prob.clone();
    p.as_slice_mut()[0] = 1.5;
    assert!(matches!(
        evaluate_prepared(Prediction::Probability(&p), &prepared, None),
        Err(EvalError::InvalidProbability { .. })
    ));
}

/// Scans large enough that boxes are split across threads (the box of everything, used when a
/// component has no surface of the other mask, and big components).
#[test]
fn large_scans_give_the_full_volume_results_bit_for_bit() {
    let mut large_boxes = 0;
    for seed in 500..512 {
        let mut s = scan(seed);
        let g = *s.gt.geometry();
        let dims = [90, 70, 14];
        let mut gt = Volume::<u16>::zeros(dims, g);
        let mut mask = Volume::<u8>::zeros(dims, g);
        let mut rng = Rng(seed);
        for _ in 0..6 {
            let (mut c, mut r, cube) = blob(&mut rng, dims);
            r = r.map(|x| x * 2.5);
            let id = 1 + rng.below(4) as u16;
            paint(&mut gt, &(c, r, cube), |_| id, &mut rng);
            c[0] += rng.range(-2.0, 2.0);
            paint(&mut mask, &(c, r, cube), |_| 1, &mut rng);
        }
        for _ in 0..3 {
            let (c, r, cube) = blob(&mut rng, dims);
            paint(&mut mask, &(c, r.map(|x| x * 2.0), cube), |_| 1, &mut rng);
        }
        (s.gt, s.mask) = (gt, mask);
        let fast = evaluate_scan(Prediction::Mask(&s.mask), &s.gt, None).unwrap();
        let full = full::evaluate_scan_full(Prediction::Mask(&s.mask), &s.gt, None).unwrap();
        assert_eq!(fast, full, "seed {seed}");
        let b = s.gt.map(|v| u8::from(v != 0));
        let sp = g.spacing_mm;
        let x = directed_surface_distances(s.mask.data(), b.data(), sp).unwrap();
        let y = full::directed_surface_distances(s.mask.data(), b.data(), sp).unwrap();
        assert_eq!((x.a_to_b, x.b_to_a), (y.a_to_b, y.b_to_a), "seed {seed}");
        large_boxes += usize::from(fast.hd.is_some());
    }
    assert!(large_boxes >= 6, "{large_boxes}");
}

#[test]
fn probability_maps_give_the_full_volume_results_bit_for_bit() {
    let mut cov = Coverage::default();
    let mut froc_points = 0;
    for seed in 1000..1200 {
        let s = scan(seed);
        let fast = evaluate_scan(Prediction::Probability(&s.prob), &s.gt, None).unwrap();
        let full = full::evaluate_scan_full(Prediction::Probability(&s.prob), &s.gt, None).unwrap();
        assert_eq!(fast, full, "seed {seed}");
        let prepared = PreparedGt::new(&s.gt).unwrap();
        assert_eq!(
            evaluate_prepared(Prediction::Probability(&s.prob), &prepared, None).unwrap(),
            full,
            "seed {seed}"
        );
        froc_points += fast.froc.as_ref().unwrap().iter().filter(|f| f.n_localized > 0 && f.n_fp > 0).count();
        cov.add(&fast);
    }
    cov.check();
    assert!(froc_points > 50, "{froc_points}");
}

#[test]
fn surface_distances_equal_the_full_volume_boxes_bit_for_bit() {
    let mut compared = 0;
    for seed in 2000..2300 {
        let s = scan(seed);
        let a = s.mask.data();
        let b = s.gt.map(|v| u8::from(v != 0));
        let sp = s.gt.geometry().spacing_mm;
        let fast = directed_surface_distances(a, b.data(), sp);
        let full = full::directed_surface_distances(a, b.data(), sp);
        match (fast, full) {
            (None, None) => {}
            (Some(x), Some(y)) => {
                assert_eq!(x.a_to_b, y.a_to_b, "seed {seed}");
                assert_eq!(x.b_to_a, y.b_to_a, "seed {seed}");
                compared += 1;
            }
            (x, y) => panic!("seed {seed}: {:?} vs {:?}", x.is_some(), y.is_some()),
        }
    }
    assert!(compared >= 100, "{compared}");
}

#[test]
fn empty_masks_give_the_same_nulls() {
    let g = Geometry::axis_aligned([0.7, 0.7, 1.5], [0.0; 3]);
    let dims = [20, 16, 6];
    let empty_gt = Volume::<u16>::zeros(dims, g);
    let empty_pred = Volume::<u8>::zeros(dims, g);
    let mut gt = empty_gt.clone();
    let mut pred = empty_pred.clone();
    for k in 0..3 {
        for j in 0..10 {
            for i in 0..10 {
                gt.data_mut()[[k, j, i]] = 3;
                pred.data_mut()[[k + 3, j + 6, i + 10]] = 1; // touches three borders
            }
        }
    }
    for (p, t) in [(&empty_pred, &empty_gt), (&pred, &empty_gt), (&empty_pred, &gt), (&pred, &gt)] {
        let fast = evaluate_scan(Prediction::Mask(p), t, None).unwrap();
        let full = full::evaluate_scan_full(Prediction::Mask(p), t, None).unwrap();
        assert_eq!(fast, full);
        assert_eq!(fast.dice, None);
        assert_eq!(fast.hd, None);
    }
}

/// `evaluate_case` streams the files into runs; it must equal the full-volume evaluation of the
/// volumes `read_nifti` returns (ground truth as u32, as the files were read before).
#[test]
fn streamed_files_give_the_full_volume_results() {
    let dir = tempfile::tempdir().unwrap();
    for seed in 3000..3040u64 {
        let s = scan(seed);
        let gt_path = dir.path().join(format!("gt_{seed}.nii.gz"));
        // label maps of every stored type the reader handles differently
        match seed % 5 {
            0 | 1 => write_nifti(&s.gt, &gt_path).unwrap(),
            2 => write_nifti(&s.gt.map(|v| v as u8), &gt_path).unwrap(),
            3 => write_nifti(&s.gt.map(|v| v as i16), &gt_path).unwrap(),
            _ => write_nifti(&s.gt.map(|v| v as f32), &gt_path).unwrap(),
        }
        let pred_path = dir.path().join(format!("pred_{seed}.nii.gz"));
        // u8 masks, wider integer masks and probability maps
        match seed % 3 {
            0 => write_nifti(&s.mask, &pred_path).unwrap(),
            1 => write_nifti(&s.mask.map(|v| v as i16 * -300), &pred_path).unwrap(),
            _ => write_nifti(&s.prob, &pred_path).unwrap(),
        }
        let case = CaseInput {
            case_id: format!("c{seed}"),
            pred: pred_path.clone(),
            gt: gt_path.clone(),
            meta: None,
        };
        let fast = evaluate_case(&case).unwrap().result;
        let gt: Volume<u32> = read_nifti(&gt_path).unwrap();
        let full = match seed % 3 {
            0 => full::evaluate_scan_full(Prediction::Mask(&read_nifti(&pred_path).unwrap()), &gt, None),
            1 => {
                let m = read_nifti::<i32>(&pred_path).unwrap().map(|v| u8::from(v != 0));
                full::evaluate_scan_full(Prediction::Mask(&m), &gt, None)
            }
            _ => {
                full::evaluate_scan_full(Prediction::Probability(&read_nifti(&pred_path).unwrap()), &gt, None)
            }
        }
        .unwrap();
        assert_eq!(fast, full, "seed {seed}");
    }
}
