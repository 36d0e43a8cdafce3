//! Small raster toolkit for report images: windowing, lines, contours, blending, a scale bar and a
//! 5x7 bitmap font (digits and the orientation letters), so images need no font files.
use image::{Rgb, RgbImage};

/// Soft-tissue window (W400 / L40) used for node thumbnails.
pub const SOFT_TISSUE: Window = Window { width: 400.0, level: 40.0 };

/// A CT display window, HU.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    /// Window width, HU.
    pub width: f64,
    /// Window level (centre), HU.
    pub level: f64,
}

impl Window {
    /// Grey value 0..=255 of a HU value.
    #[inline]
    pub fn grey(&self, hu: f64) -> u8 {
        let lo = self.level - self.width / 2.0;
        let t = ((hu - lo) / self.width).clamp(0.0, 1.0);
        (t * 255.0).round() as u8
    }
}

/// Blends `rgb` over the pixel at (x, y) with opacity `alpha` (0..=1); ignores pixels outside.
pub fn blend(img: &mut RgbImage, x: i64, y: i64, rgb: [u8; 3], alpha: f64) {
    if x < 0 || y < 0 || x >= img.width() as i64 || y >= img.height() as i64 {
        return;
    }
    let p = img.get_pixel_mut(x as u32, y as u32);
    for c in 0..3 {
        p.0[c] = (p.0[c] as f64 * (1.0 - alpha) + rgb[c] as f64 * alpha).round() as u8;
    }
}

/// Sets a pixel if it is inside the image.
pub fn put(img: &mut RgbImage, x: i64, y: i64, rgb: [u8; 3]) {
    blend(img, x, y, rgb, 1.0);
}

/// Fills a disc of radius `r` px centred at (cx, cy).
pub fn disc(img: &mut RgbImage, cx: f64, cy: f64, r: f64, rgb: [u8; 3]) {
    let (x0, x1) = ((cx - r).floor() as i64, (cx + r).ceil() as i64);
    let (y0, y1) = ((cy - r).floor() as i64, (cy + r).ceil() as i64);
    for y in y0..=y1 {
        for x in x0..=x1 {
            let (dx, dy) = (x as f64 - cx, y as f64 - cy);
            if dx * dx + dy * dy <= r * r {
                put(img, x, y, rgb);
            }
        }
    }
}

/// Draws a line of the given width (px) between two pixel positions (continuous pixel coordinates,
/// pixel centres at integers).
pub fn line(img: &mut RgbImage, a: (f64, f64), b: (f64, f64), width: f64, rgb: [u8; 3]) {
    let len = ((b.0 - a.0).powi(2) + (b.1 - a.1).powi(2)).sqrt();
    // Half-pixel steps leave no gaps for discs of radius >= 0.5 px.
    let steps = (len * 2.0).ceil().max(1.0) as usize;
    for s in 0..=steps {
        let t = s as f64 / steps as f64;
        disc(img, a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1), width / 2.0, rgb);
    }
}

/// Draws the outline of `mask` (row-major, `w` x `h`) *outside* the masked region, `thickness` px
/// wide, so the structure itself stays visible.
pub fn outline(img: &mut RgbImage, mask: &[bool], w: usize, h: usize, thickness: usize, rgb: [u8; 3]) {
    let mut ring = vec![false; w * h];
    let mut grown = mask.to_vec();
    for _ in 0..thickness {
        let prev = grown.clone();
        for y in 0..h {
            for x in 0..w {
                if prev[y * w + x] {
                    continue;
                }
                let near = (x > 0 && prev[y * w + x - 1])
                    || (x + 1 < w && prev[y * w + x + 1])
                    || (y > 0 && prev[(y - 1) * w + x])
                    || (y + 1 < h && prev[(y + 1) * w + x]);
                if near {
                    grown[y * w + x] = true;
                    ring[y * w + x] = true;
                }
            }
        }
    }
    for y in 0..h {
        for x in 0..w {
            if ring[y * w + x] {
                put(img, x as i64, y as i64, rgb);
            }
        }
    }
}

/// Glyph rows of the 5x7 font ('#' = ink).
fn glyph(c: char) -> Option<[&'static str; 7]> {
    Some(match c {
        '0' => [" ### ", "#   #", "#  ##", "# # #", "##  #", "#   #", " ### "],
        '1' => ["  #  ", " ##  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "],
        '2' => [" ### ", "#   #", "    #", "   # ", "  #  ", " #   ", "#####"],
        '3' => ["#####", "   # ", "  #  ", "   # ", "    #", "#   #", " ### "],
        '4' => ["   # ", "  ## ", " # # ", "#  # ", "#####", "   # ", "   # "],
        '5' => ["#####", "#    ", "#### ", "    #", "    #", "#   #", " ### "],
        '6' => ["  ## ", " #   ", "#    ", "#### ", "#   #", "#   #", " ### "],
        '7' => ["#####", "    #", "   # ", "  #  ", " #   ", " #   ", " #   "],
        '8' => [" ### ", "#   #", "#   #", " ### ", "#   #", "#   #", " ### "],
        '9' => [" ### ", "#   #", "#   #", " ####", "    #", "   # ", " ##  "],
        'm' => ["     ", "     ", "## # ", "# # #", "# # #", "#   #", "#   #"],
        'R' => ["#### ", "#   #", "#   #", "#### ", "# #  ", "#  # ", "#   #"],
        'L' => ["#    ", "#    ", "#    ", "#    ", "#    ", "#    ", "#####"],
        'A' => [" ### ", "#   #", "#   #", "#####", "#   #", "#   #", "#   #"],
        'P' => ["#### ", "#   #", "#   #", "#### ", "#    ", "#    ", "#    "],
        'S' => [" ####", "#    ", "#    ", " ### ", "    #", "    #", "#### "],
        'I' => [" ### ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "],
        '#' => [" # # ", " # # ", "#####", " # # ", "#####", " # # ", " # # "],
        '.' => ["     ", "     ", "     ", "     ", "     ", " ##  ", " ##  "],
        ' ' => ["     ", "     ", "     ", "     ", "     ", "     ", "     "],
        _ => return None,
    })
}

