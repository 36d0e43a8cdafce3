//! Mass effect: a large node pushes the neck apart instead of having to fit into the fat between
//! the structures. Bulky metastases (short axis up to ~58 mm) displace the jugular vein, the
//! carotid and the sternocleidomastoid and bulge the skin; without this, a generator can only
//! shrink them until they fit (and tops out near 25 mm).
//!
//! The push is a radial warp around the node centre `c`. For an output point at distance `rho`
//! from `c` along a ray whose node surface lies at `R` (from the node's own level function), the
//! anatomy shown there comes from the distance
//!
//! ```text
//! s(rho) = rho - R * exp(-(rho - R) / falloff)      (rho >= R)
//! ```
//!
//! so the surface (rho = R) shows the tissue at the centre (fat, by choice of the centre) and the
//! displacement decays to nothing a few fall-off lengths out. `ds/drho = 1 + R/falloff *
//! exp(...) > 0`: the map never folds, and everything that was within `R` of the centre is moved
//! out, not destroyed. Only the in-plane coordinates of the source are used (structures are
//! painted as axial cross-sections).
use crate::nodes::NodeShape;

/// Displacement below which a point counts as untouched, mm.
const NEGLIGIBLE_MM: f64 = 0.05;

/// One node's push.
#[derive(Clone, Debug)]
pub struct Push {
    /// The node (centre, axes, radii, lobes) in output space.
    pub shape: NodeShape,
    /// Decay length of the displacement, mm.
    pub falloff_mm: f64,
}

impl Push {
    /// A push by `shape` with a fall-off proportional to its size.
    pub fn new(shape: NodeShape) -> Self {
        let r = shape.radii[0].max(shape.radii[1]);
        Push { shape, falloff_mm: (0.4 * r).max(2.0) }
    }

    /// Distance from the node surface beyond which the displacement is negligible, mm.
    pub fn reach_mm(&self) -> f64 {
        let r = self.shape.extent_mm();
        r + self.falloff_mm * (r / NEGLIGIBLE_MM).ln().max(0.0)
    }

    /// Where the anatomy at output point `p` came from (3D; see the module docs).
    pub fn source(&self, p: [f64; 3]) -> [f64; 3] {
        let c = self.shape.centre;
        let d = [p[0] - c[0], p[1] - c[1], p[2] - c[2]];
        let rho = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
        let level = self.shape.level_of(p);
        if rho < 1e-9 || level <= 1.0 {
            return c;
        }
        let r = rho / level;
        let s = rho - r * (-(rho - r) / self.falloff_mm).exp();
        let f = s / rho;
        [c[0] + d[0] * f, c[1] + d[1] * f, c[2] + d[2] * f]
    }
}

/// Bounds on how far the pushes move points, to skip regions they leave still without computing
/// sources there.
///
/// Outside a node a point at distance `rho` from its centre moves by `r exp(-(rho - r) /
/// falloff)` along its ray, with `r` the distance of the surface along that ray; that grows with
/// `r` and falls with `rho`. With orthonormal axes the ellipsoid meets the ray of direction `u` at
/// `1 / |A u|` (`A`: the axes over the radii, of norm `1 / r_min`); the lobes scale that by
/// `1 + sum amp exp(-(1 - cos) sharp)` in the node-frame direction; and over a ball of radius `b`
/// around `p` the ray direction turns by at most `2 b / rho_min`, the node-frame direction by at
/// most `2 b / (r_min |A (p - c)|)`.
#[derive(Clone, Debug)]
pub struct ShiftBounds {
    /// Per push, in the order they act (the last push first); `None` when no bound is known.
    pushes: Vec<Option<PushBound>>,
}

#[derive(Clone, Debug)]
struct PushBound {
    centre: [f64; 3],
    /// Axes divided by their radii (rows of `A`).
    a: [[f64; 3]; 3],
    r_min: f64,
    /// Lobes that bulge (positive amplitude): direction, amplitude, sharpness.
    bulges: Vec<([f64; 3], f64, f64)>,
    /// Widened extent, mm.
    extent: f64,
    falloff_mm: f64,
}

/// Margins far beyond rounding error.
fn widen(x: f64) -> f64 {
    x * (1.0 + 1e-6) + 1e-6
}

/// Bounds on a shift: its length and its x and y components (mm).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ShiftBound {
    pub norm_mm: f64,
    pub xy_mm: [f64; 2],
}

