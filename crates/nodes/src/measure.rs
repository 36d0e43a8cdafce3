//! Per-node measurements in patient space (LPS mm), exactly as the evaluation protocol defines them.
//!
//! # Axial short and long axis ([`axial_axes`])
//!
//! "Axial" means planes perpendicular to the patient's S-I axis, whatever the storage order:
//!
//! * When one index axis of the grid runs along S-I (its direction is within 1e-6 of ±z in cosine,
//!   i.e. 0.08°), the planes of constant index along that axis *are* the axial slices — this covers
//!   LPS, RAS, flipped and permuted (e.g. sagittal-stored) volumes without touching a voxel. The
//!   reported slice is the index along that axis in the volume as given.
//! * Otherwise (tilted or oblique grids) the label map is resampled with nearest neighbour onto an
//!   axial LPS grid covering the foreground (spacing per LPS axis = the spacing of the index axis
//!   closest to it) and measured there; slices are then indices of that reformation and
//!   [`NodeMeasurement::axial_reformatted`] is true. A node too small to survive the resampling
//!   measures 0.
//!
//! In one slice, the hull of all pixel *corners* (only the first and last pixel of each row can be
//! hull vertices) gives the long axis (hull diameter) and the short axis (hull width perpendicular to
//! the long-axis direction), see [`crate::hull::slice_axes`]. A node's SAD is the largest short axis
//! over its slices and its LAD the largest long axis; ties go to the lowest slice index. These
//! slice-wise maxima may come from different slices; the RECIST 1.1 pair
//! ([`AxialAxes::recist_long_axis_mm`] with the short axis) is measured on one slice, the one of
//! the largest short axis.
//!
//! # Other measurements ([`measure_nodes`])
//!
//! See the field docs of [`NodeMeasurement`]. Each node is measured on its own bounding box after
//! one parallel pass that finds all boxes, so the cost grows with node size, not volume size.
use crate::hull::{slice_axes, P3};
use crate::NodesError;
use ndarray::{Array3, ArrayView3, Axis};
use nodal_core::{Geometry, Interpolation, Label, NodeRadsSize, RecistCategory, Side, Volume};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// A node's axial short and long axis, with where they were measured.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AxialAxes {
    /// Largest short axis over the node's axial slices, mm.
    pub short_axis_mm: f64,
    /// Largest long axis over the node's axial slices, mm.
    pub long_axis_mm: f64,
    /// Slice (index along the S-I index axis) of the short axis.
    pub short_axis_slice: usize,
    /// Slice of the long axis.
    pub long_axis_slice: usize,
    /// End points of the short axis, LPS mm (a segment perpendicular to that slice's long axis,
    /// from one supporting line of the hull to the other).
    pub short_axis_endpoints_mm: [[f64; 3]; 2],
    /// End points of the long axis, LPS mm (two pixel corners).
    pub long_axis_endpoints_mm: [[f64; 3]; 2],
    /// RECIST 1.1 long axis: the longest diameter on the short axis's slice, so that both axes are
    /// measured on one image as RECIST measures a node; at most [`AxialAxes::long_axis_mm`], the
    /// largest over all slices (the evaluation protocol's).
    pub recist_long_axis_mm: f64,
    /// End points of the RECIST long axis, LPS mm, on `short_axis_slice`.
    pub recist_long_axis_endpoints_mm: [[f64; 3]; 2],
}

/// Cosine tolerance for "this index axis runs along S-I".
const AXIAL_COS_TOL: f64 = 1e-6;

/// Bounding box and size of one label on the grid it was found on. Indices (i, j, k), inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LabelBox {
    pub min: [usize; 3],
    pub max: [usize; 3],
    pub count: usize,
}

impl LabelBox {
    fn new(i0: usize, i1: usize, j: usize, k: usize) -> Self {
        LabelBox { min: [i0, j, k], max: [i1, j, k], count: i1 - i0 + 1 }
    }
    fn add(&mut self, o: &LabelBox) {
        for a in 0..3 {
            self.min[a] = self.min[a].min(o.min[a]);
            self.max[a] = self.max[a].max(o.max[a]);
        }
        self.count += o.count;
    }
}

