//! Display planes in patient space and the report's images.
//!
//! Images are sampled through world (LPS) coordinates, never by slicing the stored array, so the
//! radiological display convention holds whatever the storage orientation: on **axial** images
//! patient right is on the image left and anterior is up (columns run towards +x = Left, rows
//! towards +y = Posterior); on **coronal** images patient right is on the image left and superior
//! is up (rows run towards -z).
use crate::data::{RankedNode, RecistCategory};
use crate::raster::{self, Window};
use image::RgbImage;
use nodal_core::{Label, Vec3, Volume, Voxel};
use rayon::prelude::*;

/// A display plane: the centre of pixel (c, r) is `origin_mm + (c * col_dir + r * row_dir) * px_mm`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Plane {
    /// Centre of pixel (0, 0), LPS mm.
    pub origin_mm: Vec3,
    /// LPS unit vector along which columns increase.
    pub col_dir: Vec3,
    /// LPS unit vector along which rows increase.
    pub row_dir: Vec3,
    /// Pixel size, mm.
    pub px_mm: f64,
    /// Width, px.
    pub width: u32,
    /// Height, px.
    pub height: u32,
}

/// Axial: columns towards patient left, rows towards posterior.
const AXIAL: (Vec3, Vec3) = ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0]);
/// Coronal: columns towards patient left, rows towards inferior.
const CORONAL: (Vec3, Vec3) = ([1.0, 0.0, 0.0], [0.0, 0.0, -1.0]);

impl Plane {
    fn centred(center_mm: Vec3, dirs: (Vec3, Vec3), px_mm: f64, width: u32, height: u32) -> Plane {
        let (col_dir, row_dir) = dirs;
        let hc = (width as f64 - 1.0) / 2.0 * px_mm;
        let hr = (height as f64 - 1.0) / 2.0 * px_mm;
        let origin_mm = [0, 1, 2].map(|a| center_mm[a] - col_dir[a] * hc - row_dir[a] * hr);
        Plane { origin_mm, col_dir, row_dir, px_mm, width, height }
    }

    /// A square axial view of `fov_mm` centred on `center_mm`.
    pub fn axial(center_mm: Vec3, fov_mm: f64, size_px: u32) -> Plane {
        Self::centred(center_mm, AXIAL, fov_mm / size_px as f64, size_px, size_px)
    }

    /// A square coronal view of `fov_mm` centred on `center_mm`.
    pub fn coronal(center_mm: Vec3, fov_mm: f64, size_px: u32) -> Plane {
        Self::centred(center_mm, CORONAL, fov_mm / size_px as f64, size_px, size_px)
    }

    /// World position of a continuous pixel position.
    pub fn to_world(&self, c: f64, r: f64) -> Vec3 {
        [0, 1, 2].map(|a| self.origin_mm[a] + (self.col_dir[a] * c + self.row_dir[a] * r) * self.px_mm)
    }

    /// Continuous pixel position (c, r) of a world point projected onto the plane.
    pub fn to_pixel(&self, p: Vec3) -> (f64, f64) {
        let d = [0, 1, 2].map(|a| p[a] - self.origin_mm[a]);
        let dot = |u: Vec3| (d[0] * u[0] + d[1] * u[1] + d[2] * u[2]) / self.px_mm;
        (dot(self.col_dir), dot(self.row_dir))
    }
}

/// Air, returned outside the scanned volume.
const OUTSIDE_HU: f64 = -1024.0;

/// Trilinear interpolation of `value` (of one voxel) at a world point; `outside` beyond the grid
/// (more than half a voxel past its edge voxels).
fn trilinear<T: Voxel>(v: &Volume<T>, p: Vec3, outside: f64, value: impl Fn(T) -> f64) -> f64 {
    let idx = v.geometry().world_to_index(p);
    let dims = v.dims();
    let mut base = [0usize; 3];
    let mut frac = [0.0f64; 3];
    for a in 0..3 {
        let n = dims[a] as f64;
        if !(idx[a] >= -0.5 && idx[a] <= n - 0.5) {
            return outside;
        }
        let x = idx[a].clamp(0.0, n - 1.0);
        let f = x.floor();
        base[a] = f as usize;
        frac[a] = x - f;
    }
    let data = v.data();
    let mut acc = 0.0;
    for corner in 0..8 {
        let mut w = 1.0;
        let mut at = [0usize; 3];
        for a in 0..3 {
            let up = corner >> a & 1 == 1;
            at[a] = if up { (base[a] + 1).min(dims[a] - 1) } else { base[a] };
            w *= if up { frac[a] } else { 1.0 - frac[a] };
        }
        if w > 0.0 {
            acc += w * value(data[[at[2], at[1], at[0]]]);
        }
    }
    acc
}

