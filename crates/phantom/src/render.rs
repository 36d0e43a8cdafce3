//! Rasterisation: the anatomy's tissue map, node placement, the HU image with sub-slice
//! integration, and the scanner model (metal and shoulder streaks, correlated noise, blur).
use crate::anatomy::{sid, Anatomy, StructInfo, Tissue};
use crate::config::Scanner;
use crate::mass::ShiftBounds;
use crate::nodes::NodeShape;
use crate::rng::{hash_normal, mix64, texture_cached, value_noise_cached, NoiseCell};
use crate::shapes::{PreparedPrim2, Prim2};
use ndarray::{Array3, Axis};
use nodal_core::Geometry;
use rayon::prelude::*;

/// The output grid: geometry (axis-aligned LPS) and dims (ni, nj, nk).
#[derive(Clone, Copy, Debug)]
pub struct Grid {
    pub geom: Geometry,
    pub dims: [usize; 3],
}

impl Grid {
    #[inline]
    pub fn x(&self, i: usize) -> f64 {
        self.geom.origin_mm[0] + i as f64 * self.geom.spacing_mm[0]
    }
    #[inline]
    pub fn y(&self, j: usize) -> f64 {
        self.geom.origin_mm[1] + j as f64 * self.geom.spacing_mm[1]
    }
    #[inline]
    pub fn z(&self, k: usize) -> f64 {
        self.geom.origin_mm[2] + k as f64 * self.geom.spacing_mm[2]
    }
    /// Inclusive index range along axis `a` covering `[lo, hi]` mm, clipped to the grid.
    pub fn range(&self, a: usize, lo: f64, hi: f64) -> Option<(usize, usize)> {
        let s = self.geom.spacing_mm[a];
        let o = self.geom.origin_mm[a];
        let i0 = ((lo - o) / s).ceil().max(0.0);
        let i1 = ((hi - o) / s).floor().min(self.dims[a] as f64 - 1.0);
        if i1 < i0 {
            None
        } else {
            Some((i0 as usize, i1 as usize))
        }
    }
}

/// Paints the structure ids of the axial plane at `z` into `buf` (`nj * ni`, i fastest).
pub fn paint_sids(anat: &Anatomy, grid: &Grid, z: f64, buf: &mut [u16]) {
    let ni = grid.dims[0];
    buf.fill(sid::AIR);
    let prims: Vec<(PreparedPrim2, u16)> = anat.slice(z).iter().map(|(p, id)| (p.prepare(), *id)).collect();
    for (p, id) in &prims {
        paint_prim(grid, p, *id, ni, buf);
    }
    // Small vessels: only through fat.
    for v in &anat.vessels {
        let t = &v.tube;
        for s in 0..t.pts.len().saturating_sub(1) {
            let (a, b) = (t.pts[s], t.pts[s + 1]);
            let r = t.radius[s].max(t.radius[s + 1]);
            if z < a[2].min(b[2]) - r || z > a[2].max(b[2]) + r {
                continue;
            }
            let (Some((i0, i1)), Some((j0, j1))) = (
                grid.range(0, a[0].min(b[0]) - r, a[0].max(b[0]) + r),
                grid.range(1, a[1].min(b[1]) - r, a[1].max(b[1]) + r),
            ) else {
                continue;
            };
            for j in j0..=j1 {
                let y = grid.y(j);
                for i in i0..=i1 {
                    let cur = buf[j * ni + i];
                    if (cur == sid::FAT || cur == sid::DEEP_FAT) && t.segment_contains(s, [grid.x(i), y, z]) {
                        buf[j * ni + i] = v.sid;
                    }
                }
            }
        }
    }
    if !anat.mass.is_empty() {
        paint_displaced(anat, grid, z, &prims, buf);
    }
}

