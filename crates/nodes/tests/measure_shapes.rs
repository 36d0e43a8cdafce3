//! Axial axes and measurements of analytic shapes on anisotropic grids in several storage orders.
//!
//! The expected axes are computed analytically "the same way" as the protocol: the cross-section at
//! the centre slice is an ellipse E, and the union of the pixel squares of its pixels approximates
//! E ⊕ S, the Minkowski sum with one pixel. The width of E ⊕ S along a unit vector u is
//! w_E(u) + w_S(u), with w_E(u) = 2 sqrt(a² (u·e1)² + b² (u·e2)²) and w_S(u) = Σ s_a |u·d_a| over
//! the two in-plane index axes; the long axis is max_u of that width and the short axis the width
//! perpendicular to the maximising u. Pixel centres lie inside E, so the long axis never exceeds
//! the analytic value; at each end of the long axis the outermost pixel centre lies less than half a
//! pixel (half its diagonal) inside E, so it falls short by less than one pixel diagonal. The short
//! axis, perpendicular to a direction that digitisation can turn, gets the same two-sided bound.
use ndarray::Array3;
use nodal_core::{Geometry, Volume};
use nodal_nodes::measure::{axial_axes, measure_nodes, MeasureOptions};

#[derive(Clone, Copy)]
struct Ellipsoid {
    centre: [f64; 3],
    /// Semi-axes: a along e1 (in the axial plane at angle theta), b along e2, c along z.
    semi_mm: [f64; 3],
    theta: f64,
}

impl Ellipsoid {
    /// Inside test; the margin keeps lattice points that lie exactly on the surface inside whatever
    /// the storage order's rounding.
    fn contains(&self, p: [f64; 3]) -> bool {
        let d = [p[0] - self.centre[0], p[1] - self.centre[1], p[2] - self.centre[2]];
        let (s, c) = self.theta.sin_cos();
        let u = d[0] * c + d[1] * s;
        let v = -d[0] * s + d[1] * c;
        (u / self.semi_mm[0]).powi(2) + (v / self.semi_mm[1]).powi(2) + (d[2] / self.semi_mm[2]).powi(2)
            <= 1.0 + 1e-9
    }

    /// (long, short) of the central cross-section dilated by the pixel square of `g`.
    fn analytic_axes(&self, g: &Geometry, inplane: [usize; 2]) -> (f64, f64) {
        let (s, c) = self.theta.sin_cos();
        let width = |ux: f64, uy: f64| {
            let p1 = ux * c + uy * s;
            let p2 = -ux * s + uy * c;
            let we = 2.0 * ((self.semi_mm[0] * p1).powi(2) + (self.semi_mm[1] * p2).powi(2)).sqrt();
            let ws: f64 = inplane
                .iter()
                .map(|&a| g.spacing_mm[a] * (ux * g.direction[a][0] + uy * g.direction[a][1]).abs())
                .sum();
            we + ws
        };
        let n = 200_000;
        let (mut best, mut best_phi) = (0.0, 0.0);
        for t in 0..n {
            let phi = std::f64::consts::PI * t as f64 / n as f64;
            let w = width(phi.cos(), phi.sin());
            if w > best {
                best = w;
                best_phi = phi;
            }
        }
        let perp = best_phi + std::f64::consts::FRAC_PI_2;
        (best, width(perp.cos(), perp.sin()))
    }
}

/// A label map on grid `g` with `dims`, 1 inside the ellipsoid.
fn render(g: Geometry, dims: [usize; 3], e: &Ellipsoid) -> Volume<u8> {
    let a = Array3::from_shape_fn([dims[2], dims[1], dims[0]], |(k, j, i)| {
        u8::from(e.contains(g.index_to_world([i as f64, j as f64, k as f64])))
    });
    Volume::new(a, g).unwrap()
}

/// Grids (geometry, dims, in-plane index axes) with the centre voxel at `centre`, in several
/// storage orders: LPS, RAS, I-S flipped, sagittal-like permuted, in-plane rotated.
fn grids(
    spacing: [f64; 3],
    centre: [f64; 3],
    half: [usize; 3],
) -> Vec<(&'static str, Geometry, [usize; 3], [usize; 2])> {
    let (s, c) = 0.4f64.sin_cos();
    // (name, direction, world axis of each index axis)
    type Storage = (&'static str, [[f64; 3]; 3], [usize; 3]);
    let dirs: Vec<Storage> = vec![
        ("LPS", [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], [0, 1, 2]),
        ("RAS", [[-1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]], [0, 1, 2]),
        ("LPI", [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0]], [0, 1, 2]),
        // Index axes (i, j, k) run along (S, L, A): the axial axis is i.
        ("SLA", [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]], [2, 0, 1]),
        ("rotated", [[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]], [0, 1, 2]),
    ];
    dirs.into_iter()
        .map(|(name, direction, world_axis)| {
            // spacing[world axis] keeps the physical spacing per patient axis the same everywhere.
            let sp: [f64; 3] = std::array::from_fn(|a| spacing[world_axis[a]]);
            let h: [usize; 3] = std::array::from_fn(|a| half[world_axis[a]]);
            let dims = h.map(|x| 2 * x + 1);
            let mut g = Geometry { spacing_mm: sp, origin_mm: [0.0; 3], direction };
            let off = g.index_to_world(h.map(|x| x as f64));
            g.origin_mm = [centre[0] - off[0], centre[1] - off[1], centre[2] - off[2]];
            let inplane: Vec<usize> = (0..3).filter(|&a| world_axis[a] != 2).collect();
            (name, g, dims, [inplane[0], inplane[1]])
        })
        .collect()
}