/// Trilinear HU at a world point (air outside the grid).
fn hu_at(ct: &Volume<i16>, p: Vec3) -> f64 {
    trilinear(ct, p, OUTSIDE_HU, f64::from)
}

/// Trilinear interpolation of the indicator `label == target` at a world point (0 outside), so a
/// node's contour on an upsampled view follows its surface instead of the voxel staircase.
fn indicator_at<L: Label>(labels: &Volume<L>, p: Vec3, target: u32) -> f64 {
    trilinear(labels, p, 0.0, |l: L| f64::from(u8::from(l.as_usize() as u32 == target)))
}

/// Index (i, j, k) of the voxel nearest to a world point, if inside the grid.
#[inline]
fn nearest_index(g: &nodal_core::Geometry, dims: [usize; 3], p: Vec3) -> Option<[usize; 3]> {
    let idx = g.world_to_index(p);
    let mut at = [0usize; 3];
    for a in 0..3 {
        let r = idx[a].round();
        if !(r >= 0.0 && r < dims[a] as f64) {
            return None;
        }
        at[a] = r as usize;
    }
    Some(at)
}

/// Index of the voxel nearest to the continuous index `start + s * delta`, if inside the grid:
/// [`nearest_index`] on an affine path (`floor(x + 0.5)` by truncation, valid once `x + 0.5 >= 0`).
#[inline]
fn ray_index(start: Vec3, delta: Vec3, s: f64, dims: [usize; 3]) -> Option<[usize; 3]> {
    let mut at = [0usize; 3];
    for a in 0..3 {
        let x = start[a] + s * delta[a] + 0.5;
        if !(x >= 0.0 && x < dims[a] as f64) {
            return None;
        }
        at[a] = x as usize;
    }
    Some(at)
}

/// Nearest-neighbour label at a world point (0 outside the grid).
fn label_at<L: Label>(labels: &Volume<L>, p: Vec3) -> u32 {
    nearest_index(labels.geometry(), labels.dims(), p)
        .map_or(0, |[i, j, k]| labels.get(i, j, k).as_usize() as u32)
}

/// CT (windowed grey) and labels sampled on a plane. Row-major, `width * height`.
pub struct PlaneSample {
    /// Grey value per pixel.
    pub grey: Vec<u8>,
    /// Label id per pixel.
    pub labels: Vec<u32>,
}

/// Samples the CT (trilinear, windowed) and the label map (nearest) on `plane`.
pub fn sample_plane<L: Label>(
    ct: &Volume<i16>,
    labels: &Volume<L>,
    plane: &Plane,
    window: Window,
) -> PlaneSample {
    let n = (plane.width * plane.height) as usize;
    let mut grey = Vec::with_capacity(n);
    let mut lab = Vec::with_capacity(n);
    for r in 0..plane.height {
        for c in 0..plane.width {
            let p = plane.to_world(c as f64, r as f64);
            grey.push(window.grey(hu_at(ct, p)));
            lab.push(label_at(labels, p));
        }
    }
    PlaneSample { grey, labels: lab }
}

/// Colours of the measurement lines.
pub const SAD_RGB: [u8; 3] = [0, 200, 255];
pub const LAD_RGB: [u8; 3] = [255, 80, 200];
const CONTOUR_RGB: [u8; 3] = [255, 214, 0];
const OTHER_CONTOUR_RGB: [u8; 3] = [150, 150, 150];

/// Side length of a node thumbnail, px.
pub const THUMB_PX: u32 = 220;