/// Repaints the pixels of plane `z` that a node's mass effect displaces: each shows the structure
/// at its source point (see [`crate::mass`]).
///
/// A pixel in several push boxes takes the answer of the last box, so each pixel is done once,
/// with the last box that holds it; tiles that no push can move are skipped whole.
fn paint_displaced(anat: &Anatomy, grid: &Grid, z: f64, prims: &[(PreparedPrim2, u16)], buf: &mut [u16]) {
    // Tile side, pixels (4 and the edge limit below were the fastest on the 512 x 512 benchmark).
    const TILE: usize = 4;
    let ni = grid.dims[0];
    let ranges: Vec<Option<[usize; 4]>> = anat
        .mass
        .boxes(z)
        .iter()
        .map(|b| match (grid.range(0, b[0], b[1]), grid.range(1, b[2], b[3])) {
            (Some((i0, i1)), Some((j0, j1))) => Some([i0, i1, j0, j1]),
            _ => None,
        })
        .collect();
    let boxes = anat.mass.boxes(z);
    // Sources lie within the box grown by the largest displacement (the node size): keep only
    // structures that can reach it.
    let grow = anat.mass.pushes.iter().map(|p| p.shape.extent_mm()).fold(0.0, f64::max);
    let bounds = anat.mass.shift_bounds();
    for (n, b) in boxes.iter().enumerate() {
        let Some([i0, i1, j0, j1]) = ranges[n] else {
            continue;
        };
        let later: Vec<[usize; 4]> = ranges[n + 1..].iter().flatten().copied().collect();
        let near = |bb: [f64; 4]| {
            bb[1] >= b[0] - grow && bb[0] <= b[1] + grow && bb[3] >= b[2] - grow && bb[2] <= b[3] + grow
        };
        let local: Vec<&(PreparedPrim2, u16)> = prims.iter().filter(|(p, _)| near(p.prim.bbox())).collect();
        let tubes: Vec<(&crate::shapes::Tube, u16)> = anat
            .vessels
            .iter()
            .filter(|v| {
                let t = &v.tube;
                let r = t.radius.iter().cloned().fold(0.0, f64::max);
                let (lo, hi) = t.pts.iter().fold(([f64::MAX; 3], [f64::MIN; 3]), |(lo, hi), p| {
                    (std::array::from_fn(|a| lo[a].min(p[a])), std::array::from_fn(|a| hi[a].max(p[a])))
                });
                z >= lo[2] - r - grow
                    && z <= hi[2] + r + grow
                    && near([lo[0] - r, hi[0] + r, lo[1] - r, hi[1] + r])
            })
            .map(|v| (&v.tube, v.sid))
            .collect();
        // The segments of those tubes that reach the plane, in tube order: the first tube that
        // contains a point of the plane is the tube of the first segment that does.
        let segs: Vec<(&crate::shapes::Tube, usize, u16)> = tubes
            .iter()
            .flat_map(|&(t, vs)| {
                (0..t.pts.len().saturating_sub(1)).filter_map(move |s| {
                    let (za, zb) = (t.pts[s][2], t.pts[s + 1][2]);
                    let r = t.radius[s].abs().max(t.radius[s + 1].abs()) + 1e-6;
                    (z >= za.min(zb) - r && z <= za.max(zb) + r).then_some((t, s, vs))
                })
            })
            .collect();
        for tj0 in (j0..=j1).step_by(TILE) {
            let tj1 = (tj0 + TILE - 1).min(j1);
            let (ya, yb) = (grid.y(tj0).min(grid.y(tj1)), grid.y(tj0).max(grid.y(tj1)));
            for ti0 in (i0..=i1).step_by(TILE) {
                let ti1 = (ti0 + TILE - 1).min(i1);
                let (xa, xb) = (grid.x(ti0).min(grid.x(ti1)), grid.x(ti0).max(grid.x(ti1)));
                // The tile as a ball around its centre.
                let centre = [0.5 * (xa + xb), 0.5 * (ya + yb), z];
                let radius = 0.5 * (xb - xa).hypot(yb - ya) * (1.0 + 1e-9) + 1e-9;
                let bound = bounds.near(centre, radius);
                if bound.as_ref().is_some_and(ShiftBounds::is_still) {
                    continue;
                }
                // Near the edge of the moved region the bound is worth trying pixel by pixel
                // (cheaper than a source; the limit was tuned on the 512 x 512 benchmark).
                let edge = bound.is_some_and(|b| b.norm_mm < 0.1);
                for j in tj0..=tj1 {
                    let y = grid.y(j);
                    for i in ti0..=ti1 {
                        if later.iter().any(|r| (r[0]..=r[1]).contains(&i) && (r[2]..=r[3]).contains(&j)) {
                            continue;
                        }
                        if edge && bounds.still_near([grid.x(i), y, z], 0.0) {
                            continue;
                        }
                        let p = [grid.x(i), y, z];
                        let q = anat.mass.source(p);
                        if !anat.mass.moves(p, q) {
                            continue;
                        }
                        let mut id = local
                            .iter()
                            .rev()
                            .find(|(pr, _)| pr.contains(q[0], q[1]))
                            .map_or(sid::AIR, |(_, id)| *id);
                        if id == sid::FAT || id == sid::DEEP_FAT {
                            let qz = [q[0], q[1], z];
                            if let Some(&(_, _, vs)) =
                                segs.iter().find(|(t, s, _)| t.segment_contains(*s, qz))
                            {
                                id = vs;
                            }
                        }
                        buf[j * ni + i] = id;
                    }
                }
            }
        }
    }
}

