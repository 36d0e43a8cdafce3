//! The procedural neck: per-seed anatomical parameters and the cross-sections of every structure
//! in an axial slice.
//!
//! Frame: LPS millimetres (+x patient left, +y posterior, +z superior). Heights are expressed as
//! `u = (z - z0) / height_mm`, 0 at the thoracic inlet (lung apices) and 1 at the skull base. The
//! neck may bend and rotate: structures are placed in a *neck frame* (X lateral, Y posterior) that
//! follows a cranio-caudal centreline `c(u)` and turns by `yaw(u)` (head tilt and rotation).
use crate::config::Scanner;
use crate::rng::{chance, normal, uni, PRng};
use crate::shapes::{Prim2, Tube};
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

/// Tissue classes of the phantom's tissue map (`u8`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum Tissue {
    /// Outside the patient.
    Air = 0,
    /// Subcutaneous and deep fat.
    Fat = 1,
    /// Skin.
    Skin = 2,
    /// Skeletal muscle (also tongue, esophageal wall, pharyngeal constrictors).
    Muscle = 3,
    /// Salivary glands (submandibular, parotid).
    Gland = 4,
    /// Thyroid.
    Thyroid = 5,
    /// Airway mucosa.
    Mucosa = 6,
    /// Laryngeal and tracheal cartilage.
    Cartilage = 7,
    /// Cortical bone.
    Cortical = 8,
    /// Bone marrow (cancellous bone).
    Marrow = 9,
    /// Teeth.
    Teeth = 10,
    /// Dental metal.
    Metal = 11,
    /// Arterial lumen (carotid, vertebral).
    Artery = 12,
    /// Jugular vein lumen.
    Vein = 13,
    /// Small vessels in fat.
    SmallVessel = 14,
    /// Cerebrospinal fluid.
    Csf = 15,
    /// Spinal cord.
    Cord = 16,
    /// Intervertebral disc.
    Disc = 17,
    /// Air in the airway.
    AirwayAir = 18,
    /// Lung parenchyma.
    Lung = 19,
}

impl Tissue {
    /// All classes, indexed by their `u8` value.
    pub const ALL: [Tissue; 20] = [
        Tissue::Air,
        Tissue::Fat,
        Tissue::Skin,
        Tissue::Muscle,
        Tissue::Gland,
        Tissue::Thyroid,
        Tissue::Mucosa,
        Tissue::Cartilage,
        Tissue::Cortical,
        Tissue::Marrow,
        Tissue::Teeth,
        Tissue::Metal,
        Tissue::Artery,
        Tissue::Vein,
        Tissue::SmallVessel,
        Tissue::Csf,
        Tissue::Cord,
        Tissue::Disc,
        Tissue::AirwayAir,
        Tissue::Lung,
    ];

    /// The class of a tissue-map value.
    pub fn from_u8(v: u8) -> Option<Tissue> {
        Self::ALL.get(v as usize).copied()
    }

    /// Tissues a node may never overlap: bone, air, lung, vessel lumen, organs.
    pub fn excludes_nodes(self) -> bool {
        !matches!(self, Tissue::Fat | Tissue::Muscle)
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Tissue::Air => "air",
            Tissue::Fat => "fat",
            Tissue::Skin => "skin",
            Tissue::Muscle => "muscle",
            Tissue::Gland => "gland",
            Tissue::Thyroid => "thyroid",
            Tissue::Mucosa => "mucosa",
            Tissue::Cartilage => "cartilage",
            Tissue::Cortical => "cortical_bone",
            Tissue::Marrow => "marrow",
            Tissue::Teeth => "teeth",
            Tissue::Metal => "metal",
            Tissue::Artery => "artery",
            Tissue::Vein => "vein",
            Tissue::SmallVessel => "small_vessel",
            Tissue::Csf => "csf",
            Tissue::Cord => "cord",
            Tissue::Disc => "disc",
            Tissue::AirwayAir => "airway_air",
            Tissue::Lung => "lung",
        }
    }
}

/// One painted structure kind: its tissue class and intensity model.
#[derive(Clone, Copy, Debug)]
pub struct StructInfo {
    /// Tissue class.
    pub tissue: Tissue,
    /// Mean HU (before blur and noise).
    pub hu: f64,
    /// Texture amplitude, HU.
    pub tex_hu: f64,
    /// Texture blob size, mm.
    pub tex_mm: f64,
}