impl ShiftBounds {
    /// Bounds on `source(q) - q` over every point `q` within `radius_mm` of `p`; `None` where
    /// none is known (the ball reaches into a node).
    pub fn near(&self, p: [f64; 3], radius_mm: f64) -> Option<ShiftBound> {
        let mut total = ShiftBound { norm_mm: 0.0, xy_mm: [0.0; 2] };
        // Each push sees a point already moved by up to `total.norm_mm`.
        for b in &self.pushes {
            let s = b.as_ref()?.near(p, radius_mm + total.norm_mm)?;
            total.norm_mm += s.norm_mm;
            total.xy_mm[0] += s.xy_mm[0];
            total.xy_mm[1] += s.xy_mm[1];
        }
        Some(total)
    }

    /// True when [`MassEffect::moves`] is false for every point within `radius_mm` of `p` by
    /// [`Self::near`] (stops as soon as the bound fails).
    pub fn still_near(&self, p: [f64; 3], radius_mm: f64) -> bool {
        let lim = NEGLIGIBLE_MM * (1.0 - 1e-6);
        let mut total = ShiftBound { norm_mm: 0.0, xy_mm: [0.0; 2] };
        for b in &self.pushes {
            let Some(s) = b.as_ref().and_then(|b| b.near(p, radius_mm + total.norm_mm)) else {
                return false;
            };
            total.norm_mm += s.norm_mm;
            total.xy_mm[0] += s.xy_mm[0];
            total.xy_mm[1] += s.xy_mm[1];
            if !(total.xy_mm[0] < lim && total.xy_mm[1] < lim) {
                return false;
            }
        }
        true
    }

    /// True when a bound from [`Self::near`] proves [`MassEffect::moves`] false.
    pub fn is_still(bound: &ShiftBound) -> bool {
        let lim = NEGLIGIBLE_MM * (1.0 - 1e-6);
        bound.xy_mm[0] < lim && bound.xy_mm[1] < lim
    }
}

impl PushBound {
    fn new(push: &Push) -> Option<PushBound> {
        let sh = &push.shape;
        let orthonormal = (0..3).all(|a| {
            (0..3).all(|b| {
                let d: f64 = (0..3).map(|k| sh.axes[a][k] * sh.axes[b][k]).sum();
                (d - if a == b { 1.0 } else { 0.0 }).abs() < 1e-9
            })
        });
        // A lobe term exp(-(1 - d.dir) sharp) is at most 1 only for a non-negative sharpness, and
        // the bound on its change over a ball holds for a unit direction.
        let bulges_bounded = sh.lobes.iter().all(|l| {
            let len2 = l.dir[0] * l.dir[0] + l.dir[1] * l.dir[1] + l.dir[2] * l.dir[2];
            l.sharp >= 0.0 && (len2 - 1.0).abs() < 1e-9
        });
        let r_min = sh.radii.iter().cloned().fold(f64::INFINITY, f64::min);
        if !orthonormal
            || !bulges_bounded
            || push.falloff_mm.is_nan()
            || push.falloff_mm <= 0.0
            || r_min.is_nan()
            || r_min <= 0.0
        {
            return None;
        }
        Some(PushBound {
            centre: sh.centre,
            a: std::array::from_fn(|k| std::array::from_fn(|c| sh.axes[k][c] / sh.radii[k])),
            r_min,
            bulges: sh.lobes.iter().filter(|l| l.amp > 0.0).map(|l| (l.dir, l.amp, l.sharp)).collect(),
            extent: widen(sh.extent_mm()),
            falloff_mm: push.falloff_mm,
        })
    }

    /// The push moves a point along its ray from the centre, so each component of the shift is
    /// the shift times that of the ray's direction.
    fn near(&self, p: [f64; 3], radius_mm: f64) -> Option<ShiftBound> {
        let c = self.centre;
        let d = [p[0] - c[0], p[1] - c[1], p[2] - c[2]];
        let rho = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
        let rho_min = (rho - radius_mm) * (1.0 - 1e-9) - 1e-9;
        if rho_min.is_nan() || rho_min <= 0.0 {
            return None;
        }
        let n: [f64; 3] =
            std::array::from_fn(|k| self.a[k][0] * d[0] + self.a[k][1] * d[1] + self.a[k][2] * d[2]);
        let n_len = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt();
        let a_u = n_len / rho;
        let a_min = (a_u - 2.0 * radius_mm / (rho_min * self.r_min)) * (1.0 - 1e-6);
        // The lobe factor (`nodes::radial`) in the node-frame direction n / |n|, which moves by at
        // most 2 |A| radius / |n| over the ball: each lobe adds at most amp exp(-x), and
        // exp(x) >= 1 + x + x^2/2 + x^3/6 for x >= 0.
        let turn = 2.0 * radius_mm / (self.r_min * n_len) * (1.0 + 1e-6) + 1e-9;
        let radial: f64 = 1.0
            + self
                .bulges
                .iter()
                .map(|(dir, amp, sharp)| {
                    let cos = (n[0] * dir[0] + n[1] * dir[1] + n[2] * dir[2]) / n_len;
                    let x = ((1.0 - cos - turn) * sharp).max(0.0);
                    amp / (1.0 + x * (1.0 + x * (0.5 + x / 6.0)))
                })
                .sum::<f64>();
        let r_surf =
            if a_min > 0.0 && n_len > 0.0 { widen(radial / a_min).min(self.extent) } else { self.extent };
        if rho_min.is_nan() || r_surf.is_nan() || rho_min <= r_surf {
            return None;
        }
        let norm_mm = widen(r_surf * (-(rho_min - r_surf) / self.falloff_mm).exp());
        let part = |a: usize| widen(norm_mm * ((d[a].abs() + radius_mm) / rho_min)).min(norm_mm);
        Some(ShiftBound { norm_mm, xy_mm: [part(0), part(1)] })
    }
}