/// Structure id at a point of the undisplaced anatomy (what [`paint_sids`] paints there).
pub fn sid_at(anat: &Anatomy, p: [f64; 3]) -> u16 {
    sid_in(anat, &anat.slice(p[2]), p)
}

/// [`sid_at`] with the primitives of the plane `p[2]` already made.
pub fn sid_in(anat: &Anatomy, prims: &[(Prim2, u16)], p: [f64; 3]) -> u16 {
    let mut id = prims.iter().rev().find(|(pr, _)| pr.contains(p[0], p[1])).map_or(sid::AIR, |(_, id)| *id);
    if id == sid::FAT || id == sid::DEEP_FAT {
        if let Some(v) = anat.vessels.iter().find(|v| v.tube.contains(p)) {
            id = v.sid;
        }
    }
    id
}

/// Paints the pixels of a primitive's bounding box that are inside it, in runs along rows.
fn paint_prim(grid: &Grid, p: &PreparedPrim2, id: u16, ni: usize, buf: &mut [u16]) {
    let bb = p.prim.bbox();
    let (Some((i0, i1)), Some((j0, j1))) = (grid.range(0, bb[0], bb[1]), grid.range(1, bb[2], bb[3])) else {
        return;
    };
    let step_mm = grid.geom.spacing_mm[0];
    for j in j0..=j1 {
        let y = grid.y(j);
        let row = &mut buf[j * ni..(j + 1) * ni];
        p.row_runs(y, i0, i1, |i| grid.x(i), step_mm, |a, b| row[a..=b].fill(id));
    }
}

/// HU of a structure at a point (mean plus texture).
#[inline]
pub fn struct_hu(info: &StructInfo, id: u16, seed: u64, p: [f64; 3]) -> f64 {
    struct_hu_cached(&mut [None; 3], info, id, seed, p)
}

/// [`struct_hu`] with noise cell caches (two texture octaves, the septa field) for the points of a
/// row of one structure: the same value, bit for bit.
#[inline]
pub fn struct_hu_cached(
    cache: &mut [Option<NoiseCell>; 3],
    info: &StructInfo,
    id: u16,
    seed: u64,
    p: [f64; 3],
) -> f64 {
    if info.tex_hu == 0.0 {
        return info.hu;
    }
    let [c0, c1, c2] = cache;
    let t = texture_cached([c0, c1], seed ^ (id as u64).wrapping_mul(0x9E37), p, info.tex_mm);
    match id {
        // Mottled calcification: only the positive lobes of the texture calcify.
        sid::CALC_CARTILAGE => info.hu + info.tex_hu * (2.0 * t - 0.3).max(0.0),
        // Intermuscular fat planes: thin sheets where a coarse noise field crosses zero.
        sid::MUSCLE | sid::TONGUE => {
            let n = value_noise_cached(c2, seed ^ 0xFA7, [p[0] / 11.0, p[1] / 11.0, p[2] / 25.0]);
            let septa = (-(n * n) / (2.0 * 0.03 * 0.03)).exp();
            info.hu + info.tex_hu * t - 0.8 * septa * (info.hu + 95.0)
        }
        _ => info.hu + info.tex_hu * t,
    }
}

// Structure ids are stored in a byte.
const _: () = assert!(sid::COUNT <= 256);

/// Pass A: the structure ids on the output grid (slice centres), `[nk, nj, ni]`.
pub fn sid_map(anat: &Anatomy, grid: &Grid) -> Array3<u8> {
    let [ni, nj, nk] = grid.dims;
    let mut out = Array3::<u8>::zeros([nk, nj, ni]);
    out.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(k, mut sl)| {
        let mut buf = vec![0u16; ni * nj];
        paint_sids(anat, grid, grid.z(k), &mut buf);
        let s = sl.as_slice_mut().expect("standard layout");
        for (o, id) in s.iter_mut().zip(&buf) {
            *o = *id as u8;
        }
    });
    out
}

