//! Lymph nodes: shape, internal structure and intensity of one node ([`NodeShape`]), and the
//! per-scan draw of node attributes along the cervical node levels.
use crate::rng::{chance, lognormal, normal, uni, unit_vec, PRng};
use nodal_core::Side;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Cervical node levels (AJCC/AAO-HNS).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Level {
    /// Submental / submandibular.
    I,
    /// Upper jugular (skull base to hyoid).
    II,
    /// Mid jugular (hyoid to cricoid).
    III,
    /// Lower jugular (cricoid to clavicle).
    IV,
    /// Posterior triangle.
    V,
    /// Central compartment (pre/paratracheal).
    VI,
}

impl Level {
    /// Roman numeral.
    pub fn name(self) -> &'static str {
        match self {
            Level::I => "I",
            Level::II => "II",
            Level::III => "III",
            Level::IV => "IV",
            Level::V => "V",
            Level::VI => "VI",
        }
    }
}

/// One low-frequency bump of the node surface: direction, relative amplitude, sharpness.
#[derive(Clone, Copy, Debug)]
pub struct Lobe {
    pub dir: [f64; 3],
    pub amp: f64,
    pub sharp: f64,
}

/// A hypodense core (necrosis or cyst) inside a node.
#[derive(Clone, Debug)]
pub struct Core {
    /// Centre offset in normalised node coordinates.
    pub offset: [f64; 3],
    /// Radius relative to the node's.
    pub frac: f64,
    /// Its own surface bumps.
    pub lobes: Vec<Lobe>,
}

/// A node as an implicit shape in its own frame plus its internal intensity structure.
#[derive(Clone, Debug)]
pub struct NodeShape {
    /// Centre, LPS mm.
    pub centre: [f64; 3],
    /// Rows = the node's principal axes (orthonormal), LPS.
    pub axes: [[f64; 3]; 3],
    /// Semi-axes along `axes`, mm.
    pub radii: [f64; 3],
    /// Surface bumps (lobulation, irregular border, kidney notch when negative).
    pub lobes: Vec<Lobe>,
    /// Fatty hilum direction (unit, node frame), if any.
    pub hilum: Option<[f64; 3]>,
    /// Necrotic or cystic core.
    pub core: Option<Core>,
    /// Calcifications: centre (LPS mm), radius mm.
    pub calcs: Vec<([f64; 3], f64)>,
    /// Solid tissue HU.
    pub hu: f64,
    /// Core HU (necrosis 0-25, cyst 5-20).
    pub core_hu: f64,
    /// Rim enhancement around a core, HU.
    pub rim_hu: f64,
    /// Fat HU used in the hilum.
    pub fat_hu: f64,
    /// Texture seed.
    pub tex_seed: u64,
    /// Randomized shape family and appearance ([`crate::randomization`]); `None`: the engine's
    /// own model above.
    pub style: Option<Arc<NodeStyle>>,
}

/// Attributes recorded in `nodes.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeAttrs {
    pub level: Level,
    /// Patient side.
    pub side: Side,
    pub metastatic: bool,
    pub necrotic: bool,
    pub cystic: bool,
    pub calcified: bool,
    /// Bulky cluster id (nodes of one cluster touch), if any.
    pub cluster_id: Option<u32>,
}

#[inline]
pub(crate) fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

pub(crate) fn radial(lobes: &[Lobe], d: [f64; 3]) -> f64 {
    let mut r = 1.0;
    for l in lobes {
        r += l.amp * (-(1.0 - dot(d, l.dir)) * l.sharp).exp();
    }
    r.max(0.3)
}

impl NodeShape {
    /// Normalised node coordinates of a point: components along the axes divided by the radii.
    #[inline]
    pub fn local(&self, p: [f64; 3]) -> [f64; 3] {
        let d = [p[0] - self.centre[0], p[1] - self.centre[1], p[2] - self.centre[2]];
        [
            dot(self.axes[0], d) / self.radii[0],
            dot(self.axes[1], d) / self.radii[1],
            dot(self.axes[2], d) / self.radii[2],
        ]
    }

    /// Shape function: < 1 inside, 1 on the (lobulated) surface, grows outwards.
    #[inline]
    pub fn level_of(&self, p: [f64; 3]) -> f64 {
        let n = self.local(p);
        if let Some(st) = &self.style {
            return styled_level(st, &self.lobes, n);
        }
        let rho = dot(n, n).sqrt();
        if rho < 1e-9 {
            return 0.0;
        }
        let d = [n[0] / rho, n[1] / rho, n[2] / rho];
        rho / radial(&self.lobes, d)
    }