/// One parallel pass: the bounding box and voxel count of every nonzero value, sorted by value.
pub(crate) fn label_boxes<L: Label>(vol: &Volume<L>) -> Vec<(L, LabelBox)> {
    let data = vol.data();
    let zero = L::default();
    let maps: Vec<HashMap<L, LabelBox>> = data
        .axis_iter(Axis(0))
        .into_par_iter()
        .enumerate()
        .fold(HashMap::new, |mut map: HashMap<L, LabelBox>, (k, plane)| {
            for (j, row) in plane.axis_iter(Axis(0)).enumerate() {
                let row =
                    row.to_slice().map(std::borrow::Cow::Borrowed).unwrap_or_else(|| row.to_vec().into());
                let mut i = 0;
                while i < row.len() {
                    let v = row[i];
                    if v == zero {
                        i += 1;
                        continue;
                    }
                    let s = i;
                    while i < row.len() && row[i] == v {
                        i += 1;
                    }
                    let b = LabelBox::new(s, i - 1, j, k);
                    map.entry(v).and_modify(|e| e.add(&b)).or_insert(b);
                }
            }
            map
        })
        .collect();
    let mut all: BTreeMap<L, LabelBox> = BTreeMap::new();
    for m in maps {
        for (v, b) in m {
            all.entry(v).and_modify(|e| e.add(&b)).or_insert(b);
        }
    }
    all.into_iter().collect()
}

/// The axial slicing of a grid: which index axis is S-I, and the in-plane axes.
#[derive(Clone, Copy, Debug)]
struct AxialFrame {
    /// Original index axes of the view's (column, row, slice).
    axes: [usize; 3],
}

fn axial_frame(g: &Geometry) -> Option<AxialFrame> {
    let a = (0..3).find(|&a| g.direction[a][2].abs() >= 1.0 - AXIAL_COS_TOL)?;
    let mut inplane = (0..3).filter(|&b| b != a);
    let c = inplane.next()?;
    let r = inplane.next()?;
    Some(AxialFrame { axes: [c, r, a] })
}

/// Axial axes of one label on an axially sliceable grid, working inside `bbox`.
fn axes_in_box<L: Label>(
    data: &ArrayView3<'_, L>,
    g: &Geometry,
    frame: AxialFrame,
    id: L,
    bbox: &LabelBox,
) -> Option<AxialAxes> {
    axes_where(g, frame, bbox.min, bbox.max, |idx| data[[idx[2], idx[1], idx[0]]] == id)
}

/// True when one index axis of `g` runs along S-I, so axial slices are index planes and
/// [`axial_axes_in_box`] applies.
pub fn has_axial_index_axis(g: &Geometry) -> bool {
    axial_frame(g).is_some()
}

/// The measurement of [`axial_axes`] for one object given by a membership test instead of a label
/// map: the voxels `[i, j, k]` with `inside([i, j, k])` within the inclusive index box `min..=max`.
/// For callers that store masks their own way (e.g. as runs); equal bit for bit to `axial_axes` on
/// the corresponding label map. `None` when no voxel is inside or when no index axis runs along
/// S-I (see [`has_axial_index_axis`]; `axial_axes` reformats such grids first).
pub fn axial_axes_in_box(
    g: &Geometry,
    min: [usize; 3],
    max: [usize; 3],
    inside: impl Fn([usize; 3]) -> bool,
) -> Option<AxialAxes> {
    axes_where(g, axial_frame(g)?, min, max, inside)
}

