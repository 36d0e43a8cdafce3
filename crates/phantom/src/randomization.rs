//! Domain randomization of the data engine ([`Randomization`]).
//!
//! A network trained on one simulator learns that simulator: its node HU model, its shapes, its
//! placement rules and its scanner. Randomization widens every one of those far beyond what any
//! single simulator (or scanner) produces, so that what stays constant across the training set is
//! what makes a node a node: a solid, bounded, roughly ovoid structure in the fat planes beside
//! vessels and muscles — not a particular HU, texture, edge or neighbourhood. Node-like
//! confounders (vessel cross-sections, muscle bellies, gland lobules, tubes, bowel loops) drawn
//! from the *same* appearance ranges and labelled background make shape and context, not
//! intensity, the evidence.
//!
//! Five components, each switchable for ablations:
//!
//! | component | what it widens |
//! |---|---|
//! | [`Appearance`] | node mean HU, texture, necrotic/cystic cores, fatty hila, calcifications, edge |
//! | [`ShapeRand`] | shape family, 3D orientation, size (3-40 mm short axis, many large ones) |
//! | [`Placement`] | tissue context: fat planes, against vessels, muscles and glands, embedded, clusters |
//! | [`BackgroundRand`] | contrast phase, kernel, noise grain, slice thickness, per-tissue HU |
//! | [`Confounders`] | node-like background structures, label 0 |
//!
//! The [`Randomization::off`] preset (the default) changes nothing: the engine draws exactly what
//! it drew before randomization existed, byte for byte (no component draws from the engine's
//! existing random streams; each has its own named stream, [`crate::rng::stream`]).
//! [`Randomization::wide`] switches every component on. All ranges are stored in the config (also
//! when a component is off), so a dataset's `nodal_dataset.json` names everything that was drawn.
use crate::PhantomError;
use serde::{Deserialize, Serialize};

/// A closed range `[lo, hi]` of a drawn quantity.
pub type Range = [f64; 2];

/// The randomization of one engine run (see the module docs). Part of [`crate::PhantomConfig`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Randomization {
    /// Node intensity, texture and internal structure.
    pub appearance: Appearance,
    /// Node shape family, orientation and size.
    pub shape: ShapeRand,
    /// Where nodes go.
    pub placement: Placement,
    /// Scanner and tissue appearance of the whole scan.
    pub background: BackgroundRand,
    /// Node-like structures labelled background.
    pub confounders: Confounders,
}

impl Randomization {
    /// Nothing randomized: the engine's own simulator only (the default).
    pub fn off() -> Self {
        Self::default()
    }

    /// Every component on, with the default (wide) ranges.
    pub fn wide() -> Self {
        let mut r = Self::default();
        r.appearance.enabled = true;
        r.shape.enabled = true;
        r.placement.enabled = true;
        r.background.enabled = true;
        r.confounders.enabled = true;
        r
    }

    /// A named preset: `off` or `wide`.
    pub fn preset(name: &str) -> Result<Self, PhantomError> {
        name.parse()
    }

    /// True when any component is on.
    pub fn any(&self) -> bool {
        self.appearance.enabled
            || self.shape.enabled
            || self.placement.enabled
            || self.background.enabled
            || self.confounders.enabled
    }

    /// Reads a randomization config from a JSON file (missing fields take their defaults).
    pub fn from_json_file(path: &std::path::Path) -> Result<Self, PhantomError> {
        let bytes = std::fs::read(path).map_err(|e| PhantomError::io(path, e))?;
        let r: Randomization = serde_json::from_slice(&bytes)
            .map_err(|e| PhantomError::Json { path: path.to_path_buf(), source: e })?;
        r.validate()?;
        Ok(r)
    }

