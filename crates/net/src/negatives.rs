//! Hard negatives: where a model finds nodes that are not there.
//!
//! Random background patches mostly show air, fat and bone the network already gets right; the
//! structures it mistakes for nodes (muscle bellies, vessels seen end-on, glands, bowel) are a
//! small part of a scan. `nodal hard-negatives` runs a model over a training dataset and writes,
//! per case, the mask of its false-positive components (`negativesTr/<case>.nii.gz`, on the CT's
//! grid, so it opens over the CT in any viewer); the trainer centres `hard_negative_fraction` of
//! its background patches on those voxels (see [`crate::train::TrainConfig`]).
//!
//! A false-positive component is one the evaluation protocol would count as such before the
//! localization test: a component of the model's mask (its threshold and peak cut-off) that
//! touches no ground-truth node voxel.
use nodal_core::Volume;
use nodal_nodes::postprocess::PeakComponents;
use nodal_nodes::Connectivity;

use crate::config::LoadedModel;
use crate::infer::{predict, InferOptions};
use crate::NetError;

/// Folder of a dataset that holds the hard-negative masks, beside `imagesTr` and `labelsTr`.
pub const NEGATIVES_DIR: &str = "negativesTr";

/// The hard negatives of one case.
pub struct HardNegatives {
    /// 1 on the voxels of false-positive components, on the CT's grid.
    pub mask: Volume<u8>,
    /// Number of false-positive components.
    pub n_components: usize,
}

/// The false-positive components of the mask `probability >= threshold` (components whose peak
/// is below `min_peak` dropped, 26-connectivity) against the instance labels `labels`.
///
/// # Errors
/// [`NetError::Core`] when the two volumes are not on one grid; [`NetError::Eval`] for non-finite
/// probabilities or cut-offs.
pub fn false_positive_components(
    probability: &Volume<f32>,
    labels: &Volume<u16>,
    threshold: f32,
    min_peak: Option<f32>,
) -> Result<HardNegatives, NetError> {
    probability.check_same_grid(labels)?;
    let err = |e: nodal_nodes::NodesError| NetError::Eval(e.to_string());
    let comps = PeakComponents::new(probability, threshold, Connectivity::TwentySix).map_err(err)?;
    let kept = comps.mask(min_peak).map_err(err)?;
    let n = comps.peaks.len();
    let mut touches_node = vec![false; n];
    let mut kept_label = vec![false; n];
    for ((&l, &k), &g) in comps.labels.as_slice().iter().zip(kept.as_slice()).zip(labels.as_slice()) {
        if k > 0 {
            kept_label[l as usize] = true;
            touches_node[l as usize] |= g > 0;
        }
    }
    let fp: Vec<bool> = kept_label.iter().zip(&touches_node).map(|(&k, &t)| k && !t).collect();
    Ok(HardNegatives {
        mask: comps.labels.map(|l| u8::from(fp[l as usize])),
        n_components: fp.iter().filter(|&&f| f).count(),
    })
}

/// Runs `model` on one CT (HU) and returns its false-positive components against `labels`, at
/// the model's own operating point.
///
/// # Errors
/// As [`predict`] and [`false_positive_components`].
pub fn hard_negatives(
    model: &LoadedModel,
    ct: &Volume<i16>,
    labels: &Volume<u16>,
    opts: &InferOptions,
) -> Result<HardNegatives, NetError> {
    ct.check_same_grid(labels)?;
    let out = predict(model, ct, opts, None)?;
    false_positive_components(
        &out.probability,
        labels,
        model.config.threshold,
        model.config.min_peak_probability,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use nodal_core::Geometry;

    fn vol<T: nodal_core::Voxel>(dims: [usize; 3]) -> Volume<T> {
        Volume::zeros(dims, Geometry::axis_aligned([1.0; 3], [0.0; 3]))
    }

    #[test]
    fn only_components_away_from_the_nodes_are_negatives() {
        let dims = [12, 12, 12];
        let mut p = vol::<f32>(dims);
        let mut gt = vol::<u16>(dims);
        // A: confident, overlaps node 7 by one voxel -> not a negative.
        // B: confident, touches no node -> negative (3 voxels).
        // C: below the peak cut-off -> dropped before the test.
        // D: below the threshold -> not foreground.
        // (Array indices are [k, j, i].)
        let mut pd = p.data_mut();
        for k in 0..3 {
            pd[[k, 1, 1]] = 0.99;
            pd[[k, 8, 8]] = 0.99;
            pd[[k, 5, 10]] = 0.6;
        }
        pd[[10, 10, 10]] = 0.3;
        gt.data_mut()[[2, 1, 1]] = 7;
        gt.data_mut()[[2, 2, 1]] = 7;
        let neg = false_positive_components(&p, &gt, 0.5, Some(0.9)).unwrap();
        assert_eq!(neg.n_components, 1);
        let on: Vec<[usize; 3]> =
            neg.mask.data().indexed_iter().filter(|(_, &v)| v == 1).map(|((k, j, i), _)| [k, j, i]).collect();
        assert_eq!(on, vec![[0, 8, 8], [1, 8, 8], [2, 8, 8]]);
        // Without a peak cut-off, C counts as well.
        assert_eq!(false_positive_components(&p, &gt, 0.5, None).unwrap().n_components, 2);
    }

    #[test]
    fn grids_must_match() {
        let p = vol::<f32>([4, 4, 4]);
        let gt = vol::<u16>([4, 4, 5]);
        assert!(matches!(false_positive_components(&p, &gt, 0.5, None), Err(NetError::Core(_))));
    }
}
