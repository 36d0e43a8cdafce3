//! Hard negatives: where a model finds nodes that are not there.
//!
//! Random background patches mostly show air, fat and bone the network already gets right; the
//! structures it mistakes for nodes (muscle bellies, vessels seen end-on, glands, bowel) are a
//! small part of a scan. [`mine`] runs a model over a training dataset and writes, per case, the
//! mask of its false-positive components (`negativesTr/<case>.nii.gz`, on the CT's grid, so it
//! opens over the CT in any viewer); the trainer centres `hard_negative_fraction` of its
//! background patches on those voxels (see `nodal_net::train::TrainConfig`).
//!
//! A false-positive component is one the evaluation protocol would count as such before the
//! localization test: a candidate the model's keep rule keeps (its threshold and peak cut-off,
//! [`Candidates::keep`]) that touches no ground-truth node voxel.
use crate::ledger::{Ledger, LedgerEntry, LedgerHeader, ModelIdentity, Resume};
use crate::model::{predict, Model};
use crate::recipe::{Candidates, Cutoffs};
use crate::DetectError;
use indicatif::ProgressBar;
use nodal_core::Volume;
use nodal_net::infer::InferOptions;
use nodal_net::train::{list_cases, NEGATIVES_DIR};
use nodal_net::LoadedModel;
use nodal_nodes::postprocess::PostProcessConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The hard negatives of one case.
pub struct HardNegatives {
    /// 1 on the voxels of false-positive components, on the CT's grid.
    pub mask: Volume<u8>,
    /// Number of false-positive components.
    pub n_components: usize,
}

/// The false-positive components of `probability` under `pp` (threshold, connectivity, peak
/// cut-off) against the instance labels `labels`.
///
/// # Errors
/// [`DetectError::Core`] when the two volumes are not on one grid; [`DetectError::Nodes`] or
/// [`DetectError::InvalidOption`] for non-finite probabilities or cut-offs.
pub fn false_positive_components(
    probability: &Volume<f32>,
    labels: &Volume<u16>,
    pp: &PostProcessConfig,
) -> Result<HardNegatives, DetectError> {
    probability.check_same_grid(labels)?;
    let cand = Candidates::with_filter(probability, None, pp, None)?;
    let kept = cand.keep(Cutoffs { min_peak: pp.min_peak_probability, min_score: None })?;
    let comps = &cand.components;
    let mut touches_node = vec![false; kept.len()];
    for (&l, &g) in comps.labels.as_slice().iter().zip(labels.as_slice()) {
        touches_node[l as usize] |= g > 0;
    }
    let fp: Vec<bool> = kept.iter().zip(&touches_node).map(|(&k, &t)| k && !t).collect();
    Ok(HardNegatives {
        mask: comps.labels.map(|l| u8::from(fp[l as usize])),
        n_components: fp.iter().filter(|&&f| f).count(),
    })
}

/// Runs `net` on one CT (HU) and returns its false-positive components against `labels`, at the
/// model's own operating point.
///
/// # Errors
/// As [`predict`] and [`false_positive_components`].
pub fn hard_negatives(
    net: &LoadedModel,
    ct: &Volume<i16>,
    labels: &Volume<u16>,
    opts: &InferOptions,
) -> Result<HardNegatives, DetectError> {
    ct.check_same_grid(labels)?;
    let out = predict(net, ct, opts, None)?;
    false_positive_components(&out.probability, labels, &net.config.postprocess_config())
}

/// What produced a dataset's masks (`negativesTr/negatives.json`).
#[derive(Serialize, Deserialize)]
struct Header {
    nodal_version: String,
    model_folder: String,
    #[serde(flatten)]
    producer: Producer,
    definition: String,
}

#[derive(Serialize, Deserialize, PartialEq)]
struct Producer {
    #[serde(flatten)]
    model: ModelIdentity,
    min_peak_probability: Option<f32>,
}

impl LedgerHeader for Header {
    fn same_work(&self, earlier: &Self) -> bool {
        self.producer == earlier.producer
    }
}

/// One case's hard negatives, as recorded.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CaseNegatives {
    /// Case id.
    pub case: String,
    /// False-positive components.
    pub false_positive_components: usize,
    /// Their voxels.
    pub voxels: usize,
}

impl LedgerEntry for CaseNegatives {
    fn key(&self) -> String {
        self.case.clone()
    }
}

/// Schema of `negativesTr/negatives.json`.
pub const SCHEMA: &str = "nodal.hard_negatives/1";
/// The record of a dataset's hard negatives, in its [`NEGATIVES_DIR`].
pub const RECORD_FILE: &str = "negatives.json";

