//! Implicit 2D cross-sections (painted slice by slice) and 3D capsule chains (small vessels).

/// A 2D (super)ellipse cross-section in an axial slice, optionally hollow and/or cut.
///
/// Inside when `(|x'|/rx)^p + (|y'|/ry)^p <= 1` in the shape's rotated frame, and not inside the
/// inner ellipse (if any), and `y' <= y_cut` (if any: keeps the anterior part of a ring, e.g. a
/// mandible or the thyroid cartilage).
#[derive(Clone, Copy, Debug)]
pub struct Prim2 {
    /// Centre, LPS mm (x, y).
    pub c: [f64; 2],
    /// Semi-axes, mm.
    pub r: [f64; 2],
    /// Rotation, radians (counter-clockwise from +x towards +y).
    pub rot: f64,
    /// Superellipse exponent (2 = ellipse).
    pub p: f64,
    /// Inner semi-axes (a hole), mm.
    pub inner: Option<[f64; 2]>,
    /// Keep only points with rotated-frame y <= this, mm.
    pub y_cut: Option<f64>,
}

impl Prim2 {
    /// A plain ellipse.
    pub fn ellipse(c: [f64; 2], r: [f64; 2], rot: f64) -> Self {
        Prim2 { c, r: [r[0].max(0.05), r[1].max(0.05)], rot, p: 2.0, inner: None, y_cut: None }
    }

    /// A circle.
    pub fn circle(c: [f64; 2], r: f64) -> Self {
        Self::ellipse(c, [r, r], 0.0)
    }

    /// An elliptical shell of the given wall thickness.
    pub fn shell(c: [f64; 2], r: [f64; 2], rot: f64, wall: f64) -> Self {
        let mut s = Self::ellipse(c, r, rot);
        s.inner = Some([(r[0] - wall).max(0.01), (r[1] - wall).max(0.01)]);
        s
    }

    /// Builder: keep only the part with rotated-frame y <= `y_cut`.
    pub fn cut(mut self, y_cut: f64) -> Self {
        self.y_cut = Some(y_cut);
        self
    }

    /// Builder: superellipse exponent.
    pub fn power(mut self, p: f64) -> Self {
        self.p = p;
        self
    }

    /// Conservative bounding box `[xmin, xmax, ymin, ymax]`, mm.
    pub fn bbox(&self) -> [f64; 4] {
        let m = self.r[0].max(self.r[1]) * if self.p > 2.0 { 1.42 } else { 1.0 };
        [self.c[0] - m, self.c[0] + m, self.c[1] - m, self.c[1] + m]
    }

    /// Inside test at (x, y) mm.
    #[inline]
    pub fn contains(&self, x: f64, y: f64) -> bool {
        self.prepare().contains(x, y)
    }

    /// The primitive with its rotation's sine and cosine computed once, for testing many points.
    #[inline]
    pub fn prepare(&self) -> PreparedPrim2 {
        let (sin, cos) = self.rot.sin_cos();
        // As `bbox` (every inside point lies within max |r| of the centre, or sqrt 2 times that
        // for p > 2), on the magnitudes.
        let m = self.r[0].abs().max(self.r[1].abs()) * if self.p > 2.0 { 1.42 } else { 1.0 };
        PreparedPrim2 { prim: *self, sin, cos, reach_mm: m * (1.0 + 1e-9) + 1e-9 }
    }
}

/// A [`Prim2`] ready for many inside tests: the rotation is evaluated once (the same `sin_cos` of
/// the same angle, so every test gives exactly the answer of [`Prim2::contains`]).
#[derive(Clone, Copy, Debug)]
pub struct PreparedPrim2 {
    /// The primitive.
    pub prim: Prim2,
    sin: f64,
    cos: f64,
    /// Half-size of a square around the centre outside which no point is inside: the bounding
    /// box, widened far beyond rounding error.
    reach_mm: f64,
}

/// Safety margin on the shape and cut functions in the span search: far above their rounding
/// error (~1e-13), far below anything that matters for the step length.
const SPAN_MARGIN: f64 = 1e-9;