/// The tissue classes of a structure-id map.
pub fn tissue_of(anat: &Anatomy, sids: &Array3<u8>) -> Array3<u8> {
    let lut: Vec<u8> = anat.structs.iter().map(|s| s.tissue as u8).collect();
    ndarray::Zip::from(sids).par_map_collect(|&id| lut[id as usize])
}

/// The tissue map on the output grid (slice centres), `[nk, nj, ni]`.
pub fn tissue_map(anat: &Anatomy, grid: &Grid) -> Array3<u8> {
    tissue_of(anat, &sid_map(anat, grid))
}

/// A node placed in the volume: its label id (1-based), shape and cluster.
#[derive(Clone, Debug)]
pub struct PlacedNode {
    pub id: u16,
    pub shape: NodeShape,
    pub cluster: Option<u32>,
}

/// For a point, the node (index into `nodes`) whose shape contains it with the smallest level,
/// among the candidates, and that level.
#[inline]
pub fn node_at(nodes: &[PlacedNode], cand: &[usize], p: [f64; 3]) -> Option<(usize, f64)> {
    let mut best: Option<(usize, f64)> = None;
    for &n in cand {
        let l = nodes[n].shape.level_of(p);
        if l < 1.0 && best.is_none_or(|(_, bl)| l < bl) {
            best = Some((n, l));
        }
    }
    best
}

/// Node candidates whose bounding sphere meets the plane `z` (with a margin).
pub fn nodes_near_z(nodes: &[PlacedNode], z: f64, margin: f64) -> Vec<usize> {
    (0..nodes.len())
        .filter(|&n| (nodes[n].shape.centre[2] - z).abs() <= nodes[n].shape.extent_mm() + margin)
        .collect()
}

/// Pass B: the noiseless, unblurred HU image `[nk, nj, ni]` (f32) and the label map (slice
/// centres). Each output slice averages `n_sub` sub-slices across its thickness (slice profile /
/// partial volume along z). `centre_sids`, if given, is [`sid_map`] of the same anatomy: the
/// centre sub-slice (odd `n_sub`) is then not painted again.
pub fn hu_and_labels(
    anat: &Anatomy,
    grid: &Grid,
    nodes: &[PlacedNode],
    tex_seed: u64,
    n_sub: usize,
    centre_sids: Option<&Array3<u8>>,
) -> (Array3<f32>, Array3<u16>) {
    let [ni, nj, nk] = grid.dims;
    let mut hu = Array3::<f32>::zeros([nk, nj, ni]);
    let mut lab = Array3::<u16>::zeros([nk, nj, ni]);
    let dz = grid.geom.spacing_mm[2];
    let soft_margin = nodes.iter().map(|n| 3.0 * n.shape.edge_sigma_mm()).fold(0.0, f64::max);
    hu.axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(lab.axis_iter_mut(Axis(0)).into_par_iter())
        .enumerate()
        .for_each(|(k, (mut hs, mut ls))| {
            let hs = hs.as_slice_mut().expect("standard layout");
            let ls = ls.as_slice_mut().expect("standard layout");
            let mut buf = vec![0u16; ni * nj];
            let mut cache = vec![[None; 3]; anat.structs.len()];
            for s in 0..n_sub {
                let off = (s as f64 + 0.5) / n_sub as f64 - 0.5;
                let z = grid.z(k) + off * dz;
                let centre = 2 * s + 1 == n_sub;
                match centre_sids.filter(|m| centre && m.dim() == (nk, nj, ni)) {
                    // The centre sub-slice is the slice centre (offset 0): the same plane.
                    Some(sids) => {
                        let sl = sids.index_axis(Axis(0), k);
                        let sl = sl.as_slice().expect("standard layout");
                        for (b, id) in buf.iter_mut().zip(sl) {
                            *b = *id as u16;
                        }
                    }
                    None => paint_sids(anat, grid, z, &mut buf),
                }
                for j in 0..nj {
                    let y = grid.y(j);
                    for i in 0..ni {
                        let id = buf[j * ni + i];
                        let v = struct_hu_cached(
                            &mut cache[id as usize],
                            &anat.structs[id as usize],
                            id,
                            tex_seed,
                            [grid.x(i), y, z],
                        );
                        hs[j * ni + i] += (v / n_sub as f64) as f32;
                    }
                }
                // Nodes overwrite fat and muscle (placement guarantees nothing else is under them).
                // Blurred edges reach three sigmas beyond the surface (0 unless randomized).
                let cand = nodes_near_z(nodes, z, soft_margin);
                for &n in &cand {
                    let sh = &nodes[n].shape;
                    let sigma = sh.edge_sigma_mm();
                    if sigma > 0.0 {
                        soft_edge_node(anat, grid, nodes, &cand, n, tex_seed, z, n_sub, centre, &buf, hs, ls);
                        continue;
                    }
                    let e = sh.extent_mm();
                    let c = sh.centre;
                    let (Some((i0, i1)), Some((j0, j1))) =
                        (grid.range(0, c[0] - e, c[0] + e), grid.range(1, c[1] - e, c[1] + e))
                    else {
                        continue;
                    };
                    for j in j0..=j1 {
                        let y = grid.y(j);
                        for i in i0..=i1 {
                            let p = [grid.x(i), y, z];
                            let l = sh.level_of(p);
                            if l >= 1.0 {
                                continue;
                            }
                            // In a cluster the voxel belongs to the mate with the smallest level.
                            if let Some((b, _)) = node_at(nodes, &cand, p) {
                                if b != n {
                                    continue;
                                }
                            }
                            let idx = j * ni + i;
                            let id = buf[idx];
                            let under = struct_hu(&anat.structs[id as usize], id, tex_seed, p);
                            let v = sh.hu_at(p, l);
                            hs[idx] += ((v - under) / n_sub as f64) as f32;
                            if centre {
                                ls[idx] = nodes[n].id;
                            }
                        }
                    }
                }
            }
        });
    (hu, lab)
}

