//! Datasets in nnU-Net raw layout: listing and splitting cases, loading training cases onto the
//! model grid and validation cases on their own CT grid.
use std::path::{Path, PathBuf};

use ndarray::Array3;
use nodal_core::{Interpolation, Volume};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::ModelConfig;
use crate::patch::Pyramid;
use crate::preprocess::prepare;
use crate::rng::Rng;
use crate::NetError;

/// Folder of a dataset that holds hard-negative masks (`nodal hard-negatives`), beside `imagesTr`
/// and `labelsTr`.
pub const NEGATIVES_DIR: &str = "negativesTr";

/// One dataset case: image and label file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaseFiles {
    /// Case identifier (`case_001`).
    pub id: String,
    /// `imagesTr/<id>_0000.nii.gz`.
    pub image: PathBuf,
    /// The node labels: `instancesTr/<id>.nii.gz` (one id per node) when the dataset has it, else
    /// `labelsTr/<id>.nii.gz` (a binary one is scored as its connected components).
    pub label: PathBuf,
    /// `negativesTr/<id>.nii.gz` when the dataset has one ([`NEGATIVES_DIR`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub negatives: Option<PathBuf>,
}

/// The folder of node instance labels beside a labels folder (`labelsTr` -> `instancesTr`,
/// `labelsTs` -> `instancesTs`), as `nodal dataset` writes it.
pub fn instances_dir(labels_dir: &str) -> String {
    match labels_dir.strip_prefix("labels") {
        Some(split) => format!("instances{split}"),
        None => format!("{labels_dir}_instances"),
    }
}

/// Lists the training cases of an nnU-Net raw-layout dataset (`imagesTr`, `labelsTr`), sorted by
/// id. Every image needs its label.
pub fn list_cases(data: &Path) -> Result<Vec<CaseFiles>, NetError> {
    list_cases_in(data, "imagesTr", "labelsTr")
}

/// Lists the cases of a dataset whose images and labels are in the folders `images_dir` and
/// `labels_dir` (`imagesTr`/`labelsTr`, or a test set's `imagesTs`/`labelsTs`), sorted by id.
pub fn list_cases_in(data: &Path, images_dir: &str, labels_dir: &str) -> Result<Vec<CaseFiles>, NetError> {
    let images = data.join(images_dir);
    let labels = data.join(labels_dir);
    let err = |reason: String| NetError::Dataset { path: data.into(), reason };
    let rd = std::fs::read_dir(&images).map_err(|e| err(format!("{images_dir}: {e}")))?;
    let mut cases = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| err(format!("{images_dir}: {e}")))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(id) = name.strip_suffix("_0000.nii.gz").or_else(|| name.strip_suffix("_0000.nii")) else {
            continue;
        };
        let ext = if name.ends_with(".gz") { ".nii.gz" } else { ".nii" };
        let label = labels.join(format!("{id}{ext}"));
        if !label.is_file() {
            return Err(err(format!("case {id}: label {} missing", label.display())));
        }
        // Node ids beside binary nnU-Net labels (`nodal dataset`): the readers need the nodes.
        let instances = data.join(instances_dir(labels_dir)).join(format!("{id}{ext}"));
        let label = if instances.is_file() { instances } else { label };
        let negatives = Some(data.join(NEGATIVES_DIR).join(format!("{id}{ext}"))).filter(|p| p.is_file());
        cases.push(CaseFiles { id: id.to_string(), image: entry.path(), label, negatives });
    }
    if cases.is_empty() {
        return Err(err(format!("no {images_dir}/*_0000.nii.gz images")));
    }
    cases.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(cases)
}