impl PreparedPrim2 {
    /// Rotated-frame coordinates of (x, y).
    #[inline]
    fn frame(&self, x: f64, y: f64) -> (f64, f64) {
        let (s, c) = (self.sin, self.cos);
        let dx = x - self.prim.c[0];
        let dy = y - self.prim.c[1];
        let u = c * dx + s * dy;
        let v = -s * dx + c * dy;
        (u, v)
    }

    /// Inside test at (x, y) mm; identical to [`Prim2::contains`].
    #[inline]
    pub fn contains(&self, x: f64, y: f64) -> bool {
        if (x - self.prim.c[0]).abs() > self.reach_mm || (y - self.prim.c[1]).abs() > self.reach_mm {
            // Outside the bounding box: the shape function there exceeds 1 by far.
            return false;
        }
        let (u, v) = self.frame(x, y);
        if let Some(yc) = self.prim.y_cut {
            if v > yc {
                return false;
            }
        }
        if !inside(u, v, self.prim.r, self.prim.p) {
            return false;
        }
        match self.prim.inner {
            Some(ri) => !inside(u, v, ri, self.prim.p),
            None => true,
        }
    }

    /// Calls `emit(a, b)` for each maximal run `a..=b` of pixels `i0..=i1` of a row at `y` that
    /// are inside, with `x_of(i)` the pixel centres (spaced `step_mm` apart, increasing).
    ///
    /// The runs are exactly the pixels for which [`Self::contains`] holds: the shape and cut
    /// functions are evaluated as there, and a pixel's answer is carried over to the next ones
    /// only as far as it is proven unchanged. Along a row the shape function `G` (outline or hole)
    /// is convex: outside (`G > 1`) its tangent bounds it from below; inside, a bound on `G''`
    /// (exponent >= 2) or on `G'` bounds it from above. The cut is linear.
    pub fn row_runs(
        &self,
        y: f64,
        i0: usize,
        i1: usize,
        x_of: impl Fn(usize) -> f64,
        step_mm: f64,
        mut emit: impl FnMut(usize, usize),
    ) {
        if i1 < i0 {
            return;
        }
        let pr = &self.prim;
        if pr.p < 1.0 || step_mm <= 0.0 {
            // Not convex: test every pixel.
            return self.row_runs_naive(y, i0, i1, x_of, emit);
        }
        let (s, c) = (self.sin, self.cos);
        // The rotated coordinates are linear along the row (du/dx = c, dv/dx = -s): their largest
        // magnitudes over the segment are at its ends.
        let (ua, va) = self.frame(x_of(i0), y);
        let (ub, vb) = self.frame(x_of(i1), y);
        let widen = |m: f64| m * (1.0 + 1e-9) + 1e-9;
        let (umax, vmax) = (widen(ua.abs().max(ub.abs())), widen(va.abs().max(vb.abs())));
        let outline = RowShape::new(pr.r, pr.p, umax, vmax, s, c);
        let hole = pr.inner.map(|ri| RowShape::new(ri, pr.p, umax, vmax, s, c));
        let mut run_start: Option<usize> = None;
        let mut i = i0;
        while i <= i1 {
            let (u, v) = self.frame(x_of(i), y);
            // `v <= yc` as in `contains`; v moves by -s per mm.
            let cut = pr.y_cut.map(|yc| (v.is_nan() || yc.is_nan() || v <= yc, keep_linear(v, yc, -s)));
            let (ins, dist) = match cut {
                Some((false, d)) => (false, d),
                _ => {
                    let d_cut = cut.map_or(f64::INFINITY, |(_, d)| d);
                    let (g, d_out) = outline.eval(u, v);
                    if g.is_nan() || g > 1.0 {
                        (false, d_out)
                    } else {
                        match &hole {
                            Some(h) => {
                                let (gi, d_in) = h.eval(u, v);
                                if gi <= 1.0 {
                                    (false, d_in)
                                } else {
                                    (true, d_cut.min(d_out).min(d_in))
                                }
                            }
                            None => (true, d_cut.min(d_out)),
                        }
                    }
                }
            };
            // Pixels i+1..=i+k lie less than `dist` from pixel i (with room for the rounding of
            // the pixel positions).
            let k = ((dist - SPAN_MARGIN) / step_mm).floor();
            let last = if k >= 1.0 { i1.min(i.saturating_add(k.min(1e9) as usize)) } else { i };
            match (ins, run_start) {
                (true, None) => run_start = Some(i),
                (false, Some(a)) => {
                    emit(a, i - 1);
                    run_start = None;
                }
                _ => {}
            }
            i = last + 1;
        }
        if let Some(a) = run_start {
            emit(a, i1);
        }
    }