/// Structure ids (indices into [`Anatomy::structs`]).
pub mod sid {
    pub const AIR: u16 = 0;
    pub const FAT: u16 = 1;
    pub const SKIN: u16 = 2;
    pub const MUSCLE: u16 = 3;
    pub const SUBMAND: u16 = 4;
    pub const PAROTID: u16 = 5;
    pub const THYROID: u16 = 6;
    pub const MUCOSA: u16 = 7;
    pub const CARTILAGE: u16 = 8;
    pub const CORTICAL: u16 = 9;
    pub const MARROW: u16 = 10;
    pub const TEETH: u16 = 11;
    pub const METAL: u16 = 12;
    pub const ARTERY: u16 = 13;
    pub const VEIN_R: u16 = 14;
    pub const VEIN_L: u16 = 15;
    pub const SMALL_ART: u16 = 16;
    pub const SMALL_VEIN: u16 = 17;
    pub const CSF: u16 = 18;
    pub const CORD: u16 = 19;
    pub const DISC: u16 = 20;
    pub const AIRWAY: u16 = 21;
    pub const LUNG: u16 = 22;
    pub const DEEP_FAT: u16 = 23;
    pub const TONGUE: u16 = 24;
    pub const CALC_CARTILAGE: u16 = 25;
    pub const EXT_VEIN: u16 = 26;
    pub const COUNT: usize = 27;
}

/// A small vessel with the structure id it is painted with.
#[derive(Clone, Debug)]
pub struct Vessel {
    /// Geometry.
    pub tube: Tube,
    /// Structure id ([`sid::SMALL_ART`] or [`sid::SMALL_VEIN`]).
    pub sid: u16,
}

/// Per-seed anatomy. All lengths in mm.
#[derive(Clone, Debug)]
pub struct Anatomy {
    /// z of the thoracic inlet (u = 0), LPS mm.
    pub z0: f64,
    /// Thoracic inlet to skull base, mm.
    pub height_mm: f64,
    /// Neck centre at the inlet (x, y).
    pub centre0: [f64; 2],
    neck_a: f64,
    neck_b: f64,
    sub_fat_mm: f64,
    shoulder_a: f64,
    face_b: f64,
    bend_mm: f64,
    lordosis_mm: f64,
    yaw_rad: f64,
    /// Left/right scale (index 0 = right, 1 = left).
    side_scale: [f64; 2],
    ijv_r: [f64; 2],
    ijv_flat: [f64; 2],
    cca_r: f64,
    bifurcation_u: f64,
    tort: [[f64; 4]; 2],
    vert_period_mm: f64,
    vert_phase_mm: f64,
    thyroid_scale: f64,
    hyoid_u: f64,
    mandible_u: f64,
    /// Small vessels in fat.
    pub vessels: Vec<Vessel>,
    /// Displacement by large nodes (empty until nodes are planned).
    pub mass: crate::mass::MassEffect,
    /// Dental metal centres (x, y, z), LPS mm.
    pub metal: Vec<[f64; 3]>,
    /// Structure table indexed by structure id.
    pub structs: Vec<StructInfo>,
}

#[inline]
fn smooth(e0: f64, e1: f64, x: f64) -> f64 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// 1 inside [a, b] with soft ramps of width `w` (in u).
#[inline]
fn band(u: f64, a: f64, b: f64, w: f64) -> f64 {
    smooth(a - w, a + w, u) * (1.0 - smooth(b - w, b + w, u))
}