/// Paints one node with a blurred edge (randomized edge sharpness) into the plane `z`: the node's
/// HU is blended with the tissue under it by the fraction of a Gaussian-blurred step, out to three
/// sigmas beyond the surface; labels stay the node's inside (`level < 1`).
fn soft_edge_node(
    anat: &Anatomy,
    grid: &Grid,
    nodes: &[PlacedNode],
    cand: &[usize],
    n: usize,
    tex_seed: u64,
    z: f64,
    n_sub: usize,
    centre: bool,
    buf: &[u16],
    hs: &mut [f32],
    ls: &mut [u16],
) {
    let ni = grid.dims[0];
    let sh = &nodes[n].shape;
    let sigma = sh.edge_sigma_mm();
    // Level units to mm near the surface: the smallest radius (the sharpest side is exact).
    let rmin = sh.radii.iter().cloned().fold(f64::INFINITY, f64::min).max(1e-6);
    let outer = 1.0 + 3.0 * sigma / rmin;
    let e = sh.extent_mm() * outer;
    let c = sh.centre;
    if (c[2] - z).abs() > e {
        return;
    }
    let (Some((i0, i1)), Some((j0, j1))) =
        (grid.range(0, c[0] - e, c[0] + e), grid.range(1, c[1] - e, c[1] + e))
    else {
        return;
    };
    for j in j0..=j1 {
        let y = grid.y(j);
        for i in i0..=i1 {
            let p = [grid.x(i), y, z];
            let l = sh.level_of(p);
            if l >= outer {
                continue;
            }
            // Inside a mate (or another node) that owns the voxel: that one paints it.
            if let Some((b, _)) = node_at(nodes, cand, p) {
                if b != n {
                    continue;
                }
            }
            let w = crate::style::phi((1.0 - l) * rmin / sigma);
            let idx = j * ni + i;
            let id = buf[idx];
            let under = struct_hu(&anat.structs[id as usize], id, tex_seed, p);
            let v = sh.hu_at(p, l.min(1.0));
            hs[idx] += (w * (v - under) / n_sub as f64) as f32;
            if centre && l < 1.0 {
                ls[idx] = nodes[n].id;
            }
        }
    }
}

