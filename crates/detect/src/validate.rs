//! Validation: a model's detections scored with the evaluation protocol on annotated cases, at
//! its own recipe or at many points from one inference per case ([`score_points`]).
//!
//! Every point is scored on the mask [`Candidates::mask`] draws: exactly the voxels `nodal
//! segment` labels for that recipe.
use crate::filter::ComponentFilter;
use crate::model::{predict, Model};
use crate::recipe::{Candidates, Cutoffs};
use crate::DetectError;
use indicatif::ProgressBar;
use nodal_eval::{evaluate_prepared, Prediction, PreparedGt, SelectionTargets, ValMetrics, ValTally};
use nodal_net::infer::InferOptions;
use nodal_net::train::{list_cases, list_cases_in, load_val_cases, CaseFiles, ValCase};
use nodal_net::LoadedModel;
use nodal_nodes::postprocess::PostProcessConfig;
use std::path::{Path, PathBuf};

/// One recipe to score: post-processing and the keep rule's cut-offs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// Threshold, mask threshold, size filter, filling.
    pub postprocess: PostProcessConfig,
    /// Peak and filter cut-offs.
    pub cutoffs: Cutoffs,
}

impl Point {
    /// The point `model` applies by its own recipe.
    pub fn of_model(model: &Model) -> Self {
        let recipe = model.recipe();
        Point { postprocess: recipe.postprocess, cutoffs: recipe.cutoffs() }
    }
}

/// Scores `model` on `cases` at its own recipe; the score is for the default
/// [`SelectionTargets`].
///
/// # Errors
/// Inference and evaluation errors, naming the case.
pub fn validate(model: &Model, cases: &[ValCase], opts: &InferOptions) -> Result<ValMetrics, DetectError> {
    let point = Point::of_model(model);
    let mut m = score_points(
        &model.net,
        model.filter.as_ref(),
        cases,
        opts,
        &[point],
        &SelectionTargets::default(),
        None,
    )?;
    Ok(m.remove(0))
}

/// Scores every point on `cases` from one inference per case, the components of each threshold
/// labelled (and scored by `filter`, when given) once. Points of one threshold should be adjacent.
///
/// # Errors
/// Inference and evaluation errors, naming the case.
pub fn score_points(
    net: &LoadedModel,
    filter: Option<&ComponentFilter>,
    cases: &[ValCase],
    opts: &InferOptions,
    points: &[Point],
    targets: &SelectionTargets,
    progress: Option<&ProgressBar>,
) -> Result<Vec<ValMetrics>, DetectError> {
    let mut tallies = vec![ValTally::default(); points.len()];
    for c in cases {
        let mut score_case = || -> Result<(), DetectError> {
            let out = predict(net, &c.ct, opts, None)?;
            let gt = PreparedGt::new(&c.labels)?;
            let mut cached: Option<(PostProcessConfig, Candidates)> = None;
            for (tally, p) in tallies.iter_mut().zip(points) {
                let pp = &p.postprocess;
                let same =
                    |c: &PostProcessConfig| c.threshold == pp.threshold && c.connectivity == pp.connectivity;
                let cand = match cached.take() {
                    Some((c, cand)) if same(&c) => cached.insert((c, cand)),
                    _ => cached
                        .insert((*pp, Candidates::with_filter(&out.probability, Some(&c.ct), pp, filter)?)),
                };
                let mask = cand.1.mask(&out.probability, pp, p.cutoffs)?;
                tally.add(&evaluate_prepared(Prediction::Mask(&mask), &gt, None)?);
            }
            Ok(())
        };
        score_case().map_err(|e| e.on_case(&c.id))?;
        if let Some(pb) = progress {
            pb.inc(1);
        }
    }
    Ok(tallies.iter().map(|t| t.metrics(cases.len(), targets)).collect())
}

/// Annotated cases to validate on: every case of each dataset folder (nnU-Net raw layout,
/// `imagesTr`/`labelsTr` or `imagesTs`/`labelsTs`) and each explicit (CT, instance labels) pair.
///
/// # Errors
/// [`DetectError::Net`] for a dataset without cases or files that cannot be read.
pub fn load_cases(datasets: &[PathBuf], pairs: &[(PathBuf, PathBuf)]) -> Result<Vec<ValCase>, DetectError> {
    let mut files: Vec<CaseFiles> = Vec::new();
    for d in datasets {
        // A test set (`imagesTs`/`labelsTs`, nnU-Net's names for held-out cases) is read as
        // such; training never reads those folders.
        let test_set = !d.join("imagesTr").is_dir() && d.join("imagesTs").is_dir();
        files.extend(if test_set { list_cases_in(d, "imagesTs", "labelsTs")? } else { list_cases(d)? });
    }
    for (ct, labels) in pairs {
        let id = ct.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let id = id.trim_end_matches(".gz").trim_end_matches(".nii").trim_end_matches("_0000").to_string();
        let dir = ct.parent().and_then(Path::file_name).map(|n| n.to_string_lossy().into_owned());
        let id = match dir {
            Some(dir) if id == "ct" || id == "image" => format!("{dir}/{id}"),
            _ => id,
        };
        files.push(CaseFiles { id, image: ct.clone(), label: labels.clone(), negatives: None });
    }
    Ok(load_val_cases(&files)?)
}