    /// Largest extent from the centre, mm (for bounding boxes).
    pub fn extent_mm(&self) -> f64 {
        let amp: f64 = self.lobes.iter().map(|l| l.amp.max(0.0)).sum();
        let e = self.radii.iter().cloned().fold(0.0, f64::max) * (1.0 + amp);
        match &self.style {
            Some(st) => e * st.extent_factor,
            None => e,
        }
    }

    /// Gaussian sigma of a styled node's edge, mm (0: the node's edge is as sharp as the
    /// scanner's blur makes it).
    pub fn edge_sigma_mm(&self) -> f64 {
        self.style.as_ref().map_or(0.0, |s| s.edge_sigma_mm)
    }

    /// HU of the node at `p` (known to be inside), before blur and noise.
    pub fn hu_at(&self, p: [f64; 3], level: f64) -> f64 {
        if let Some(st) = &self.style {
            return styled_hu(self, st, p, self.local(p), level);
        }
        let tex = crate::rng::texture(self.tex_seed, p, 2.0) * 7.0;
        let mut hu = self.hu + tex;
        if let Some(Core { offset: off, frac, lobes }) = &self.core {
            let n = self.local(p);
            let q = [n[0] - off[0], n[1] - off[1], n[2] - off[2]];
            let rho = dot(q, q).sqrt();
            let s = if rho < 1e-9 {
                0.0
            } else {
                let d = [q[0] / rho, q[1] / rho, q[2] / rho];
                rho / (frac * radial(lobes, d))
            };
            // Soft core edge (~0.15 of the core radius) and an enhancing viable rim.
            let w = smoothstep(0.85, 1.15, s);
            let core = self.core_hu + tex * 0.3;
            hu = core * (1.0 - w) + (hu + self.rim_hu * (1.0 - smoothstep(1.0, 1.8, s))) * w;
        }
        if let Some(h) = self.hilum {
            let n = self.local(p);
            let rho = dot(n, n).sqrt().max(1e-9);
            let c = dot([n[0] / rho, n[1] / rho, n[2] / rho], h);
            if c > 0.8 && level > 0.35 {
                let w = smoothstep(0.8, 0.93, c) * smoothstep(0.35, 0.6, level);
                hu = hu * (1.0 - w) + self.fat_hu * w;
            }
        }
        for (c, r) in &self.calcs {
            let d2 = (p[0] - c[0]).powi(2) + (p[1] - c[1]).powi(2) + (p[2] - c[2]).powi(2);
            if d2 <= r * r {
                hu = hu.max(uni_hash(self.tex_seed, 650.0));
            }
        }
        hu
    }
}

fn uni_hash(seed: u64, base: f64) -> f64 {
    base + (crate::rng::mix64(seed) % 400) as f64
}

#[inline]
pub(crate) fn smoothstep(e0: f64, e1: f64, x: f64) -> f64 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// A drawn node before placement: attributes and shape parameters (centre set at placement).
#[derive(Clone, Debug)]
pub struct NodeDraft {
    pub attrs: NodeAttrs,
    /// Target short-axis diameter, mm.
    pub sad_mm: f64,
    pub shape: NodeShape,
}