/// Adds streaks: lines through `centre` at `angles`, Gaussian profile of width `width_mm`,
/// amplitude `amps` (HU), decaying as `1 / (1 + d / decay_mm)` from the centre.
fn add_streaks(
    grid: &Grid,
    slice: &mut [f32],
    centre: [f64; 2],
    angles: &[f64],
    amps: &[f64],
    width_mm: f64,
    decay_mm: f64,
) {
    let ni = grid.dims[0];
    if ni == 0 {
        return;
    }
    let inv2w2 = 1.0 / (2.0 * width_mm * width_mm);
    let rot: Vec<(f64, f64)> = angles.iter().map(|a| a.sin_cos()).collect();
    // A streak adds where e = perp^2 / (2 w^2) < 9: |perp| below this (widened), a band along
    // the row; outside it the test fails whatever the rounding.
    let perp_max = (9.0 / inv2w2).sqrt() * (1.0 + 1e-6) + 1e-9;
    let (ox, sx) = (grid.geom.origin_mm[0], grid.geom.spacing_mm[0]);
    let mut acc = vec![0.0f64; ni];
    for j in 0..grid.dims[1] {
        let dy = grid.y(j) - centre[1];
        // Per pixel, the streaks are summed in angle order as they come.
        acc.fill(0.0);
        for (&(s, c), amp) in rot.iter().zip(amps) {
            let (i0, i1) = if s.abs() > 1e-9 && sx > 0.0 {
                // perp = -s dx + c dy, |perp| < perp_max: dx between these, then pixel indices
                // (one pixel of room on each side).
                let a = (c * dy - perp_max) / s;
                let b = (c * dy + perp_max) / s;
                let to_i = |dx: f64| (dx + centre[0] - ox) / sx;
                let lo = (to_i(a.min(b)).floor() - 1.0).max(0.0);
                let hi = (to_i(a.max(b)).ceil() + 1.0).min(ni as f64 - 1.0);
                if lo.is_nan() || hi.is_nan() || lo > hi {
                    continue;
                }
                (lo as usize, hi as usize)
            } else {
                (0, ni - 1)
            };
            for i in i0..=i1 {
                let dx = grid.x(i) - centre[0];
                let perp = -s * dx + c * dy;
                let e = perp * perp * inv2w2;
                if e < 9.0 {
                    acc[i] += amp * (-e).exp();
                }
            }
        }
        for i in 0..ni {
            let dx = grid.x(i) - centre[0];
            let d = (dx * dx + dy * dy).sqrt();
            let fall = 1.0 / (1.0 + d / decay_mm);
            slice[j * ni + i] += (acc[i] * fall) as f32;
        }
    }
}

/// Scanner artefacts before blur: dental metal streaks near the metal, and photon-starvation
/// streaks through the shoulders.
pub fn add_artifacts(anat: &Anatomy, grid: &Grid, sc: &Scanner, seed: u64, hu: &mut Array3<f32>) {
    hu.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(k, mut sl)| {
        let s = sl.as_slice_mut().expect("standard layout");
        let z = grid.z(k);
        let h = mix64(seed ^ 0x57AE ^ k as u64);
        for (m_i, m) in anat.metal.iter().enumerate() {
            let dz = (m[2] - z).abs();
            if dz > 6.0 {
                continue;
            }
            let w = 1.0 - dz / 6.0;
            let hm = mix64(seed ^ (m_i as u64) << 8);
            let n = 10 + (hm % 8) as usize;
            let angles: Vec<f64> = (0..n)
                .map(|a| {
                    (a as f64 + ((mix64(hm ^ a as u64) % 1000) as f64) / 1000.0) * std::f64::consts::PI
                        / n as f64
                })
                .collect();
            let amps: Vec<f64> = (0..n)
                .map(|a| {
                    let r = (mix64(hm ^ 0xF00 ^ a as u64 ^ k as u64 >> 1) % 1000) as f64 / 1000.0;
                    w * if a % 2 == 0 { -150.0 - 350.0 * r } else { 80.0 + 250.0 * r }
                })
                .collect();
            add_streaks(grid, s, [m[0], m[1]], &angles, &amps, 1.2, 25.0);
        }
        // Dark band between pairs of metal objects.
        for a in 0..anat.metal.len() {
            for b in a + 1..anat.metal.len() {
                let (p, q) = (anat.metal[a], anat.metal[b]);
                let dz = ((p[2] + q[2]) / 2.0 - z).abs();
                if dz > 4.0 {
                    continue;
                }
                let ang = (q[1] - p[1]).atan2(q[0] - p[0]);
                let c = [(p[0] + q[0]) / 2.0, (p[1] + q[1]) / 2.0];
                add_streaks(grid, s, c, &[ang], &[-350.0 * (1.0 - dz / 4.0)], 2.0, 40.0);
            }
        }
        let u = anat.u_of(z);
        if u < 0.12 {
            let f = ((0.12 - u) / 0.15).clamp(0.0, 1.0);
            let n = 3;
            let angles: Vec<f64> =
                (0..n).map(|a| ((mix64(h ^ a) % 1000) as f64 / 1000.0 - 0.5) * 0.25).collect();
            let amps: Vec<f64> = (0..n)
                .map(|a| f * (((mix64(h ^ 0xAA ^ a) % 1000) as f64 / 1000.0) - 0.5) * 10.0 * sc.noise_hu)
                .collect();
            let c = anat.to_world(u, [0.0, 10.0]);
            add_streaks(grid, s, c, &angles, &amps, 2.5, 400.0);
        }
    });
}

