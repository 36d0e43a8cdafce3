//! From a probability map or mask to measured node instances (paper section 2.5, extended).
//!
//! Steps, each optional and recorded in [`PostProcessConfig`]:
//!
//! 1. threshold: `p >= threshold` is foreground (probability maps only; a mask's nonzero voxels are
//!    foreground);
//! 2. connected components ([`crate::label_components`]);
//! 3. for probability maps, drop components whose highest probability stays below
//!    `min_peak_probability` (a component-level confidence: a network's false positives are often
//!    lukewarm blobs that just cross the voxel threshold, while true nodes have a confident core)
//!    (the caller may drop more, e.g. by a learnt component filter: `nodal_detect`'s recipe is the
//!    one place that orders these steps for probability maps); optionally (`mask_threshold`), the
//!    components that remain keep only their voxels with `p >= mask_threshold`: which components
//!    exist, and which the cut-offs keep, is decided at the lower `threshold`, how far each extends
//!    at the higher one (a low threshold draws a node fatter than it is). A kept component may
//!    split into pieces, or vanish when its peak is below `mask_threshold`; the pieces are labelled
//!    again, and those whose own peak is below `min_peak_probability` go (the cut-off kept the
//!    component for its confident core, not for the crumbs of its rim). Then drop components whose
//!    axial short axis is below `min_short_axis_mm` (the protocol's 4.5 mm);
//! 4. fill enclosed holes per component in 3D: background voxels inside the component's bounding box
//!    that cannot reach the box's border through non-component voxels (6-connectivity) join the
//!    component — a node whose necrotic centre was left out becomes whole; optionally
//!    (`convex_fill_min_short_axis_mm`), components of at least that short axis also take every
//!    background voxel inside the convex hull of their voxel centres, one axial slice at a time —
//!    a node is convex in cross-section, and a network tends to leave out a bite of a large or
//!    necrotic one (its rim open to one side), which hole filling cannot close;
//! 5. optionally split touching nodes ([`SplitConfig`]): Euclidean distance transform in mm
//!    (anisotropic), markers = the maxima whose dynamic is at least `h_mm` (h-maxima), at least
//!    `min_marker_distance_mm` apart and with an inscribed radius of at least `min_marker_radius_mm`,
//!    then a watershed by flooding from the markers in order of decreasing distance;
//! 6. relabel `1..=n` by decreasing short axis (ties: lower old id first).
//!
//! The size filter runs once, before filling and splitting, as the protocol orders it; pieces made
//! by splitting are kept whatever their size (each holds a marker of at least
//! `min_marker_radius_mm`).
use crate::components::{find_root, label_components, Connectivity};
use crate::measure::{
    axial_axes_sparse, label_boxes, measure_nodes, LabelBox, MeasureOptions, NodeMeasurement,
};
use crate::NodesError;
use nodal_core::vocab::MIN_SHORT_AXIS_MM;
use nodal_core::{Label, Volume};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};

/// Splitting of touching nodes (step 5).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SplitConfig {
    /// A distance maximum becomes a marker only when it rises at least this much above the saddle
    /// joining it to a higher maximum, mm (h-maxima).
    pub h_mm: f64,
    /// Markers closer than this to a higher marker are dropped, mm.
    pub min_marker_distance_mm: f64,
    /// Markers whose distance value (inscribed ball radius) is below this are dropped, mm — the
    /// minimum-size guard that keeps bumps from becoming nodes.
    pub min_marker_radius_mm: f64,
}

impl Default for SplitConfig {
    fn default() -> Self {
        SplitConfig { h_mm: 1.0, min_marker_distance_mm: 5.0, min_marker_radius_mm: 2.0 }
    }
}