/// Draws a node's shape and internal structure for a target short axis.
pub fn draft_node(rng: &mut PRng, attrs: NodeAttrs, sad_mm: f64, fat_hu: f64) -> NodeDraft {
    let mut attrs = attrs;
    let met = attrs.metastatic;
    // Axial aspect (short / long) and cranio-caudal elongation: benign nodes are oval/reniform,
    // metastases round.
    let ratio = if met { uni(rng, 0.62, 0.98) } else { uni(rng, 0.4, 0.8) };
    let r_short = sad_mm / 2.0;
    let r_long = r_short / ratio;
    let r_z = r_long * if met { uni(rng, 0.8, 1.3) } else { uni(rng, 0.9, 2.2) };
    // Axial orientation random; cranio-caudal axis tilted up to ~25 degrees.
    let th = uni(rng, 0.0, std::f64::consts::PI);
    let tilt = [normal(rng) * 0.2, normal(rng) * 0.2];
    let ez = norm3([tilt[0], tilt[1], 1.0]);
    let ex0 = [th.cos(), th.sin(), 0.0];
    let ex = norm3(sub3(ex0, scale3(ez, dot(ex0, ez))));
    let ey = cross(ez, ex);
    // Order the axes so that radii = [short, long, z].
    let axes = [ey, ex, ez];
    let radii = [r_short, r_long, r_z];
    let mut lobes = Vec::new();
    for _ in 0..(2 + (uni(rng, 0.0, 4.0) as usize)) {
        lobes.push(Lobe { dir: unit_vec(rng), amp: uni(rng, 0.03, 0.12), sharp: uni(rng, 2.0, 6.0) });
    }
    let irregular = met && chance(rng, 0.15 + 0.35 * smoothstep(10.0, 25.0, sad_mm));
    if irregular {
        for _ in 0..(6 + (uni(rng, 0.0, 10.0) as usize)) {
            lobes.push(Lobe { dir: unit_vec(rng), amp: uni(rng, 0.04, 0.14), sharp: uni(rng, 10.0, 30.0) });
        }
    }
    let mut hilum = None;
    if !met && sad_mm > 4.0 && chance(rng, 0.6) {
        // Kidney shape: a notch along the long axial axis side, fat entering the hilum.
        let h = if chance(rng, 0.5) { [1.0, 0.0, 0.0] } else { [-1.0, 0.0, 0.0] };
        lobes.push(Lobe { dir: h, amp: -uni(rng, 0.12, 0.3), sharp: uni(rng, 5.0, 9.0) });
        hilum = Some(h);
    }
    let p_nec = if met { 0.12 + 0.6 * smoothstep(7.0, 20.0, sad_mm) } else { 0.0 };
    let necrotic = chance(rng, p_nec);
    let cystic = met && !necrotic && chance(rng, 0.12);
    let calcified = chance(rng, if met { 0.06 } else { 0.02 });
    let mut core = None;
    let mut core_hu = 0.0;
    let mut rim_hu = 0.0;
    if necrotic || cystic {
        let frac = if cystic { uni(rng, 0.75, 0.9) } else { uni(rng, 0.3, 0.85) };
        let off_max = (1.0 - frac) * 0.5;
        let off = [uni(rng, -off_max, off_max), uni(rng, -off_max, off_max), uni(rng, -off_max, off_max)];
        let mut cl = Vec::new();
        if necrotic {
            for _ in 0..3 {
                cl.push(Lobe { dir: unit_vec(rng), amp: uni(rng, 0.05, 0.25), sharp: uni(rng, 2.0, 7.0) });
            }
        }
        core = Some(Core { offset: off, frac, lobes: cl });
        core_hu = if cystic { uni(rng, 5.0, 20.0) } else { uni(rng, 0.0, 25.0) };
        rim_hu = uni(rng, 5.0, 30.0);
    }
    let hu = if met { uni(rng, 30.0, 65.0) } else { uni(rng, 20.0, 60.0) };
    let mut calcs = Vec::new();
    if calcified {
        // Positions are node-frame fractions until placement fixes the centre.
        for _ in 0..(1 + (uni(rng, 0.0, 5.0) as usize)) {
            let d = unit_vec(rng);
            let f = uni(rng, 0.0, 0.7);
            calcs.push(([d[0] * f, d[1] * f, d[2] * f], uni(rng, 0.4, 1.2)));
        }
    }
    attrs.necrotic = necrotic;
    attrs.cystic = cystic;
    attrs.calcified = calcified;
    let shape = NodeShape {
        centre: [0.0; 3],
        axes,
        radii,
        lobes,
        hilum,
        core,
        calcs,
        hu,
        core_hu,
        rim_hu,
        fat_hu,
        tex_seed: rand::Rng::random(rng),
        style: None,
    };
    NodeDraft { attrs, sad_mm, shape }
}

impl NodeShape {
    /// Copy with the centre set; calcifications move from node-frame fractions to LPS mm.
    pub fn placed(&self, centre: [f64; 3], calcs_frac: &[([f64; 3], f64)]) -> NodeShape {
        let mut s = self.clone();
        s.centre = centre;
        s.calcs = calcs_frac
            .iter()
            .map(|(f, r)| {
                let mut p = centre;
                for a in 0..3 {
                    for c in 0..3 {
                        p[c] += self.axes[a][c] * f[a] * self.radii[a];
                    }
                }
                (p, *r)
            })
            .collect();
        s
    }