/// Width in px of `text` drawn at `scale`.
pub fn text_width(text: &str, scale: u32) -> u32 {
    let n = text.chars().count() as u32;
    if n == 0 {
        0
    } else {
        (n * 6 - 1) * scale
    }
}

/// Height in px of text drawn at `scale`.
pub fn text_height(scale: u32) -> u32 {
    7 * scale
}

/// Draws `text` with its top-left corner at (x, y), with a one-pixel dark halo so it reads on any
/// background. Characters without a glyph are skipped (left blank).
pub fn text(img: &mut RgbImage, x: i64, y: i64, text: &str, scale: u32, rgb: [u8; 3]) {
    let s = scale as i64;
    for pass in 0..2 {
        for (n, c) in text.chars().enumerate() {
            let Some(rows) = glyph(c) else { continue };
            let gx = x + n as i64 * 6 * s;
            for (r, row) in rows.iter().enumerate() {
                for (col, ch) in row.chars().enumerate() {
                    if ch != '#' {
                        continue;
                    }
                    let (px, py) = (gx + col as i64 * s, y + r as i64 * s);
                    for dy in 0..s {
                        for dx in 0..s {
                            if pass == 0 {
                                for (ox, oy) in [(-1, 0), (1, 0), (0, -1), (0, 1)] {
                                    blend(img, px + dx + ox, py + dy + oy, [0, 0, 0], 0.7);
                                }
                            } else {
                                put(img, px + dx, py + dy, rgb);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Draws a horizontal scale bar of `length_mm` (image pixel size `px_mm`) with its label in the
/// bottom-right corner.
pub fn scale_bar(img: &mut RgbImage, px_mm: f64, length_mm: f64) {
    let (w, h) = (img.width() as f64, img.height() as f64);
    let len_px = length_mm / px_mm;
    let margin = 8.0;
    let y = h - margin - 2.0;
    let x1 = w - margin;
    let x0 = x1 - len_px;
    line(img, (x0, y + 1.0), (x1, y + 1.0), 4.0, [0, 0, 0]);
    line(img, (x0, y), (x1, y), 2.0, [255, 255, 255]);
    line(img, (x0, y - 4.0), (x0, y + 1.0), 2.0, [255, 255, 255]);
    line(img, (x1, y - 4.0), (x1, y + 1.0), 2.0, [255, 255, 255]);
    let label = format!("{} mm", length_mm.round() as i64);
    let tw = text_width(&label, 1) as f64;
    text(img, (x1 - tw).round() as i64, (y - 14.0).round() as i64, &label, 1, [255, 255, 255]);
}

/// A "nice" scale-bar length (1, 2, 5, 10, 20, 50, 100 mm) close to a quarter of the field of view.
pub fn nice_bar_mm(fov_mm: f64) -> f64 {
    let target = fov_mm / 4.0;
    let mut best = 1.0;
    for c in [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0] {
        if c <= target {
            best = c;
        }
    }
    best
}

/// Paints an RGB pixel buffer (row-major `w` x `h`) into an image.
pub fn from_rgb(w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| Rgb(f(x, y)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_maps_soft_tissue_range() {
        assert_eq!(SOFT_TISSUE.grey(-160.0), 0);
        assert_eq!(SOFT_TISSUE.grey(240.0), 255);
        assert_eq!(SOFT_TISSUE.grey(40.0), 128);
        assert_eq!(SOFT_TISSUE.grey(-1000.0), 0);
    }

    #[test]
    fn outline_surrounds_mask_without_covering_it() {
        let (w, h) = (9, 9);
        let mut mask = vec![false; w * h];
        for y in 3..6 {
            for x in 3..6 {
                mask[y * w + x] = true;
            }
        }
        let mut img = RgbImage::new(w as u32, h as u32);
        outline(&mut img, &mask, w, h, 1, [255, 0, 0]);
        for y in 0..h {
            for x in 0..w {
                let red = img.get_pixel(x as u32, y as u32).0[0] == 255;
                let inside = mask[y * w + x];
                let four_adjacent = !inside
                    && ((3..6).contains(&y) && (x == 2 || x == 6)
                        || (3..6).contains(&x) && (y == 2 || y == 6));
                assert_eq!(red, four_adjacent, "({x},{y})");
            }
        }
    }

    #[test]
    fn every_label_character_has_a_glyph() {
        for c in "0123456789 mm RLAPSI #.".chars() {
            assert!(glyph(c).is_some(), "{c}");
        }
        assert_eq!(text_width("10 mm", 1), 29);
    }

    #[test]
    fn nice_bar_lengths() {
        assert_eq!(nice_bar_mm(60.0), 10.0);
        assert_eq!(nice_bar_mm(41.0), 10.0);
        assert_eq!(nice_bar_mm(39.0), 5.0);
        assert_eq!(nice_bar_mm(300.0), 50.0);
    }
}