/// Lists the cases of one or more datasets. With several, each id is prefixed by its dataset
/// folder's name (`train/case_000`), so equal case names stay distinct.
pub fn list_datasets(data: &[PathBuf]) -> Result<Vec<CaseFiles>, NetError> {
    let Some(first) = data.first() else {
        return Err(NetError::Dataset { path: PathBuf::new(), reason: "no dataset folder given".into() });
    };
    if data.len() == 1 {
        return list_cases(first);
    }
    let mut all = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for d in data {
        let name = d.file_name().unwrap_or_default().to_string_lossy().into_owned();
        for mut c in list_cases(d)? {
            c.id = format!("{name}/{}", c.id);
            if !seen.insert(c.id.clone()) {
                return Err(NetError::Dataset {
                    path: d.clone(),
                    reason: format!("case {} appears twice (two dataset folders with one name?)", c.id),
                });
            }
            all.push(c);
        }
    }
    Ok(all)
}

/// Seeded split: returns (training, validation) cases.
pub fn split_cases(cases: &[CaseFiles], val: usize, seed: u64) -> (Vec<CaseFiles>, Vec<CaseFiles>) {
    let mut idx: Vec<usize> = (0..cases.len()).collect();
    let mut rng = Rng::new(seed ^ 0x5EED_5011);
    for i in (1..idx.len()).rev() {
        idx.swap(i, rng.below(i + 1));
    }
    let val = val.min(cases.len().saturating_sub(1));
    let mut v: Vec<CaseFiles> = idx[..val].iter().map(|&i| cases[i].clone()).collect();
    let mut t: Vec<CaseFiles> = idx[val..].iter().map(|&i| cases[i].clone()).collect();
    v.sort_by(|a, b| a.id.cmp(&b.id));
    t.sort_by(|a, b| a.id.cmp(&b.id));
    (t, v)
}

/// A preprocessed training case.
pub struct TrainCase {
    /// Case id.
    pub id: String,
    /// Image pyramid on the model grid.
    pub pyramid: Pyramid,
    /// Binary node label on the model grid `[z, y, x]`.
    pub label: Array3<u8>,
    /// Voxel indices `[z, y, x]` of each node (one list per instance with voxels on the grid).
    pub nodes: Vec<Vec<[u32; 3]>>,
    /// Voxel indices `[z, y, x]` of the case's hard negatives (empty without a mask).
    pub negatives: Vec<[u32; 3]>,
}

/// Preprocesses one case for training from a CT (HU), its instance labels and optionally its
/// hard-negative mask, all on the same grid.
pub fn prepare_training_case(
    id: &str,
    ct: &Volume<i16>,
    labels: &Volume<u16>,
    negatives: Option<&Volume<u8>>,
    cfg: &ModelConfig,
) -> Result<TrainCase, NetError> {
    ct.check_same_grid(labels)?;
    if let Some(n) = negatives {
        ct.check_same_grid(n)?;
    }
    let prep = prepare(ct, &cfg.preprocessing)?;
    let g = prep.image.geometry();
    let inst = labels.resample_to(g, prep.image.dims(), Interpolation::Nearest, 0);
    let mut nodes: Vec<Vec<[u32; 3]>> = Vec::new();
    let mut slot = std::collections::HashMap::new();
    for ((z, y, x), &l) in inst.data().indexed_iter() {
        if l > 0 {
            let s = *slot.entry(l).or_insert_with(|| {
                nodes.push(Vec::new());
                nodes.len() - 1
            });
            nodes[s].push([z as u32, y as u32, x as u32]);
        }
    }
    let negatives = match negatives {
        Some(n) => n
            .resample_to(g, prep.image.dims(), Interpolation::Nearest, 0)
            .data()
            .indexed_iter()
            .filter(|(_, &v)| v > 0)
            .map(|((z, y, x), _)| [z as u32, y as u32, x as u32])
            .collect(),
        None => Vec::new(),
    };
    let label = inst.data().mapv(|l| u8::from(l > 0));
    let pyramid = Pyramid::new(prep.image.data(), cfg.arch.levels(), cfg.preprocessing.pad_value());
    Ok(TrainCase { id: id.into(), pyramid, label, nodes, negatives })
}

