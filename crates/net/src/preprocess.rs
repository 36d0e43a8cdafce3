//! CT -> network input: reorient to canonical LPS storage, find the body, resample only the body's
//! bounding box to the model spacing, clip and normalise HU.
//!
//! The output is a `Volume<f32>` on the *model grid* (canonical direction, model spacing, origin at
//! the body box), so the probability map computed on it is mapped back onto any CT grid with
//! [`Volume::resample_to`] — the geometry carries the whole transform.
use nodal_core::{Geometry, Interpolation, Volume};
use nodal_nodes::{label_components, Connectivity};
use serde::{Deserialize, Serialize};

use crate::NetError;

/// Preprocessing parameters, saved in the model's config.json so inference repeats training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Preprocessing {
    /// Isotropic model voxel size (i, j, k), mm.
    pub spacing_mm: [f64; 3],
    /// HU clip window `[low, high]`.
    pub hu_clip: [f32; 2],
    /// Normalised value = (clipped HU - `hu_mean`) / `hu_std`.
    pub hu_mean: f32,
    /// See `hu_mean`.
    pub hu_std: f32,
    /// Voxels above this HU are body candidates.
    pub body_threshold_hu: f32,
    /// Margin added around the body's bounding box, mm.
    pub body_margin_mm: f64,
}

impl Default for Preprocessing {
    fn default() -> Self {
        Preprocessing {
            spacing_mm: [1.25; 3],
            hu_clip: [-200.0, 300.0],
            hu_mean: 50.0,
            hu_std: 125.0,
            body_threshold_hu: -500.0,
            body_margin_mm: 4.0,
        }
    }
}

impl Preprocessing {
    /// Normalised value of a HU value.
    #[inline]
    pub fn normalise(&self, hu: f32) -> f32 {
        (hu.clamp(self.hu_clip[0], self.hu_clip[1]) - self.hu_mean) / self.hu_std
    }

    /// Normalised value of air (what is padded outside the body box).
    pub fn pad_value(&self) -> f32 {
        self.normalise(-1024.0)
    }

    /// Checks the values.
    pub fn validate(&self) -> Result<(), NetError> {
        let ok = self.spacing_mm.iter().all(|s| s.is_finite() && *s > 0.05 && *s < 20.0)
            && self.hu_clip[0] < self.hu_clip[1]
            && self.hu_std > 0.0
            && self.body_margin_mm >= 0.0;
        if ok {
            Ok(())
        } else {
            Err(NetError::InvalidConfig(format!("preprocessing parameters out of range: {self:?}")))
        }
    }
}

/// A CT prepared for the network.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// Normalised intensities on the model grid (body box only), `[nk, nj, ni]`.
    pub image: Volume<f32>,
    /// 1 where the resampled HU exceeds the body threshold (same grid): tiles without any body
    /// voxel are not computed.
    pub body: Volume<u8>,
}

/// Bounding box of the body: the largest 26-connected component of `hu > threshold`, found on a
/// ~3 mm subsampled grid (the box only needs mm accuracy; labelling 65 M voxels would not). Returns
/// the box as inclusive continuous index ranges of `ct` per axis (i, j, k), or `None` if no voxel
/// exceeds the threshold.
pub fn body_box(ct: &Volume<i16>, threshold_hu: f32) -> Option<[[f64; 2]; 3]> {
    let g = ct.geometry();
    let dims = ct.dims();
    let stride: [usize; 3] =
        std::array::from_fn(|a| ((3.0 / g.spacing_mm[a]).floor() as usize).clamp(1, dims[a]));
    let sub_dims: [usize; 3] = std::array::from_fn(|a| dims[a].div_ceil(stride[a]));
    let data = ct.data();
    let mask = ndarray::Array3::from_shape_fn([sub_dims[2], sub_dims[1], sub_dims[0]], |(k, j, i)| {
        u8::from(data[[k * stride[2], j * stride[1], i * stride[0]]] as f32 > threshold_hu)
    });
    let sub_geom = Geometry {
        spacing_mm: std::array::from_fn(|a| g.spacing_mm[a] * stride[a] as f64),
        origin_mm: g.origin_mm,
        direction: g.direction,
    };
    let mask = Volume::new(mask, sub_geom).ok()?;
    let (labels, n) = label_components(&mask, Connectivity::TwentySix);
    if n == 0 {
        return None;
    }
    let mut counts = vec![0usize; n + 1];
    for &l in labels.as_slice() {
        counts[l as usize] += 1;
    }
    let largest = (1..=n).max_by_key(|&l| counts[l])? as u32;
    let mut lo = [usize::MAX; 3];
    let mut hi = [0usize; 3];
    for ((k, j, i), &l) in labels.data().indexed_iter() {
        if l == largest {
            let idx = [i, j, k];
            for a in 0..3 {
                lo[a] = lo[a].min(idx[a]);
                hi[a] = hi[a].max(idx[a]);
            }
        }
    }
    // A subsampled voxel stands for `stride` original voxels; widen by one stride each side so
    // the box cannot clip the body between samples.
    Some(std::array::from_fn(|a| {
        let s = stride[a] as f64;
        [((lo[a] as f64 - 1.0) * s).max(0.0), ((hi[a] as f64 + 1.0) * s).min(dims[a] as f64 - 1.0)]
    }))
}

