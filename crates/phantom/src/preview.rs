//! PNG montages for looking at a phantom: axial and coronal slices in a soft-tissue window with
//! node contours (red = metastatic, green = non-metastatic).
use crate::output::write_atomic;
use crate::{NodeInfo, PhantomError};
use image::{ImageEncoder, Rgb, RgbImage};
use nodal_core::Volume;
use std::path::Path;

/// Soft-tissue window: level 50 HU, width 400 HU.
const WL: f64 = 50.0;
const WW: f64 = 400.0;

fn gray(hu: i16) -> u8 {
    (((hu as f64 - (WL - WW / 2.0)) / WW).clamp(0.0, 1.0) * 255.0) as u8
}

fn colour(nodes: &[NodeInfo], l: u16) -> Rgb<u8> {
    match nodes.get(l as usize - 1) {
        Some(n) if n.metastatic => Rgb([255, 60, 40]),
        _ => Rgb([60, 230, 90]),
    }
}

/// One 2D cut: `px(x, y) -> (hu, label)` over `w x h`, with vertical stretch `sy` (nearest).
fn cut(w: usize, h: usize, sy: f64, nodes: &[NodeInfo], px: &dyn Fn(usize, usize) -> (i16, u16)) -> RgbImage {
    let oh = ((h as f64) * sy).round().max(1.0) as usize;
    let mut img = RgbImage::new(w as u32, oh as u32);
    for oy in 0..oh {
        let y = ((oy as f64 + 0.5) / sy).floor().min(h as f64 - 1.0) as usize;
        for x in 0..w {
            let (v, l) = px(x, y);
            let g = gray(v);
            let mut c = Rgb([g, g, g]);
            if l != 0 {
                let edge = [(-1i64, 0i64), (1, 0), (0, -1), (0, 1)].iter().any(|(dx, dy)| {
                    let (xx, yy) = (x as i64 + dx, y as i64 + dy);
                    xx < 0
                        || yy < 0
                        || xx >= w as i64
                        || yy >= h as i64
                        || px(xx as usize, yy as usize).1 != l
                });
                if edge {
                    c = colour(nodes, l);
                }
            }
            img.put_pixel(x as u32, oy as u32, c);
        }
    }
    img
}

fn montage(tiles: &[RgbImage], cols: usize) -> RgbImage {
    let tw = tiles.iter().map(|t| t.width()).max().unwrap_or(1);
    let th = tiles.iter().map(|t| t.height()).max().unwrap_or(1);
    let rows = tiles.len().div_ceil(cols);
    let mut out =
        RgbImage::new(tw * cols as u32 + (cols as u32 - 1) * 4, th * rows as u32 + (rows as u32 - 1) * 4);
    for (n, t) in tiles.iter().enumerate() {
        let (c, r) = ((n % cols) as u32, (n / cols) as u32);
        image::imageops::overlay(&mut out, t, (c * (tw + 4)) as i64, (r * (th + 4)) as i64);
    }
    out
}

fn save(img: &RgbImage, path: &Path) -> Result<(), PhantomError> {
    let mut bytes = Vec::new();
    image::codecs::png::PngEncoder::new(&mut bytes)
        .write_image(img.as_raw(), img.width(), img.height(), image::ExtendedColorType::Rgb8)
        .map_err(|e| PhantomError::Png { path: path.to_path_buf(), reason: e.to_string() })?;
    write_atomic(path, &bytes)
}

/// Axial slices (rows: anterior at top, patient right on the image left — radiological view).
/// Picks `n` slices, preferring those through nodes.
pub fn axial_montage(ct: &Volume<i16>, labels: &Volume<u16>, nodes: &[NodeInfo], n: usize) -> RgbImage {
    let [ni, nj, nk] = ct.dims();
    let mut ks: Vec<usize> = (0..n).map(|t| ((t as f64 + 0.5) / n as f64 * nk as f64) as usize).collect();
    // Replace every other slice by the slice through a node centroid (largest nodes first).
    let mut by_size: Vec<&NodeInfo> = nodes.iter().collect();
    by_size.sort_by(|a, b| b.sad_mm.total_cmp(&a.sad_mm));
    for (t, nd) in by_size.iter().take(n / 2).enumerate() {
        let k = ct.geometry().world_to_index(nd.centroid_mm)[2].round().clamp(0.0, nk as f64 - 1.0) as usize;
        ks[2 * t + 1] = k;
    }
    ks.sort_unstable();
    ks.reverse(); // superior first
    let tiles: Vec<RgbImage> =
        ks.iter().map(|&k| cut(ni, nj, 1.0, nodes, &|x, y| (ct.get(x, y, k), labels.get(x, y, k)))).collect();
    montage(&tiles, 4)
}

/// Coronal slices (superior at top) through `n` depths, one per node-rich depth when possible.
pub fn coronal_montage(ct: &Volume<i16>, labels: &Volume<u16>, nodes: &[NodeInfo], n: usize) -> RgbImage {
    let [ni, nj, nk] = ct.dims();
    let sp = ct.geometry().spacing_mm;
    let sy = sp[2] / sp[0];
    let mut js: Vec<usize> =
        (0..n).map(|t| ((0.3 + 0.4 * t as f64 / n.max(2) as f64) * nj as f64) as usize).collect();
    let mut by_size: Vec<&NodeInfo> = nodes.iter().collect();
    by_size.sort_by(|a, b| b.sad_mm.total_cmp(&a.sad_mm));
    for (t, nd) in by_size.iter().take(n).enumerate() {
        js[t] = ct.geometry().world_to_index(nd.centroid_mm)[1].round().clamp(0.0, nj as f64 - 1.0) as usize;
    }
    js.sort_unstable();
    let tiles: Vec<RgbImage> = js
        .iter()
        .map(|&j| cut(ni, nk, sy, nodes, &|x, y| (ct.get(x, j, nk - 1 - y), labels.get(x, j, nk - 1 - y))))
        .collect();
    montage(&tiles, n.min(4))
}

/// Writes `preview_axial.png` and `preview_coronal.png` into `dir`.
pub fn write_previews(
    ct: &Volume<i16>,
    labels: &Volume<u16>,
    nodes: &[NodeInfo],
    dir: &Path,
) -> Result<(), PhantomError> {
    save(&axial_montage(ct, labels, nodes, 12), &dir.join("preview_axial.png"))?;
    save(&coronal_montage(ct, labels, nodes, 4), &dir.join("preview_coronal.png"))
}