    /// Checks every range (lo <= hi, finite, physically sensible bounds).
    pub fn validate(&self) -> Result<(), PhantomError> {
        let a = &self.appearance;
        let s = &self.shape;
        let p = &self.placement;
        let b = &self.background;
        let c = &self.confounders;
        let ranges: [(&str, Range, f64, f64); 24] = [
            ("appearance.mean_hu", a.mean_hu, -100.0, 400.0),
            ("appearance.texture_hu", a.texture_hu, 0.0, 200.0),
            ("appearance.texture_scale_mm", a.texture_scale_mm, 0.2, 50.0),
            ("appearance.heterogeneity_hu", a.heterogeneity_hu, 0.0, 200.0),
            ("appearance.heterogeneity_scale_mm", a.heterogeneity_scale_mm, 0.5, 100.0),
            ("appearance.core_fraction", a.core_fraction, 0.05, 0.95),
            ("appearance.core_hu", a.core_hu, -200.0, 200.0),
            ("appearance.rim_hu", a.rim_hu, -200.0, 300.0),
            ("appearance.hilum_hu", a.hilum_hu, -300.0, 0.0),
            ("appearance.calcification_hu", a.calcification_hu, 100.0, 3000.0),
            ("appearance.calcification_radius_mm", a.calcification_radius_mm, 0.1, 5.0),
            ("appearance.edge_sigma_mm", a.edge_sigma_mm, 0.0, 5.0),
            ("appearance.capsule_mm", a.capsule_mm, 0.0, 5.0),
            ("appearance.capsule_hu", a.capsule_hu, -200.0, 200.0),
            ("shape.short_axis_mm", s.short_axis_mm, 1.0, 80.0),
            ("shape.axial_aspect", s.axial_aspect, 0.1, 1.0),
            ("shape.elongation", s.elongation, 0.2, 6.0),
            ("placement.cluster_size", p.cluster_size, 2.0, 8.0),
            ("background.vessel_hu", b.vessel_hu, -50.0, 800.0),
            ("background.blur_sigma_mm", b.blur_sigma_mm, 0.0, 5.0),
            ("background.noise_hu", b.noise_hu, 0.0, 200.0),
            ("background.noise_grain_mm", b.noise_grain_mm, 0.0, 10.0),
            ("background.slice_thickness_mm", b.slice_thickness_mm, 0.0, 10.0),
            ("confounders.size_mm", c.size_mm, 1.0, 80.0),
        ];
        for (name, r, lo, hi) in ranges {
            if !(r[0].is_finite() && r[1].is_finite() && r[0] <= r[1] && r[0] >= lo && r[1] <= hi) {
                return Err(PhantomError::InvalidConfig(format!(
                    "randomization {name} = {r:?}: need lo <= hi within {lo}..{hi}"
                )));
            }
        }
        let probs = [
            ("appearance.necrosis_p", a.necrosis_p),
            ("appearance.cyst_p", a.cyst_p),
            ("appearance.hilum_p", a.hilum_p),
            ("appearance.calcification_p", a.calcification_p),
            ("appearance.capsule_p", a.capsule_p),
            ("shape.large_fraction", s.large_fraction),
            ("placement.cluster_p", p.cluster_p),
            ("placement.embedded_max_fraction", p.embedded_max_fraction),
            ("background.sharpen_p", b.sharpen_p),
            ("confounders.bowel_p", c.bowel_p),
        ];
        for (name, v) in probs {
            if !(0.0..=1.0).contains(&v) {
                return Err(PhantomError::InvalidConfig(format!("randomization {name} = {v}: need 0..1")));
            }
        }
        if !(0.0..=300.0).contains(&b.tissue_shift_hu) {
            return Err(PhantomError::InvalidConfig(format!(
                "randomization background.tissue_shift_hu = {}: need 0..300",
                b.tissue_shift_hu
            )));
        }
        if c.count[0] > c.count[1] || c.count[1] > 200 {
            return Err(PhantomError::InvalidConfig(format!(
                "randomization confounders.count = {:?}: need lo <= hi <= 200",
                c.count
            )));
        }
        let weights: [(&str, &[f64]); 3] = [
            ("shape.families", &s.families.as_array()),
            ("placement.contexts", &p.contexts.as_array()),
            ("confounders.kinds", &c.kinds.as_array()),
        ];
        for (name, w) in weights {
            if w.iter().any(|x| !x.is_finite() || *x < 0.0) || w.iter().sum::<f64>() <= 0.0 {
                return Err(PhantomError::InvalidConfig(format!(
                    "randomization {name}: weights must be >= 0 with a positive sum"
                )));
            }
        }
        Ok(())
    }
}