fn axes_where(
    g: &Geometry,
    frame: AxialFrame,
    min: [usize; 3],
    max: [usize; 3],
    inside: impl Fn([usize; 3]) -> bool,
) -> Option<AxialAxes> {
    let [ac, ar, as_] = frame.axes;
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
    let mut best: Option<AxialAxes> = None;
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
                if inside(idx) {
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
        let b = best.get_or_insert(AxialAxes {
            short_axis_mm: ax.short_axis_mm,
            long_axis_mm: ax.long_axis_mm,
            short_axis_slice: s,
            long_axis_slice: s,
            short_axis_endpoints_mm: ax.short_axis_endpoints_mm,
            long_axis_endpoints_mm: ax.long_axis_endpoints_mm,
            recist_long_axis_mm: ax.long_axis_mm,
            recist_long_axis_endpoints_mm: ax.long_axis_endpoints_mm,
        });
        if ax.short_axis_mm > b.short_axis_mm {
            b.short_axis_mm = ax.short_axis_mm;
            b.short_axis_slice = s;
            b.short_axis_endpoints_mm = ax.short_axis_endpoints_mm;
            b.recist_long_axis_mm = ax.long_axis_mm;
            b.recist_long_axis_endpoints_mm = ax.long_axis_endpoints_mm;
        }
        if ax.long_axis_mm > b.long_axis_mm {
            b.long_axis_mm = ax.long_axis_mm;
            b.long_axis_slice = s;
            b.long_axis_endpoints_mm = ax.long_axis_endpoints_mm;
        }
    }
    best
}

/// The nearest-neighbour axial reformation of a label map whose slices are not axial: an LPS grid
/// covering all foreground voxels (plus one voxel of margin), spacing per LPS axis taken from the
/// index axis that points closest to it.
fn axial_reformation<L: Label>(vol: &Volume<L>, boxes: &[(L, LabelBox)]) -> Option<Volume<L>> {
    let g = vol.geometry();
    let mut spacing = [0.0; 3];
    for (c, sp) in spacing.iter_mut().enumerate() {
        let a =
            (0..3).max_by(|&a, &b| g.direction[a][c].abs().total_cmp(&g.direction[b][c].abs())).unwrap_or(c);
        *sp = g.spacing_mm[a];
    }
    let (mut lo, mut hi) = ([f64::INFINITY; 3], [f64::NEG_INFINITY; 3]);
    for (_, b) in boxes {
        for corner in 0..8 {
            let idx: [f64; 3] = std::array::from_fn(|a| {
                if corner >> a & 1 == 1 {
                    b.max[a] as f64 + 0.5
                } else {
                    b.min[a] as f64 - 0.5
                }
            });
            let w = g.index_to_world(idx);
            for c in 0..3 {
                lo[c] = lo[c].min(w[c]);
                hi[c] = hi[c].max(w[c]);
            }
        }
    }
    if !lo[0].is_finite() {
        return None;
    }
    let mut dims = [0usize; 3];
    let mut origin = [0.0; 3];
    for c in 0..3 {
        origin[c] = lo[c] - 0.5 * spacing[c];
        dims[c] = ((hi[c] - lo[c]) / spacing[c]).ceil() as usize + 2;
    }
    let target = Geometry::axis_aligned(spacing, origin);
    if dims.iter().product::<usize>() > nodal_core::MAX_VOXELS {
        return None;
    }
    Some(vol.resample_to(&target, dims, Interpolation::Nearest, L::default()))
}

/// Axial axes of every positive label id, on any grid (see the module docs). Entries sorted by id.
/// Negative ids are ignored.
pub fn axial_axes_sparse<L: Label>(labels: &Volume<L>) -> Vec<(L, AxialAxes)> {
    let boxes: Vec<(L, LabelBox)> =
        label_boxes(labels).into_iter().filter(|(id, _)| *id > L::default()).collect();
    axial_axes_of_boxes(labels, &boxes).into_iter().filter_map(|(id, ax)| ax.map(|a| (id, a))).collect()
}

/// Axial axes for the given labels and boxes (as found on `labels`).
fn axial_axes_of_boxes<L: Label>(labels: &Volume<L>, boxes: &[(L, LabelBox)]) -> Vec<(L, Option<AxialAxes>)> {
    match axial_frame(labels.geometry()) {
        Some(frame) => {
            let data = labels.data();
            let g = labels.geometry();
            boxes.par_iter().map(|(id, b)| (*id, axes_in_box(&data, g, frame, *id, b))).collect()
        }
        None => {
            let Some(reformed) = axial_reformation(labels, boxes) else {
                return boxes.iter().map(|(id, _)| (*id, None)).collect();
            };
            let frame = axial_frame(reformed.geometry()).expect("the reformation is axial");
            let new_boxes: HashMap<L, LabelBox> = label_boxes(&reformed).into_iter().collect();
            let data = reformed.data();
            let g = reformed.geometry();
            boxes
                .par_iter()
                .map(|(id, _)| (*id, new_boxes.get(id).and_then(|b| axes_in_box(&data, g, frame, *id, b))))
                .collect()
        }
    }
}