/// What [`mine`] did.
#[derive(Clone, Debug)]
pub struct Mined {
    /// Where the masks are.
    pub dir: PathBuf,
    /// Every case, in order.
    pub cases: Vec<CaseNegatives>,
    /// Cases whose masks an earlier run of the same model made (kept).
    pub n_kept: usize,
    /// Why an earlier record was not used, if one was there.
    pub restarted: Option<String>,
}

/// Writes the hard negatives of every case of the dataset `data` (`imagesTr`, `labelsTr`) to its
/// `negativesTr/`, with `negatives.json` recording the model (the SHA-256 of its weights) and
/// operating point; cases an interrupted run of the same model finished are kept.
///
/// # Errors
/// Dataset, reading and inference errors, naming the case; [`DetectError::Write`] for outputs.
pub fn mine(
    model: &Model,
    data: &Path,
    opts: &InferOptions,
    progress: Option<&ProgressBar>,
) -> Result<Mined, DetectError> {
    let net = &model.net;
    let cases = list_cases(data)?;
    let dir = data.join(NEGATIVES_DIR);
    std::fs::create_dir_all(&dir).map_err(|e| DetectError::write(&dir, e))?;
    let header = Header {
        nodal_version: env!("CARGO_PKG_VERSION").into(),
        model_folder: net.folder.display().to_string(),
        producer: Producer {
            model: ModelIdentity::of(net)?,
            min_peak_probability: net.config.min_peak_probability,
        },
        definition: "components of the model's mask (26-connected, p >= threshold, peak >= \
                     min_peak_probability) that touch no ground-truth node voxel"
            .into(),
    };
    let (mut ledger, resume) = Ledger::open(&dir.join(RECORD_FILE), SCHEMA, header);
    if let Some(pb) = progress {
        pb.set_length(cases.len() as u64);
    }
    let mut n_kept = 0;
    for c in &cases {
        if let Some(pb) = progress {
            pb.set_message(c.id.clone());
        }
        let mask_path = dir.join(format!("{}.nii.gz", c.id));
        match ledger.take_earlier(&c.id).filter(|_| mask_path.is_file()) {
            Some(r) => {
                ledger.keep(r);
                n_kept += 1;
            }
            None => {
                let mine_case = || -> Result<CaseNegatives, DetectError> {
                    let ct = nodal_io::read_nifti::<i16>(&c.image)?;
                    let labels = nodal_io::read_nifti::<u16>(&c.label)?;
                    let neg = hard_negatives(net, &ct, &labels, opts)?;
                    nodal_io::write_nifti(&neg.mask, &mask_path)?;
                    let voxels = neg.mask.as_slice().iter().filter(|&&v| v > 0).count();
                    Ok(CaseNegatives {
                        case: c.id.clone(),
                        false_positive_components: neg.n_components,
                        voxels,
                    })
                };
                // Rewritten after every case, so an interrupted run resumes from here.
                ledger.record(mine_case().map_err(|e| e.on_case(&c.id))?)?;
            }
        }
        if let Some(pb) = progress {
            pb.inc(1);
        }
    }
    ledger.save()?;
    let restarted = match resume {
        Resume::Restarted(why) => Some(why),
        _ => None,
    };
    Ok(Mined { dir, cases: ledger.cases().to_vec(), n_kept, restarted })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nodal_core::Geometry;

    fn pp(threshold: f32, min_peak_probability: Option<f32>) -> PostProcessConfig {
        PostProcessConfig { threshold, min_peak_probability, ..Default::default() }
    }

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
        let neg = false_positive_components(&p, &gt, &pp(0.5, Some(0.9))).unwrap();
        assert_eq!(neg.n_components, 1);
        let on: Vec<[usize; 3]> =
            neg.mask.data().indexed_iter().filter(|(_, &v)| v == 1).map(|((k, j, i), _)| [k, j, i]).collect();
        assert_eq!(on, vec![[0, 8, 8], [1, 8, 8], [2, 8, 8]]);
        // Without a peak cut-off, C counts as well.
        assert_eq!(false_positive_components(&p, &gt, &pp(0.5, None)).unwrap().n_components, 2);
    }

    #[test]
    fn grids_must_match() {
        let p = vol::<f32>([4, 4, 4]);
        let gt = vol::<u16>([4, 4, 5]);
        assert!(matches!(false_positive_components(&p, &gt, &pp(0.5, None)), Err(DetectError::Core(_))));
    }
}