/// Field of view of a node's thumbnails: the node with a margin, at least 40 mm.
pub fn thumb_fov_mm(node: &RankedNode) -> f64 {
    (node.node.long_axis_mm * 2.2 + 16.0).clamp(40.0, 160.0)
}

/// Orientation letters at the middle of each edge (`corners`: left/right letters in the top corners
/// instead, leaving the edges free for markers).
fn orientation_letters(img: &mut RgbImage, left: &str, right: &str, top: &str, bottom: &str, corners: bool) {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let s = 2;
    let th = raster::text_height(s) as i64;
    let white = [235, 235, 235];
    let y_lr = if corners { 4 } else { (h - th) / 2 };
    raster::text(img, 4, y_lr, left, s, white);
    raster::text(img, w - 4 - raster::text_width(right, s) as i64, y_lr, right, s, white);
    raster::text(img, (w - raster::text_width(top, s) as i64) / 2, 4, top, s, white);
    raster::text(img, (w - raster::text_width(bottom, s) as i64) / 2, h - 4 - th, bottom, s, white);
}

fn grey_image(plane: &Plane, sample: &PlaneSample) -> RgbImage {
    let w = plane.width;
    raster::from_rgb(w, plane.height, |x, y| {
        let g = sample.grey[(y * w + x) as usize];
        [g, g, g]
    })
}

fn draw_outlines<L: Label>(
    img: &mut RgbImage,
    labels: &Volume<L>,
    plane: &Plane,
    sample: &PlaneSample,
    target: u32,
) {
    let (w, h) = (plane.width as usize, plane.height as usize);
    let others: Vec<bool> = sample.labels.iter().map(|&l| l != 0 && l != target).collect();
    raster::outline(img, &others, w, h, 1, OTHER_CONTOUR_RGB);
    let mut mine = Vec::with_capacity(w * h);
    for r in 0..h {
        for c in 0..w {
            mine.push(indicator_at(labels, plane.to_world(c as f64, r as f64), target) >= 0.5);
        }
    }
    raster::outline(img, &mine, w, h, 2, CONTOUR_RGB);
}

/// Axial thumbnail at the node's short-axis slice: soft-tissue window, node contour, short axis
/// (cyan) and long axis (magenta) from their end points, scale bar and orientation letters.
pub fn axial_thumbnail<L: Label>(ct: &Volume<i16>, labels: &Volume<L>, node: &RankedNode) -> RgbImage {
    let n = &node.node;
    let [a, b] = n.short_axis_endpoints_mm;
    // The plane passes through the short-axis end points (they lie on the measured slice); centred
    // in-plane on the node's centroid.
    let center = [n.centroid_mm[0], n.centroid_mm[1], (a[2] + b[2]) / 2.0];
    let fov = thumb_fov_mm(node);
    let plane = Plane::axial(center, fov, THUMB_PX);
    let sample = sample_plane(ct, labels, &plane, raster::SOFT_TISSUE);
    let mut img = grey_image(&plane, &sample);
    draw_outlines(&mut img, labels, &plane, &sample, n.node_id);
    let [la, lb] = n.recist_long_axis_endpoints_mm;
    // The RECIST long axis, measured on this same slice.
    raster::line(&mut img, plane.to_pixel(la), plane.to_pixel(lb), 2.0, LAD_RGB);
    raster::line(&mut img, plane.to_pixel(a), plane.to_pixel(b), 2.0, SAD_RGB);
    for p in [a, b] {
        let (x, y) = plane.to_pixel(p);
        raster::disc(&mut img, x, y, 2.5, SAD_RGB);
    }
    for p in [la, lb] {
        let (x, y) = plane.to_pixel(p);
        raster::disc(&mut img, x, y, 2.5, LAD_RGB);
    }
    orientation_letters(&mut img, "R", "L", "A", "P", false);
    raster::text(&mut img, 6, 6, &format!("#{}", node.rank), 2, [255, 255, 255]);
    raster::scale_bar(&mut img, plane.px_mm, raster::nice_bar_mm(fov));
    img
}