/// Normalised 1D Gaussian kernel (sigma in voxels), truncated at 3 sigma; identity for tiny sigma.
pub fn gauss_kernel(sigma: f64) -> Vec<f32> {
    if sigma < 0.2 {
        return vec![1.0];
    }
    let r = (3.0 * sigma).ceil() as i64;
    let w: Vec<f64> = (-r..=r).map(|x| (-(x * x) as f64 / (2.0 * sigma * sigma)).exp()).collect();
    let s: f64 = w.iter().sum();
    w.iter().map(|v| (v / s) as f32).collect()
}

/// Separable convolution along one axis of `[nk, nj, ni]` (edges clamp), in parallel.
pub fn convolve_axis(v: &mut Array3<f32>, axis: usize, kernel: &[f32]) {
    if kernel.len() <= 1 {
        return;
    }
    let [nk, ni] = [v.shape()[0], v.shape()[2]];
    match axis {
        // i (within rows) and j (within slices): per slice.
        0 | 1 => {
            v.axis_iter_mut(Axis(0)).into_par_iter().for_each(|mut sl| {
                let s = sl.as_slice_mut().expect("standard layout");
                if axis == 0 {
                    convolve_rows(s, ni, kernel);
                } else {
                    convolve_lines(s, ni, kernel);
                }
            });
        }
        _ => {
            // k: per plane of fixed j (`[nk, ni]`, rows `nj * ni` apart), in parallel over j.
            v.axis_iter_mut(Axis(1)).into_par_iter().for_each(|mut plane| {
                let mut src = Vec::with_capacity(nk * ni);
                for row in plane.outer_iter() {
                    match row.as_slice() {
                        Some(r) => src.extend_from_slice(r),
                        None => src.extend(row.iter().copied()),
                    }
                }
                convolve_lines(&mut src, ni, kernel);
                for (k, row) in src.chunks_exact(ni).enumerate().take(nk) {
                    for (o, x) in plane.index_axis_mut(Axis(0), k).iter_mut().zip(row) {
                        *o = *x;
                    }
                }
            });
        }
    }
}

/// Convolves each row (`n` values) of `s` with `kernel`, edges clamped. Every output is
/// `0 + w0 x0 + w1 x1 + ...` in kernel order, whatever the loop order.
fn convolve_rows(s: &mut [f32], n: usize, kernel: &[f32]) {
    let r = kernel.len() / 2;
    let mut pad = vec![0f32; n + kernel.len() - 1];
    let mut acc = vec![0f32; n];
    for row in s.chunks_exact_mut(n) {
        // pad[x + t] is the clamped sample x + t - r.
        for (p, v) in pad.iter_mut().enumerate() {
            *v = row[p.saturating_sub(r).min(n - 1)];
        }
        acc.fill(0.0);
        for (t, w) in kernel.iter().enumerate() {
            for (a, x) in acc.iter_mut().zip(&pad[t..t + n]) {
                *a += w * x;
            }
        }
        row.copy_from_slice(&acc);
    }
}

/// Convolves `s`, seen as lines of `n` values, across the lines (each column with `kernel`,
/// edges clamped); same order of operations as [`convolve_rows`].
fn convolve_lines(s: &mut [f32], n: usize, kernel: &[f32]) {
    let lines = s.len() / n;
    let r = kernel.len() / 2;
    let src = s.to_vec();
    for (l, out) in s.chunks_exact_mut(n).enumerate() {
        out.fill(0.0);
        for (t, w) in kernel.iter().enumerate() {
            let ll = (l + t).saturating_sub(r).min(lines - 1);
            for (a, x) in out.iter_mut().zip(&src[ll * n..(ll + 1) * n]) {
                *a += w * x;
            }
        }
    }
}