    /// [`Self::row_runs`] by testing every pixel (reference and fallback).
    pub fn row_runs_naive(
        &self,
        y: f64,
        i0: usize,
        i1: usize,
        x_of: impl Fn(usize) -> f64,
        mut emit: impl FnMut(usize, usize),
    ) {
        let mut run_start: Option<usize> = None;
        for i in i0..=i1 {
            match (self.contains(x_of(i), y), run_start) {
                (true, None) => run_start = Some(i),
                (false, Some(a)) => {
                    emit(a, i - 1);
                    run_start = None;
                }
                _ => {}
            }
        }
        if let Some(a) = run_start {
            emit(a, i1);
        }
    }
}

/// Distance (mm, to the right along a row) over which a linear function with value `v` and slope
/// `slope` per mm keeps its side of `level` (`v <= level` or `v > level`).
fn keep_linear(v: f64, level: f64, slope: f64) -> f64 {
    let (gap, towards) = if v <= level { (level - v, slope > 0.0) } else { (v - level, slope < 0.0) };
    let gap = gap - SPAN_MARGIN;
    if gap.is_nan() || gap <= 0.0 {
        0.0
    } else if !towards {
        f64::INFINITY
    } else {
        gap / slope.abs() * (1.0 - 1e-9)
    }
}

/// The superellipse function of one outline along a row, with the constants of its bounds.
struct RowShape {
    r: [f64; 2],
    p: f64,
    /// Rotation (du/dx = c, dv/dx = -s).
    s: f64,
    c: f64,
    /// Bound on |G'| over the row segment.
    lip: f64,
    /// Bound on G'' over the row segment (exponent >= 2 only).
    curv: Option<f64>,
}

impl RowShape {
    /// `umax`, `vmax`: bounds on |u|, |v| over the row segment.
    fn new(r: [f64; 2], p: f64, umax: f64, vmax: f64, s: f64, c: f64) -> RowShape {
        let widen = |m: f64| m * (1.0 + 1e-9) + 1e-9;
        let (r0, r1) = (r[0].abs(), r[1].abs());
        let (a, b) = (umax / r0, vmax / r1);
        // G' = p a^(p-1) sgn(u) c / r0 - p b^(p-1) sgn(v) s / r1, G'' = p (p-1) (a^(p-2) c^2 / r0^2
        // + b^(p-2) s^2 / r1^2), with a = |u| / r0 and b = |v| / r1.
        let lip = widen(p * (a.powf(p - 1.0) * c.abs() / r0 + b.powf(p - 1.0) * s.abs() / r1));
        let curv = (p >= 2.0).then(|| {
            widen(p * (p - 1.0) * (a.powf(p - 2.0) * (c / r0).powi(2) + b.powf(p - 2.0) * (s / r1).powi(2)))
        });
        RowShape { r, p, s, c, lip, curv }
    }