/// Coronal thumbnail through the node's centroid, with the node contour and a tick at the level of
/// the short-axis slice on both image edges.
pub fn coronal_thumbnail<L: Label>(ct: &Volume<i16>, labels: &Volume<L>, node: &RankedNode) -> RgbImage {
    let n = &node.node;
    let fov = thumb_fov_mm(node);
    let plane = Plane::coronal(n.centroid_mm, fov, THUMB_PX);
    let sample = sample_plane(ct, labels, &plane, raster::SOFT_TISSUE);
    let mut img = grey_image(&plane, &sample);
    draw_outlines(&mut img, labels, &plane, &sample, n.node_id);
    let [a, b] = n.short_axis_endpoints_mm;
    let (_, y) = plane.to_pixel([n.centroid_mm[0], n.centroid_mm[1], (a[2] + b[2]) / 2.0]);
    let w = plane.width as f64;
    raster::line(&mut img, (0.0, y), (14.0, y), 2.0, SAD_RGB);
    raster::line(&mut img, (w - 15.0, y), (w - 1.0, y), 2.0, SAD_RGB);
    orientation_letters(&mut img, "R", "L", "S", "I", true);
    raster::scale_bar(&mut img, plane.px_mm, raster::nice_bar_mm(fov));
    img
}

/// Window of the overview projection: wide enough to show bone and contrast-filled vessels.
pub const OVERVIEW_WINDOW: Window = Window { width: 2000.0, level: 750.0 };

/// Larger side of the overview image, px (small scans are upsampled to it).
pub const OVERVIEW_PX: u32 = 560;
/// A scan shorter than this fraction of its width is projected axially: its coronal projection
/// would be a strip a few dozen pixels high.
const AXIAL_OVERVIEW_BELOW: f64 = 0.5;

/// The direction of the overview's projection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Projection {
    /// Front to back: patient right on image left, superior up.
    Coronal,
    /// Feet to head, for short scans: patient right on image left, anterior up.
    Axial,
}

impl Projection {
    /// What the report's legend says of it.
    pub fn description(self) -> &'static str {
        match self {
            Projection::Coronal => {
                "Coronal maximum-intensity projection. Patient right on image left, superior up."
            }
            Projection::Axial => {
                "Axial maximum-intensity projection (a short scan). Patient right on image left, anterior up."
            }
        }
    }
}

/// World bounding box (voxel centres) of a grid.
fn world_box(g: &nodal_core::Geometry, dims: [usize; 3]) -> ([f64; 3], [f64; 3]) {
    let mut lo = [f64::INFINITY; 3];
    let mut hi = [f64::NEG_INFINITY; 3];
    for corner in 0..8 {
        let idx = [0, 1, 2].map(|a| if corner >> a & 1 == 1 { (dims[a] - 1) as f64 } else { 0.0 });
        let p = g.index_to_world(idx);
        for a in 0..3 {
            lo[a] = lo[a].min(p[a]);
            hi[a] = hi[a].max(p[a]);
        }
    }
    (lo, hi)
}

/// The overview's projection for `ct`: axial when the scan is short.
pub fn overview_projection(ct: &Volume<i16>) -> Projection {
    let (lo, hi) = world_box(ct.geometry(), ct.dims());
    if hi[2] - lo[2] < AXIAL_OVERVIEW_BELOW * (hi[0] - lo[0]) {
        Projection::Axial
    } else {
        Projection::Coronal
    }
}

/// The largest node (label, short axis mm) met along a projection ray.
type RayHit = Option<(u32, f64)>;

