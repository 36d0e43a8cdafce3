//! One scan or a cohort: what a path given to a command holds.
//!
//! * a NIfTI file, a DICOM file, or a folder whose DICOM files belong to **one study** (however its
//!   series are spread over subfolders): one scan;
//! * a folder holding NIfTI files: one case per file, the case id being the file name without
//!   `.nii`/`.nii.gz` and without an nnU-Net channel suffix `_0000`;
//! * a folder without DICOM files of its own whose subfolders hold DICOM files of **different
//!   studies**: one case per subfolder, named after it;
//! * a text file (any other file): a list of inputs, one path per line (relative to the list's
//!   folder; blank lines and lines starting with `#` skipped), each a NIfTI file or a DICOM
//!   file/folder, named as above (a folder by its name).
//!
//! Case ids must be unique: two inputs with one id would write into one case folder.
use crate::IoError;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One case of a cohort.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseSource {
    pub case_id: String,
    /// A NIfTI file or a DICOM file/folder.
    pub path: PathBuf,
}

/// What a path holds (module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inputs {
    /// One scan: the path itself.
    One(PathBuf),
    /// Several cases, sorted by case id.
    Cohort(Vec<CaseSource>),
}

/// The case id of a NIfTI file name: the name without `.nii.gz` / `.nii` and without a trailing
/// nnU-Net channel suffix `_0000` (so `case_001_0000.nii.gz` and `case_001.nii.gz` name one case).
pub fn nifti_case_id(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let lower = name.to_ascii_lowercase();
    let stem_len = if lower.ends_with(".nii.gz") {
        name.len() - 7
    } else if lower.ends_with(".nii") {
        name.len() - 4
    } else {
        return None;
    };
    let stem = &name[..stem_len];
    Some(stem.strip_suffix("_0000").unwrap_or(stem).to_string())
}

fn open_err(path: &Path) -> impl FnOnce(std::io::Error) -> IoError + '_ {
    move |error| IoError::Open { path: path.to_path_buf(), error }
}

/// Files and subfolders directly in `dir`, sorted.
fn entries(dir: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>), IoError> {
    let (mut files, mut dirs) = (Vec::new(), Vec::new());
    for entry in std::fs::read_dir(dir).map_err(open_err(dir))? {
        let p = entry.map_err(open_err(dir))?.path();
        if p.is_dir() {
            dirs.push(p);
        } else if p.is_file() {
            files.push(p);
        }
    }
    files.sort();
    dirs.sort();
    Ok((files, dirs))
}

/// The first DICOM file under `dir` (depth first, sorted), if any.
fn first_dicom_file(dir: &Path) -> Result<Option<PathBuf>, IoError> {
    let (files, dirs) = entries(dir)?;
    if let Some(f) = files.into_iter().find(|f| crate::dicom::has_dicm_magic(f)) {
        return Ok(Some(f));
    }
    for d in dirs {
        if let Some(f) = first_dicom_file(&d)? {
            return Ok(Some(f));
        }
    }
    Ok(None)
}

/// Sorts cases by id, refusing duplicates (naming both inputs).
fn cohort(origin: &Path, cases: Vec<CaseSource>) -> Result<Inputs, IoError> {
    let mut by_id: BTreeMap<String, PathBuf> = BTreeMap::new();
    for c in cases {
        if let Some(prev) = by_id.insert(c.case_id.clone(), c.path.clone()) {
            return Err(IoError::Cases {
                path: origin.to_path_buf(),
                reason: format!(
                    "{} and {} both have case id {:?}",
                    prev.display(),
                    c.path.display(),
                    c.case_id
                ),
            });
        }
    }
    Ok(Inputs::Cohort(by_id.into_iter().map(|(case_id, path)| CaseSource { case_id, path }).collect()))
}

/// The case id of a listed or found input: a NIfTI file by [`nifti_case_id`], anything else by its
/// name.
fn case_id(path: &Path) -> String {
    nifti_case_id(path).unwrap_or_else(|| {
        path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
    })
}

/// What `path` holds (module docs). Reads directory listings and, for folders of DICOM subfolders,
/// the header of one file per subfolder.
pub fn find_inputs(path: &Path) -> Result<Inputs, IoError> {
    let meta = std::fs::metadata(path).map_err(open_err(path))?;
    if meta.is_file() {
        if crate::is_nifti_path(path) || crate::dicom::has_dicm_magic(path) {
            return Ok(Inputs::One(path.to_path_buf()));
        }
        return read_list(path);
    }
    let (files, dirs) = entries(path)?;
    let niftis: Vec<&PathBuf> = files.iter().filter(|f| crate::is_nifti_path(f)).collect();
    if !niftis.is_empty() {
        return cohort(
            path,
            niftis.into_iter().map(|f| CaseSource { case_id: case_id(f), path: f.clone() }).collect(),
        );
    }
    if files.iter().any(|f| crate::dicom::has_dicm_magic(f)) {
        return Ok(Inputs::One(path.to_path_buf()));
    }
    // Subfolders holding DICOM: one study (its series in folders of their own) or one per case.
    let mut studies = Vec::new();
    for d in dirs {
        if let Some(f) = first_dicom_file(&d)? {
            studies.push((d, crate::dicom::study_uid_of(&f)?));
        }
    }
    let distinct: std::collections::BTreeSet<&Option<String>> = studies.iter().map(|(_, s)| s).collect();
    if studies.len() < 2 || distinct.len() < 2 {
        return Ok(Inputs::One(path.to_path_buf()));
    }
    cohort(path, studies.into_iter().map(|(d, _)| CaseSource { case_id: case_id(&d), path: d }).collect())
}

/// A list file (module docs).
fn read_list(path: &Path) -> Result<Inputs, IoError> {
    let bytes = std::fs::read(path).map_err(open_err(path))?;
    let text = String::from_utf8(bytes).map_err(|_| IoError::Cases {
        path: path.to_path_buf(),
        reason: "neither a NIfTI nor a DICOM file, nor a text list of inputs (not UTF-8)".into(),
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut cases = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let p = base.join(line);
        if !p.exists() {
            return Err(IoError::Cases {
                path: path.to_path_buf(),
                reason: format!("line {}: {} does not exist", n + 1, p.display()),
            });
        }
        cases.push(CaseSource { case_id: case_id(&p), path: p });
    }
    if cases.is_empty() {
        return Err(IoError::Cases { path: path.to_path_buf(), reason: "the list names no input".into() });
    }
    cohort(path, cases)
}