impl std::str::FromStr for Randomization {
    type Err = PhantomError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "off" => Ok(Self::off()),
            "wide" => Ok(Self::wide()),
            _ => Err(PhantomError::InvalidConfig(format!("unknown randomization preset {s:?} (off|wide)"))),
        }
    }
}

/// Node appearance. The ranges are deliberately wider than any one protocol: a node's HU is drawn
/// independently of the tissue around it, from non-enhancing to strongly enhancing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Appearance {
    pub enabled: bool,
    /// Solid-tissue mean HU (uniform).
    pub mean_hu: Range,
    /// Fine texture amplitude, HU (smooth noise field).
    pub texture_hu: Range,
    /// Fine texture correlation length, mm.
    pub texture_scale_mm: Range,
    /// Coarse heterogeneity amplitude, HU (a second, larger-scale field).
    pub heterogeneity_hu: Range,
    /// Coarse heterogeneity correlation length, mm.
    pub heterogeneity_scale_mm: Range,
    /// Probability of a necrotic core (irregular rim, possibly off-centre).
    pub necrosis_p: f64,
    /// Probability of a cystic core (smooth, large, thin wall) when not necrotic.
    pub cyst_p: f64,
    /// Core radius relative to the node's.
    pub core_fraction: Range,
    /// Core HU.
    pub core_hu: Range,
    /// Extra HU of the viable rim around a core (negative: a dull rim).
    pub rim_hu: Range,
    /// Probability of a fatty hilum.
    pub hilum_p: f64,
    /// Hilum HU (fat).
    pub hilum_hu: Range,
    /// Probability of calcifications.
    pub calcification_p: f64,
    /// Calcification HU.
    pub calcification_hu: Range,
    /// Calcification radius, mm.
    pub calcification_radius_mm: Range,
    /// Gaussian blur sigma of the node's edge, mm, on top of the scanner's (0 = sharp edge).
    pub edge_sigma_mm: Range,
    /// Probability of a capsule: a band at the surface with its own HU.
    pub capsule_p: f64,
    /// Capsule width, mm.
    pub capsule_mm: Range,
    /// Capsule HU relative to the node.
    pub capsule_hu: Range,
}

impl Default for Appearance {
    fn default() -> Self {
        Appearance {
            enabled: false,
            mean_hu: [10.0, 150.0],
            texture_hu: [0.0, 20.0],
            texture_scale_mm: [0.8, 6.0],
            heterogeneity_hu: [0.0, 25.0],
            heterogeneity_scale_mm: [5.0, 20.0],
            necrosis_p: 0.25,
            cyst_p: 0.1,
            core_fraction: [0.25, 0.85],
            core_hu: [-15.0, 40.0],
            rim_hu: [-15.0, 45.0],
            hilum_p: 0.25,
            hilum_hu: [-130.0, -30.0],
            calcification_p: 0.1,
            calcification_hu: [250.0, 1100.0],
            calcification_radius_mm: [0.3, 1.8],
            edge_sigma_mm: [0.0, 1.5],
            capsule_p: 0.3,
            capsule_mm: [0.3, 1.5],
            capsule_hu: [-30.0, 40.0],
        }
    }
}

/// Relative weights of the node shape families.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FamilyWeights {
    /// Plain ellipsoid of random axes.
    pub ellipsoid: f64,
    /// Ellipsoid with a few smooth bumps.
    pub lobulated: f64,
    /// Superquadric (box-like to diamond-like cross-sections).
    pub superquadric: f64,
    /// Sphere perturbed by random spherical-harmonic-like waves.
    pub harmonic: f64,
    /// Kidney shape: a notch on one side.
    pub reniform: f64,
    /// Several overlapping blobs fused into one irregular node (conglomerate).
    pub fused: f64,
    /// Elongated, cylinder-like (flat ends, long axis up to ~4x the short one).
    pub cylinder: f64,
}

impl FamilyWeights {
    /// The weights in declaration order.
    pub fn as_array(&self) -> [f64; 7] {
        [
            self.ellipsoid,
            self.lobulated,
            self.superquadric,
            self.harmonic,
            self.reniform,
            self.fused,
            self.cylinder,
        ]
    }
}