/// Maximum-intensity projection of the whole scan ([`overview_projection`]: coronal, or axial for
/// a short scan) with every node's projection filled in the colour of its RECIST category and
/// labelled with its rank.
pub fn overview<L: Label>(ct: &Volume<i16>, labels: &Volume<L>, nodes: &[RankedNode]) -> RgbImage {
    let g = ct.geometry();
    let dims = ct.dims();
    let (lo, hi) = world_box(g, dims);
    let projection = overview_projection(ct);
    // The image's row axis and the rays' axis (world axes).
    let (dirs, row_axis, ray) = match projection {
        Projection::Coronal => (CORONAL, 2, 1),
        Projection::Axial => (AXIAL, 1, 2),
    };
    let min_sp = g.spacing_mm.iter().cloned().fold(f64::INFINITY, f64::min);
    let ext_x = hi[0] - lo[0] + min_sp;
    let ext_rows = hi[row_axis] - lo[row_axis] + min_sp;
    let px_mm = ext_x.max(ext_rows) / OVERVIEW_PX as f64;
    let width = ((ext_x / px_mm).round() as u32).max(1);
    let height = ((ext_rows / px_mm).round() as u32).max(1);
    let center = [0, 1, 2].map(|a| (lo[a] + hi[a]) / 2.0);
    let mut plane = Plane::centred(center, dirs, px_mm, width, height);
    plane.origin_mm[ray] = lo[ray];
    // Rays run along the ray axis through the whole volume. Nearest-neighbour samples at the
    // finest voxel spacing visit every voxel a ray crosses; rows are independent (rayon).
    let step = min_sp;
    let n_steps = ((hi[ray] - lo[ray]) / step).floor() as usize + 1;
    let by_label: std::collections::HashMap<u32, (RecistCategory, f64)> =
        nodes.iter().map(|r| (r.node.node_id, (r.recist, r.node.short_axis_mm))).collect();
    let rows: Vec<(Vec<u8>, Vec<RayHit>)> = (0..height)
        .into_par_iter()
        .map(|r| {
            let mut grey = Vec::with_capacity(width as usize);
            let mut proj = Vec::with_capacity(width as usize);
            for c in 0..width {
                let p0 = plane.to_world(c as f64, r as f64);
                let mut max_hu = OUTSIDE_HU;
                let mut hit: RayHit = None;
                // The continuous index is affine along the ray, so each sample costs three
                // multiply-adds instead of a world -> index transform (this loop visits every
                // voxel of the scan).
                let mut p1 = p0;
                p1[ray] += step;
                let start = g.world_to_index(p0);
                let next = g.world_to_index(p1);
                let delta = [0, 1, 2].map(|a| next[a] - start[a]);
                for s in 0..n_steps {
                    let Some(at) = ray_index(start, delta, s as f64, dims) else { continue };
                    max_hu = max_hu.max(ct.data()[[at[2], at[1], at[0]]] as f64);
                    let l = labels.data()[[at[2], at[1], at[0]]].as_usize() as u32;
                    if l != 0 {
                        if let Some(&(_, sad)) = by_label.get(&l) {
                            // Show the largest node along the ray.
                            if hit.is_none_or(|(_, s0)| sad > s0) {
                                hit = Some((l, sad));
                            }
                        }
                    }
                }
                grey.push(OVERVIEW_WINDOW.grey(max_hu));
                proj.push(hit);
            }
            (grey, proj)
        })
        .collect();
    let grey: Vec<u8> = rows.iter().flat_map(|(g, _)| g.iter().copied()).collect();
    let proj: Vec<RayHit> = rows.into_iter().flat_map(|(_, p)| p).collect();
    let mut img = raster::from_rgb(width, height, |x, y| {
        let v = grey[(y * width + x) as usize];
        [v, v, v]
    });
    for (i, h) in proj.iter().enumerate() {
        if let Some((l, _)) = h {
            let rgb = by_label[l].0.rgb();
            raster::blend(&mut img, (i as u32 % width) as i64, (i as u32 / width) as i64, rgb, 0.75);
        }
    }
    // Outline each projected node in its colour, then its rank next to it.
    for rn in nodes {
        let mask: Vec<bool> =
            proj.iter().map(|h| matches!(h, Some((l, _)) if *l == rn.node.node_id)).collect();
        raster::outline(&mut img, &mask, width as usize, height as usize, 1, rn.recist.rgb());
    }
    // Rank labels: the first free spot around each node (outward from the midline first), so labels
    // of neighbouring nodes do not overlap.
    let mut taken: Vec<[f64; 4]> = Vec::new();
    for rn in nodes {
        let (x, y) = plane.to_pixel(rn.node.centroid_mm);
        let label = format!("{}", rn.rank);
        let (tw, th) = (raster::text_width(&label, 2) as f64, raster::text_height(2) as f64);
        let off = rn.node.long_axis_mm / 2.0 / px_mm + 3.0;
        let out = if x < width as f64 / 2.0 { -1.0 } else { 1.0 };
        let side = |dir: f64| if dir < 0.0 { x - off - tw } else { x + off };
        let mut candidates = Vec::new();
        for extra in [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0] {
            let dy = extra * (th + 3.0);
            for (cx, cy) in [
                (side(out), y - th / 2.0 - dy),
                (side(out), y - th / 2.0 + dy),
                (side(-out), y - th / 2.0 - dy),
                (side(-out), y - th / 2.0 + dy),
            ] {
                candidates.push((cx, cy));
            }
        }
        let fits = |&(cx, cy): &(f64, f64)| {
            let b = [cx - 1.0, cy - 1.0, cx + tw + 1.0, cy + th + 1.0];
            b[0] >= 0.0
                && b[1] >= 0.0
                && b[2] <= width as f64
                && b[3] <= height as f64
                && taken.iter().all(|t| b[2] <= t[0] || b[0] >= t[2] || b[3] <= t[1] || b[1] >= t[3])
        };
        let (cx, cy) = candidates.iter().copied().find(fits).unwrap_or(candidates[0]);
        taken.push([cx - 1.0, cy - 1.0, cx + tw + 1.0, cy + th + 1.0]);
        raster::text(&mut img, cx.round() as i64, cy.round() as i64, &label, 2, [255, 255, 255]);
    }
    match projection {
        Projection::Coronal => orientation_letters(&mut img, "R", "L", "S", "I", false),
        Projection::Axial => orientation_letters(&mut img, "R", "L", "A", "P", false),
    }
    raster::scale_bar(&mut img, px_mm, raster::nice_bar_mm(ext_x));
    img
}