    /// The shape function at rotated coordinates (u, v), computed exactly as in `level`, and the
    /// distance to the right over which it provably keeps its side of 1.
    #[inline]
    fn eval(&self, u: f64, v: f64) -> (f64, f64) {
        let (r, p) = (self.r, self.p);
        let a = (u / r[0]).abs();
        let b = (v / r[1]).abs();
        let (ap, bp) = if p == 2.0 { (a * a, b * b) } else { (a.powf(p), b.powf(p)) };
        let g = ap + bp;
        // a^(p-1) as a^p / a (the subgradient 0 at a = 0 is valid for p >= 1).
        let pow1 = |x: f64, xp: f64| if x > 0.0 { xp / x } else { 0.0 };
        let dg = p
            * (pow1(a, ap) * u.signum() * self.c / r[0].abs()
                - pow1(b, bp) * v.signum() * self.s / r[1].abs());
        // Allowance for the rounding of g and of its derivative.
        let ddg = dg.abs() * 1e-9 + 1e-12;
        let d = if g.is_nan() || g > 1.0 {
            let gap = g - 1.0 - 2.0 * SPAN_MARGIN;
            if gap.is_nan() || gap <= 0.0 {
                0.0
            } else {
                // Convexity: G stays above its tangent.
                let slope = dg - ddg;
                let d_tan = if slope >= 0.0 { f64::INFINITY } else { gap / -slope * (1.0 - 1e-9) };
                d_tan.max(gap / self.lip)
            }
        } else {
            let gap = 1.0 - g - 2.0 * SPAN_MARGIN;
            if gap.is_nan() || gap <= 0.0 {
                0.0
            } else {
                // G(x + d) <= g + g' d + curv d^2 / 2: the positive root of that bound minus 1.
                let d_quad = self.curv.map_or(0.0, |k| {
                    let b = dg + ddg;
                    let den = b + (b * b + 2.0 * k * gap).sqrt();
                    if den > 0.0 {
                        2.0 * gap / den * (1.0 - 1e-9)
                    } else {
                        f64::INFINITY
                    }
                });
                d_quad.max(gap / self.lip)
            }
        };
        (g, d)
    }
}

/// The superellipse function `(|u|/rx)^p + (|v|/ry)^p` (1 on the outline).
#[inline]
fn level(u: f64, v: f64, r: [f64; 2], p: f64) -> f64 {
    let a = (u / r[0]).abs();
    let b = (v / r[1]).abs();
    if p == 2.0 {
        a * a + b * b
    } else {
        a.powf(p) + b.powf(p)
    }
}

#[inline]
fn inside(u: f64, v: f64, r: [f64; 2], p: f64) -> bool {
    level(u, v, r, p) <= 1.0
}

/// A chain of capsules (a tube along a polyline with per-vertex radius), LPS mm.
#[derive(Clone, Debug)]
pub struct Tube {
    /// Vertices, LPS mm.
    pub pts: Vec<[f64; 3]>,
    /// Radius at each vertex, mm.
    pub radius: Vec<f64>,
}

impl Tube {
    /// Squared-distance test: is `p` inside the tube? Radii are interpolated along each segment.
    pub fn contains(&self, p: [f64; 3]) -> bool {
        (0..self.pts.len().saturating_sub(1)).any(|s| self.segment_contains(s, p))
    }