/// Reorients, crops to the body, resamples to the model spacing and normalises.
///
/// Errors: [`NetError::UnusableInput`] when no voxel is above the body threshold.
pub fn prepare(ct: &Volume<i16>, p: &Preprocessing) -> Result<Prepared, NetError> {
    // A CT in HU shows air (about -1000 HU) around the patient; an MR or an image in other units
    // has no such values, and a network trained on HU would produce nonsense on it.
    let (lo, _) = ct.min_max();
    if lo > -700.0 {
        return Err(NetError::UnusableInput(format!(
            "lowest value is {lo}, but a CT in HU has air (about -1000 HU) around the body: \
             is this a CT (and not an MR or a rescaled image)?"
        )));
    }
    let canon = ct.reorient_canonical();
    let g = *canon.geometry();
    let bbox = body_box(&canon, p.body_threshold_hu).ok_or_else(|| {
        NetError::UnusableInput(format!(
            "no body found: no voxel above {} HU (is this a CT in HU?)",
            p.body_threshold_hu
        ))
    })?;
    // Model grid: canonical direction, model spacing, covering the box (+ margin) corner to corner.
    let mut origin_idx = [0.0; 3];
    let mut dims = [0usize; 3];
    for a in 0..3 {
        let margin = p.body_margin_mm / g.spacing_mm[a];
        let lo = (bbox[a][0] - 0.5 - margin).max(-0.5);
        let hi = (bbox[a][1] + 0.5 + margin).min(canon.dims()[a] as f64 - 0.5);
        let extent_mm = (hi - lo) * g.spacing_mm[a];
        dims[a] = ((extent_mm / p.spacing_mm[a]).ceil() as usize).max(1);
        origin_idx[a] = lo + 0.5 * p.spacing_mm[a] / g.spacing_mm[a];
    }
    let model_geom = Geometry {
        spacing_mm: p.spacing_mm,
        origin_mm: g.index_to_world(origin_idx),
        direction: g.direction,
    };
    // Resampling the i16 volume directly rounds to 1 HU, far below any clinically relevant
    // difference, and avoids a float copy of the full-resolution CT.
    let hu = canon.resample_to(&model_geom, dims, Interpolation::Linear, -1024);
    let image = hu.map(|v| p.normalise(v as f32));
    let body = hu.map(|v| u8::from(v as f32 > p.body_threshold_hu));
    Ok(Prepared { image, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ct_with_box() -> Volume<i16> {
        // 40 x 30 x 20 voxels of 0.8 x 0.8 x 2 mm, air with a "body" block and a separate speck.
        let g = Geometry::axis_aligned([0.8, 0.8, 2.0], [-10.0, 5.0, 100.0]);
        let mut v = Volume::filled([40, 30, 20], g, -1000i16);
        let mut d = v.data_mut();
        for k in 4..16 {
            for j in 5..25 {
                for i in 10..30 {
                    d[[k, j, i]] = 40;
                }
            }
        }
        d[[1, 1, 1]] = 500; // a small bright speck outside the body: not the largest component
        v
    }

    #[test]
    fn crop_covers_body_and_not_the_speck() {
        let ct = ct_with_box();
        let p = Preprocessing { body_margin_mm: 0.0, spacing_mm: [1.0; 3], ..Default::default() };
        let prep = prepare(&ct, &p).unwrap();
        let img = &prep.image;
        assert_eq!(img.geometry().spacing_mm, [1.0; 3]);
        // Body spans i 10..30 (16 mm), j 5..25 (16 mm), k 4..16 (24 mm); subsampling may widen
        // the box by at most one stride (3 samples) plus rounding, never narrow it.
        let dims = img.dims();
        assert!(dims[0] >= 16 && dims[0] <= 16 + 6, "{dims:?}");
        assert!(dims[2] >= 24 && dims[2] <= 24 + 6, "{dims:?}");
        // Every body voxel centre maps inside the model grid.
        for (i, j, k) in [(10, 5, 4), (29, 24, 15)] {
            let w = ct.geometry().index_to_world([i as f64, j as f64, k as f64]);
            let m = img.geometry().world_to_index(w);
            for a in 0..3 {
                assert!(m[a] >= -0.5 && m[a] <= dims[a] as f64 - 0.5, "{m:?} {dims:?}");
            }
        }
        // Normalised body value: (40 - 50) / 125.
        let c = img.geometry().world_to_index(ct.geometry().index_to_world([20.0, 15.0, 10.0]));
        let v = img.get(c[0].round() as usize, c[1].round() as usize, c[2].round() as usize);
        assert!((v - (-10.0 / 125.0)).abs() < 1e-5, "{v}");
    }

    #[test]
    fn non_hu_image_is_a_typed_error() {
        let g = Geometry::axis_aligned([1.0; 3], [0.0; 3]);
        let mr_like = Volume::filled([8, 8, 8], g, 300i16);
        assert!(matches!(prepare(&mr_like, &Preprocessing::default()), Err(NetError::UnusableInput(_))));
    }

    #[test]
    fn no_body_is_a_typed_error() {
        let g = Geometry::axis_aligned([1.0; 3], [0.0; 3]);
        let ct = Volume::filled([8, 8, 8], g, -1000i16);
        assert!(matches!(prepare(&ct, &Preprocessing::default()), Err(NetError::UnusableInput(_))));
    }
}