impl Default for FamilyWeights {
    fn default() -> Self {
        FamilyWeights {
            ellipsoid: 1.0,
            lobulated: 1.0,
            superquadric: 0.7,
            harmonic: 0.8,
            reniform: 0.6,
            fused: 0.5,
            cylinder: 0.4,
        }
    }
}

/// Node shape and size.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ShapeRand {
    pub enabled: bool,
    /// Family weights.
    pub families: FamilyWeights,
    /// Short-axis diameter range, mm: log-uniform below 15 mm, uniform above.
    pub short_axis_mm: Range,
    /// Fraction of nodes drawn at >= 15 mm (bulky disease is rare in any one simulator but must
    /// be common enough to be learnt).
    pub large_fraction: f64,
    /// Short / long axis ratio of the axial cross-section.
    pub axial_aspect: Range,
    /// Third axis relative to the long one.
    pub elongation: Range,
    /// Any 3D orientation (otherwise the long axis stays within ~25 degrees of cranio-caudal).
    pub any_orientation: bool,
}

impl Default for ShapeRand {
    fn default() -> Self {
        ShapeRand {
            enabled: false,
            families: FamilyWeights::default(),
            short_axis_mm: [3.0, 40.0],
            large_fraction: 0.25,
            axial_aspect: [0.35, 1.0],
            elongation: [0.5, 2.5],
            any_orientation: true,
        }
    }
}

/// Relative weights of the tissue contexts a node is sited in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ContextWeights {
    /// The engine's own anatomical site (cervical levels on phantoms, fat near vessels on real CT).
    pub anatomical: f64,
    /// Anywhere in fat.
    pub fat: f64,
    /// In fat, touching a vessel.
    pub vessel: f64,
    /// In fat, touching a muscle.
    pub muscle: f64,
    /// In fat, touching a gland (salivary, thyroid).
    pub gland: f64,
    /// Centred on the border of a muscle or gland: partly embedded in it.
    pub embedded: f64,
}

impl ContextWeights {
    /// The weights in declaration order.
    pub fn as_array(&self) -> [f64; 6] {
        [self.anatomical, self.fat, self.vessel, self.muscle, self.gland, self.embedded]
    }
}

impl Default for ContextWeights {
    fn default() -> Self {
        ContextWeights { anatomical: 1.0, fat: 1.0, vessel: 1.0, muscle: 0.8, gland: 0.5, embedded: 0.5 }
    }
}

/// Node placement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Placement {
    pub enabled: bool,
    /// Context weights.
    pub contexts: ContextWeights,
    /// Probability that a (non-cluster) node grows a cluster of touching nodes.
    pub cluster_p: f64,
    /// Number of nodes in such a cluster.
    pub cluster_size: Range,
    /// Largest fraction of a node's voxels inside muscle or gland.
    pub embedded_max_fraction: f64,
}

impl Default for Placement {
    fn default() -> Self {
        Placement {
            enabled: false,
            contexts: ContextWeights::default(),
            cluster_p: 0.12,
            cluster_size: [2.0, 5.0],
            embedded_max_fraction: 0.6,
        }
    }
}

/// Scanner and tissue appearance of the scan (phantom or real background).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BackgroundRand {
    pub enabled: bool,
    /// Arterial lumen HU: non-contrast (~40) to strongly enhanced arterial phase.
    pub vessel_hu: Range,
    /// Gaussian blur of the reconstruction kernel, mm (0 = unchanged).
    pub blur_sigma_mm: Range,
    /// Probability of a sharpening (edge-enhancing) kernel instead of a blur.
    pub sharpen_p: f64,
    /// Added correlated noise, HU (standard deviation).
    pub noise_hu: Range,
    /// Noise grain (Gaussian correlation sigma), mm.
    pub noise_grain_mm: Range,
    /// Slice thickness simulated by slice-profile averaging, mm (below the slice spacing: none).
    pub slice_thickness_mm: Range,
    /// Largest HU shift of each tissue class (air/lung, fat, water, soft tissue, bone): a random
    /// monotone remapping of the background HU. Nodes are drawn after it, so their HU stays
    /// independent of the tissue around them.
    pub tissue_shift_hu: f64,
}

