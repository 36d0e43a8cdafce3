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
        let (s, c) = self.rot.sin_cos();
        let dx = x - self.c[0];
        let dy = y - self.c[1];
        let u = c * dx + s * dy;
        let v = -s * dx + c * dy;
        if let Some(yc) = self.y_cut {
            if v > yc {
                return false;
            }
        }
        if !inside(u, v, self.r, self.p) {
            return false;
        }
        match self.inner {
            Some(ri) => !inside(u, v, ri, self.p),
            None => true,
        }
    }
}

#[inline]
fn inside(u: f64, v: f64, r: [f64; 2], p: f64) -> bool {
    let a = (u / r[0]).abs();
    let b = (v / r[1]).abs();
    if p == 2.0 {
        a * a + b * b <= 1.0
    } else {
        a.powf(p) + b.powf(p) <= 1.0
    }
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
        for s in 0..self.pts.len().saturating_sub(1) {
            let (a, b) = (self.pts[s], self.pts[s + 1]);
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
            if d[0] * d[0] + d[1] * d[1] + d[2] * d[2] <= r * r {
                return true;
            }
        }
        false
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

    #[test]
    fn tube_contains() {
        let t = Tube { pts: vec![[0.0, 0.0, 0.0], [0.0, 0.0, 10.0]], radius: vec![1.0, 3.0] };
        assert!(t.contains([0.9, 0.0, 0.0]));
        assert!(!t.contains([1.1, 0.0, 0.0]));
        assert!(t.contains([2.9, 0.0, 10.0]));
        assert!(!t.contains([0.0, 0.0, 13.1]));
    }
}