/// The post-processing recipe; saved next to its outputs so a run can be repeated exactly.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PostProcessConfig {
    /// Probability threshold: `p >= threshold` is foreground. Ignored for masks.
    pub threshold: f32,
    /// Components found at `threshold` keep only their voxels with `p >= mask_threshold` (at least
    /// `threshold`); `None` keeps them whole. Ignored for masks.
    #[serde(default)]
    pub mask_threshold: Option<f32>,
    /// Connectivity of components (and of the watershed flooding).
    pub connectivity: Connectivity,
    /// Drop components whose axial short axis is below this, mm; `None` keeps all.
    pub min_short_axis_mm: Option<f64>,
    /// Drop components whose highest probability is below this; `None` keeps all. Probability maps
    /// only (a mask carries no confidence).
    #[serde(default)]
    pub min_peak_probability: Option<f32>,
    /// Fill enclosed holes per component.
    pub fill_holes: bool,
    /// Fill each axial cross-section of components with at least this short axis to its convex
    /// hull (step 4), mm; `None` leaves them as they are.
    #[serde(default)]
    pub convex_fill_min_short_axis_mm: Option<f64>,
    /// Split touching nodes; `None` leaves components whole.
    pub split_touching: Option<SplitConfig>,
}

impl Default for PostProcessConfig {
    fn default() -> Self {
        PostProcessConfig {
            threshold: 0.5,
            mask_threshold: None,
            connectivity: Connectivity::TwentySix,
            min_short_axis_mm: Some(MIN_SHORT_AXIS_MM),
            min_peak_probability: None,
            fill_holes: true,
            convex_fill_min_short_axis_mm: None,
            split_touching: None,
        }
    }
}

/// What steps 3 (mask threshold, size filter) to 6 did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeSteps {
    /// Components dropped by the short-axis filter (the protocol's `n_pred_removed_small`).
    pub n_removed_small: usize,
    /// Voxels added by hole filling.
    pub holes_filled_voxels: usize,
    /// Voxels added by the convex fill of axial cross-sections.
    pub convex_filled_voxels: usize,
    /// Components that the splitting step cut into several nodes.
    pub n_components_split: usize,
}

/// Measured nodes: instance labels `1..=n` ordered by decreasing short axis, their measurements
/// (in label order) and what the steps did.
#[derive(Clone, Debug)]
pub struct Nodes {
    /// Instance label map on the input grid.
    pub labels: Volume<u32>,
    /// One entry per node, `measurements[l - 1]` for label `l`.
    pub measurements: Vec<NodeMeasurement>,
    /// What was done.
    pub steps: NodeSteps,
}

/// The components of `p >= threshold` and the highest probability of each: labelled once, then
/// cut at any peak cut-off (steps 1-2 and the peak half of step 3; validation during training cuts
/// the same components at several cut-offs).
#[derive(Clone, Debug)]
pub struct PeakComponents {
    /// Component labels `1..=n`, 0 = background.
    pub labels: Volume<u32>,
    /// `peaks[l]`: highest probability of component `l` (`peaks[0]` unused).
    pub peaks: Vec<f32>,
    /// Voxels with `p >= threshold`.
    pub foreground_voxels: usize,
}

impl PeakComponents {
    /// Labels the components of `p >= threshold` at `connectivity` and finds their peaks.
    ///
    /// # Errors
    /// [`NodesError::NonFinite`] for NaN/infinite probabilities, [`NodesError::InvalidOption`]
    /// for a non-finite threshold.
    pub fn new(prob: &Volume<f32>, threshold: f32, connectivity: Connectivity) -> Result<Self, NodesError> {
        check_finite("threshold", Some(threshold))?;
        if let Some(pos) = prob.as_slice().iter().position(|v| !v.is_finite()) {
            let [ni, nj, _] = prob.dims();
            return Err(NodesError::NonFinite { index: [pos % ni, (pos / ni) % nj, pos / (ni * nj)] });
        }
        let mask = prob.map(|p| u8::from(p >= threshold));
        let foreground_voxels = mask.as_slice().iter().filter(|&&m| m > 0).count();
        let (labels, n) = label_components(&mask, connectivity);
        let mut peaks = vec![f32::NEG_INFINITY; n + 1];
        for (&l, &p) in labels.as_slice().iter().zip(prob.as_slice()) {
            if l > 0 {
                peaks[l as usize] = peaks[l as usize].max(p);
            }
        }
        Ok(PeakComponents { labels, peaks, foreground_voxels })
    }

