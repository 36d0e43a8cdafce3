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
