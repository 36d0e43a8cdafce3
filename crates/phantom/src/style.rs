//! The random draws of a node's (and confounder's) [`NodeStyle`] — shape family and appearance —
//! that a [`NodeShape`] carries when [`crate::randomization`] is on.
//!
//! A style replaces the engine's own shape function and HU model of one node; a node without a
//! style (`style: None`) is drawn exactly as before.
use crate::nodes::{dot, norm3, Core, Family, Lobe, NodeShape, NodeStyle};
use crate::randomization::{draw, pick, Appearance, ShapeRand};
use crate::rng::{chance, normal, uni, unit_vec, PRng};
use std::sync::Arc;

/// A random rotation: rows of an orthonormal frame.
pub(crate) fn random_frame(rng: &mut PRng) -> [[f64; 3]; 3] {
    let a = unit_vec(rng);
    let mut b = unit_vec(rng);
    while dot(a, b).abs() > 0.95 {
        b = unit_vec(rng);
    }
    let b = norm3([b[0] - a[0] * dot(a, b), b[1] - a[1] * dot(a, b), b[2] - a[2] * dot(a, b)]);
    let c = [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
    [a, b, c]
}

/// A frame whose third axis is within ~`tilt` (radians, normal sigma) of cranio-caudal.
pub(crate) fn axial_frame(rng: &mut PRng, tilt: f64) -> [[f64; 3]; 3] {
    let th = uni(rng, 0.0, std::f64::consts::PI);
    let ez = norm3([normal(rng) * tilt, normal(rng) * tilt, 1.0]);
    let ex0 = [th.cos(), th.sin(), 0.0];
    let ex =
        norm3([ex0[0] - ez[0] * dot(ex0, ez), ex0[1] - ez[1] * dot(ex0, ez), ex0[2] - ez[2] * dot(ex0, ez)]);
    let ey = [ez[1] * ex[2] - ez[2] * ex[1], ez[2] * ex[0] - ez[0] * ex[2], ez[0] * ex[1] - ez[1] * ex[0]];
    [ey, ex, ez]
}

/// Draws a short-axis diameter: a `large_fraction` share uniform in `[max(15, lo), hi]`, the rest
/// log-uniform in `[lo, min(15, hi)]`.
pub fn draw_short_axis_mm(rng: &mut PRng, s: &ShapeRand) -> f64 {
    let [lo, hi] = s.short_axis_mm;
    let split = 15.0f64.clamp(lo, hi);
    if chance(rng, s.large_fraction) && hi > split {
        uni(rng, split, hi)
    } else if split > lo {
        (uni(rng, lo.ln(), split.ln())).exp()
    } else {
        lo
    }
}

/// Shape of a randomized node of short axis `sad_mm`: family, radii, frame, lobes. Sets the
/// style's family and extent factor; `shape.hilum` is set for reniform nodes.
pub fn randomize_shape(
    rng: &mut PRng,
    s: &ShapeRand,
    shape: &mut NodeShape,
    st: &mut NodeStyle,
    sad_mm: f64,
) {
    let aspect = draw(rng, s.axial_aspect);
    let r_short = sad_mm / 2.0;
    let r_long = r_short / aspect;
    let r_z = (r_long * draw(rng, s.elongation)).max(r_short * 0.6);
    shape.axes = if s.any_orientation { random_frame(rng) } else { axial_frame(rng, 0.2) };
    shape.radii = [r_short, r_long, r_z];
    shape.lobes.clear();
    shape.hilum = None;
    let fam = pick(rng, &s.families.as_array());
    st.family = Family::Ellipsoid;
    st.extent_factor = 1.0;
    match fam {
        // Ellipsoid: nothing more.
        0 => {}
        // Lobulated.
        1 => {
            for _ in 0..rng_count(rng, 2, 7) {
                shape.lobes.push(Lobe {
                    dir: unit_vec(rng),
                    amp: uni(rng, 0.05, 0.2),
                    sharp: uni(rng, 2.0, 10.0),
                });
            }
        }
        2 => {
            st.family = Family::Superquadric { e_xy: uni(rng, 1.3, 5.0), e_z: uni(rng, 1.3, 5.0) };
            // A superquadric's corners reach sqrt(3) of the radius at most.
            st.extent_factor = 3f64.sqrt();
        }
        3 => {
            let mut waves = Vec::new();
            let mut total = 0.0;
            for _ in 0..rng_count(rng, 2, 6) {
                let a = uni(rng, 0.02, 0.12);
                total += a;
                waves.push((unit_vec(rng), a, uni(rng, 2.0, 7.0), uni(rng, 0.0, std::f64::consts::TAU)));
            }
            st.family = Family::Harmonic { waves };
            st.extent_factor = 1.0 + total;
        }
        4 => {
            // Kidney: a notch along the long axial axis; the hilum opens there.
            let h = if chance(rng, 0.5) { [0.0, 1.0, 0.0] } else { [0.0, -1.0, 0.0] };
            shape.lobes.push(Lobe { dir: h, amp: -uni(rng, 0.15, 0.35), sharp: uni(rng, 4.0, 9.0) });
            shape.hilum = Some(h);
        }
        5 => {
            // Conglomerate: 2-4 blobs around the centre, overlapping so the union is one piece.
            let k = rng_count(rng, 2, 4);
            let mut blobs = Vec::new();
            let mut ext: f64 = 1.0;
            for b in 0..k {
                let r = [uni(rng, 0.55, 0.9), uni(rng, 0.55, 0.9), uni(rng, 0.55, 0.9)];
                let c = if b == 0 {
                    [0.0; 3]
                } else {
                    let d = unit_vec(rng);
                    let t = uni(rng, 0.3, 0.6);
                    [d[0] * t, d[1] * t, d[2] * t]
                };
                ext = ext.max(dot(c, c).sqrt() + r.iter().cloned().fold(0.0, f64::max));
                blobs.push((c, r));
            }
            st.family = Family::Fused { blobs };
            st.extent_factor = ext;
        }
        _ => {
            // Cylinder-like: round or flattened cross-section, flat ends, long.
            shape.radii[2] = shape.radii[1].max(r_short) * uni(rng, 1.8, 4.0);
            st.family = Family::Superquadric { e_xy: uni(rng, 1.8, 2.6), e_z: uni(rng, 4.0, 8.0) };
            st.extent_factor = 2f64.sqrt();
        }
    }
}

/// Randomized appearance of a node: HU, texture, core, hilum, calcifications, edge. Returns the
/// (necrotic, cystic, calcified) flags.
pub fn randomize_appearance(
    rng: &mut PRng,
    a: &Appearance,
    shape: &mut NodeShape,
    st: &mut NodeStyle,
) -> (bool, bool, bool) {
    shape.hu = draw(rng, a.mean_hu);
    st.texture_hu = draw(rng, a.texture_hu);
    let tm = draw(rng, a.texture_scale_mm);
    st.texture_mm = [tm, tm, tm];
    st.hetero_hu = draw(rng, a.heterogeneity_hu);
    st.hetero_mm = draw(rng, a.heterogeneity_scale_mm);
    st.edge_sigma_mm = draw(rng, a.edge_sigma_mm);
    if chance(rng, a.capsule_p) {
        st.capsule_mm = draw(rng, a.capsule_mm);
        st.capsule_hu = draw(rng, a.capsule_hu);
    }
    let necrotic = chance(rng, a.necrosis_p);
    let cystic = !necrotic && chance(rng, a.cyst_p);
    shape.core = None;
    shape.core_hu = 0.0;
    shape.rim_hu = 0.0;
    if necrotic || cystic {
        let frac = if cystic { uni(rng, 0.7, 0.9) } else { draw(rng, a.core_fraction) };
        // Off-centre cores: up to most of the room left between core and surface.
        let off_max = (1.0 - frac) * 0.8;
        let off = [uni(rng, -off_max, off_max), uni(rng, -off_max, off_max), uni(rng, -off_max, off_max)];
        let mut lobes = Vec::new();
        if necrotic {
            // Irregular rims: bumps of the core surface, some sharp.
            for _ in 0..rng_count(rng, 2, 8) {
                lobes.push(Lobe {
                    dir: unit_vec(rng),
                    amp: uni(rng, 0.05, 0.35),
                    sharp: uni(rng, 2.0, 15.0),
                });
            }
            st.core_scale = [uni(rng, 0.6, 1.0), uni(rng, 0.6, 1.0), uni(rng, 0.6, 1.0)];
            st.core_soft = uni(rng, 0.05, 0.3);
            st.rim_width = uni(rng, 0.2, 1.0);
        } else {
            st.core_scale = [1.0; 3];
            st.core_soft = uni(rng, 0.03, 0.1);
            st.rim_width = uni(rng, 0.05, 0.2);
        }
        shape.core = Some(Core { offset: off, frac, lobes });
        shape.core_hu = draw(rng, a.core_hu);
        shape.rim_hu = draw(rng, a.rim_hu);
    }
    if shape.hilum.is_none() && chance(rng, a.hilum_p) {
        shape.hilum = Some(unit_vec(rng));
    }
    if shape.hilum.is_some() {
        st.hilum_cos = uni(rng, 0.65, 0.9);
        shape.fat_hu = draw(rng, a.hilum_hu);
    }
    let calcified = chance(rng, a.calcification_p);
    shape.calcs.clear();
    if calcified {
        st.calc_hu = draw(rng, a.calcification_hu);
        for _ in 0..rng_count(rng, 1, 6) {
            let d = unit_vec(rng);
            let f = uni(rng, 0.0, 0.75);
            shape.calcs.push(([d[0] * f, d[1] * f, d[2] * f], draw(rng, a.calcification_radius_mm)));
        }
    }
    (necrotic, cystic, calcified)
}

/// Uniform integer in `lo..=hi`.
pub(crate) fn rng_count(rng: &mut PRng, lo: usize, hi: usize) -> usize {
    use rand::Rng;
    rng.random_range(lo..=hi)
}

/// Attaches a style to a shape.
pub(crate) fn with_style(shape: &mut NodeShape, st: NodeStyle) {
    shape.style = Some(Arc::new(st));
}

/// The standard normal CDF (Abramowitz-Stegun 7.1.26 erf, |error| < 1.5e-7): the fraction of a
/// Gaussian-blurred step at `x` sigmas.
pub(crate) fn phi(x: f64) -> f64 {
    let z = x.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * z);
    let y = 1.0
        - (((((1.061_405_429 * t - 1.453_152_027) * t) + 1.421_413_741) * t - 0.284_496_736) * t
            + 0.254_829_592)
            * t
            * (-z * z).exp();
    if x >= 0.0 {
        0.5 * (1.0 + y)
    } else {
        0.5 * (1.0 - y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodes::styled_level;

    #[test]
    fn phi_is_the_normal_cdf() {
        assert!((phi(0.0) - 0.5).abs() < 1e-7);
        assert!((phi(1.0) - 0.841_344_746).abs() < 1e-6);
        assert!((phi(-1.96) - 0.024_997_9).abs() < 1e-6);
    }

    #[test]
    fn families_are_inside_at_the_centre_and_outside_far_away() {
        let mut rng = crate::rng::stream(1, "t");
        for fam in [
            Family::Ellipsoid,
            Family::Superquadric { e_xy: 4.0, e_z: 1.5 },
            Family::Harmonic { waves: vec![([0.0, 0.0, 1.0], 0.1, 3.0, 0.2)] },
            Family::Fused { blobs: vec![([0.0; 3], [0.7; 3]), ([0.4, 0.0, 0.0], [0.6; 3])] },
        ] {
            let st = NodeStyle { family: fam.clone(), ..NodeStyle::plain() };
            assert!(styled_level(&st, &[], [0.0; 3]) < 0.5, "{fam:?}");
            for _ in 0..50 {
                let d = unit_vec(&mut rng);
                assert!(styled_level(&st, &[], [d[0] * 3.0, d[1] * 3.0, d[2] * 3.0]) > 1.0, "{fam:?}");
            }
        }
        // The superquadric with exponent 2 is the ellipsoid.
        let sq = NodeStyle { family: Family::Superquadric { e_xy: 2.0, e_z: 2.0 }, ..NodeStyle::plain() };
        let el = NodeStyle::plain();
        for p in [[0.3, 0.4, 0.1], [0.9, -0.2, 0.5], [-1.5, 0.1, 0.0]] {
            assert!((styled_level(&sq, &[], p) - styled_level(&el, &[], p)).abs() < 1e-12);
        }
        // A torus arc: on its centre line the level is 0, at the hole's centre it is `major`.
        let t = NodeStyle { family: Family::Torus { major: 3.0, arc: 2.0 }, ..NodeStyle::plain() };
        assert!(styled_level(&t, &[], [3.0, 0.0, 0.0]) < 1e-12);
        assert!((styled_level(&t, &[], [0.0, 0.0, 0.0]) - 3.0).abs() < 1e-12);
    }

    #[test]
    fn short_axes_span_the_range_with_enough_large_nodes() {
        let s = ShapeRand { enabled: true, ..ShapeRand::default() };
        let mut rng = crate::rng::stream(2, "t");
        let d: Vec<f64> = (0..5000).map(|_| draw_short_axis_mm(&mut rng, &s)).collect();
        assert!(d.iter().all(|x| (3.0..=40.0).contains(x)));
        let large = d.iter().filter(|&&x| x >= 15.0).count() as f64 / d.len() as f64;
        assert!((0.2..0.3).contains(&large), "{large}");
        assert!(d.iter().any(|&x| x < 3.5) && d.iter().any(|&x| x > 38.0));
    }
}