    /// Components whose peak is below `min_peak` (none without a cut-off).
    ///
    /// # Errors
    /// [`NodesError::InvalidOption`] for a non-finite cut-off.
    pub fn n_below(&self, min_peak: Option<f32>) -> Result<usize, NodesError> {
        Ok(self.keep(min_peak)?[1..].iter().filter(|&&k| !k).count())
    }

    /// The mask of the components whose peak reaches `min_peak` (all without a cut-off).
    ///
    /// # Errors
    /// [`NodesError::InvalidOption`] for a non-finite cut-off.
    pub fn mask(&self, min_peak: Option<f32>) -> Result<Volume<u8>, NodesError> {
        let keep = self.keep(min_peak)?;
        Ok(self.labels.map(|l| u8::from(keep[l as usize])))
    }

    /// A copy of the labels with the components below `min_peak` set to 0 (ids of the others
    /// unchanged), for cutting the same components at several cut-offs.
    ///
    /// # Errors
    /// [`NodesError::InvalidOption`] for a non-finite cut-off.
    pub fn kept_labels(&self, min_peak: Option<f32>) -> Result<Volume<u32>, NodesError> {
        let keep = self.keep(min_peak)?;
        Ok(self.labels.map(|l| if keep[l as usize] { l } else { 0 }))
    }

    /// [`Self::kept_labels`] in place.
    ///
    /// # Errors
    /// [`NodesError::InvalidOption`] for a non-finite cut-off.
    pub fn into_labels(mut self, min_peak: Option<f32>) -> Result<Volume<u32>, NodesError> {
        let keep = self.keep(min_peak)?;
        for l in self.labels.as_slice_mut() {
            if !keep[*l as usize] {
                *l = 0;
            }
        }
        Ok(self.labels)
    }

    /// `keep[l]` for every label, background (0) excluded.
    fn keep(&self, min_peak: Option<f32>) -> Result<Vec<bool>, NodesError> {
        check_finite("min_peak_probability", min_peak)?;
        let mut keep: Vec<bool> = self.peaks.iter().map(|&p| min_peak.is_none_or(|m| p >= m)).collect();
        keep[0] = false;
        Ok(keep)
    }
}

fn check_finite(name: &'static str, v: Option<f32>) -> Result<(), NodesError> {
    match v.filter(|v| !v.is_finite()) {
        Some(v) => Err(NodesError::InvalidOption { name, value: v.to_string(), reason: "must be finite" }),
        None => Ok(()),
    }
}

/// Post-processes a mask (nonzero = foreground): components at `cfg.connectivity`, then
/// [`finish_nodes`]; `cfg.threshold`, `mask_threshold` and the peak cut-off are not used (a mask
/// carries no confidence).
///
/// # Errors
/// As [`finish_nodes`].
pub fn postprocess_mask<T: Label>(
    mask: &Volume<T>,
    ct: Option<&Volume<i16>>,
    cfg: &PostProcessConfig,
) -> Result<Nodes, NodesError> {
    let (labels, _) = label_components(mask, cfg.connectivity);
    finish_nodes(labels, None, ct, cfg)
}

/// Steps 3 (mask threshold, size filter) to 6 on labelled components, then the measurements
/// (against `ct`, when given). `prob` is the probability map the components were cut from; without
/// it the mask threshold is not applied.
///
/// # Errors
/// [`NodesError::InvalidOption`] for an invalid `cfg`, [`NodesError::GridMismatch`] when `prob` or
/// `ct` is not on the labels' grid, and the errors of [`measure_nodes`].
pub fn finish_nodes(
    mut labels: Volume<u32>,
    prob: Option<&Volume<f32>>,
    ct: Option<&Volume<i16>>,
    cfg: &PostProcessConfig,
) -> Result<Nodes, NodesError> {
    if let Some(ct) = ct {
        labels
            .check_same_grid(ct)
            .map_err(|source| NodesError::GridMismatch { what: "CT".into(), source })?;
    }

    // 3-4. Mask threshold, size filter, hole filling, convex fill.
    let FinishedComponents { n_removed_small, holes_filled_voxels, convex_filled_voxels } =
        finish_components(&mut labels, prob, cfg)?;

    // 5. Splitting.
    let mut n_components_split = 0;
    if let Some(split) = &cfg.split_touching {
        let mut next_id = labels.as_slice().iter().copied().max().unwrap_or(0) + 1;
        for (id, b) in label_boxes(&labels) {
            let pieces = split_component(&mut labels, id, &b, split, cfg.connectivity, &mut next_id);
            n_components_split += usize::from(pieces > 1);
        }
    }

    // 6. Relabel by decreasing SAD.
    let mut order: Vec<(u32, f64)> =
        axial_axes_sparse(&labels).into_iter().map(|(id, ax)| (id, ax.short_axis_mm)).collect();
    order.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let max_id = order.iter().map(|o| o.0).max().unwrap_or(0) as usize;
    let mut new_id = vec![0u32; max_id + 1];
    for (rank, (id, _)) in order.iter().enumerate() {
        new_id[*id as usize] = rank as u32 + 1;
    }
    for v in labels.as_slice_mut() {
        *v = new_id[*v as usize];
    }
    let measurements = measure_nodes(&labels, ct, &MeasureOptions::default())?;
    let steps = NodeSteps { n_removed_small, holes_filled_voxels, convex_filled_voxels, n_components_split };
    Ok(Nodes { labels, measurements, steps })
}