    /// Uniformly scaled copy (placement shrinks a node that does not fit).
    pub fn scaled(&self, f: f64) -> NodeShape {
        let mut s = self.clone();
        s.radii = [self.radii[0] * f, self.radii[1] * f, self.radii[2] * f];
        s
    }
}

/// Target short-axis diameter: log-normal fits to the paper's cohort (non-metastatic mean ~5 mm,
/// max 23 mm; metastatic mean ~11 mm, max 58 mm).
pub fn draw_sad_mm(rng: &mut PRng, metastatic: bool, bulky: bool) -> f64 {
    if bulky {
        lognormal(rng, 24.0, 0.45, 15.0, 58.0)
    } else if metastatic {
        lognormal(rng, 10.0, 0.45, 5.0, 58.0)
    } else if chance(rng, 0.04) {
        // Reactive (hyperplastic) enlargement: a few benign nodes reach 10-23 mm.
        lognormal(rng, 9.0, 0.35, 6.0, 23.0)
    } else {
        lognormal(rng, 3.9, 0.3, 2.6, 23.0)
    }
}

/// Level by the usual distribution of benign nodes or of metastases of head-and-neck cancer.
pub fn draw_level(rng: &mut PRng, metastatic: bool) -> Level {
    let w: [(Level, f64); 6] = if metastatic {
        [
            (Level::I, 0.1),
            (Level::II, 0.42),
            (Level::III, 0.24),
            (Level::IV, 0.12),
            (Level::V, 0.09),
            (Level::VI, 0.03),
        ]
    } else {
        [
            (Level::I, 0.16),
            (Level::II, 0.28),
            (Level::III, 0.17),
            (Level::IV, 0.12),
            (Level::V, 0.18),
            (Level::VI, 0.09),
        ]
    };
    let mut x = uni(rng, 0.0, 1.0);
    for (l, p) in w {
        if x < p {
            return l;
        }
        x -= p;
    }
    Level::II
}

pub(crate) fn norm3(a: [f64; 3]) -> [f64; 3] {
    let n = dot(a, a).sqrt().max(1e-12);
    [a[0] / n, a[1] / n, a[2] / n]
}
fn sub3(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
fn scale3(a: [f64; 3], s: f64) -> [f64; 3] {
    [a[0] * s, a[1] * s, a[2] * s]
}
fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}

// Styled nodes (domain randomization): the shape families and HU model a style replaces the
// engine's own with. The random draws of a style are `crate::style`'s.

/// Shape family of a styled node, in the node's normalised frame (coordinates divided by radii).
#[derive(Clone, Debug, PartialEq)]
pub enum Family {
    /// Ellipsoid (with the node's lobes, if any).
    Ellipsoid,
    /// Superquadric: `((|x|^e + |y|^e)^(f/e) + |z|^f)^(1/f)`; 2 and 2 is the ellipsoid, large
    /// exponents are box- or cylinder-like, exponents below 2 diamond-like.
    Superquadric { e_xy: f64, e_z: f64 },
    /// Radius modulated by plane waves on the unit sphere: `1 + sum a cos(w d.v + phi)`.
    Harmonic { waves: Vec<([f64; 3], f64, f64, f64)> },
    /// Union of ellipsoidal blobs (normalised centre, normalised radii).
    Fused { blobs: Vec<([f64; 3], [f64; 3])> },
    /// A curved tube: an arc of a circle of radius `major` (in units of the tube radius) in the
    /// node's first two axes, `arc` radians long, with rounded ends (bowel-loop-like).
    Torus { major: f64, arc: f64 },
}

/// Randomized appearance of a node or confounder.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeStyle {
    /// Shape family.
    pub family: Family,
    /// Largest extent relative to the largest radius (for bounding boxes), with the lobes.
    pub extent_factor: f64,
    /// Fine texture amplitude (HU) and scale (mm), per axis of the node frame (anisotropic
    /// scales give fibre-like texture).
    pub texture_hu: f64,
    pub texture_mm: [f64; 3],
    /// Coarse heterogeneity amplitude (HU) and scale (mm).
    pub hetero_hu: f64,
    pub hetero_mm: f64,
    /// Core axis scales (eccentric cores), applied in the node frame.
    pub core_scale: [f64; 3],
    /// Width of the core's soft edge, relative to the core radius.
    pub core_soft: f64,
    /// Width of the viable rim around the core, relative to the core radius.
    pub rim_width: f64,
    /// Hilum: cosine of the half-opening angle of the fat wedge.
    pub hilum_cos: f64,
    /// Calcification HU.
    pub calc_hu: f64,
    /// Gaussian sigma of the node's edge, mm (0 = as sharp as the scanner makes it).
    pub edge_sigma_mm: f64,
    /// Capsule: width (mm) and HU relative to the node; width 0 = none.
    pub capsule_mm: f64,
    pub capsule_hu: f64,
    /// A lumen along the centre line (tubes): radius relative to the tube's and its HU.
    pub lumen: Option<(f64, f64)>,
}