/// All pushes of a scan, in the order the nodes grew.
#[derive(Clone, Debug, Default)]
pub struct MassEffect {
    pub pushes: Vec<Push>,
}

impl MassEffect {
    /// No push at all.
    pub fn is_empty(&self) -> bool {
        self.pushes.is_empty()
    }

    /// Source of output point `p`: the last push is undone first.
    pub fn source(&self, p: [f64; 3]) -> [f64; 3] {
        self.pushes.iter().rev().fold(p, |q, push| push.source(q))
    }

    /// Axial boxes `[xmin, xmax, ymin, ymax]` (mm) of the plane `z` where some push moves points.
    pub fn boxes(&self, z: f64) -> Vec<[f64; 4]> {
        self.pushes
            .iter()
            .filter_map(|p| {
                let reach = p.reach_mm();
                let c = p.shape.centre;
                let dz = (z - c[2]).abs();
                (dz < reach).then(|| {
                    let h = (reach * reach - dz * dz).sqrt();
                    [c[0] - h, c[0] + h, c[1] - h, c[1] + h]
                })
            })
            .collect()
    }

    /// Bounds on the shifts of these pushes ([`ShiftBounds`]).
    pub fn shift_bounds(&self) -> ShiftBounds {
        ShiftBounds { pushes: self.pushes.iter().rev().map(PushBound::new).collect() }
    }