/// What [`finish_components`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FinishedComponents {
    /// Components dropped by the short-axis filter.
    pub n_removed_small: usize,
    /// Voxels added by hole filling.
    pub holes_filled_voxels: usize,
    /// Voxels added by the convex fill.
    pub convex_filled_voxels: usize,
}

/// The second half of step 3 (the mask threshold, then the short-axis filter) and step 4 (hole
/// filling, convex fill) of `cfg` on labelled components, in place. Ids are kept, except that
/// with a mask threshold (applied when `prob` is given) the components are labelled again and
/// the pieces below `cfg.min_peak_probability` dropped.
/// Validation applies exactly this to the components it scores, so that what is validated is
/// what `nodal segment` writes.
///
/// # Errors
/// [`NodesError::InvalidOption`] for negative or non-finite sizes or a mask threshold below the
/// threshold in `cfg`; [`NodesError::GridMismatch`] when `prob` is not on the labels' grid.
pub fn finish_components(
    labels: &mut Volume<u32>,
    prob: Option<&Volume<f32>>,
    cfg: &PostProcessConfig,
) -> Result<FinishedComponents, NodesError> {
    check_config(cfg)?;
    if let (Some(t), Some(prob)) = (cfg.mask_threshold, prob) {
        labels
            .check_same_grid(prob)
            .map_err(|source| NodesError::GridMismatch { what: "probability map".into(), source })?;
        let core = labels.with_data(
            ndarray::Zip::from(labels.data())
                .and(prob.data())
                .map_collect(|&l, &p| u8::from(l > 0 && p >= t)),
        )?;
        *labels = label_components(&core, cfg.connectivity).0;
        if let Some(min_peak) = cfg.min_peak_probability {
            drop_pieces_below_peak(labels, prob, min_peak);
        }
    }
    let mut done = FinishedComponents::default();
    let max_id = labels.as_slice().iter().copied().max().unwrap_or(0) as usize;
    let axes = if cfg.min_short_axis_mm.is_some() || cfg.convex_fill_min_short_axis_mm.is_some() {
        axial_axes_sparse(labels)
    } else {
        Vec::new()
    };
    let mut short_axis_mm = vec![0.0; max_id + 1];
    for (id, ax) in &axes {
        short_axis_mm[*id as usize] = ax.short_axis_mm;
    }
    if let Some(min_sad) = cfg.min_short_axis_mm {
        let mut keep = vec![false; max_id + 1];
        for (id, _) in &axes {
            keep[*id as usize] = short_axis_mm[*id as usize] >= min_sad;
            done.n_removed_small += usize::from(!keep[*id as usize]);
        }
        for v in labels.as_slice_mut() {
            if !keep[*v as usize] {
                *v = 0;
            }
        }
    }
    if cfg.fill_holes || cfg.convex_fill_min_short_axis_mm.is_some() {
        let si = si_index_axis(labels.geometry());
        for (id, b) in label_boxes(labels) {
            if cfg.fill_holes {
                done.holes_filled_voxels += fill_holes(labels, id, &b);
            }
            if cfg.convex_fill_min_short_axis_mm.is_some_and(|m| short_axis_mm[id as usize] >= m) {
                done.convex_filled_voxels += fill_convex_slices(labels, id, &b, si);
            }
        }
    }
    Ok(done)
}