/// Axial short/long axes of every node of an instance label map, indexed by label id: entry `l` is
/// `Some` when id `l` is present, `None` for 0 and absent ids. Negative ids are ignored.
///
/// The vector has `max_id + 1` entries; for label maps with huge, sparse ids use
/// [`axial_axes_sparse`].
pub fn axial_axes<L: Label>(labels: &Volume<L>) -> Vec<Option<AxialAxes>> {
    let sparse = axial_axes_sparse(labels);
    let n = sparse.last().map_or(1, |(id, _)| id.as_usize() + 1);
    let mut out = vec![None; n];
    for (id, ax) in sparse {
        out[id.as_usize()] = Some(ax);
    }
    out
}

/// CT intensity statistics over a node's voxels, HU.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct HuStats {
    /// Mean HU.
    pub mean_hu: f64,
    /// Population standard deviation (divisor n), HU.
    pub std_hu: f64,
    /// 10th percentile (linear interpolation between order statistics, NumPy's default), HU.
    pub p10_hu: f64,
    /// Median, HU.
    pub p50_hu: f64,
    /// 90th percentile, HU.
    pub p90_hu: f64,
}

/// The fewest interior voxels (a 3 x 3 x 3 core) on which the report shows a necrosis fraction.
pub const MIN_NECROSIS_INTERIOR_VOXELS: usize = 27;

/// Everything measured about one node. Positions are LPS mm; indices are (i, j, k) of the input grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeMeasurement {
    /// The node's id in the label map.
    pub node_id: u32,
    /// Number of voxels.
    pub voxel_count: usize,
    /// Voxel count times voxel volume, mm^3.
    pub volume_mm3: f64,
    /// Mean position of the voxel centres, LPS mm.
    pub centroid_mm: [f64; 3],
    /// Smallest (i, j, k) of the node's voxels.
    pub bbox_min_index: [usize; 3],
    /// Largest (i, j, k) of the node's voxels (inclusive).
    pub bbox_max_index: [usize; 3],
    /// LPS-axis-aligned box around the index box's outer voxel corners, mm (lower corner).
    pub bbox_min_mm: [f64; 3],
    /// Upper corner of that box, mm.
    pub bbox_max_mm: [f64; 3],
    /// The axial short and long axis, their slices and end points (see the module docs).
    #[serde(flatten)]
    pub axes: AxialAxes,
    /// True when the grid's slices are not axial and the axes were measured on the axial
    /// reformation (slices are then reformation indices).
    pub axial_reformatted: bool,
    /// Largest distance between two voxel *corners* of the node (the diameter of the hull of the
    /// voxel cubes), mm — consistent with the axial axes, which also use corners.
    pub max_diameter_3d_mm: f64,
    /// Surface area estimate, mm^2: the area of the exposed voxel faces times 2/3. For a convex body
    /// the faces normal to each axis sum to twice its projection on that axis, and averaging over
    /// orientations (Cauchy's projection formula) makes the face area 3/2 of the true area, so 2/3
    /// removes the staircase bias for surfaces without a preferred orientation.
    pub surface_area_mm2: f64,
    /// `pi^(1/3) (6 V)^(2/3) / A` from `volume_mm3` and `surface_area_mm2`; about 1 for a ball.
    pub sphericity: f64,
    /// Intensity statistics when a CT was given.
    pub hu: Option<HuStats>,
    /// Voxels whose 6 face neighbours all belong to the node (erosion by one voxel, 6-connected).
    pub interior_voxel_count: usize,
    /// Fraction of the interior voxels below the necrosis threshold (20 HU by default). `None`
    /// without a CT, and for nodes too small to have an interior (`interior_voxel_count == 0`).
    /// On a few interior voxels it says little (a 5.7 mm node with 6 read 100%): the report shows
    /// it only from [`MIN_NECROSIS_INTERIOR_VOXELS`] on; the component filter takes it as it is.
    pub necrosis_fraction: Option<f64>,
    /// True when the node reaches the first or last voxel of the volume along an axis: the scan
    /// may have cut it off, so its sizes are lower bounds (a node at the edge of the field of view
    /// or of the scanned range).
    pub touches_volume_border: bool,
    /// Side of the midline, from `centroid_mm[0]`; `Midline` when the midline runs through the
    /// middle half of the node's extent along x.
    pub side: Side,
    /// RECIST 1.1 category from `short_axis_mm`.
    pub recist_category: RecistCategory,
    /// Node-RADS size class from the short and long axis.
    pub node_rads_size: NodeRadsSize,
}