    /// True when `p` is displaced by more than a negligible amount.
    pub fn moves(&self, p: [f64; 3], source: [f64; 3]) -> bool {
        (p[0] - source[0]).abs() > NEGLIGIBLE_MM || (p[1] - source[1]).abs() > NEGLIGIBLE_MM
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ball(c: [f64; 3], r: f64) -> NodeShape {
        NodeShape {
            centre: c,
            axes: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
            radii: [r, r, r],
            lobes: vec![],
            hilum: None,
            core: None,
            calcs: vec![],
            hu: 40.0,
            core_hu: 0.0,
            rim_hu: 0.0,
            fat_hu: -100.0,
            tex_seed: 1,
            style: None,
        }
    }

    #[test]
    fn push_by_hand() {
        let push = Push::new(ball([10.0, 0.0, 0.0], 10.0));
        assert_eq!(push.falloff_mm, 4.0);
        // Inside the node: the centre.
        assert_eq!(push.source([15.0, 0.0, 0.0]), [10.0, 0.0, 0.0]);
        // On the surface: the centre (s = R - R).
        let s = push.source([20.0, 0.0, 0.0]);
        assert!((s[0] - 10.0).abs() < 1e-9, "{s:?}");
        // 4 mm out (one fall-off): s = 14 - 10 / e.
        let s = push.source([24.0, 0.0, 0.0]);
        assert!((s[0] - (10.0 + 14.0 - 10.0 / std::f64::consts::E)).abs() < 1e-9, "{s:?}");
        // Far away: unchanged to within the negligible displacement.
        let far = [10.0, push.reach_mm() + 10.0, 0.0];
        let s = push.source(far);
        assert!((s[1] - far[1]).abs() < NEGLIGIBLE_MM);
    }

    #[test]
    fn push_is_monotonic_along_every_ray() {
        let mut shape = ball([0.0; 3], 12.0);
        shape.radii = [9.0, 14.0, 11.0];
        shape.lobes = vec![crate::nodes::Lobe { dir: [0.6, 0.8, 0.0], amp: 0.1, sharp: 4.0 }];
        let push = Push::new(shape);
        for k in 0..24 {
            let a = k as f64 * std::f64::consts::TAU / 24.0;
            let dir = [a.cos(), a.sin(), 0.3 * (2.0 * a).sin()];
            let mut last = -1.0;
            for i in 0..400 {
                let t = i as f64 * 0.25;
                let s = push.source([dir[0] * t, dir[1] * t, dir[2] * t]);
                let dist = (s[0] * s[0] + s[1] * s[1] + s[2] * s[2]).sqrt();
                assert!(dist >= last - 1e-9, "ray {k} folds at {t} mm");
                last = dist;
            }
        }
    }

    /// The shift bound holds for points spread over balls around two lobulated pushes, and no
    /// point of a ball whose bound is below the negligible shift moves.
    #[test]
    fn shift_bound_holds() {
        let mut a = ball([0.0, 0.0, 0.0], 12.0);
        a.radii = [9.0, 14.0, 11.0];
        let s = std::f64::consts::FRAC_1_SQRT_2;
        a.axes = [[s, s, 0.0], [-s, s, 0.0], [0.0, 0.0, 1.0]];
        a.lobes = vec![
            crate::nodes::Lobe { dir: [0.6, 0.8, 0.0], amp: 0.12, sharp: 4.0 },
            crate::nodes::Lobe { dir: [0.0, 0.0, 1.0], amp: -0.2, sharp: 6.0 },
        ];
        let effect = MassEffect { pushes: vec![Push::new(a), Push::new(ball([30.0, 5.0, 4.0], 6.0))] };
        // Offsets spread over the unit ball.
        let offs: Vec<[f64; 3]> = (0..64)
            .map(|k| {
                let t = k as f64 * 2.399963;
                let z = 1.0 - 2.0 * (k as f64 + 0.5) / 64.0;
                let r = (1.0 - z * z).sqrt();
                let f = if k % 2 == 0 { 1.0 } else { 0.5 };
                [f * r * t.cos(), f * r * t.sin(), f * z]
            })
            .collect();
        let bounds = effect.shift_bounds();
        let single: Vec<ShiftBounds> =
            effect.pushes.iter().map(|p| MassEffect { pushes: vec![p.clone()] }.shift_bounds()).collect();
        let (mut bounded, mut still, mut tight) = (0, 0, 0);
        for i in -30..=45 {
            for j in -30..=30 {
                let p = [i as f64 * 2.3, j as f64 * 2.3, 3.0];
                for radius in [0.0, 0.5, 4.0] {
                    for (push, sb) in effect.pushes.iter().zip(&single) {
                        let Some(sh) = sb.near(p, radius) else { continue };
                        let b = sh.norm_mm;
                        bounded += 1;
                        let mut worst: f64 = 0.0;
                        for o in &offs {
                            let q = [p[0] + o[0] * radius, p[1] + o[1] * radius, p[2] + o[2] * radius];
                            let s = push.source(q);
                            let shift =
                                ((s[0] - q[0]).powi(2) + (s[1] - q[1]).powi(2) + (s[2] - q[2]).powi(2))
                                    .sqrt();
                            assert!(shift <= b, "{p:?} r {radius}: shift {shift} > bound {b}");
                            assert!((s[0] - q[0]).abs() <= sh.xy_mm[0] && (s[1] - q[1]).abs() <= sh.xy_mm[1]);
                            worst = worst.max(shift);
                        }
                        tight += usize::from(worst > 0.2 * b);
                    }
                    if bounds.near(p, radius).as_ref().is_some_and(ShiftBounds::is_still) {
                        still += 1;
                        for o in &offs {
                            let q = [p[0] + o[0] * radius, p[1] + o[1] * radius, p[2] + o[2] * radius];
                            assert!(!effect.moves(q, effect.source(q)), "{q:?} moves");
                        }
                    }
                }
            }
        }
        // The bound is not vacuous: it holds often, clears many balls, and is often within a
        // factor of five of the worst shift seen.
        assert!(bounded > 10_000 && still > 3_000 && tight > 2_000, "{bounded} {still} {tight}");
        assert!(single[0].near([5.0, 0.0, 0.0], 1.0).is_none());
    }

    #[test]
    fn boxes_cover_every_moved_point() {
        let effect = MassEffect { pushes: vec![Push::new(ball([5.0, -3.0, 2.0], 8.0))] };
        for z in [-30.0, -5.0, 2.0, 20.0] {
            let boxes = effect.boxes(z);
            for i in -80..80 {
                for j in -80..80 {
                    let p = [i as f64, j as f64, z];
                    if effect.moves(p, effect.source(p)) {
                        assert!(
                            boxes
                                .iter()
                                .any(|b| p[0] >= b[0] && p[0] <= b[1] && p[1] >= b[2] && p[1] <= b[3]),
                            "{p:?} moved outside every box"
                        );
                    }
                }
            }
        }
    }
}