/// Step 3's peak cut-off applied again to the pieces the mask threshold made: a piece whose
/// highest probability stays below `min_peak` goes. The cut-off kept a component for its confident
/// core; the other pieces of its lukewarm rim would otherwise become detections that no cut-off
/// judged (false positives the operating point never counted).
fn drop_pieces_below_peak(labels: &mut Volume<u32>, prob: &Volume<f32>, min_peak: f32) {
    let max_id = labels.as_slice().iter().copied().max().unwrap_or(0) as usize;
    let mut peak = vec![f32::NEG_INFINITY; max_id + 1];
    for (&l, &p) in labels.as_slice().iter().zip(prob.as_slice()) {
        peak[l as usize] = peak[l as usize].max(p);
    }
    for l in labels.as_slice_mut() {
        if peak[*l as usize] < min_peak {
            *l = 0;
        }
    }
}

/// The index axis closest to the patient's S-I axis: its planes are the axial slices (exactly so
/// on the usual grids; on an oblique one, the nearest index planes).
fn si_index_axis(g: &nodal_core::Geometry) -> usize {
    (0..3).max_by(|&a, &b| g.direction[a][2].abs().total_cmp(&g.direction[b][2].abs())).unwrap_or(2)
}

/// Gives every background voxel inside the convex hull of component `id`'s voxel centres to the
/// component, one slice across axis `si` at a time (voxels of other components stay theirs);
/// returns the voxels added. A convex hull in index space is one in millimetres too (the grid is
/// affine), so no spacing enters.
fn fill_convex_slices(labels: &mut Volume<u32>, id: u32, b: &LabelBox, si: usize) -> usize {
    let [u_ax, v_ax] = match si {
        0 => [1, 2],
        1 => [0, 2],
        _ => [0, 1],
    };
    let mut filled = 0;
    let mut data = labels.data_mut();
    let at = |u: usize, v: usize, s: usize| {
        let mut idx = [0usize; 3];
        idx[u_ax] = u;
        idx[v_ax] = v;
        idx[si] = s;
        [idx[2], idx[1], idx[0]]
    };
    let mut points = Vec::new();
    for s in b.min[si]..=b.max[si] {
        points.clear();
        for v in b.min[v_ax]..=b.max[v_ax] {
            for u in b.min[u_ax]..=b.max[u_ax] {
                if data[at(u, v, s)] == id {
                    points.push([u as f64, v as f64, 0.0]);
                }
            }
        }
        let hull = crate::hull::convex_hull_xy(&points);
        if hull.len() < 3 {
            // A run of voxels along one line: its hull adds at most the gaps of a dotted line,
            // which is not a cross-section worth closing.
            continue;
        }
        let lo = |a: usize| hull.iter().map(|p| p[a]).fold(f64::INFINITY, f64::min) as usize;
        let hi = |a: usize| hull.iter().map(|p| p[a]).fold(f64::NEG_INFINITY, f64::max) as usize;
        for v in lo(1)..=hi(1) {
            for u in lo(0)..=hi(0) {
                let p = [u as f64, v as f64];
                // Counter-clockwise hull: inside or on it when left of (or on) every edge. Integer
                // coordinates make the cross products exact.
                let inside = (0..hull.len()).all(|e| {
                    let (a, c) = (hull[e], hull[(e + 1) % hull.len()]);
                    (c[0] - a[0]) * (p[1] - a[1]) - (c[1] - a[1]) * (p[0] - a[0]) >= 0.0
                });
                let x = &mut data[at(u, v, s)];
                if inside && *x == 0 {
                    *x = id;
                    filled += 1;
                }
            }
        }
    }
    filled
}