#[test]
fn ellipsoids_balls_match_analytic_in_every_storage() {
    let spacing = [0.6, 0.8, 1.5];
    let centre = [12.0, -30.0, 85.0];
    let shapes = [
        Ellipsoid { centre, semi_mm: [5.0, 5.0, 5.0], theta: 0.0 },
        Ellipsoid { centre, semi_mm: [9.0, 4.5, 6.0], theta: 0.0 },
        Ellipsoid { centre, semi_mm: [9.0, 4.5, 6.0], theta: 0.5 },
        Ellipsoid { centre, semi_mm: [12.0, 6.0, 8.0], theta: 1.2 },
    ];
    for e in &shapes {
        let half = [
            (e.semi_mm[0] / 0.6) as usize + 3,
            (e.semi_mm[0] / 0.8) as usize + 3,
            (e.semi_mm[2] / 1.5) as usize + 3,
        ];
        let mut seen = Vec::new();
        for (name, g, dims, inplane) in grids(spacing, centre, half) {
            let v = render(g, dims, e);
            let ax = axial_axes(&v)[1].unwrap();
            let (long, short) = e.analytic_axes(&g, inplane);
            let tol = spacing[0].hypot(spacing[1]);
            assert!(
                ax.long_axis_mm <= long + 1e-6 && ax.long_axis_mm >= long - tol,
                "{name} {:?}: LAD {} vs {long}",
                e.semi_mm,
                ax.long_axis_mm
            );
            assert!(
                (ax.short_axis_mm - short).abs() <= tol,
                "{name} {:?}: SAD {} vs {short}",
                e.semi_mm,
                ax.short_axis_mm
            );
            // The longest cross-sections are around the centre: digitisation can let the slice next
            // to the central one win, no further.
            for p in ax.long_axis_endpoints_mm.iter().chain(&ax.short_axis_endpoints_mm) {
                assert!((p[2] - centre[2]).abs() < 1.5 + 1e-9, "{name}: end point z {}", p[2]);
            }
            seen.push((name, ax.long_axis_mm, ax.short_axis_mm));
        }
        // Storages with the same pixel grid in patient space measure identically.
        for s in &seen[1..3] {
            assert!((s.1 - seen[0].1).abs() < 1e-9 && (s.2 - seen[0].2).abs() < 1e-9, "{seen:?}");
        }
    }
}

#[test]
fn cylinder_along_si_and_golden_ball() {
    // A cylinder of radius 4 mm along z: every slice is the same disc; at 0.5 mm pixels the hull
    // diagonal adds 0.5*sqrt(2).
    let g = Geometry::axis_aligned([0.5, 0.5, 2.0], [0.0; 3]);
    let v =
        render(g, [25, 25, 9], &Ellipsoid { centre: [6.0, 6.0, 8.0], semi_mm: [4.0, 4.0, 1e9], theta: 0.0 });
    let ax = axial_axes(&v)[1].unwrap();
    let want = 8.0 + 0.5 * 2f64.sqrt();
    assert!((ax.long_axis_mm - want).abs() < 0.25, "{ax:?}");
    assert!((ax.short_axis_mm - want).abs() < 0.25, "{ax:?}");
    assert_eq!(ax.long_axis_slice, 0, "ties go to the lowest slice");

    // The protocol's example, in full: measure_nodes agrees with axial_axes.
    let g = Geometry::axis_aligned([0.5, 0.5, 1.0], [-7.0, 3.0, 40.0]);
    let c = g.index_to_world([15.0, 15.0, 8.0]);
    let v = render(g, [31, 31, 17], &Ellipsoid { centre: c, semi_mm: [5.0; 3], theta: 0.0 });
    let m = measure_nodes(&v, None, &MeasureOptions::default()).unwrap();
    assert_eq!(m.len(), 1);
    assert!((m[0].axes.short_axis_mm - 10.70).abs() < 0.005);
    assert!((m[0].axes.long_axis_mm - 10.70).abs() < 0.005);
    assert_eq!(m[0].axes.long_axis_slice, 8);
}

#[test]
fn tilted_grid_is_measured_on_axial_reformation() {
    // A ball of radius 6 mm on a grid tilted 30 degrees about x: no index axis runs along S-I.
    let (s, c) = (30f64.to_radians()).sin_cos();
    let mut g = Geometry {
        spacing_mm: [0.7, 0.7, 0.7],
        origin_mm: [0.0; 3],
        direction: [[1.0, 0.0, 0.0], [0.0, c, s], [0.0, -s, c]],
    };
    let off = g.index_to_world([12.0, 12.0, 12.0]);
    g.origin_mm = [-off[0], -off[1], -off[2]];
    let v = render(g, [25, 25, 25], &Ellipsoid { centre: [0.0; 3], semi_mm: [6.0; 3], theta: 0.0 });
    let ax = axial_axes(&v)[1].unwrap();
    // Reformation at 0.7 mm: analytic 12 + 0.7*sqrt(2), with one more pixel of slack for the double
    // nearest-neighbour digitisation.
    let want = 12.0 + 0.7 * 2f64.sqrt();
    assert!((ax.long_axis_mm - want).abs() < 0.7, "{ax:?}");
    assert!((ax.short_axis_mm - want).abs() < 0.7, "{ax:?}");
    let m = measure_nodes(&v, None, &MeasureOptions::default()).unwrap();
    assert!(m[0].axial_reformatted);
    assert_eq!(m[0].axes, ax);
    // The end points are in patient space around the ball's centre.
    for p in ax.long_axis_endpoints_mm {
        let r = (p[0] * p[0] + p[1] * p[1]).sqrt();
        assert!((r - want / 2.0).abs() < 0.7, "{p:?}");
    }
}