/// Options for [`measure_nodes`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MeasureOptions {
    /// LPS x of the patient midline, mm. `None`: the x of the volume's centre.
    pub midline_x_mm: Option<f64>,
    /// Interior voxels below this are counted as necrotic, HU.
    pub necrosis_threshold_hu: f64,
}

impl Default for MeasureOptions {
    fn default() -> Self {
        MeasureOptions { midline_x_mm: None, necrosis_threshold_hu: 20.0 }
    }
}

/// Measures every node (every positive id) of an instance label map, sorted by id.
///
/// `ct`, when given, must be on the same grid. Ids need not be contiguous: gaps are simply absent
/// from the output. An empty label map gives an empty vector.
///
/// # Errors
/// [`NodesError::GridMismatch`] when the CT's grid differs; [`NodesError::NegativeLabel`] for a
/// negative id; [`NodesError::TooManyLabels`] for an id above `u32::MAX`.
pub fn measure_nodes<L: Label>(
    labels: &Volume<L>,
    ct: Option<&Volume<i16>>,
    opts: &MeasureOptions,
) -> Result<Vec<NodeMeasurement>, NodesError> {
    if let Some(ct) = ct {
        labels
            .check_same_grid(ct)
            .map_err(|source| NodesError::GridMismatch { what: "CT".into(), source })?;
    }
    let boxes = label_boxes(labels);
    if let Some((id, _)) = boxes.first() {
        if *id < L::default() {
            return Err(NodesError::NegativeLabel { id: id.to_f64() as i64 });
        }
    }
    if let Some((id, _)) = boxes.last() {
        if id.as_usize() > u32::MAX as usize {
            return Err(NodesError::TooManyLabels { count: id.as_usize(), max: u32::MAX as usize });
        }
    }
    let g = labels.geometry();
    let midline_x = opts.midline_x_mm.unwrap_or_else(|| {
        let d = labels.dims();
        g.index_to_world(d.map(|n| (n as f64 - 1.0) / 2.0))[0]
    });
    let reformatted = axial_frame(g).is_none();
    let axes = axial_axes_of_boxes(labels, &boxes);
    let data = labels.data();
    let ct_data = ct.map(|c| c.data());
    let out = boxes
        .par_iter()
        .zip(axes.par_iter())
        .map(|((id, b), (_, ax))| {
            let ax = ax.unwrap_or_else(|| {
                // Lost in the axial reformation (a sliver thinner than the reformation grid).
                let c = g.index_to_world(std::array::from_fn(|a| (b.min[a] + b.max[a]) as f64 / 2.0));
                AxialAxes {
                    short_axis_mm: 0.0,
                    long_axis_mm: 0.0,
                    short_axis_slice: 0,
                    long_axis_slice: 0,
                    short_axis_endpoints_mm: [c, c],
                    long_axis_endpoints_mm: [c, c],
                    recist_long_axis_mm: 0.0,
                    recist_long_axis_endpoints_mm: [c, c],
                }
            });
            measure_one(&data, g, ct_data.as_ref(), *id, b, ax, reformatted, midline_x, opts)
        })
        .collect();
    Ok(out)
}