/// Adds white noise scaled so that, after the blur with `kernels` (i, j, k), its standard
/// deviation is `noise_hu(z)`; then blurs. Blurring signal and noise together gives partial-volume
/// edges and the spatially correlated noise of a reconstruction kernel in one pass.
pub fn noise_and_blur(
    grid: &Grid,
    hu: &mut Array3<f32>,
    kernels: [&[f32]; 3],
    noise_hu: impl Fn(f64) -> f64 + Sync,
    seed: u64,
) {
    let gain: f64 =
        kernels.iter().map(|k| k.iter().map(|w| (*w as f64).powi(2)).sum::<f64>()).product::<f64>().sqrt();
    let ni = grid.dims[0];
    // Noise, then the in-plane passes, slice by slice (the same operations as whole-volume passes).
    hu.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(k, mut sl)| {
        let s = sl.as_slice_mut().expect("standard layout");
        let sd = (noise_hu(grid.z(k)) / gain) as f32;
        let base = mix64(seed ^ (k as u64).wrapping_mul(0xA24B_AED4_963E_E407));
        for (idx, v) in s.iter_mut().enumerate() {
            // Air outside the patient is also noisy but never brighter than air.
            *v += sd * hash_normal(mix64(base ^ idx as u64));
        }
        if kernels[0].len() > 1 {
            convolve_rows(s, ni, kernels[0]);
        }
        if kernels[1].len() > 1 {
            convolve_lines(s, ni, kernels[1]);
        }
    });
    convolve_axis(hu, 2, kernels[2]);
}

/// Is this tissue allowed under a node?
#[inline]
pub fn node_allowed(t: u8) -> bool {
    matches!(Tissue::from_u8(t), Some(Tissue::Fat) | Some(Tissue::Muscle))
}
// Shapes on the grid: which voxels a node (or confounder) covers.

/// Index box `[lo, hi]` (inclusive, per axis) of a shape inflated by `margin_mm`; `None` if it
/// comes within one voxel of the grid's border.
fn index_box(grid: &Grid, shape: &NodeShape, margin_mm: f64) -> Option<([usize; 3], [usize; 3])> {
    let e = shape.extent_mm() + margin_mm;
    let c = shape.centre;
    let mut lo = [0usize; 3];
    let mut hi = [0usize; 3];
    for a in 0..3 {
        let s = grid.geom.spacing_mm[a];
        let o = grid.geom.origin_mm[a];
        let a0 = ((c[a] - e - o) / s).floor();
        let a1 = ((c[a] + e - o) / s).ceil();
        if a0 < 1.0 || a1 > grid.dims[a] as f64 - 2.0 {
            return None;
        }
        lo[a] = a0 as usize;
        hi[a] = a1 as usize;
    }
    Some((lo, hi))
}

/// True when [`rasterize`] with this margin gives `Some` (the shape stays inside the grid).
pub(crate) fn fits_grid(grid: &Grid, shape: &NodeShape, margin_mm: f64) -> bool {
    index_box(grid, shape, margin_mm).is_some()
}

/// Voxels of a shape on the grid (slice centres): `(flat index, level)`; `None` if it leaves the
/// grid. Also returns the voxels of the shape inflated by `margin_mm` for exclusion checks.
pub(crate) fn rasterize(grid: &Grid, shape: &NodeShape, margin_mm: f64) -> Option<(Vec<usize>, Vec<usize>)> {
    let rmin = shape.radii.iter().cloned().fold(f64::INFINITY, f64::min);
    let infl = 1.0 + margin_mm / rmin;
    let [ni, nj, _] = grid.dims;
    let (lo, hi) = index_box(grid, shape, margin_mm)?;
    // Slices in parallel, joined in order (the lists are in index order).
    let per_slice: Vec<(Vec<usize>, Vec<usize>)> = (lo[2]..=hi[2])
        .into_par_iter()
        .map(|k| {
            let z = grid.z(k);
            let mut inside = Vec::new();
            let mut near = Vec::new();
            for j in lo[1]..=hi[1] {
                let y = grid.y(j);
                for i in lo[0]..=hi[0] {
                    let l = shape.level_of([grid.x(i), y, z]);
                    let idx = (k * nj + j) * ni + i;
                    if l < 1.0 {
                        inside.push(idx);
                    } else if l < infl {
                        near.push(idx);
                    }
                }
            }
            (inside, near)
        })
        .collect();
    let (mut inside, mut near) = (Vec::new(), Vec::new());
    for (a, b) in per_slice {
        inside.extend(a);
        near.extend(b);
    }
    Some((inside, near))
}