impl NodeStyle {
    /// A plain style: ellipsoid, the engine's own texture, nothing else.
    pub fn plain() -> Self {
        NodeStyle {
            family: Family::Ellipsoid,
            extent_factor: 1.0,
            texture_hu: 7.0,
            texture_mm: [2.0; 3],
            hetero_hu: 0.0,
            hetero_mm: 10.0,
            core_scale: [1.0; 3],
            core_soft: 0.15,
            rim_width: 0.8,
            hilum_cos: 0.8,
            calc_hu: 800.0,
            edge_sigma_mm: 0.0,
            capsule_mm: 0.0,
            capsule_hu: 0.0,
            lumen: None,
        }
    }
}

/// The shape function of a styled node at normalised coordinates `n`: < 1 inside, 1 on the
/// surface, growing outwards about linearly with distance (in units of the radii).
pub(crate) fn styled_level(st: &NodeStyle, lobes: &[Lobe], n: [f64; 3]) -> f64 {
    let rho = dot(n, n).sqrt();
    match &st.family {
        Family::Ellipsoid => {
            if rho < 1e-9 {
                return 0.0;
            }
            let d = [n[0] / rho, n[1] / rho, n[2] / rho];
            rho / radial(lobes, d)
        }
        Family::Superquadric { e_xy, e_z } => {
            let (ax, ay, az) = (n[0].abs(), n[1].abs(), n[2].abs());
            let m = ax.max(ay).max(az);
            if m < 1e-9 {
                return 0.0;
            }
            // Scaled by the largest coordinate so the powers stay finite.
            let (x, y, z) = (ax / m, ay / m, az / m);
            let xy = (x.powf(*e_xy) + y.powf(*e_xy)).powf(1.0 / e_xy);
            let r = m * (xy.powf(*e_z) + z.powf(*e_z)).powf(1.0 / e_z);
            let d = [n[0] / rho, n[1] / rho, n[2] / rho];
            r / radial(lobes, d)
        }
        Family::Harmonic { waves } => {
            if rho < 1e-9 {
                return 0.0;
            }
            let d = [n[0] / rho, n[1] / rho, n[2] / rho];
            let mut r = radial(lobes, d);
            for (v, a, w, ph) in waves {
                r += a * (w * dot(d, *v) + ph).cos();
            }
            rho / r.max(0.3)
        }
        Family::Fused { blobs } => blobs
            .iter()
            .map(|(c, r)| {
                let q = [(n[0] - c[0]) / r[0], (n[1] - c[1]) / r[1], (n[2] - c[2]) / r[2]];
                dot(q, q).sqrt()
            })
            .fold(f64::INFINITY, f64::min),
        Family::Torus { major, arc } => torus_distance(n, *major, *arc),
    }
}

/// Distance (in tube radii) from `n` to the centre line of an arc of radius `major` in the x-y
/// plane spanning `[-arc/2, arc/2]` around +x.
fn torus_distance(n: [f64; 3], major: f64, arc: f64) -> f64 {
    let th = n[1].atan2(n[0]).clamp(-arc / 2.0, arc / 2.0);
    let c = [major * th.cos(), major * th.sin(), 0.0];
    let q = [n[0] - c[0], n[1] - c[1], n[2]];
    dot(q, q).sqrt()
}

/// Distance from the centre line relative to the tube radius (tubes and tori; other families:
/// the level), for lumina.
fn centre_line_distance(st: &NodeStyle, n: [f64; 3], level: f64) -> f64 {
    match &st.family {
        Family::Torus { .. } => level,
        Family::Superquadric { e_xy, .. } => {
            let (x, y) = (n[0].abs(), n[1].abs());
            (x.powf(*e_xy) + y.powf(*e_xy)).powf(1.0 / e_xy)
        }
        _ => level,
    }
}