/// Everything but the axial axes, for one node inside its bounding box.
fn measure_one<L: Label>(
    data: &ArrayView3<'_, L>,
    g: &Geometry,
    ct: Option<&ArrayView3<'_, i16>>,
    id: L,
    b: &LabelBox,
    axes: AxialAxes,
    axial_reformatted: bool,
    midline_x: f64,
    opts: &MeasureOptions,
) -> NodeMeasurement {
    // Local mask of the box with a one-voxel empty margin, [nk, nj, ni] like the volume.
    let n: [usize; 3] = std::array::from_fn(|a| b.max[a] - b.min[a] + 3);
    let mut m = Array3::<bool>::from_elem([n[2], n[1], n[0]], false);
    for k in b.min[2]..=b.max[2] {
        for j in b.min[1]..=b.max[1] {
            for i in b.min[0]..=b.max[0] {
                if data[[k, j, i]] == id {
                    m[[k - b.min[2] + 1, j - b.min[1] + 1, i - b.min[0] + 1]] = true;
                }
            }
        }
    }
    let sp = g.spacing_mm;
    let face_area = [sp[1] * sp[2], sp[0] * sp[2], sp[0] * sp[1]];
    let to_global = |i: usize, j: usize, k: usize| [i + b.min[0] - 1, j + b.min[1] - 1, k + b.min[2] - 1];
    let mut sum_idx = [0.0f64; 3];
    let mut faces = 0.0;
    let mut interior = 0usize;
    let mut interior_low = 0usize;
    let mut hu: Vec<i16> = Vec::new();
    let mut corners: Vec<P3> = Vec::new();
    for k in 1..n[2] - 1 {
        for j in 1..n[1] - 1 {
            for i in 1..n[0] - 1 {
                if !m[[k, j, i]] {
                    continue;
                }
                let gi = to_global(i, j, k);
                for a in 0..3 {
                    sum_idx[a] += gi[a] as f64;
                }
                // Open sides along each axis: [low, high].
                let open = [
                    [!m[[k, j, i - 1]], !m[[k, j, i + 1]]],
                    [!m[[k, j - 1, i]], !m[[k, j + 1, i]]],
                    [!m[[k - 1, j, i]], !m[[k + 1, j, i]]],
                ];
                for a in 0..3 {
                    faces += face_area[a] * (u8::from(open[a][0]) + u8::from(open[a][1])) as f64;
                }
                let is_interior = open.iter().all(|o| !o[0] && !o[1]);
                if let Some(ct) = ct {
                    let v = ct[[gi[2], gi[1], gi[0]]];
                    hu.push(v);
                    if is_interior && (v as f64) < opts.necrosis_threshold_hu {
                        interior_low += 1;
                    }
                }
                interior += usize::from(is_interior);
                // A corner of this voxel can be a hull vertex only if the voxel has no neighbour
                // beyond it along any of the three axes (else the corner lies between two others).
                for c in 0..8 {
                    let side = [c & 1, (c >> 1) & 1, (c >> 2) & 1];
                    if (0..3).all(|a| open[a][side[a]]) {
                        let idx = std::array::from_fn(|a| gi[a] as f64 + side[a] as f64 - 0.5);
                        corners.push(g.index_to_world(idx));
                    }
                }
            }
        }
    }
    let count = b.count;
    let centroid_mm = g.index_to_world(sum_idx.map(|s| s / count as f64));
    let volume_mm3 = count as f64 * g.voxel_volume_mm3();
    let surface_area_mm2 = faces * 2.0 / 3.0;
    let sphericity =
        std::f64::consts::PI.powf(1.0 / 3.0) * (6.0 * volume_mm3).powf(2.0 / 3.0) / surface_area_mm2;
    let mut max_d2 = 0.0f64;
    for p in 0..corners.len() {
        for q in p + 1..corners.len() {
            let (a, c) = (corners[p], corners[q]);
            max_d2 = max_d2.max((a[0] - c[0]).powi(2) + (a[1] - c[1]).powi(2) + (a[2] - c[2]).powi(2));
        }
    }
    let (mut lo, mut hi) = ([f64::INFINITY; 3], [f64::NEG_INFINITY; 3]);
    for c in 0..8 {
        let idx: [f64; 3] =
            std::array::from_fn(
                |a| {
                    if c >> a & 1 == 1 {
                        b.max[a] as f64 + 0.5
                    } else {
                        b.min[a] as f64 - 0.5
                    }
                },
            );
        let w = g.index_to_world(idx);
        for a in 0..3 {
            lo[a] = lo[a].min(w[a]);
            hi[a] = hi[a].max(w[a]);
        }
    }
    let hu_stats = (!hu.is_empty()).then(|| hu_stats(&mut hu));
    let necrosis_fraction = (ct.is_some() && interior > 0).then(|| interior_low as f64 / interior as f64);
    // A node the midline runs through the middle half of (a submental or prelaryngeal node) is on
    // neither side.
    let side = if (centroid_mm[0] - midline_x).abs() < (hi[0] - lo[0]) / 4.0 {
        Side::Midline
    } else {
        Side::of_x_mm(centroid_mm[0], midline_x)
    };
    NodeMeasurement {
        node_id: id.as_usize() as u32,
        voxel_count: count,
        volume_mm3,
        centroid_mm,
        bbox_min_index: b.min,
        bbox_max_index: b.max,
        bbox_min_mm: lo,
        bbox_max_mm: hi,
        axes,
        axial_reformatted,
        max_diameter_3d_mm: max_d2.sqrt(),
        surface_area_mm2,
        sphericity,
        hu: hu_stats,
        interior_voxel_count: interior,
        necrosis_fraction,
        touches_volume_border: {
            let sh = data.shape();
            let dims = [sh[2], sh[1], sh[0]];
            (0..3).any(|a| b.min[a] == 0 || b.max[a] + 1 == dims[a])
        },
        side,
        recist_category: RecistCategory::from_short_axis_mm(axes.short_axis_mm),
        node_rads_size: NodeRadsSize::from_axes_mm(axes.short_axis_mm, axes.long_axis_mm),
    }
}

