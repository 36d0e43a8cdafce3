//! One CT to measured nodes, as a library call: [`segment_ct`] runs the model's network on the
//! CT's own grid (with its large-node pass) and applies the model's recipe; [`write_segmentation`]
//! writes the files `nodal segment` produces for it.
use crate::model::{predict, Model};
use crate::output::{write_nodes_csv, write_nodes_json, Source};
use crate::recipe::Detected;
use crate::DetectError;
use indicatif::ProgressBar;
use nodal_core::Volume;
use nodal_net::infer::InferOptions;
use nodal_nodes::coverage::{body_coverage, BodyCoverage};
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

/// Seconds spent in each stage of [`segment_ct`].
#[derive(Clone, Debug, Default, Serialize)]
pub struct SegmentTimings {
    /// Reorientation, body crop, resampling, normalisation.
    pub preprocess_s: f64,
    /// Sliding-window network evaluation.
    pub network_s: f64,
    /// Probability map back onto the CT grid.
    pub map_back_s: f64,
    /// Threshold, components, filter, size filter, hole filling, measurements; the body coverage.
    pub postprocess_s: f64,
}

/// The result of [`segment_ct`]; every volume is on the input CT's grid.
#[derive(Clone, Debug)]
pub struct Segmentation {
    /// Node probability in [0, 1].
    pub probability: Volume<f32>,
    /// Instance labels (1 = largest short axis), detections and what the recipe did.
    pub detected: Detected,
    /// Network tiles evaluated (x TTA flips).
    pub n_tiles: usize,
    /// The body regions the CT shows and how much of the neck.
    pub coverage: BodyCoverage,
    /// Stage timings.
    pub timings: SegmentTimings,
}

/// Segments one CT in HU with `model`: probability on the CT grid, then the model's recipe
/// (post-processing at its operating point and its component filter, when it has one), measured
/// against the CT's HU values.
///
/// # Errors
/// Inference errors ([`DetectError::Net`]) and post-processing errors.
pub fn segment_ct(
    ct: &Volume<i16>,
    model: &Model,
    opts: &InferOptions,
    progress: Option<&ProgressBar>,
) -> Result<Segmentation, DetectError> {
    let pred = predict(&model.net, ct, opts, progress)?;
    // The label map must lie on the CT's own grid: the DICOM SEG references slice k of the source
    // series by `sop_instance_uids[k]`, and the evaluation compares voxel by voxel.
    pred.probability.check_same_grid(ct)?;
    let t = Instant::now();
    let detected = model.recipe().apply(&pred.probability, Some(ct))?;
    let coverage = body_coverage(ct);
    Ok(Segmentation {
        probability: pred.probability,
        detected,
        n_tiles: pred.n_tiles,
        coverage,
        timings: SegmentTimings {
            preprocess_s: pred.timings.preprocess_s,
            network_s: pred.timings.network_s,
            map_back_s: pred.timings.map_back_s,
            postprocess_s: t.elapsed().as_secs_f64(),
        },
    })
}

/// Files written by [`write_segmentation`] (besides the optional probabilities).
pub const SEGMENTATION_FILES: [&str; 4] = ["nodes.nii.gz", "mask.nii.gz", "nodes.json", "nodes.csv"];

/// Writes `nodes.nii.gz` (u16 instance labels), `mask.nii.gz` (u8), `nodes.json`, `nodes.csv` and,
/// with `probabilities`, `probabilities.nii.gz` into `dir`; each file atomically. Returns the names.
///
/// # Errors
/// [`DetectError::InvalidOption`] for more nodes than a u16 label map holds; write errors naming
/// the file.
pub fn write_segmentation(
    dir: &Path,
    seg: &Segmentation,
    ct_source: &str,
    probabilities: bool,
) -> Result<Vec<&'static str>, DetectError> {
    let d = &seg.detected;
    let mut outputs = SEGMENTATION_FILES.to_vec();
    let n_max = d.labels.as_slice().iter().copied().max().unwrap_or(0);
    if n_max > u32::from(u16::MAX) {
        return Err(DetectError::InvalidOption {
            name: "nodes",
            value: n_max.to_string(),
            reason: "more nodes than a uint16 label map holds",
        });
    }
    nodal_io::write_nifti(&d.labels.map(|l| l as u16), dir.join("nodes.nii.gz"))?;
    nodal_io::write_nifti(&d.labels.map(|l| u8::from(l > 0)), dir.join("mask.nii.gz"))?;
    if probabilities {
        nodal_io::write_nifti(&seg.probability, dir.join("probabilities.nii.gz"))?;
        outputs.push("probabilities.nii.gz");
    }
    let source = Source {
        labels: Some("nodes.nii.gz".into()),
        ct: Some(ct_source.to_string()),
        input_kind: "label_map".into(),
    };
    write_nodes_json(&dir.join("nodes.json"), &d.detections, &source, Some(&d.report))?;
    write_nodes_csv(&dir.join("nodes.csv"), &d.detections)?;
    Ok(outputs)
}