impl Anatomy {
    /// Draws an anatomy whose z range fits the field of view `[z_lo, z_hi]`.
    pub fn draw(rng: &mut PRng, sc: &Scanner, z_lo: f64, z_hi: f64) -> Anatomy {
        let fov = z_hi - z_lo;
        let height_mm = (fov / uni(rng, 1.02, 1.10)).clamp(150.0, 260.0);
        let z0 = z_lo + uni(rng, 0.01, 0.06) * height_mm;
        let bone = sc.bone_factor();
        let fat_hu = uni(rng, -110.0, -85.0);
        let muscle_hu = uni(rng, 42.0, 60.0);
        let mut structs =
            vec![StructInfo { tissue: Tissue::Air, hu: -1000.0, tex_hu: 0.0, tex_mm: 1.0 }; sid::COUNT];
        let mut set = |id: u16, tissue: Tissue, hu: f64, tex_hu: f64, tex_mm: f64| {
            structs[id as usize] = StructInfo { tissue, hu, tex_hu, tex_mm };
        };
        set(sid::FAT, Tissue::Fat, fat_hu, 10.0, 2.5);
        set(sid::DEEP_FAT, Tissue::Fat, fat_hu + uni(rng, 0.0, 20.0), 14.0, 2.0);
        set(sid::SKIN, Tissue::Skin, uni(rng, 20.0, 50.0), 5.0, 2.0);
        set(sid::MUSCLE, Tissue::Muscle, muscle_hu, 6.0, 4.0);
        set(sid::TONGUE, Tissue::Muscle, muscle_hu + uni(rng, 0.0, 25.0), 10.0, 5.0);
        set(sid::SUBMAND, Tissue::Gland, uni(rng, 55.0, 90.0), 10.0, 2.5);
        set(sid::PAROTID, Tissue::Gland, uni(rng, -20.0, 25.0), 20.0, 2.0);
        set(sid::THYROID, Tissue::Thyroid, uni(rng, 105.0, 150.0), 10.0, 3.0);
        set(sid::MUCOSA, Tissue::Mucosa, uni(rng, 40.0, 80.0), 8.0, 2.0);
        set(sid::CARTILAGE, Tissue::Cartilage, uni(rng, 70.0, 110.0), 10.0, 2.0);
        // Partly calcified laryngeal cartilage: mottled (see `render::struct_hu`).
        set(
            sid::CALC_CARTILAGE,
            Tissue::Cartilage,
            uni(rng, 90.0, 160.0),
            uni(rng, 200.0, 700.0) * bone,
            2.0,
        );
        set(sid::CORTICAL, Tissue::Cortical, uni(rng, 900.0, 1400.0) * bone, 120.0, 2.0);
        set(sid::MARROW, Tissue::Marrow, uni(rng, 180.0, 320.0) * bone, 70.0, 1.5);
        set(sid::TEETH, Tissue::Teeth, uni(rng, 1800.0, 2600.0) * bone, 200.0, 2.0);
        set(sid::METAL, Tissue::Metal, 3071.0 + 3000.0, 0.0, 1.0);
        set(sid::ARTERY, Tissue::Artery, sc.artery_hu, 6.0, 6.0);
        set(sid::VEIN_R, Tissue::Vein, sc.vein_hu * uni(rng, 0.9, 1.05), 10.0 + 20.0 * rng_f(rng), 5.0);
        set(sid::VEIN_L, Tissue::Vein, sc.vein_hu * uni(rng, 0.85, 1.05), 10.0 + 20.0 * rng_f(rng), 5.0);
        set(sid::EXT_VEIN, Tissue::SmallVessel, sc.vein_hu * uni(rng, 0.7, 1.0), 8.0, 4.0);
        set(sid::SMALL_ART, Tissue::SmallVessel, sc.artery_hu * uni(rng, 0.75, 1.0), 8.0, 3.0);
        set(sid::SMALL_VEIN, Tissue::SmallVessel, sc.vein_hu.max(90.0) * uni(rng, 0.7, 1.0), 8.0, 3.0);
        set(sid::CSF, Tissue::Csf, uni(rng, 5.0, 15.0), 3.0, 3.0);
        set(sid::CORD, Tissue::Cord, uni(rng, 30.0, 40.0), 3.0, 3.0);
        set(sid::DISC, Tissue::Disc, uni(rng, 70.0, 100.0), 8.0, 2.0);
        set(sid::AIRWAY, Tissue::AirwayAir, -1000.0, 0.0, 1.0);
        set(sid::LUNG, Tissue::Lung, uni(rng, -880.0, -820.0), 40.0, 2.0);

        let neck_a = uni(rng, 50.0, 66.0);
        let neck_b = neck_a * uni(rng, 0.88, 1.02);
        let sub_fat_mm = uni(rng, 3.0, 14.0);
        let mut tort = [[0.0; 4]; 2];
        for t in &mut tort {
            *t = [uni(rng, 0.5, 3.5), uni(rng, 0.0, 2.0 * PI), uni(rng, 0.5, 3.0), uni(rng, 0.0, 2.0 * PI)];
        }
        // Right internal jugular is usually the larger one.
        let ijv_big = uni(rng, 5.5, 10.0);
        let ijv_small = ijv_big * uni(rng, 0.5, 1.0);
        let ijv_r = if chance(rng, 0.75) { [ijv_big, ijv_small] } else { [ijv_small, ijv_big] };
        let mut a = Anatomy {
            z0,
            height_mm,
            centre0: [uni(rng, -8.0, 8.0), uni(rng, -10.0, 10.0)],
            neck_a,
            neck_b,
            sub_fat_mm,
            shoulder_a: uni(rng, 150.0, 200.0),
            face_b: uni(rng, 80.0, 95.0),
            bend_mm: normal(rng) * 4.0,
            lordosis_mm: uni(rng, -14.0, 6.0),
            yaw_rad: normal(rng) * 0.08,
            side_scale: [uni(rng, 0.95, 1.05), uni(rng, 0.95, 1.05)],
            ijv_r,
            ijv_flat: [uni(rng, 0.5, 0.95), uni(rng, 0.5, 0.95)],
            cca_r: uni(rng, 3.0, 4.3) * (neck_a / 58.0).sqrt(),
            bifurcation_u: uni(rng, 0.45, 0.6),
            tort,
            vert_period_mm: height_mm * uni(rng, 0.085, 0.095),
            vert_phase_mm: uni(rng, 0.0, 20.0),
            thyroid_scale: uni(rng, 0.8, 1.3),
            hyoid_u: uni(rng, 0.5, 0.56),
            mandible_u: uni(rng, 0.56, 0.62),
            vessels: Vec::new(),
            mass: crate::mass::MassEffect::default(),
            metal: Vec::new(),
            structs,
        };
        a.draw_vessels(rng);
        if sc.dental_metal {
            a.draw_metal(rng);
        }
        a
    }