#[cfg(test)]
mod tests {
    use super::*;
    use nodal_core::Geometry;

    /// A 40 x 40 x 40 volume, 1 mm voxels, centred on the world origin, stored with `direction`,
    /// holding one bright cube at world `marker_mm` (and label 1 there).
    fn marked(direction: [[f64; 3]; 3], marker_mm: Vec3) -> (Volume<i16>, Volume<u16>) {
        let n = 40usize;
        let mut g = Geometry { spacing_mm: [1.0; 3], origin_mm: [0.0; 3], direction };
        // Put the grid centre at the world origin.
        let c = g.index_to_world([19.5; 3]);
        g.origin_mm = [-c[0], -c[1], -c[2]];
        let mut ct = Volume::<i16>::filled([n; 3], g, 0);
        let mut lab = Volume::<u16>::zeros([n; 3], g);
        for k in 0..n {
            for j in 0..n {
                for i in 0..n {
                    let p = g.index_to_world([i as f64, j as f64, k as f64]);
                    if (0..3).all(|a| (p[a] - marker_mm[a]).abs() <= 3.0) {
                        ct.data_mut()[[k, j, i]] = 1000;
                        lab.data_mut()[[k, j, i]] = 1;
                    }
                }
            }
        }
        (ct, lab)
    }

    /// Mean (column, row) of bright pixels, as fractions of the image size.
    fn bright_centre(s: &PlaneSample, p: &Plane) -> (f64, f64) {
        let (mut sx, mut sy, mut n) = (0.0, 0.0, 0.0);
        for (i, &g) in s.grey.iter().enumerate() {
            if g == 255 {
                sx += (i as u32 % p.width) as f64;
                sy += (i as u32 / p.width) as f64;
                n += 1.0;
            }
        }
        assert!(n > 0.0, "marker not visible");
        (sx / n / p.width as f64, sy / n / p.height as f64)
    }