impl Default for BackgroundRand {
    fn default() -> Self {
        BackgroundRand {
            enabled: false,
            vessel_hu: [40.0, 450.0],
            blur_sigma_mm: [0.0, 1.2],
            sharpen_p: 0.3,
            noise_hu: [0.0, 25.0],
            noise_grain_mm: [0.3, 1.5],
            slice_thickness_mm: [0.0, 5.0],
            tissue_shift_hu: 25.0,
        }
    }
}

/// Relative weights of the confounder kinds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConfounderKinds {
    /// Vessel segments: tubes of node-like HU and calibre (unopacified veins, small arteries).
    pub vessel: f64,
    /// Muscle bellies: long spindles with a fibre-like texture.
    pub muscle_belly: f64,
    /// Gland lobules: lobulated, granular.
    pub gland_lobule: f64,
    /// Oesophagus-like tubes with a collapsed lumen (air or fluid).
    pub tube: f64,
}

impl ConfounderKinds {
    /// The weights in declaration order.
    pub fn as_array(&self) -> [f64; 4] {
        [self.vessel, self.muscle_belly, self.gland_lobule, self.tube]
    }
}

impl Default for ConfounderKinds {
    fn default() -> Self {
        ConfounderKinds { vessel: 1.5, muscle_belly: 1.0, gland_lobule: 1.0, tube: 0.5 }
    }
}

/// Node-like confounders, labelled background (0).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Confounders {
    pub enabled: bool,
    /// Number per scan (scaled to the field of view on real backgrounds).
    pub count: [usize; 2],
    /// Kind weights.
    pub kinds: ConfounderKinds,
    /// Cross-section diameter range, mm.
    pub size_mm: Range,
    /// On real backgrounds: probability of each confounder being a bowel-loop-like curved tube
    /// instead (abdominal backgrounds; bowel is where abdominal nodes are confused).
    pub bowel_p: f64,
}

impl Default for Confounders {
    fn default() -> Self {
        Confounders {
            enabled: false,
            count: [3, 10],
            kinds: ConfounderKinds::default(),
            size_mm: [3.0, 25.0],
            bowel_p: 0.25,
        }
    }
}

/// Index drawn with probability proportional to `w` (all weights >= 0, positive sum).
pub(crate) fn pick(rng: &mut crate::rng::PRng, w: &[f64]) -> usize {
    let total: f64 = w.iter().sum();
    let mut x = crate::rng::uni(rng, 0.0, total);
    for (i, v) in w.iter().enumerate() {
        if x < *v {
            return i;
        }
        x -= v;
    }
    w.iter().rposition(|v| *v > 0.0).unwrap_or(0)
}

/// Uniform draw in a range.
#[inline]
pub(crate) fn draw(rng: &mut crate::rng::PRng, r: Range) -> f64 {
    crate::rng::uni(rng, r[0], r[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_parse_validate_and_round_trip() {
        for name in ["off", "wide"] {
            let r: Randomization = name.parse().unwrap();
            r.validate().unwrap();
            let j = serde_json::to_string(&r).unwrap();
            let back: Randomization = serde_json::from_str(&j).unwrap();
            assert_eq!(r, back);
        }
        assert!(!Randomization::off().any());
        assert!(Randomization::wide().any());
        assert!("medium".parse::<Randomization>().is_err());
        // Missing fields take the defaults (older configs, hand-written ablations).
        let r: Randomization = serde_json::from_str(r#"{"shape": {"enabled": true}}"#).unwrap();
        assert!(r.shape.enabled && !r.appearance.enabled);
        assert_eq!(r.shape.short_axis_mm, [3.0, 40.0]);
    }

    #[test]
    fn bad_ranges_are_refused() {
        let mut r = Randomization::wide();
        r.appearance.mean_hu = [100.0, 10.0];
        assert!(matches!(r.validate(), Err(PhantomError::InvalidConfig(m)) if m.contains("mean_hu")));
        let mut r = Randomization::wide();
        r.shape.families = FamilyWeights {
            ellipsoid: 0.0,
            lobulated: 0.0,
            superquadric: 0.0,
            harmonic: 0.0,
            reniform: 0.0,
            fused: 0.0,
            cylinder: 0.0,
        };
        assert!(r.validate().is_err());
    }
}
