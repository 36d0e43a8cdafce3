//! Background randomization ([`crate::randomization::BackgroundRand`]): contrast phase, per-tissue
//! HU remapping, reconstruction kernel, noise grain and slice thickness, for phantoms and real
//! backgrounds alike.
//!
//! Order on a scan: the tissue remapping and the contrast phase change the *background* before the
//! nodes are drawn into it (so a node's HU stays independent of its surroundings); the kernel, the
//! slice profile and the noise act on the finished image, nodes included, as a scanner would.
use crate::anatomy::{sid, Anatomy, Tissue};
use crate::randomization::{draw, BackgroundRand};
use crate::render::{convolve_axis, gauss_kernel};
use crate::rng::{chance, hash_normal, mix64, uni, PRng};
use ndarray::{Array3, Zip};
use serde::{Deserialize, Serialize};

/// HU knots of the tissue remapping: air, lung, fat, water, soft tissue, enhanced soft tissue,
/// bone, dense bone. The curve between knots is linear.
const KNOTS_HU: [f64; 8] = [-1000.0, -500.0, -100.0, 0.0, 50.0, 120.0, 400.0, 1500.0];

/// One scan's draw of the background randomization.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScanDraw {
    /// Arterial lumen HU.
    pub artery_hu: f64,
    /// Venous lumen HU.
    pub vein_hu: f64,
    /// Remapped HU at [`KNOTS_HU`].
    pub knots_out: [f64; 8],
    /// In-plane Gaussian blur, mm (0: none).
    pub blur_sigma_mm: f64,
    /// Unsharp-mask amount (0: none); the mask's blur is `sharpen_sigma_mm`.
    pub sharpen: f64,
    pub sharpen_sigma_mm: f64,
    /// Slice thickness of the slice-profile average, mm (0: none).
    pub slice_mm: f64,
    /// Added correlated noise: standard deviation (HU) and grain sigma (mm).
    pub noise_hu: f64,
    pub noise_grain_mm: f64,
    /// Noise seed.
    pub noise_seed: u64,
}

impl ScanDraw {
    /// Draws one scan's parameters.
    pub fn draw(rng: &mut PRng, b: &BackgroundRand) -> ScanDraw {
        let artery_hu = draw(rng, b.vessel_hu);
        // Veins: from barely opacified to as bright as the arteries (venous phase).
        let vein_hu = 40.0 + (artery_hu - 40.0) * uni(rng, 0.3, 1.05);
        let mut knots_out = KNOTS_HU;
        for (n, k) in knots_out.iter_mut().enumerate() {
            // Air keeps near -1000 (the scanner's calibration point).
            let s = if n == 0 { 0.2 } else { 1.0 };
            *k += uni(rng, -b.tissue_shift_hu, b.tissue_shift_hu) * s;
        }
        // Monotone: every segment keeps at least 30% of its slope.
        for n in 1..knots_out.len() {
            let min = knots_out[n - 1] + 0.3 * (KNOTS_HU[n] - KNOTS_HU[n - 1]);
            knots_out[n] = knots_out[n].max(min);
        }
        let (blur_sigma_mm, sharpen, sharpen_sigma_mm) = if chance(rng, b.sharpen_p) {
            (0.0, uni(rng, 0.2, 1.0), uni(rng, 0.5, 1.2))
        } else {
            (draw(rng, b.blur_sigma_mm), 0.0, 0.0)
        };
        ScanDraw {
            artery_hu,
            vein_hu,
            knots_out,
            blur_sigma_mm,
            sharpen,
            sharpen_sigma_mm,
            slice_mm: draw(rng, b.slice_thickness_mm),
            noise_hu: draw(rng, b.noise_hu),
            noise_grain_mm: draw(rng, b.noise_grain_mm),
            noise_seed: rand::Rng::random(rng),
        }
    }

    /// The monotone tissue remapping of one HU value (slope 1 beyond the outer knots).
    pub fn remap(&self, hu: f64) -> f64 {
        let k = &KNOTS_HU;
        let o = &self.knots_out;
        if hu <= k[0] {
            return o[0] + (hu - k[0]);
        }
        for n in 1..k.len() {
            if hu <= k[n] {
                let t = (hu - k[n - 1]) / (k[n] - k[n - 1]);
                return o[n - 1] + t * (o[n] - o[n - 1]);
            }
        }
        o[7] + (hu - k[7])
    }

    /// Phantom: remaps every structure's HU and sets the lumen HU of the vessels (before any node
    /// is drawn).
    pub fn apply_to_anatomy(&self, anat: &mut Anatomy) {
        for (id, s) in anat.structs.iter_mut().enumerate() {
            let id = id as u16;
            match id {
                sid::ARTERY | sid::SMALL_ART => s.hu = self.artery_hu,
                sid::VEIN_R | sid::VEIN_L | sid::SMALL_VEIN | sid::EXT_VEIN => s.hu = self.vein_hu,
                _ => {
                    // Texture amplitude follows the local slope of the curve.
                    let (a, b) = (self.remap(s.hu - 10.0), self.remap(s.hu + 10.0));
                    s.tex_hu *= ((b - a) / 20.0).max(0.0);
                    s.hu = self.remap(s.hu);
                }
            }
        }
    }