fn check_config(cfg: &PostProcessConfig) -> Result<(), NodesError> {
    let bad = |name, v: f64| NodesError::InvalidOption {
        name,
        value: v.to_string(),
        reason: "must be finite and >= 0",
    };
    if let Some(t) = cfg.mask_threshold.filter(|&t| !(t >= cfg.threshold && t <= 1.0)) {
        return Err(NodesError::InvalidOption {
            name: "mask_threshold",
            value: t.to_string(),
            reason: "must lie between the threshold and 1",
        });
    }
    let ok = |v: f64| v.is_finite() && v >= 0.0;
    for (name, v) in [
        ("min_short_axis_mm", cfg.min_short_axis_mm),
        ("convex_fill_min_short_axis_mm", cfg.convex_fill_min_short_axis_mm),
    ] {
        if let Some(m) = v.filter(|&m| !ok(m)) {
            return Err(bad(name, m));
        }
    }
    if let Some(s) = &cfg.split_touching {
        for (name, v) in [
            ("h_mm", s.h_mm),
            ("min_marker_distance_mm", s.min_marker_distance_mm),
            ("min_marker_radius_mm", s.min_marker_radius_mm),
        ] {
            if !ok(v) {
                return Err(bad(name, v));
            }
        }
    }
    Ok(())
}

/// A component's bounding box grown by one voxel on every side; `lo` may be -1 and `hi` may be `n`
/// (outside the volume), so the component is always surrounded by a layer of non-component voxels.
struct Padded {
    lo: [i64; 3],
    n: [usize; 3],
}

impl Padded {
    fn new(b: &LabelBox) -> Self {
        Padded {
            lo: std::array::from_fn(|a| b.min[a] as i64 - 1),
            n: std::array::from_fn(|a| b.max[a] - b.min[a] + 3),
        }
    }
    #[inline]
    fn idx(&self, i: usize, j: usize, k: usize) -> usize {
        (k * self.n[1] + j) * self.n[0] + i
    }
    #[inline]
    fn global(&self, i: usize, j: usize, k: usize) -> [i64; 3] {
        [i as i64 + self.lo[0], j as i64 + self.lo[1], k as i64 + self.lo[2]]
    }
    fn len(&self) -> usize {
        self.n.iter().product()
    }
    /// The component's voxels in the padded box (`true` = component), flat, i fastest.
    fn member_mask(&self, labels: &Volume<u32>, id: u32) -> Vec<bool> {
        let dims = labels.dims();
        let mut m = vec![false; self.len()];
        for k in 0..self.n[2] {
            for j in 0..self.n[1] {
                for i in 0..self.n[0] {
                    let g = self.global(i, j, k);
                    if (0..3).all(|a| g[a] >= 0 && (g[a] as usize) < dims[a])
                        && labels.get(g[0] as usize, g[1] as usize, g[2] as usize) == id
                    {
                        m[self.idx(i, j, k)] = true;
                    }
                }
            }
        }
        m
    }
}

const FACE: [[i64; 3]; 6] = [[-1, 0, 0], [1, 0, 0], [0, -1, 0], [0, 1, 0], [0, 0, -1], [0, 0, 1]];

/// Fills the enclosed holes of component `id`; returns the voxels added.
fn fill_holes(labels: &mut Volume<u32>, id: u32, b: &LabelBox) -> usize {
    let p = Padded::new(b);
    let member = p.member_mask(labels, id);
    // Flood the outside from the padded box's border through non-component voxels (6-connected).
    let mut outside = vec![false; p.len()];
    let mut queue = VecDeque::new();
    let [ni, nj, nk] = p.n;
    for k in 0..nk {
        for j in 0..nj {
            for i in 0..ni {
                let border = i == 0 || j == 0 || k == 0 || i == ni - 1 || j == nj - 1 || k == nk - 1;
                let x = p.idx(i, j, k);
                if border && !member[x] {
                    outside[x] = true;
                    queue.push_back([i, j, k]);
                }
            }
        }
    }
    while let Some([i, j, k]) = queue.pop_front() {
        for d in FACE {
            let (x, y, z) = (i as i64 + d[0], j as i64 + d[1], k as i64 + d[2]);
            if x < 0 || y < 0 || z < 0 || x >= ni as i64 || y >= nj as i64 || z >= nk as i64 {
                continue;
            }
            let (x, y, z) = (x as usize, y as usize, z as usize);
            let q = p.idx(x, y, z);
            if !member[q] && !outside[q] {
                outside[q] = true;
                queue.push_back([x, y, z]);
            }
        }
    }
    // Enclosed background joins the component; enclosed voxels of other components stay theirs.
    let mut filled = 0;
    let mut data = labels.data_mut();
    for k in 1..nk - 1 {
        for j in 1..nj - 1 {
            for i in 1..ni - 1 {
                let x = p.idx(i, j, k);
                if member[x] || outside[x] {
                    continue;
                }
                let g = p.global(i, j, k);
                let v = &mut data[[g[2] as usize, g[1] as usize, g[0] as usize]];
                if *v == 0 {
                    *v = id;
                    filled += 1;
                }
            }
        }
    }
    filled
}