    /// Height fraction of a z.
    #[inline]
    pub fn u_of(&self, z: f64) -> f64 {
        (z - self.z0) / self.height_mm
    }

    /// z of a height fraction.
    #[inline]
    pub fn z_of(&self, u: f64) -> f64 {
        self.z0 + u * self.height_mm
    }

    /// Neck-frame (X, Y) at height `u` -> LPS (x, y).
    #[inline]
    pub fn to_world(&self, u: f64, p: [f64; 2]) -> [f64; 2] {
        let s = (PI * u.clamp(-0.2, 1.2)).sin();
        let cx = self.centre0[0] + self.bend_mm * s;
        let cy = self.centre0[1] + self.lordosis_mm * s;
        let th = self.yaw_rad * u.clamp(0.0, 1.2).powf(1.5);
        let side = if p[0] < 0.0 { self.side_scale[0] } else { self.side_scale[1] };
        let (x, y) = (p[0] * side, p[1]);
        let (sn, cs) = th.sin_cos();
        [cx + cs * x - sn * y, cy + sn * x + cs * y]
    }

    /// Rotation of the neck frame at `u` (added to every primitive's rotation).
    #[inline]
    pub fn yaw(&self, u: f64) -> f64 {
        self.yaw_rad * u.clamp(0.0, 1.2).powf(1.5)
    }

    /// Body outline semi-axes (lateral, AP) and centre Y offset at height `u`.
    pub fn body(&self, u: f64) -> ([f64; 2], f64) {
        let shoulder = smooth(0.16, -0.06, u);
        let face = smooth(0.5, 0.72, u);
        let a = self.neck_a + (self.shoulder_a - self.neck_a) * shoulder + (self.neck_a * 0.22) * face;
        let b = self.neck_b + 30.0 * shoulder + (self.face_b - self.neck_b) * face;
        let yc = 5.0 + 8.0 * shoulder - 14.0 * face;
        ([a, b], yc)
    }

    /// Common carotid / internal carotid centre (neck frame) and radius at `u`; side -1 = right.
    pub fn carotid(&self, u: f64, side: f64) -> ([f64; 2], f64) {
        let s = if side < 0.0 { 0 } else { 1 };
        let t = self.tort[s];
        let wig_x = t[0] * (u * 9.0 + t[1]).sin();
        let wig_y = t[2] * (u * 7.0 + t[3]).sin();
        let above = smooth(self.bifurcation_u, self.bifurcation_u + 0.08, u);
        let x = 17.0 + 6.0 * smooth(0.0, 0.4, u) + 3.0 * above + wig_x;
        let y = -4.0 + 9.0 * above + 6.0 * smooth(0.8, 1.0, u) + wig_y;
        let bulb = 1.0 + 0.35 * band(u, self.bifurcation_u - 0.02, self.bifurcation_u + 0.03, 0.02);
        let r = self.cca_r * bulb * (1.0 - 0.15 * above);
        ([side * x, y], r)
    }

    /// External carotid centre and radius (exists above the bifurcation).
    pub fn ext_carotid(&self, u: f64, side: f64) -> Option<([f64; 2], f64)> {
        if u < self.bifurcation_u || u > 0.92 {
            return None;
        }
        let (c, r) = self.carotid(self.bifurcation_u, side);
        let d = u - self.bifurcation_u;
        let x = c[0].abs() - 3.0 + 14.0 * d;
        let y = c[1] - 5.0 - 10.0 * d;
        Some(([side * x, y], r * 0.7 * (1.0 - 0.5 * d)))
    }

    /// Internal jugular vein centre, semi-axes and rotation at `u` (neck frame).
    pub fn ijv(&self, u: f64, side: f64) -> ([f64; 2], [f64; 2], f64) {
        let s = if side < 0.0 { 0 } else { 1 };
        let (cc, cr) = self.carotid(u, side);
        let r = self.ijv_r[s] * (1.0 + 0.25 * smooth(0.3, 0.0, u) + 0.2 * band(u, 0.85, 0.97, 0.03));
        let flat = self.ijv_flat[s] + (1.0 - self.ijv_flat[s]) * 0.5 * (1.0 + (u * 11.0 + s as f64).sin());
        let off = cr + r / flat.sqrt() + 1.5;
        let post = 6.0 * smooth(0.8, 1.0, u);
        let c = [cc[0] + side * off * 0.93, cc[1] - off * 0.25 + post];
        ([c[0], c[1]], [r / flat.sqrt(), r * flat.sqrt()], side * 0.5)
    }