    #[test]
    fn ray_steps_find_the_voxels_the_world_transform_finds() {
        // Anisotropic voxels, every storage, and an oblique one; rays along +y through points that
        // are not on the grid (a tie between two voxels is where the two roundings may differ).
        let c = std::f64::consts::FRAC_1_SQRT_2;
        let mut dirs = storages();
        dirs.push(("oblique", [[c, -c, 0.0], [c, c, 0.0], [0.0, 0.0, 1.0]]));
        for (name, direction) in dirs {
            let g = Geometry { spacing_mm: [0.7, 0.9, 2.5], origin_mm: [-15.3, -12.1, -31.7], direction };
            let dims = [33, 29, 17];
            let step = 0.7;
            let centre = g.index_to_world([16.0, 14.0, 8.0]);
            let mut visited = 0;
            for t in 0..400 {
                let (x, z) = (centre[0] - 10.0 + 0.0517 * t as f64, centre[2] - 15.0 + 0.0771 * t as f64);
                let y0 = centre[1] - 40.0 + 0.0137 * t as f64;
                let start = g.world_to_index([x, y0, z]);
                let next = g.world_to_index([x, y0 + step, z]);
                let delta = [0, 1, 2].map(|a| next[a] - start[a]);
                for s in 0..120 {
                    let naive = nearest_index(&g, dims, [x, y0 + s as f64 * step, z]);
                    assert_eq!(ray_index(start, delta, s as f64, dims), naive, "{name} ray {t} step {s}");
                    visited += usize::from(naive.is_some());
                }
            }
            assert!(visited > 1000, "{name}: only {visited} samples inside the grid");
        }
    }

    fn storages() -> Vec<(&'static str, [[f64; 3]; 3])> {
        vec![
            ("LPS", [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]),
            ("RAS", [[-1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]]),
            ("LPI", [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0]]),
            // Rows and columns swapped, slices inferior to superior: "PLS"-like storage.
            ("PRS", [[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]),
            // Coronal acquisition: i -> L, j -> I, k -> A.
            ("LIA", [[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, -1.0, 0.0]]),
        ]
    }

    #[test]
    fn axial_view_shows_patient_right_on_image_left_and_anterior_up() {
        for (name, dir) in storages() {
            // Patient right (x < 0) and anterior (y < 0), on the z = 0 plane.
            let (ct, lab) = marked(dir, [-10.0, -10.0, 0.0]);
            let plane = Plane::axial([0.0; 3], 40.0, 80);
            let s = sample_plane(&ct, &lab, &plane, Window { width: 400.0, level: 500.0 });
            let (cx, cy) = bright_centre(&s, &plane);
            assert!((cx - 0.25).abs() < 0.05 && (cy - 0.25).abs() < 0.05, "{name}: centre at ({cx}, {cy})");
            assert!(s.labels.contains(&1));
        }
    }

    #[test]
    fn coronal_view_shows_patient_right_on_image_left_and_superior_up() {
        for (name, dir) in storages() {
            // Patient left (x > 0) and superior (z > 0), on the y = 0 plane.
            let (ct, lab) = marked(dir, [10.0, 0.0, 10.0]);
            let plane = Plane::coronal([0.0; 3], 40.0, 80);
            let s = sample_plane(&ct, &lab, &plane, Window { width: 400.0, level: 500.0 });
            let (cx, cy) = bright_centre(&s, &plane);
            assert!((cx - 0.75).abs() < 0.05 && (cy - 0.25).abs() < 0.05, "{name}: centre at ({cx}, {cy})");
        }
    }

    #[test]
    fn pixel_world_round_trip() {
        let p = Plane::coronal([3.0, -2.0, 7.0], 50.0, 100);
        let w = p.to_world(12.5, 80.0);
        let (c, r) = p.to_pixel(w);
        assert!((c - 12.5).abs() < 1e-9 && (r - 80.0).abs() < 1e-9);
        // The centre of the field of view is the requested centre.
        let mid = p.to_world(49.5, 49.5);
        assert!((mid[0] - 3.0).abs() < 1e-9 && (mid[2] - 7.0).abs() < 1e-9 && (mid[1] + 2.0).abs() < 1e-9);
    }

    #[test]
    fn trilinear_matches_hand_value() {
        let g = Geometry::axis_aligned([2.0, 1.0, 1.0], [0.0, 0.0, 0.0]);
        let mut ct = Volume::<i16>::filled([2, 1, 1], g, 0);
        ct.data_mut()[[0, 0, 1]] = 100;
        // x = 0.5 mm is a quarter of the way from voxel 0 (x=0) to voxel 1 (x=2).
        assert!((hu_at(&ct, [0.5, 0.0, 0.0]) - 25.0).abs() < 1e-9);
        assert_eq!(hu_at(&ct, [-5.0, 0.0, 0.0]), OUTSIDE_HU);
    }
}