    /// Is `p` inside the capsule of segment `s` (vertices `s` and `s + 1`)?
    #[inline]
    pub fn segment_contains(&self, s: usize, p: [f64; 3]) -> bool {
        let (a, b) = (self.pts[s], self.pts[s + 1]);
        // Farther than the larger radius from the segment's box along one axis: outside (the
        // margin is far above rounding error).
        let rmax = self.radius[s].abs().max(self.radius[s + 1].abs()) + 1e-6;
        for k in 0..3 {
            if p[k] < a[k].min(b[k]) - rmax || p[k] > a[k].max(b[k]) + rmax {
                return false;
            }
        }
        let ab = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
        let ap = [p[0] - a[0], p[1] - a[1], p[2] - a[2]];
        let l2 = ab[0] * ab[0] + ab[1] * ab[1] + ab[2] * ab[2];
        let t = if l2 > 0.0 {
            ((ap[0] * ab[0] + ap[1] * ab[1] + ap[2] * ab[2]) / l2).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let d = [ap[0] - t * ab[0], ap[1] - t * ab[1], ap[2] - t * ab[2]];
        let r = self.radius[s] + t * (self.radius[s + 1] - self.radius[s]);
        d[0] * d[0] + d[1] * d[1] + d[2] * d[2] <= r * r
    }

    /// Bounding box `[min, max]`, LPS mm.
    pub fn bbox(&self) -> [[f64; 3]; 2] {
        let mut lo = [f64::INFINITY; 3];
        let mut hi = [f64::NEG_INFINITY; 3];
        for (p, r) in self.pts.iter().zip(&self.radius) {
            for a in 0..3 {
                lo[a] = lo[a].min(p[a] - r);
                hi[a] = hi[a].max(p[a] + r);
            }
        }
        [lo, hi]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ellipse_shell_and_cut() {
        let e = Prim2::ellipse([1.0, 2.0], [4.0, 2.0], 0.0);
        assert!(e.contains(4.9, 2.0));
        assert!(!e.contains(5.1, 2.0));
        assert!(!e.contains(1.0, 4.1));
        let r = Prim2::ellipse([0.0, 0.0], [4.0, 2.0], std::f64::consts::FRAC_PI_2);
        assert!(r.contains(0.0, 3.9));
        assert!(!r.contains(3.9, 0.0));
        let s = Prim2::shell([0.0, 0.0], [10.0, 10.0], 0.0, 2.0);
        assert!(!s.contains(0.0, 0.0));
        assert!(s.contains(9.0, 0.0));
        let c = s.cut(0.0);
        assert!(c.contains(0.0, -9.0));
        assert!(!c.contains(0.0, 9.0));
    }

    /// The row runs equal a pixel-by-pixel test for random (super)ellipses, shells and cuts,
    /// including rows through the extreme points and pixels exactly on outlines.
    #[test]
    fn row_runs_match_pixel_tests() {
        let mut h = 12345u64;
        let mut rnd = || {
            h = crate::rng::mix64(h);
            (h >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut rows = 0;
        let mut inside = 0;
        for n in 0..3000 {
            let p = [1.0, 1.3, 1.6, 2.0, 2.0, 2.4, 2.4, 3.0][n % 8];
            let r = [0.05 + 60.0 * rnd().powi(2), 0.05 + 60.0 * rnd().powi(2)];
            let rot = if n % 5 == 0 {
                [0.0, std::f64::consts::FRAC_PI_2, std::f64::consts::PI][n % 3]
            } else {
                rnd() * 7.0 - 0.5
            };
            let c = [rnd() * 40.0 - 20.0, rnd() * 40.0 - 20.0];
            let mut prim = Prim2::ellipse(c, r, rot).power(p);
            if n % 3 == 1 {
                prim = Prim2::shell(c, r, rot, 0.5 + rnd() * r[0].min(r[1])).power(p);
            }
            if n % 4 == 2 {
                prim = prim.cut((rnd() - 0.5) * 2.0 * r[1]);
            }
            let q = prim.prepare();
            // Pixel grids of random spacing; for the unrotated ones, pixels on the outline.
            let step = if n % 7 == 0 { 0.25 } else { 0.2 + rnd() };
            let x0 = if n % 7 == 0 { c[0] - 64.0 * step } else { c[0] - 80.0 + rnd() };
            let x_of = |i: usize| x0 + i as f64 * step;
            let bb = prim.bbox();
            let (i0, i1) = (
                ((bb[0] - x0) / step).ceil().max(0.0) as usize,
                ((bb[1] - x0) / step).floor().max(0.0) as usize,
            );
            let mut ys: Vec<f64> = (0..24).map(|_| bb[2] + rnd() * (bb[3] - bb[2])).collect();
            ys.extend([c[1] + r[1], c[1] - r[1], c[1], c[1] + r[1] * (1.0 - 1e-12), c[1] + r[1] * 0.5]);
            for y in ys {
                let mut fast = Vec::new();
                let mut naive = Vec::new();
                q.row_runs(y, i0, i1, x_of, step, |a, b| fast.push((a, b)));
                q.row_runs_naive(y, i0, i1, x_of, |a, b| naive.push((a, b)));
                assert_eq!(fast, naive, "prim {prim:?} y {y} step {step} x0 {x0}");
                rows += 1;
                inside += naive.iter().map(|(a, b)| b - a + 1).sum::<usize>();
            }
        }
        assert!(rows > 50_000 && inside > 1_000_000, "{rows} rows, {inside} inside");
    }

    #[test]
    fn tube_contains() {
        let t = Tube { pts: vec![[0.0, 0.0, 0.0], [0.0, 0.0, 10.0]], radius: vec![1.0, 3.0] };
        assert!(t.contains([0.9, 0.0, 0.0]));
        assert!(!t.contains([1.1, 0.0, 0.0]));
        assert!(t.contains([2.9, 0.0, 10.0]));
        assert!(!t.contains([0.0, 0.0, 13.1]));
    }
}