/// Percentile `q` in [0, 100] of sorted values, linear interpolation between order statistics
/// (NumPy's default `method="linear"`).
fn percentile_sorted(v: &[i16], q: f64) -> f64 {
    let pos = q / 100.0 * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let f = pos - lo as f64;
    v[lo] as f64 * (1.0 - f) + v[hi] as f64 * f
}

fn hu_stats(v: &mut [i16]) -> HuStats {
    v.sort_unstable();
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    HuStats {
        mean_hu: mean,
        std_hu: var.sqrt(),
        p10_hu: percentile_sorted(v, 10.0),
        p50_hu: percentile_sorted(v, 50.0),
        p90_hu: percentile_sorted(v, 90.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ball(spacing: [f64; 3], r_mm: f64) -> Volume<u8> {
        let n = [
            (2.0 * r_mm / spacing[0]).ceil() as usize + 5,
            (2.0 * r_mm / spacing[1]).ceil() as usize + 5,
            (2.0 * r_mm / spacing[2]).ceil() as usize + 5,
        ];
        let c = [(n[0] / 2) as f64, (n[1] / 2) as f64, (n[2] / 2) as f64];
        let a = Array3::from_shape_fn([n[2], n[1], n[0]], |(k, j, i)| {
            let d2 = ((i as f64 - c[0]) * spacing[0]).powi(2)
                + ((j as f64 - c[1]) * spacing[1]).powi(2)
                + ((k as f64 - c[2]) * spacing[2]).powi(2);
            u8::from(d2 <= r_mm * r_mm)
        });
        Volume::new(a, Geometry::axis_aligned(spacing, [0.0; 3])).unwrap()
    }

    #[test]
    fn protocol_golden_ball() {
        // The protocol's example: r = 5 mm at 0.5 x 0.5 x 1.0 mm -> SAD = LAD = 10.70 mm.
        let ax = axial_axes(&ball([0.5, 0.5, 1.0], 5.0));
        assert_eq!(ax.len(), 2);
        assert!(ax[0].is_none());
        let a = ax[1].unwrap();
        assert!((a.long_axis_mm - 10.70).abs() < 0.005, "{a:?}");
        assert!((a.short_axis_mm - 10.70).abs() < 0.005, "{a:?}");
        let [p, q] = a.long_axis_endpoints_mm;
        let d = ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2) + (p[2] - q[2]).powi(2)).sqrt();
        assert!((d - a.long_axis_mm).abs() < 1e-9);
    }

    /// A node like a lying cone: its longest slice (the base) is not its widest. The protocol's
    /// long axis is the base's; the RECIST long axis is measured on the short axis's own slice,
    /// so its end points lie in that slice and both axes of the pair are one image's.
    #[test]
    fn the_recist_pair_is_measured_on_one_slice() {
        let g = Geometry::axis_aligned([1.0; 3], [0.0; 3]);
        let mut v = Volume::<u8>::zeros([40, 30, 6], g);
        // Slice 1: a long thin bar 30 x 4; slice 3: a wide block 12 x 10.
        for (k, (w, h)) in [(1usize, (30usize, 4usize)), (3, (12, 10))] {
            for j in 5..5 + h {
                for i in 2..2 + w {
                    v.data_mut()[[k, j, i]] = 1;
                }
            }
        }
        let a = axial_axes(&v)[1].unwrap();
        let dist = |[p, q]: [[f64; 3]; 2]| {
            ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2) + (p[2] - q[2]).powi(2)).sqrt()
        };
        assert_eq!((a.short_axis_slice, a.long_axis_slice), (3, 1));
        assert!((a.long_axis_mm - (30f64.powi(2) + 4f64.powi(2)).sqrt()).abs() < 1e-9, "{a:?}");
        assert!((a.recist_long_axis_mm - (12f64.powi(2) + 10f64.powi(2)).sqrt()).abs() < 1e-9, "{a:?}");
        assert!(a.recist_long_axis_mm <= a.long_axis_mm);
        assert!((dist(a.recist_long_axis_endpoints_mm) - a.recist_long_axis_mm).abs() < 1e-9);
        let z = g.index_to_world([0.0, 0.0, 3.0])[2];
        for p in a.recist_long_axis_endpoints_mm.iter().chain(&a.short_axis_endpoints_mm) {
            assert!((p[2] - z).abs() < 1e-9, "{p:?} not on slice 3");
        }
    }

    /// The midline through a node's middle makes it a midline node; off to a side, a side's.
    #[test]
    fn a_node_across_the_midline_is_on_neither_side() {
        let g = Geometry::axis_aligned([1.0; 3], [0.0; 3]);
        let mut v = Volume::<u8>::zeros([40, 20, 6], g);
        let mut put = |range: std::ops::Range<usize>, rows: std::ops::Range<usize>, id: u8| {
            for k in 1..4 {
                for j in rows.clone() {
                    for i in range.clone() {
                        v.data_mut()[[k, j, i]] = id;
                    }
                }
            }
        };
        put(15..25, 2..8, 1); // centred on x = 19.5, the volume's centre
        put(2..8, 2..8, 2); // right (LPS x smaller)
        put(31..38, 2..8, 3); // left
        put(19..33, 11..17, 4); // crosses the midline off-centre: its middle half is left of it
        let m = measure_nodes(&v, None, &MeasureOptions::default()).unwrap();
        let sides: Vec<Side> = m.iter().map(|n| n.side).collect();
        assert_eq!(sides, [Side::Midline, Side::Right, Side::Left, Side::Left]);
    }

    /// A node reaching the first or last voxel on any axis is flagged as cut by the volume's
    /// border; one a voxel away from every edge is not.
    #[test]
    fn nodes_at_the_volume_border_are_flagged() {
        let g = Geometry::axis_aligned([1.0; 3], [0.0; 3]);
        for (lo, hi, want) in [
            ([1, 1, 1], [3, 3, 3], false),
            ([0, 1, 1], [3, 3, 3], true),
            ([1, 1, 1], [3, 7, 3], true),
            ([1, 1, 1], [3, 3, 5], true),
        ] {
            let mut v = Volume::<u8>::zeros([6, 8, 6], g);
            for k in lo[2]..=hi[2] {
                for j in lo[1]..=hi[1] {
                    for i in lo[0]..=hi[0] {
                        v.data_mut()[[k, j, i]] = 1;
                    }
                }
            }
            let m = measure_nodes(&v, None, &MeasureOptions::default()).unwrap();
            assert_eq!(m[0].touches_volume_border, want, "{lo:?}..={hi:?}");
        }
    }
}