    /// Real background: remaps the tissue HU and moves vessel lumen (placement-map vessel classes
    /// and their one-voxel partial-volume border) to the drawn phase, in place.
    pub fn apply_to_real(&self, hu: &mut Array3<f32>, placement: &Array3<u8>) {
        let vessel = placement.mapv(|t| {
            matches!(Tissue::from_u8(t), Some(Tissue::Artery | Tissue::Vein | Tissue::SmallVessel)) as u8
        });
        let near = nodal_core::morph::dilate_box(&vessel, [1, 1, 1]);
        // Mean lumen HU of the scan, so the shift moves it to the drawn phase.
        let (s, n) = Zip::from(&*hu).and(&vessel).fold((0.0f64, 0usize), |(s, n), &v, &m| {
            if m == 1 {
                (s + v as f64, n + 1)
            } else {
                (s, n)
            }
        });
        let lumen = if n > 0 { s / n as f64 } else { 250.0 };
        let shift = self.artery_hu - lumen;
        Zip::from(hu).and(&near).par_for_each(|v, &m| {
            let x = *v as f64;
            let w = if m == 1 { crate::nodes::smoothstep(60.0, 150.0, x) } else { 0.0 };
            *v = ((1.0 - w) * self.remap(x) + w * (x + shift)) as f32;
        });
    }

    /// The scanner part on a finished image: kernel (blur or unsharp mask, in-plane), slice
    /// profile (box average over the drawn thickness along k) and correlated noise.
    pub fn post_filter(&self, hu: &mut Array3<f32>, spacing_mm: [f64; 3]) {
        let sp = spacing_mm;
        if self.blur_sigma_mm > 0.0 {
            let kx = gauss_kernel(self.blur_sigma_mm / sp[0]);
            let ky = gauss_kernel(self.blur_sigma_mm / sp[1]);
            convolve_axis(hu, 0, &kx);
            convolve_axis(hu, 1, &ky);
        }
        if self.sharpen > 0.0 {
            let mut low = hu.clone();
            convolve_axis(&mut low, 0, &gauss_kernel(self.sharpen_sigma_mm / sp[0]));
            convolve_axis(&mut low, 1, &gauss_kernel(self.sharpen_sigma_mm / sp[1]));
            let a = self.sharpen as f32;
            Zip::from(&mut *hu).and(&low).par_for_each(|v, &l| *v += a * (*v - l));
        }
        if self.slice_mm > sp[2] * 1.05 {
            convolve_axis(hu, 2, &box_profile(self.slice_mm / sp[2]));
        }
        if self.noise_hu > 0.0 {
            let mut n = Array3::<f32>::zeros(hu.raw_dim());
            let s = n.as_slice_mut().expect("standard layout");
            for (idx, v) in s.iter_mut().enumerate() {
                *v = hash_normal(mix64(self.noise_seed ^ idx as u64));
            }
            let ks: Vec<Vec<f32>> = (0..3).map(|a| gauss_kernel(self.noise_grain_mm / sp[a])).collect();
            for (a, k) in ks.iter().enumerate() {
                convolve_axis(&mut n, a, k);
            }
            // White noise of unit variance has sqrt(sum w^2) per axis after the blur.
            let gain: f64 =
                ks.iter().map(|k| k.iter().map(|w| (*w as f64).powi(2)).sum::<f64>()).product::<f64>().sqrt();
            let sd = (self.noise_hu / gain) as f32;
            Zip::from(&mut *hu).and(&n).par_for_each(|v, &x| *v += sd * x);
        }
    }
}

/// A normalised box kernel `width` voxels wide (fractional ends), odd length.
fn box_profile(width: f64) -> Vec<f32> {
    let half = width / 2.0;
    let r = (half - 0.5).ceil().max(0.0) as i64;
    let w: Vec<f64> = (-r..=r).map(|x| (half + 0.5 - (x as f64).abs()).clamp(0.0, 1.0)).collect::<Vec<f64>>();
    let s: f64 = w.iter().sum();
    w.iter().map(|v| (v / s) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remapping_is_monotone_and_continuous() {
        let b = BackgroundRand { enabled: true, tissue_shift_hu: 120.0, ..BackgroundRand::default() };
        for seed in 0..50 {
            let d = ScanDraw::draw(&mut crate::rng::stream(seed, "t"), &b);
            let mut prev = f64::NEG_INFINITY;
            for x in -1100..2000 {
                let y = d.remap(x as f64);
                assert!(y > prev, "seed {seed}: not increasing at {x}");
                prev = y;
                assert!((d.remap(x as f64 + 1e-6) - y).abs() < 1e-3);
            }
        }
    }

    #[test]
    fn box_profile_sums_to_one_and_has_the_width() {
        for w in [1.0, 1.5, 2.0, 3.3] {
            let k = box_profile(w);
            assert!((k.iter().sum::<f32>() - 1.0).abs() < 1e-6);
            let width: f32 = k.iter().sum::<f32>() / k.iter().cloned().fold(0.0, f32::max);
            assert!((width as f64 - w).abs() < 1e-4, "{w}: {width}");
        }
    }
}
