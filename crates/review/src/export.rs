//! Reviewed cases as an nnU-Net raw dataset, the layout `nodal dataset` writes and `nodal train`
//! reads, so a reviewer's corrections become training data:
//!
//! ```text
//! OUT/ (DatasetNNN_Name)
//!   dataset.json                   channel_names {"0": "CT"}, labels {"background": 0, "lymph_node": 1}
//!   imagesTr/<case>_0000.nii.gz    the CT (int16 HU)
//!   labelsTr/<case>.nii.gz         the kept nodes (uint8 0/1): accepted and unreviewed
//!   instancesTr/<case>.nii.gz      the same voxels by node id
//!   negativesTr/<case>.nii.gz      the rejected detections (uint8 0/1): the trainer's hard negatives
//!   nodesTr/<case>.json            the kept nodes' measurements (nodes.json format)
//!   metastatic.csv                 case_id,node_id,metastatic for nodes marked metastatic or benign
//!   nodal_review_export.json       per case: its folder, reviewers, generation, node counts
//! ```
//!
//! Only reviewed cases (with `review.json`) are exported. A CT of the held-out validation data is
//! refused (by content, whatever its name), as `nodal dataset` refuses it.
use crate::case::{Case, CaseFolder};
use crate::record::{NodeClass, Status};
use crate::ReviewError;
use nodal_core::output::OutputDir;
use serde::Serialize;
use std::path::Path;

/// One exported case, as `nodal_review_export.json` lists it.
#[derive(Clone, Debug, Serialize)]
pub struct ExportedCase {
    pub case_id: String,
    pub folder: String,
    pub ct: String,
    pub reviewers: Vec<String>,
    pub generation: u64,
    pub accepted: usize,
    pub unreviewed: usize,
    pub rejected: usize,
    pub metastatic: usize,
    pub benign: usize,
}

/// What an export did.
#[derive(Clone, Debug, Serialize)]
pub struct ExportSummary {
    pub schema: &'static str,
    pub cases: Vec<ExportedCase>,
    /// Case folders left out because nobody reviewed them.
    pub not_reviewed: Vec<String>,
    pub nodal_version: &'static str,
}

/// What the export writes into its folder.
const PRODUCTS: &[&str] = &[
    "dataset.json",
    "imagesTr",
    "labelsTr",
    "instancesTr",
    "negativesTr",
    "nodesTr",
    "metastatic.csv",
    "nodal_review_export.json",
];

/// A case id nnU-Net takes: letters, digits, `_` and `-`.
fn dataset_case_id(id: &str) -> String {
    id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect()
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<(), ReviewError> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| ReviewError::write(path, e.into()))?;
    bytes.push(b'\n');
    nodal_core::fs::write_atomic(path, &bytes).map_err(|e| ReviewError::write(path, e))
}

