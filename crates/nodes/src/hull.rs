//! Planar convex hulls and the protocol's long/short axis of a hull.
//!
//! Points are `[x, y, z]` in LPS mm; hulls are taken in the `x`-`y` (axial) plane and `z` rides
//! along so that end points can be reported in 3D.

/// A point in LPS mm: the hull uses `x`, `y`; `z` is carried for reporting.
pub type P3 = [f64; 3];

#[inline]
fn cross(o: &P3, a: &P3, b: &P3) -> f64 {
    (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])
}

/// Convex hull in the `x`-`y` plane (Andrew's monotone chain), counter-clockwise, without collinear
/// points. Returns all points when there are fewer than three distinct ones.
pub fn convex_hull_xy(points: &[P3]) -> Vec<P3> {
    let mut pts: Vec<P3> = points.to_vec();
    pts.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
    pts.dedup_by(|a, b| a[0] == b[0] && a[1] == b[1]);
    if pts.len() < 3 {
        return pts;
    }
    let mut hull: Vec<P3> = Vec::with_capacity(2 * pts.len());
    for p in pts.iter() {
        while hull.len() >= 2 && cross(&hull[hull.len() - 2], &hull[hull.len() - 1], p) <= 0.0 {
            hull.pop();
        }
        hull.push(*p);
    }
    let lower_len = hull.len() + 1;
    for p in pts.iter().rev().skip(1) {
        while hull.len() >= lower_len && cross(&hull[hull.len() - 2], &hull[hull.len() - 1], p) <= 0.0 {
            hull.pop();
        }
        hull.push(*p);
    }
    hull.pop();
    hull
}

/// Long and short axis of one planar cross-section.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SliceAxes {
    /// Largest distance between two hull points, mm.
    pub long_axis_mm: f64,
    /// Hull width perpendicular to the long-axis direction, mm.
    pub short_axis_mm: f64,
    /// End points of the long axis (hull vertices).
    pub long_axis_endpoints_mm: [P3; 2],
    /// End points of the short axis: a segment of length `short_axis_mm` perpendicular to the long
    /// axis, from one supporting line of the hull to the other, placed midway (along the long axis)
    /// between the two hull vertices that touch those lines.
    pub short_axis_endpoints_mm: [P3; 2],
}

/// Long axis (hull diameter) and short axis (width perpendicular to it) of a point set in the
/// `x`-`y` plane. `None` for an empty set.
///
/// When several vertex pairs share the largest distance (symmetric shapes), the one whose
/// perpendicular width is largest is taken, so the result does not depend on the hull's start vertex.
pub fn slice_axes(points: &[P3]) -> Option<SliceAxes> {
    let hull = convex_hull_xy(points);
    if hull.is_empty() {
        return None;
    }
    let d2 = |a: &P3, b: &P3| (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2);
    // Hulls here have at most a few hundred vertices; all pairs is exact and cheap.
    let mut best = 0.0f64;
    for a in 0..hull.len() {
        for b in a + 1..hull.len() {
            best = best.max(d2(&hull[a], &hull[b]));
        }
    }
    let tol = best * 1e-12;
    let mut out: Option<SliceAxes> = None;
    for a in 0..hull.len() {
        for b in a + 1..hull.len() {
            if d2(&hull[a], &hull[b]) < best - tol {
                continue;
            }
            let cand = axes_for_pair(&hull, a, b);
            if out.as_ref().is_none_or(|o| cand.short_axis_mm > o.short_axis_mm + 1e-12) {
                out = Some(cand);
            }
        }
    }
    out.or_else(|| {
        // A single point: no extent.
        let p = hull[0];
        Some(SliceAxes {
            long_axis_mm: 0.0,
            short_axis_mm: 0.0,
            long_axis_endpoints_mm: [p, p],
            short_axis_endpoints_mm: [p, p],
        })
    })
}

fn axes_for_pair(hull: &[P3], a: usize, b: usize) -> SliceAxes {
    let (pa, pb) = (hull[a], hull[b]);
    let len = ((pb[0] - pa[0]).powi(2) + (pb[1] - pa[1]).powi(2)).sqrt();
    let u = if len > 0.0 { [(pb[0] - pa[0]) / len, (pb[1] - pa[1]) / len] } else { [1.0, 0.0] };
    let n = [-u[1], u[0]];
    let (mut lo, mut hi) = ((f64::INFINITY, 0usize), (f64::NEG_INFINITY, 0usize));
    for (idx, p) in hull.iter().enumerate() {
        let t = p[0] * n[0] + p[1] * n[1];
        if t < lo.0 {
            lo = (t, idx);
        }
        if t > hi.0 {
            hi = (t, idx);
        }
    }
    let (plo, phi) = (hull[lo.1], hull[hi.1]);
    let along = 0.5 * ((plo[0] * u[0] + plo[1] * u[1]) + (phi[0] * u[0] + phi[1] * u[1]));
    let z = 0.5 * (plo[2] + phi[2]);
    let at = |t: f64| [along * u[0] + t * n[0], along * u[1] + t * n[1], z];
    SliceAxes {
        long_axis_mm: len,
        short_axis_mm: hi.0 - lo.0,
        long_axis_endpoints_mm: [pa, pb],
        short_axis_endpoints_mm: [at(lo.0), at(hi.0)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rectangle_axes() {
        // A 4 x 3 rectangle: diameter is the diagonal (5); width perpendicular to it is 2*area/diag.
        let pts = [[0.0, 0.0, 1.0], [4.0, 0.0, 1.0], [4.0, 3.0, 1.0], [0.0, 3.0, 1.0], [2.0, 1.0, 1.0]];
        let ax = slice_axes(&pts).unwrap();
        assert!((ax.long_axis_mm - 5.0).abs() < 1e-12);
        // Height of the triangle over the diagonal = 4*3/5 = 2.4; the rectangle spans it twice.
        assert!((ax.short_axis_mm - 4.8).abs() < 1e-12);
        let [p, q] = ax.short_axis_endpoints_mm;
        let len = ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2)).sqrt();
        assert!((len - 4.8).abs() < 1e-12);
        assert_eq!(p[2], 1.0);
        assert_eq!(convex_hull_xy(&pts).len(), 4);
    }

    #[test]
    fn segment_and_point() {
        let ax = slice_axes(&[[0.0, 0.0, 0.0], [3.0, 4.0, 0.0], [1.5, 2.0, 0.0]]).unwrap();
        assert!((ax.long_axis_mm - 5.0).abs() < 1e-12);
        assert!(ax.short_axis_mm.abs() < 1e-12);
        let ax = slice_axes(&[[1.0, 1.0, 0.0]]).unwrap();
        assert_eq!(ax.long_axis_mm, 0.0);
        assert!(slice_axes(&[]).is_none());
    }
}
