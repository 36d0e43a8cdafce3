//! What to generate ([`PhantomConfig`]) and the per-seed scanner draw ([`Scanner`]).
use crate::randomization::Randomization;
use crate::rng::{chance, uni, PRng};
use crate::PhantomError;
use serde::{Deserialize, Serialize};

/// Size presets. Spacing and matrix ranges are drawn per seed inside the preset unless fixed in
/// [`PhantomConfig`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PhantomSize {
    /// CI-sized: 128 x 128 in-plane at 1.5-1.7 mm, 2.5 mm slices (~80 slices).
    #[default]
    Small,
    /// Clinical: 512 x 512, 0.4-0.8 mm in-plane, 0.75-3 mm slices (FOV / thickness slices).
    Full,
    /// Training set: 0.8-1.0 mm in-plane over a ~200-240 mm FOV, 1.0-2.0 mm slices.
    Train,
}

impl std::str::FromStr for PhantomSize {
    type Err = PhantomError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "small" => Ok(PhantomSize::Small),
            "full" => Ok(PhantomSize::Full),
            "train" => Ok(PhantomSize::Train),
            _ => Err(PhantomError::InvalidConfig(format!("unknown size {s:?} (small|full|train)"))),
        }
    }
}

/// What to generate. Everything not fixed here is drawn from the seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PhantomConfig {
    /// Size preset.
    pub size: PhantomSize,
    /// Fixed in-plane pixel spacing, mm (default: drawn from the preset's range).
    pub in_plane_mm: Option<f64>,
    /// Fixed slice thickness = slice spacing, mm (default: drawn).
    pub slice_mm: Option<f64>,
    /// Fixed in-plane matrix (square), pixels (default: from the preset).
    pub matrix: Option<usize>,
    /// Fixed slice count (default: field of view / slice thickness).
    pub slices: Option<usize>,
    /// Inclusive range of the number of nodes per scan.
    pub node_count: [usize; 2],
    /// Allow scanner artefacts (dental metal streaks, shoulder noise).
    pub artifacts: bool,
    /// Domain randomization (default: off, the engine's own simulator only). Missing in older
    /// configs, which then read as off.
    #[serde(default)]
    pub randomization: Randomization,
}

impl PhantomConfig {
    /// The defaults of a preset.
    pub fn preset(size: PhantomSize) -> Self {
        PhantomConfig {
            size,
            in_plane_mm: None,
            slice_mm: None,
            matrix: None,
            slices: None,
            node_count: [10, 40],
            artifacts: true,
            randomization: Randomization::off(),
        }
    }

    /// Checks ranges; returns a typed error naming the bad value.
    pub fn validate(&self) -> Result<(), PhantomError> {
        let bad = |m: String| Err(PhantomError::InvalidConfig(m));
        if let Some(s) = self.in_plane_mm {
            if !(0.2..=5.0).contains(&s) {
                return bad(format!("in-plane spacing {s} mm outside 0.2..5"));
            }
        }
        if let Some(s) = self.slice_mm {
            if !(0.3..=6.0).contains(&s) {
                return bad(format!("slice thickness {s} mm outside 0.3..6"));
            }
        }
        if let Some(m) = self.matrix {
            if !(32..=1024).contains(&m) {
                return bad(format!("matrix {m} outside 32..1024"));
            }
        }
        if let Some(n) = self.slices {
            if !(8..=2000).contains(&n) {
                return bad(format!("slice count {n} outside 8..2000"));
            }
        }
        let [a, b] = self.node_count;
        if a > b || b > 200 {
            return bad(format!("node count range {a}..={b} invalid (at most 200)"));
        }
        self.randomization.validate()
    }
}

impl Default for PhantomConfig {
    fn default() -> Self {
        Self::preset(PhantomSize::Small)
    }
}

/// Scanner and protocol of one phantom (drawn per seed).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scanner {
    /// In-plane pixel spacing, mm.
    pub in_plane_mm: f64,
    /// Slice thickness = spacing, mm.
    pub slice_mm: f64,
    /// In-plane matrix.
    pub matrix: usize,
    /// Number of slices.
    pub slices: usize,
    /// Tube voltage, kV (changes iodine and bone contrast).
    pub kvp: f64,
    /// Arterial lumen HU at this kVp/bolus.
    pub artery_hu: f64,
    /// Jugular vein lumen HU (can be near soft tissue when poorly opacified).
    pub vein_hu: f64,
    /// Noise standard deviation in soft tissue at mid-neck, HU.
    pub noise_hu: f64,
    /// Gaussian point-spread sigma in-plane, mm (reconstruction kernel sharpness).
    pub psf_sigma_mm: f64,
    /// Dental metal present (streak artefacts in the upper slices).
    pub dental_metal: bool,
}

impl Scanner {
    /// Draws the protocol for a config.
    pub fn draw(cfg: &PhantomConfig, rng: &mut PRng) -> Scanner {
        let (ip, sl, matrix) = match cfg.size {
            PhantomSize::Small => (uni(rng, 1.5, 1.7), 2.5, 128usize),
            PhantomSize::Full => {
                let ip = uni(rng, 0.4, 0.8);
                let sl = *[0.75, 1.0, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0].get(rng_index(rng, 8)).unwrap_or(&1.0);
                (ip, sl, 512)
            }
            PhantomSize::Train => {
                let ip = uni(rng, 0.8, 1.0);
                let sl = *[1.0, 1.25, 1.5, 2.0].get(rng_index(rng, 4)).unwrap_or(&1.5);
                let fov = uni(rng, 200.0, 240.0);
                (ip, sl, (fov / ip).round() as usize)
            }
        };
        let in_plane_mm = cfg.in_plane_mm.unwrap_or(ip);
        let slice_mm = cfg.slice_mm.unwrap_or(sl);
        let matrix = cfg.matrix.unwrap_or(matrix);
        let fov_z = uni(rng, 190.0, 225.0);
        let slices = cfg.slices.unwrap_or(((fov_z / slice_mm).round() as usize).max(8));
        let kvp: f64 = *[80.0, 100.0, 120.0, 120.0, 120.0, 140.0].get(rng_index(rng, 6)).unwrap_or(&120.0);
        // Iodine contrast rises as kVp falls (k-edge closer to the mean photon energy).
        let iodine = 120.0 / kvp;
        let artery_hu = uni(rng, 170.0, 300.0) * iodine.powf(0.8);
        let vein_hu = if chance(rng, 0.2) {
            uni(rng, 75.0, 115.0) // poorly opacified: close to node/muscle HU
        } else {
            uni(rng, 0.6, 1.0) * artery_hu
        };
        let noise_hu = uni(rng, 6.0, 16.0) * (120.0 / kvp).sqrt();
        let psf_sigma_mm = uni(rng, 0.35, 0.7);
        let dental_metal = cfg.artifacts && chance(rng, 0.35);
        Scanner {
            in_plane_mm,
            slice_mm,
            matrix,
            slices,
            kvp,
            artery_hu,
            vein_hu,
            noise_hu,
            psf_sigma_mm,
            dental_metal,
        }
    }

    /// Bone/calcium contrast relative to 120 kV.
    pub fn bone_factor(&self) -> f64 {
        (120.0 / self.kvp).powf(0.35)
    }
}

fn rng_index(rng: &mut PRng, n: usize) -> usize {
    use rand::Rng;
    rng.random_range(0..n)
}