/// HU of a styled node at `p` with normalised coordinates `n` and level `level` (< 1 inside),
/// before blur and noise.
pub(crate) fn styled_hu(shape: &NodeShape, st: &NodeStyle, p: [f64; 3], n: [f64; 3], level: f64) -> f64 {
    // Texture in the node frame (per-axis scales: anisotropic, fibre-like when stretched).
    let d = [p[0] - shape.centre[0], p[1] - shape.centre[1], p[2] - shape.centre[2]];
    let q = [
        dot(shape.axes[0], d) / st.texture_mm[0],
        dot(shape.axes[1], d) / st.texture_mm[1],
        dot(shape.axes[2], d) / st.texture_mm[2],
    ];
    let fine = crate::rng::texture(shape.tex_seed, q, 1.0) * st.texture_hu;
    let coarse = if st.hetero_hu > 0.0 {
        crate::rng::texture(shape.tex_seed ^ 0x4E7E, p, st.hetero_mm) * st.hetero_hu
    } else {
        0.0
    };
    let tex = fine + coarse;
    let mut hu = shape.hu + tex;
    if st.capsule_mm > 0.0 {
        let rmin = shape.radii.iter().cloned().fold(f64::INFINITY, f64::min);
        let w = (st.capsule_mm / rmin).min(0.5);
        hu += st.capsule_hu * smoothstep(1.0 - w, 1.0 - 0.3 * w, level);
    }
    if let Some(Core { offset: off, frac, lobes }) = &shape.core {
        let c = [
            (n[0] - off[0]) / st.core_scale[0],
            (n[1] - off[1]) / st.core_scale[1],
            (n[2] - off[2]) / st.core_scale[2],
        ];
        let rho = dot(c, c).sqrt();
        let s = if rho < 1e-9 { 0.0 } else { rho / (frac * radial(lobes, norm3(c))) };
        let w = smoothstep(1.0 - st.core_soft, 1.0 + st.core_soft, s);
        let core = shape.core_hu + tex * 0.3;
        hu = core * (1.0 - w) + (hu + shape.rim_hu * (1.0 - smoothstep(1.0, 1.0 + st.rim_width, s))) * w;
    }
    if let Some((frac, lumen_hu)) = st.lumen {
        let r = centre_line_distance(st, n, level);
        let w = smoothstep(frac * 0.8, frac * 1.2, r);
        hu = lumen_hu * (1.0 - w) + hu * w;
    }
    if let Some(h) = shape.hilum {
        let rho = dot(n, n).sqrt().max(1e-9);
        let c = dot([n[0] / rho, n[1] / rho, n[2] / rho], h);
        if c > st.hilum_cos && level > 0.35 {
            let w = smoothstep(st.hilum_cos, st.hilum_cos + 0.13, c) * smoothstep(0.35, 0.6, level);
            hu = hu * (1.0 - w) + shape.fat_hu * w;
        }
    }
    for (c, r) in &shape.calcs {
        let d2 = (p[0] - c[0]).powi(2) + (p[1] - c[1]).powi(2) + (p[2] - c[2]).powi(2);
        if d2 <= r * r {
            hu = hu.max(st.calc_hu);
        }
    }
    hu
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::stream;

    #[test]
    fn plain_ellipsoid_level() {
        let s = NodeShape {
            centre: [1.0, 2.0, 3.0],
            axes: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
            radii: [2.0, 4.0, 8.0],
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
        };
        assert!((s.level_of([3.0, 2.0, 3.0]) - 1.0).abs() < 1e-12);
        assert!((s.level_of([1.0, 4.0, 3.0]) - 0.5).abs() < 1e-12);
        assert!(s.level_of([1.0, 2.0, 11.1]) > 1.0);
    }

    #[test]
    fn sad_distributions_match_the_cohort_means() {
        let mut rng = stream(3, "t");
        let n = 20_000;
        let benign: f64 = (0..n).map(|_| draw_sad_mm(&mut rng, false, false)).sum::<f64>() / n as f64;
        let met: f64 = (0..n).map(|_| draw_sad_mm(&mut rng, true, false)).sum::<f64>() / n as f64;
        assert!((3.7..4.6).contains(&benign), "{benign}");
        assert!((9.5..12.0).contains(&met), "{met}");
    }
}