/// Euclidean distance (mm) from each member voxel to the nearest non-member voxel, in the padded
/// box (whose border layer is never a member). Flat, i fastest.
pub(crate) fn distance_transform_mm(member: &[bool], n: [usize; 3], spacing_mm: [f64; 3]) -> Vec<f64> {
    let background =
        ndarray::Array3::from_shape_fn((n[2], n[1], n[0]), |(k, j, i)| !member[(k * n[1] + j) * n[0] + i]);
    let d2 = nodal_core::edt::edt_squared(&background, [spacing_mm[2], spacing_mm[1], spacing_mm[0]]);
    d2.iter().map(|x| x.sqrt()).collect()
}

/// Heap entry for flooding: highest distance first, then first pushed (deterministic).
#[derive(PartialEq)]
struct Entry {
    d: f64,
    seq: u64,
    voxel: usize,
    label: u32,
}
impl Eq for Entry {}
impl Ord for Entry {
    fn cmp(&self, o: &Self) -> Ordering {
        self.d.total_cmp(&o.d).then(o.seq.cmp(&self.seq))
    }
}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

/// Splits component `id` by a marker-controlled watershed of its distance transform. Returns the
/// number of pieces (1 = left alone). New pieces get ids from `next_id`.
fn split_component(
    labels: &mut Volume<u32>,
    id: u32,
    b: &LabelBox,
    cfg: &SplitConfig,
    conn: Connectivity,
    next_id: &mut u32,
) -> usize {
    let p = Padded::new(b);
    let member = p.member_mask(labels, id);
    let sp = labels.geometry().spacing_mm;
    let dist = distance_transform_mm(&member, p.n, sp);
    let offsets = conn.offsets();
    let [ni, nj, nk] = p.n;
    let neighbours = |x: usize| {
        let (i, j, k) = (x % ni, (x / ni) % nj, x / (ni * nj));
        offsets.iter().filter_map(move |d| {
            let (a, b, c) = (i as i64 + d[0], j as i64 + d[1], k as i64 + d[2]);
            if a < 0 || b < 0 || c < 0 || a >= ni as i64 || b >= nj as i64 || c >= nk as i64 {
                None
            } else {
                Some((c as usize * nj + b as usize) * ni + a as usize)
            }
        })
    };

    // h-maxima by persistence: add voxels from high to low distance, merging regions with a
    // union-find; when regions meet, every region but the highest ends, and its peak is a marker when
    // it stood at least h above the meeting level.
    let mut order: Vec<usize> = (0..member.len()).filter(|&x| member[x]).collect();
    order.sort_by(|&a, &c| dist[c].total_cmp(&dist[a]).then(a.cmp(&c)));
    let n_box = u32::try_from(member.len()).expect("a component's box holds fewer than 2^32 voxels");
    let mut parent: Vec<u32> = (0..n_box).collect();
    let mut added = vec![false; member.len()];
    // Per root: its highest voxel. A root is always the first (highest) voxel of its region, and the
    // surviving root of a merge is the highest one, so this stays the identity.
    let peak: Vec<usize> = (0..member.len()).collect();
    let mut markers: Vec<usize> = Vec::new();
    for &x in &order {
        added[x] = true;
        let mut roots: Vec<usize> =
            neighbours(x).filter(|&y| added[y]).map(|y| find_root(&mut parent, y as u32) as usize).collect();
        roots.sort_unstable();
        roots.dedup();
        if roots.is_empty() {
            continue; // a new region with peak x
        }
        let best = *roots
            .iter()
            .max_by(|&&a, &&c| dist[peak[a]].total_cmp(&dist[peak[c]]).then(peak[c].cmp(&peak[a])))
            .expect("non-empty");
        for &r in &roots {
            if r != best && dist[peak[r]] - dist[x] >= cfg.h_mm {
                markers.push(peak[r]);
            }
            parent[r] = best as u32;
        }
        parent[x] = best as u32;
    }
    if let Some(&first) = order.first() {
        markers.push(first); // the global maximum always stands
    }
    // Guards: inscribed radius, then distance to higher markers.
    markers.retain(|&m| dist[m] >= cfg.min_marker_radius_mm);
    markers.sort_by(|&a, &c| dist[c].total_cmp(&dist[a]).then(a.cmp(&c)));
    let pos =
        |x: usize| [(x % ni) as f64 * sp[0], ((x / ni) % nj) as f64 * sp[1], (x / (ni * nj)) as f64 * sp[2]];
    let mut kept: Vec<usize> = Vec::new();
    for m in markers {
        let pm = pos(m);
        let far = kept.iter().all(|&q| {
            let pq = pos(q);
            ((pm[0] - pq[0]).powi(2) + (pm[1] - pq[1]).powi(2) + (pm[2] - pq[2]).powi(2)).sqrt()
                >= cfg.min_marker_distance_mm
        });
        if far {
            kept.push(m);
        }
    }
    if kept.len() <= 1 {
        return 1;
    }

    // Watershed by flooding from the markers, highest distance first.
    let mut lab = vec![0u32; member.len()];
    let mut heap = BinaryHeap::new();
    let mut seq = 0u64;
    for (n, &m) in kept.iter().enumerate() {
        let l = if n == 0 {
            id
        } else {
            *next_id += 1;
            *next_id - 1
        };
        lab[m] = l;
        heap.push(Entry { d: dist[m], seq, voxel: m, label: l });
        seq += 1;
    }
    while let Some(e) = heap.pop() {
        for y in neighbours(e.voxel) {
            if member[y] && lab[y] == 0 {
                lab[y] = e.label;
                heap.push(Entry { d: dist[y], seq, voxel: y, label: e.label });
                seq += 1;
            }
        }
    }
    let mut data = labels.data_mut();
    for k in 0..nk {
        for j in 0..nj {
            for i in 0..ni {
                let x = p.idx(i, j, k);
                if member[x] && lab[x] != 0 {
                    let g = p.global(i, j, k);
                    data[[g[2] as usize, g[1] as usize, g[0] as usize]] = lab[x];
                }
            }
        }
    }
    kept.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edt_matches_brute_force() {
        // A random-ish blob in a padded box, anisotropic spacing.
        let n = [9, 8, 7];
        let member: Vec<bool> = (0..n[0] * n[1] * n[2])
            .map(|x| {
                let (i, j, k) = (x % n[0], (x / n[0]) % n[1], x / (n[0] * n[1]));
                i > 0 && j > 0 && k > 0 && i < 8 && j < 7 && k < 6 && (i * 7 + j * 3 + k * 5) % 11 != 0
            })
            .collect();
        let sp = [0.7, 1.1, 2.3];
        let d = distance_transform_mm(&member, n, sp);
        for x in 0..member.len() {
            let (i, j, k) = (x % n[0], (x / n[0]) % n[1], x / (n[0] * n[1]));
            let mut best = f64::INFINITY;
            for y in 0..member.len() {
                if member[y] {
                    continue;
                }
                let (a, b, c) = (y % n[0], (y / n[0]) % n[1], y / (n[0] * n[1]));
                let dd = ((i as f64 - a as f64) * sp[0]).powi(2)
                    + ((j as f64 - b as f64) * sp[1]).powi(2)
                    + ((k as f64 - c as f64) * sp[2]).powi(2);
                best = best.min(dd);
            }
            let want = if member[x] { best.sqrt() } else { 0.0 };
            assert!((d[x] - want).abs() < 1e-9, "{x}: {} vs {want}", d[x]);
        }
    }
}