/// A validation case on its own CT grid.
pub struct ValCase {
    /// Case id.
    pub id: String,
    /// CT in HU.
    pub ct: Volume<i16>,
    /// Ground-truth instance labels.
    pub labels: Volume<u16>,
}

/// Loads and preprocesses the training cases (in parallel).
pub fn load_training_cases(cases: &[CaseFiles], model: &ModelConfig) -> Result<Vec<TrainCase>, NetError> {
    cases
        .par_iter()
        .map(|c| {
            let ct = nodal_io::read_nifti::<i16>(&c.image)?;
            let labels = nodal_io::read_nifti::<u16>(&c.label)?;
            let negatives = c.negatives.as_ref().map(nodal_io::read_nifti::<u8>).transpose()?;
            if let (Some(n), Some(path)) = (&negatives, &c.negatives) {
                ct.check_same_grid(n)
                    .map_err(|e| NetError::Dataset { path: path.clone(), reason: e.to_string() })?;
            }
            prepare_training_case(&c.id, &ct, &labels, negatives.as_ref(), model)
                .map_err(|e| NetError::Dataset { path: c.image.clone(), reason: e.to_string() })
        })
        .collect()
}

/// Loads validation cases.
pub fn load_val_cases(cases: &[CaseFiles]) -> Result<Vec<ValCase>, NetError> {
    cases
        .iter()
        .map(|c| {
            let ct = nodal_io::read_nifti::<i16>(&c.image)?;
            let labels = nodal_io::read_nifti::<u16>(&c.label)?;
            ct.check_same_grid(&labels)
                .map_err(|e| NetError::Dataset { path: c.label.clone(), reason: e.to_string() })?;
            Ok(ValCase { id: c.id.clone(), ct, labels })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::testing::write_dataset;
    #[test]
    fn several_datasets_are_joined_with_distinct_ids() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        write_dataset(&a, 2);
        write_dataset(&b, 1);
        let one = list_datasets(std::slice::from_ref(&a)).unwrap();
        assert_eq!(one.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["case_000", "case_001"]);
        let both = list_datasets(&[a.clone(), b]).unwrap();
        let ids: Vec<&str> = both.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["a/case_000", "a/case_001", "b/case_000"]);
        assert!(both[2].image.starts_with(dir.path().join("b")));
        // The same folder twice would train on its cases twice: refused.
        assert!(matches!(list_datasets(&[a.clone(), a]), Err(NetError::Dataset { .. })));
        assert!(list_datasets(&[]).is_err());
    }

    #[test]
    fn node_ids_are_read_from_instances_beside_binary_labels() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("d");
        write_dataset(&data, 2);
        // Only case_001 has instance labels: its label comes from there, case_000's from labelsTr.
        std::fs::create_dir_all(data.join("instancesTr")).unwrap();
        std::fs::copy(data.join("labelsTr/case_001.nii.gz"), data.join("instancesTr/case_001.nii.gz"))
            .unwrap();
        let cases = list_cases(&data).unwrap();
        assert_eq!(cases[0].label, data.join("labelsTr/case_000.nii.gz"));
        assert_eq!(cases[1].label, data.join("instancesTr/case_001.nii.gz"));
        assert_eq!(
            (instances_dir("labelsTr"), instances_dir("labelsTs")),
            ("instancesTr".into(), "instancesTs".into())
        );
    }

    #[test]
    fn split_is_seeded_and_disjoint() {
        let cases: Vec<CaseFiles> = (0..10)
            .map(|i| CaseFiles { id: format!("c{i}"), image: "i".into(), label: "l".into(), negatives: None })
            .collect();
        let (t, v) = split_cases(&cases, 3, 1);
        assert_eq!((t.len(), v.len()), (7, 3));
        assert!(v.iter().all(|c| !t.contains(c)));
        assert_eq!(split_cases(&cases, 3, 1), (t, v.clone()));
        assert_ne!(split_cases(&cases, 3, 2).1, v);
    }
}