    /// Sternocleidomastoid centre, semi-axes and rotation (neck frame).
    pub fn scm(&self, u: f64, side: f64) -> ([f64; 2], [f64; 2], f64) {
        let ([a, b], yc) = self.body(u.max(0.12));
        // Angle around the neck from the anterior midline: sternal head anterior, mastoid posterior.
        let phi = (30.0 + 85.0 * u.clamp(0.0, 1.0)).to_radians();
        let depth = self.sub_fat_mm + 2.0 + 7.0;
        let x = (a - depth) * phi.sin();
        let y = yc - (b - depth) * phi.cos();
        let thick = 5.0 + 3.0 * band(u, 0.2, 0.75, 0.1);
        let wide = 9.0 + 6.0 * band(u, 0.15, 0.8, 0.1);
        // Long axis tangent to the outline.
        let rot = side * phi;
        ([side * x, y], [wide, thick], rot)
    }

    fn draw_vessels(&mut self, rng: &mut PRng) {
        // Small arteries and veins meandering through the fat, mostly cranio-caudal, some oblique.
        let n = 18 + (rng_f(rng) * 22.0) as usize;
        for _ in 0..n {
            let u0 = uni(rng, 0.0, 0.85);
            let len_u = uni(rng, 0.08, 0.35);
            let side = if chance(rng, 0.5) { -1.0 } else { 1.0 };
            let ang = uni(rng, -0.2, 2.6);
            let ([a, b], yc) = self.body(u0 + 0.5 * len_u);
            let rad = uni(rng, 0.35, 0.85);
            let mut p = [side * a * rad * ang.sin(), yc - b * rad * ang.cos()];
            let r0 = uni(rng, 0.5, 1.5);
            let oblique = chance(rng, 0.3);
            let steps = 10;
            let mut pts = Vec::with_capacity(steps + 1);
            let mut radius = Vec::with_capacity(steps + 1);
            let mut dir = [normal(rng) * 0.8, normal(rng) * 0.8];
            for s in 0..=steps {
                let u = u0 + len_u * s as f64 / steps as f64;
                let w = self.to_world(u, p);
                pts.push([w[0], w[1], self.z_of(u)]);
                radius.push(r0 * uni(rng, 0.8, 1.1));
                let dz = len_u * self.height_mm / steps as f64;
                let k = if oblique { 1.5 } else { 0.35 };
                dir[0] = 0.7 * dir[0] + 0.3 * normal(rng);
                dir[1] = 0.7 * dir[1] + 0.3 * normal(rng);
                p[0] += dir[0] * k * dz * 0.3;
                p[1] += dir[1] * k * dz * 0.3;
            }
            let sid = if chance(rng, 0.4) { sid::SMALL_ART } else { sid::SMALL_VEIN };
            self.vessels.push(Vessel { tube: Tube { pts, radius }, sid });
        }
        // External jugular veins: superficial, on the sternocleidomastoid.
        for side in [-1.0, 1.0] {
            if chance(rng, 0.85) {
                let r0 = uni(rng, 1.2, 3.0);
                let mut pts = Vec::new();
                let mut radius = Vec::new();
                for s in 0..=12 {
                    let u = 0.08 + 0.7 * s as f64 / 12.0;
                    let ([a, b], yc) = self.body(u);
                    let phi = (75.0 + 25.0 * u).to_radians();
                    let d = self.sub_fat_mm * 0.6 + 2.5;
                    let q = [side * (a - d) * phi.sin(), yc - (b - d) * phi.cos()];
                    let w = self.to_world(u, q);
                    pts.push([w[0], w[1], self.z_of(u)]);
                    radius.push(r0 * (0.8 + 0.3 * (u * 13.0).sin().abs()));
                }
                self.vessels.push(Vessel { tube: Tube { pts, radius }, sid: sid::EXT_VEIN });
            }
        }
    }

    fn draw_metal(&mut self, rng: &mut PRng) {
        let n = 1 + (rng_f(rng) * 4.0) as usize;
        for _ in 0..n {
            let u = self.mandible_u + uni(rng, 0.09, 0.16);
            let ang = uni(rng, -1.3, 1.3);
            let q = [38.0 * ang.sin(), -12.0 - 44.0 * ang.cos()];
            let w = self.to_world(u, q);
            self.metal.push([w[0], w[1], self.z_of(u)]);
        }
    }