/// Writes the reviewed cases among `cases` into `out` (a `DatasetNNN_Name` folder, written as one
/// unit); `tick` is called once per case.
pub fn export_dataset(
    cases: &[CaseFolder],
    out: &Path,
    tick: &dyn Fn(&str),
) -> Result<ExportSummary, ReviewError> {
    nodal_phantom::dataset::check_dataset_name(out)?;
    let (reviewed, not_reviewed): (Vec<&CaseFolder>, Vec<&CaseFolder>) =
        cases.iter().partition(|c| c.is_reviewed());
    if reviewed.is_empty() {
        return Err(ReviewError::Folder {
            path: cases.first().map(|c| c.folder.clone()).unwrap_or_default(),
            reason: "no reviewed case (a case is reviewed once nodal review saved an edit in it)".into(),
        });
    }
    let dir = OutputDir::open(out)?;
    let tmp = dir.staging().to_path_buf();
    for sub in ["imagesTr", "labelsTr", "instancesTr", "negativesTr", "nodesTr"] {
        std::fs::create_dir_all(tmp.join(sub)).map_err(|e| ReviewError::write(tmp.join(sub), e))?;
    }
    let mut exported = Vec::new();
    let mut metastatic_csv = String::from("case_id,node_id,metastatic\n");
    let mut seen = std::collections::BTreeSet::new();
    for folder in reviewed {
        let case = Case::open(folder, None)?;
        // Held-out validation cases never become training data, under any name.
        nodal_phantom::holdout::check_not_held_out(case.ct_path(), Some(case.ct()))?;
        let id = dataset_case_id(&folder.case_id);
        if !seen.insert(id.clone()) {
            return Err(ReviewError::Folder {
                path: folder.folder.clone(),
                reason: format!("two case folders give the dataset case id {id}"),
            });
        }
        let (kept, rejected) = case.split_rejected();
        nodal_io::write_nifti(case.ct(), tmp.join("imagesTr").join(format!("{id}_0000.nii.gz")))?;
        nodal_io::write_nifti(
            &kept.map(|v| u8::from(v != 0)),
            tmp.join("labelsTr").join(format!("{id}.nii.gz")),
        )?;
        case.write_nodes_map(false, &tmp.join("instancesTr").join(format!("{id}.nii.gz")))?;
        if rejected.as_slice().iter().any(|&v| v != 0) {
            nodal_io::write_nifti(
                &rejected.map(|v| u8::from(v != 0)),
                tmp.join("negativesTr").join(format!("{id}.nii.gz")),
            )?;
        }
        let detections = case.kept_detections();
        let source = nodal_detect::output::Source {
            labels: Some(folder.folder.join(crate::case::NODES_FILE).display().to_string()),
            ct: Some(case.ct_path().display().to_string()),
            input_kind: "reviewed".into(),
        };
        let nodes_json = tmp.join("nodesTr").join(format!("{id}.json"));
        case.write_nodes_files(
            &nodes_json,
            &tmp.join("nodesTr").join(format!("{id}.csv")),
            &detections,
            &source,
        )?;
        let nodes = &case.record().nodes;
        let count = |f: &dyn Fn(&crate::record::NodeReview) -> bool| nodes.values().filter(|r| f(r)).count();
        for r in nodes.values().filter(|r| r.status != Status::Rejected) {
            match r.class {
                Some(NodeClass::Metastatic) => metastatic_csv.push_str(&format!("{id},{},true\n", r.node_id)),
                Some(NodeClass::Benign) => metastatic_csv.push_str(&format!("{id},{},false\n", r.node_id)),
                _ => {}
            }
        }
        exported.push(ExportedCase {
            case_id: id.clone(),
            folder: folder.folder.display().to_string(),
            ct: case.ct_path().display().to_string(),
            reviewers: case.record().reviewers().into_iter().map(str::to_string).collect(),
            generation: case.record().generation,
            accepted: count(&|r| r.status == Status::Accepted),
            unreviewed: count(&|r| r.status == Status::Unreviewed),
            rejected: count(&|r| r.status == Status::Rejected),
            metastatic: count(&|r| r.status != Status::Rejected && r.class == Some(NodeClass::Metastatic)),
            benign: count(&|r| r.status != Status::Rejected && r.class == Some(NodeClass::Benign)),
        });
        tick(&folder.case_id);
    }
    nodal_core::fs::write_atomic(&tmp.join("metastatic.csv"), metastatic_csv.as_bytes())
        .map_err(|e| ReviewError::write(tmp.join("metastatic.csv"), e))?;
    let dataset = serde_json::json!({
        "channel_names": {"0": "CT"},
        "labels": {"background": 0, "lymph_node": 1},
        "numTraining": exported.len(),
        "file_ending": ".nii.gz",
        "name": out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        "description": "cases corrected in nodal review",
    });
    write_json(&tmp.join("dataset.json"), &dataset)?;
    let summary = ExportSummary {
        schema: "nodal.review_export/1",
        cases: exported,
        not_reviewed: not_reviewed.iter().map(|c| c.case_id.clone()).collect(),
        nodal_version: env!("CARGO_PKG_VERSION"),
    };
    write_json(&tmp.join("nodal_review_export.json"), &summary)?;
    dir.commit(PRODUCTS)?;
    Ok(summary)
}