    /// All 2D structures of the axial slice at `z`, in paint order (later ones overwrite), each
    /// with its structure id. Small vessels are painted separately (only over fat).
    pub fn slice(&self, z: f64) -> Vec<(Prim2, u16)> {
        let u = self.u_of(z);
        let mut out: Vec<(Prim2, u16)> = Vec::with_capacity(96);
        let yaw = self.yaw(u);
        // Place a neck-frame primitive.
        let mut put = |mut p: Prim2, id: u16| {
            let c = self.to_world(u, p.c);
            p.c = c;
            p.rot += yaw;
            out.push((p, id));
        };
        if !(-0.25..=1.15).contains(&u) {
            return out;
        }
        // Body, skin, subcutaneous fat.
        let ([a, b], yc) = self.body(u);
        put(Prim2::ellipse([0.0, yc], [a, b], 0.0).power(2.4), sid::SKIN);
        put(Prim2::ellipse([0.0, yc], [a - 2.0, b - 2.0], 0.0).power(2.4), sid::FAT);
        let f = self.sub_fat_mm;
        let (ia, ib) = (a - 2.0 - f, b - 2.0 - f);
        put(Prim2::ellipse([0.0, yc], [ia, ib], 0.0).power(2.4), sid::DEEP_FAT);

        let shoulder = smooth(0.16, -0.06, u);
        // Posterior muscle mass: trapezius (outer), splenius/semispinalis, levator scapulae.
        // Rotated by pi so that the cut keeps the posterior part.
        put(
            Prim2::shell([0.0, yc + 4.0], [ia, ib], PI, 7.0 + 4.0 * shoulder).power(2.4).cut(-ib * 0.05),
            sid::MUSCLE,
        );
        for side in [-1.0f64, 1.0] {
            put(Prim2::ellipse([side * 12.0, yc + ib * 0.55], [11.0, ib * 0.32], side * 0.2), sid::MUSCLE);
            put(
                Prim2::ellipse(
                    [side * (ia * 0.5), yc + ib * 0.35],
                    [9.0 + 5.0 * shoulder, ib * 0.27],
                    side * 0.5,
                ),
                sid::MUSCLE,
            );
            // Scalenes (lower neck), lateral to the vertebrae.
            if u < 0.5 {
                put(Prim2::ellipse([side * 29.0, 10.0], [6.0, 8.0], side * 0.4), sid::MUSCLE);
            }
        }
        // Vertebral column: body or disc, canal with cord, posterior arch, transverse processes.
        if u < 0.97 {
            let zc = z - self.z0 + self.vert_phase_mm;
            let ph = zc.rem_euclid(self.vert_period_mm) / self.vert_period_mm;
            let disc = ph > 0.78;
            let arch = (0.15..0.7).contains(&ph);
            let vb = [0.0, 9.0];
            put(Prim2::ellipse([0.0, 20.0], [28.0, 22.0], 0.0), sid::MUSCLE);
            // Longus colli in front of the column.
            for side in [-1.0f64, 1.0] {
                put(Prim2::ellipse([side * 7.0, -2.5], [6.0, 3.5], 0.0), sid::MUSCLE);
            }
            if disc {
                put(Prim2::ellipse(vb, [10.5, 8.0], 0.0), sid::DISC);
            } else {
                put(Prim2::ellipse(vb, [10.5, 8.0], 0.0), sid::CORTICAL);
                put(Prim2::ellipse(vb, [9.2, 6.8], 0.0), sid::MARROW);
            }
            if arch {
                put(Prim2::ellipse([0.0, 25.0], [14.0, 11.0], 0.0), sid::CORTICAL);
                put(Prim2::ellipse([0.0, 40.0], [3.0, 8.0], 0.0), sid::CORTICAL);
                put(Prim2::ellipse([0.0, 40.0], [1.8, 6.5], 0.0), sid::MARROW);
                for side in [-1.0f64, 1.0] {
                    put(Prim2::ellipse([side * 19.0, 10.0], [7.5, 4.0], 0.0), sid::CORTICAL);
                }
            }
            put(Prim2::ellipse([0.0, 25.0], [10.5, 7.5], 0.0), sid::CSF);
            put(Prim2::ellipse([0.0, 25.0], [5.5, 4.0], 0.0), sid::CORD);
            // Vertebral arteries (in the transverse foramina).
            for side in [-1.0f64, 1.0] {
                put(Prim2::circle([side * 19.5, 10.5], 2.0), sid::ARTERY);
            }
        }
        // Shoulder girdle: clavicles and lung apices at the bottom.
        if u < 0.09 {
            for side in [-1.0f64, 1.0] {
                let lr = 30.0 * smooth(0.09, -0.12, u);
                if lr > 1.0 {
                    put(
                        Prim2::ellipse([side * (36.0 + lr * 0.35), 18.0], [lr * 0.85, lr], side * 0.3),
                        sid::LUNG,
                    );
                }
                let cz = band(u, -0.06, 0.05, 0.005);
                if cz > 0.5 {
                    let cx = side * (22.0 + 40.0 * (0.05 - u).clamp(0.0, 0.1) * 10.0 * 0.5);
                    put(
                        Prim2::ellipse([cx + side * 30.0, -30.0 - 8.0], [32.0, 6.5], side * 0.35),
                        sid::CORTICAL,
                    );
                    put(
                        Prim2::ellipse([cx + side * 30.0, -30.0 - 8.0], [30.0, 4.5], side * 0.35),
                        sid::MARROW,
                    );
                }
            }
        }
        // Airway, esophagus, larynx, thyroid, strap muscles.
        if u < 0.3 {
            put(Prim2::ellipse([2.5, -7.0], [8.5, 4.5], 0.0), sid::MUSCLE); // esophagus
            put(Prim2::ellipse([0.0, -20.0], [10.5, 9.5], 0.0), sid::MUCOSA);
            put(Prim2::shell([0.0, -20.0], [10.5, 9.5], 0.0, 1.5).cut(4.0), sid::CARTILAGE);
            put(Prim2::ellipse([0.0, -20.0], [8.5, 7.5], 0.0), sid::AIRWAY);
            let ts = self.thyroid_scale;
            let tb = band(u, 0.06, 0.28, 0.03);
            if tb > 0.3 {
                for side in [-1.0f64, 1.0] {
                    put(
                        Prim2::ellipse([side * 15.5, -17.0], [6.5 * ts * tb, 10.0 * ts * tb], side * -0.35),
                        sid::THYROID,
                    );
                }
                if band(u, 0.12, 0.18, 0.01) > 0.5 {
                    put(Prim2::ellipse([0.0, -31.0], [11.0, 2.6 * ts], 0.0), sid::THYROID);
                }
            }
        } else if u < self.hyoid_u {
            // Larynx: thyroid and cricoid cartilage, laryngeal airway.
            let f = (u - 0.3) / (self.hyoid_u - 0.3);
            put(Prim2::ellipse([0.0, -4.0], [14.0 + 4.0 * f, 5.0], 0.0), sid::MUSCLE); // hypopharynx
            put(Prim2::ellipse([0.0, -22.0], [14.0 + 3.0 * f, 13.0], 0.0), sid::MUCOSA);
            if f < 0.15 {
                put(Prim2::shell([0.0, -20.0], [11.0, 11.0], 0.0, 2.5), sid::CALC_CARTILAGE);
            } else {
                put(
                    Prim2::shell([0.0, -19.0], [17.0 + 2.0 * f, 16.0], 0.0, 2.0).cut(2.0).power(1.6),
                    sid::CALC_CARTILAGE,
                );
            }
            put(Prim2::ellipse([0.0, -22.0], [5.0 + 4.0 * f, 6.5], 0.0), sid::AIRWAY);
            put(Prim2::ellipse([0.0, -4.0], [9.0 * f, 1.8 * f], 0.0), sid::AIRWAY);
        // piriform/hypopharynx air
        } else if u < 0.92 {
            // Pharynx with constrictor wall and air.
            let f = (u - self.hyoid_u) / (0.92 - self.hyoid_u);
            put(Prim2::ellipse([0.0, -6.0], [16.0 + 4.0 * f, 9.0], 0.0), sid::MUSCLE);
            put(Prim2::ellipse([0.0, -8.0 + 2.0 * f], [10.0 + 5.0 * f, 3.5 + 2.0 * f], 0.0), sid::AIRWAY);
        }
        // Strap muscles in front of larynx and thyroid.
        if u < self.hyoid_u {
            for side in [-1.0f64, 1.0] {
                put(
                    Prim2::ellipse([side * 10.0, -34.0 + 2.0 * shoulder], [9.0, 2.6], side * -0.25),
                    sid::MUSCLE,
                );
            }
        }
        // Hyoid.
        if (u - self.hyoid_u).abs() * self.height_mm < 2.5 {
            put(Prim2::shell([0.0, -20.0], [20.0, 20.0], 0.0, 3.0).cut(-4.0), sid::CORTICAL);
        }
        // Floor of mouth, tongue, submandibular glands, mandible, teeth.
        let mu = self.mandible_u;
        if u > self.hyoid_u - 0.02 && u < mu + 0.2 {
            let f = ((u - self.hyoid_u) / (mu + 0.2 - self.hyoid_u)).clamp(0.0, 1.0);
            put(Prim2::ellipse([0.0, -33.0], [20.0 + 6.0 * f, 17.0 + 3.0 * f], 0.0), sid::TONGUE);
            for side in [-1.0f64, 1.0] {
                // Digastric anterior bellies.
                put(Prim2::ellipse([side * 9.0, -52.0 + 6.0 * f], [4.0, 3.0], 0.0), sid::MUSCLE);
            }
        }
        let sm = band(u, self.hyoid_u - 0.05, mu + 0.05, 0.02);
        if sm > 0.3 {
            for side in [-1.0f64, 1.0] {
                put(Prim2::ellipse([side * 31.0, -30.0], [11.0 * sm, 9.0 * sm], side * 0.4), sid::SUBMAND);
            }
        }
        if u > mu && u < mu + 0.24 {
            let f = (u - mu) / 0.24;
            let ar = [43.0 + 6.0 * f, 52.0];
            put(Prim2::shell([0.0, -6.0], ar, 0.0, 9.0).cut(-14.0 + 10.0 * f), sid::CORTICAL);
            put(
                Prim2::shell([0.0, -6.0], [ar[0] - 2.0, ar[1] - 2.0], 0.0, 5.0).cut(-14.0 + 10.0 * f),
                sid::MARROW,
            );
            if f > 0.45 && f < 0.85 {
                // Alveolar ridge with teeth.
                put(
                    Prim2::shell([0.0, -6.0], [ar[0] - 1.5, ar[1] - 1.5], 0.0, 7.0).cut(-20.0).power(2.0),
                    sid::TEETH,
                );
            }
        }
        // Mandibular rami, masseter and pterygoids, parotid glands.
        if u > mu + 0.04 && u < 0.93 {
            for side in [-1.0f64, 1.0] {
                put(Prim2::ellipse([side * 50.0, 4.0], [10.0, 20.0], side * 0.2), sid::MUSCLE); // masseter
                put(Prim2::ellipse([side * 31.0, 2.0], [6.0, 13.0], side * -0.3), sid::MUSCLE); // pterygoid
                put(Prim2::ellipse([side * 43.0, 3.0], [3.2, 13.0], side * 0.2), sid::CORTICAL);
                put(Prim2::ellipse([side * 43.0, 3.0], [1.6, 11.0], side * 0.2), sid::MARROW);
            }
        }
        let pb = band(u, mu + 0.06, 0.95, 0.03);
        if pb > 0.3 {
            for side in [-1.0f64, 1.0] {
                put(Prim2::ellipse([side * 52.0, 22.0], [11.0 * pb, 15.0 * pb], side * 0.4), sid::PAROTID);
            }
        }
        if u > mu + 0.17 && u < mu + 0.26 {
            // Maxillary alveolus and teeth.
            put(Prim2::shell([0.0, -12.0], [36.0, 46.0], 0.0, 9.0).cut(-18.0), sid::CORTICAL);
            put(Prim2::shell([0.0, -12.0], [35.0, 45.0], 0.0, 7.0).cut(-20.0), sid::TEETH);
        }
        // Mid-face: nasal cavity and maxillary sinuses (air in bony walls) above the palate.
        if u > mu + 0.24 {
            let f = smooth(mu + 0.24, mu + 0.3, u);
            put(Prim2::ellipse([0.0, -38.0], [9.0 * f, 16.0 * f], 0.0), sid::CORTICAL);
            put(Prim2::ellipse([0.0, -38.0], [7.5 * f, 14.5 * f], 0.0), sid::AIRWAY);
            put(Prim2::ellipse([0.0, -38.0], [0.8, 14.0 * f], 0.0), sid::CORTICAL); // septum
            for side in [-1.0f64, 1.0] {
                put(Prim2::ellipse([side * 24.0, -36.0], [13.0 * f, 15.0 * f], side * 0.2), sid::CORTICAL);
                put(Prim2::ellipse([side * 24.0, -36.0], [11.5 * f, 13.5 * f], side * 0.2), sid::AIRWAY);
            }
        }
        // Skull base: mastoids, clivus, occiput.
        if u > 0.9 {
            let f = smooth(0.9, 1.05, u);
            for side in [-1.0f64, 1.0] {
                put(Prim2::ellipse([side * 50.0, 25.0], [14.0 * f, 14.0 * f], 0.0), sid::CORTICAL);
                put(Prim2::ellipse([side * 50.0, 25.0], [10.0 * f, 10.0 * f], 0.0), sid::MARROW);
            }
            put(Prim2::ellipse([0.0, 5.0], [14.0 * f, 12.0 * f], 0.0), sid::CORTICAL);
            put(
                Prim2::shell([0.0, yc + 8.0], [ia - 6.0, ib - 6.0], 0.0, 6.0 * f)
                    .cut(-ib * 0.1 - 60.0 * (1.0 - f)),
                sid::CORTICAL,
            );
        }
        // Great vessels and sternocleidomastoid (painted last: they displace everything else).
        for side in [-1.0f64, 1.0] {
            if u < 0.97 {
                let (vc, vr, vrot) = self.ijv(u, side);
                put(Prim2::ellipse(vc, vr, vrot), if side < 0.0 { sid::VEIN_R } else { sid::VEIN_L });
                let (cc, cr) = self.carotid(u, side);
                put(Prim2::circle(cc, cr), sid::ARTERY);
                if let Some((ec, er)) = self.ext_carotid(u, side) {
                    put(Prim2::circle(ec, er), sid::ARTERY);
                }
            }
            if u > -0.05 && u < 0.93 {
                let (sc, sr, srot) = self.scm(u, side);
                put(Prim2::ellipse(sc, sr, srot), sid::MUSCLE);
            }
        }
        // Dental metal: small dense blobs.
        for m in &self.metal {
            if (m[2] - z).abs() < 2.5 {
                out.push((Prim2::circle([m[0], m[1]], 2.2), sid::METAL));
            }
        }
        out
    }
}

fn rng_f(rng: &mut PRng) -> f64 {
    use rand::Rng;
    rng.random::<f64>()
}
