//! The one way from a probability map to detections: [`Recipe::apply`].
//!
//! A recipe is a model's post-processing ([`PostProcessConfig`]: threshold, peak cut-off, mask
//! threshold, size filter, filling, splitting) and its optional component filter with its cut-off.
//! Every caller — `nodal segment`, validation, tuning, hard-negative mining, filter fitting and
//! the large-node pass — starts from the same [`Candidates`] (the components of
//! `p >= threshold` at the recipe's connectivity, their peaks and filter scores) and the same keep
//! rule ([`Candidates::keep`]), so what is validated is what `segment` writes.
//!
//! Steps (see `nodal_nodes::postprocess` for the geometric ones):
//! 1. threshold and components ([`Candidates::new`]);
//! 2. keep rule: a component stays when its peak reaches the peak cut-off and the filter's
//!    verdict passes its cut-off ([`Candidates::keep`]);
//! 3. mask threshold (pieces below the peak cut-off go), the protocol's size filter, hole filling,
//!    convex fill, splitting, relabel by decreasing short axis, measurements
//!    (`nodal_nodes::postprocess::finish_nodes`);
//! 4. each node's network probability and the filter verdict of the component most of its voxels
//!    came from ([`Detection`]).
use crate::detection::Detection;
use crate::filter::{ComponentFilter, FilterScore};
use crate::probability::label_probabilities;
use crate::DetectError;
use nodal_core::Volume;
use nodal_nodes::postprocess::{finish_components, finish_nodes, PeakComponents, PostProcessConfig};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Post-processing and component filter: everything that turns a probability map into nodes.
#[derive(Clone, Debug, PartialEq)]
pub struct Recipe {
    /// Threshold, peak cut-off, mask threshold, size filter, filling, splitting.
    pub postprocess: PostProcessConfig,
    /// The component filter with its cut-off ([`ComponentFilter::min_score`]); `None`: no filter.
    pub filter: Option<ComponentFilter>,
}

/// The cut-offs of the keep rule: which of the [`Candidates`] stay.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cutoffs {
    /// Components whose highest probability is below this are dropped; `None` keeps all.
    pub min_peak: Option<f32>,
    /// Components the filter scores below this are dropped; `None` without a filter (or to
    /// keep every component it scores).
    pub min_score: Option<f64>,
}

/// What the recipe did; `nodes.json` and `segment.json` carry it as `postprocess`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PostProcessReport {
    /// The post-processing used.
    pub config: PostProcessConfig,
    /// Foreground voxels after thresholding.
    pub foreground_voxels: usize,
    /// Components before filtering.
    pub n_components: usize,
    /// Components dropped by the short-axis filter (the protocol's `n_pred_removed_small`).
    pub n_removed_small: usize,
    /// Components dropped because their peak probability is below `min_peak_probability`
    /// (counted before the short-axis filter).
    #[serde(default)]
    pub n_removed_low_peak: usize,
    /// Components dropped by the component filter, counted after the peak cut-off and before the
    /// short-axis filter.
    #[serde(default)]
    pub n_removed_by_filter: usize,
    /// The component filter's cut-off that was applied; `None` without a filter.
    #[serde(default)]
    pub filter_min_score: Option<f64>,
    /// Voxels added by hole filling.
    pub holes_filled_voxels: usize,
    /// Voxels added by the convex fill of axial cross-sections.
    #[serde(default)]
    pub convex_filled_voxels: usize,
    /// Components that the splitting step cut into several nodes.
    pub n_components_split: usize,
    /// Nodes in the output.
    pub n_nodes: usize,
}

/// `cfg` with the peak cut-off of `cut`, which the geometric steps apply again to the pieces a
/// mask threshold makes of a kept component (`nodal_nodes::postprocess`, step 3).
fn pieces_cut_at(cfg: &PostProcessConfig, cut: Cutoffs) -> PostProcessConfig {
    PostProcessConfig { min_peak_probability: cut.min_peak, ..*cfg }
}

/// The recipe's output on one probability map.
#[derive(Clone, Debug)]
pub struct Detected {
    /// Instance labels `1..=n` by decreasing short axis, on the probability map's grid.
    pub labels: Volume<u32>,
    /// One detection per node, `detections[l - 1]` for label `l`.
    pub detections: Vec<Detection>,
    /// What was done.
    pub report: PostProcessReport,
}

impl Recipe {
    /// The recipe's own cut-offs.
    pub fn cutoffs(&self) -> Cutoffs {
        Cutoffs {
            min_peak: self.postprocess.min_peak_probability,
            min_score: self.filter.as_ref().map(|f| f.min_score),
        }
    }

    /// Applies the recipe to a probability map (values in [0, 1]; NaN refused). The filter's
    /// features are measured on `ct`, which the measurements use too.
    ///
    /// # Errors
    /// [`DetectError::Nodes`] for non-finite probabilities, invalid options or grids that differ;
    /// [`DetectError::InvalidOption`] for a filter without a CT.
    pub fn apply(&self, prob: &Volume<f32>, ct: Option<&Volume<i16>>) -> Result<Detected, DetectError> {
        Candidates::new(prob, ct, self)?.detect(prob, ct, &self.postprocess, self.cutoffs())
    }
}

/// The components of `p >= threshold` with their peaks and, with a filter, its verdict on each:
/// labelled and scored once, then cut at any [`Cutoffs`] (sweeps score many from one inference).
#[derive(Clone, Debug)]
pub struct Candidates {
    /// Component labels, peaks and foreground count.
    pub components: PeakComponents,
    /// The filter's verdict on each component, by id (`None` for ids without voxels); `None`
    /// without a filter.
    pub scores: Option<Vec<Option<FilterScore>>>,
}

impl Candidates {
    /// Labels the components of `prob` at `recipe`'s threshold and connectivity and, when it has
    /// a filter, scores every component (the verdict on a component does not depend on the
    /// others, so one scoring serves every cut-off).
    ///
    /// # Errors
    /// As [`Recipe::apply`].
    pub fn new(prob: &Volume<f32>, ct: Option<&Volume<i16>>, recipe: &Recipe) -> Result<Self, DetectError> {
        Self::with_filter(prob, ct, &recipe.postprocess, recipe.filter.as_ref())
    }

    /// [`Self::new`] for `pp`'s threshold and connectivity, scored by `filter` (e.g. one being
    /// tuned) instead of a recipe's own.
    ///
    /// # Errors
    /// As [`Recipe::apply`].
    pub fn with_filter(
        prob: &Volume<f32>,
        ct: Option<&Volume<i16>>,
        pp: &PostProcessConfig,
        filter: Option<&ComponentFilter>,
    ) -> Result<Self, DetectError> {
        let components = PeakComponents::new(prob, pp.threshold, pp.connectivity)?;
        let scores = match filter {
            None => None,
            Some(filter) => {
                let ct = ct.ok_or(DetectError::InvalidOption {
                    name: "component filter",
                    value: "without a CT".into(),
                    reason: "its features are measured on the CT",
                })?;
                Some(filter.scores(&components.labels, prob, ct)?)
            }
        };
        Ok(Candidates { components, scores })
    }

    /// The keep rule, `keep[l]` for every component id (0 is false): the peak reaches
    /// `cut.min_peak` and, with scores and a `cut.min_score`, the filter's verdict passes it.
    ///
    /// # Errors
    /// [`DetectError::InvalidOption`] for a non-finite cut-off.
    pub fn keep(&self, cut: Cutoffs) -> Result<Vec<bool>, DetectError> {
        check_cutoffs(cut)?;
        let peaks = &self.components.peaks;
        let mut keep: Vec<bool> = peaks.iter().map(|&p| cut.min_peak.is_none_or(|m| p >= m)).collect();
        if let (Some(scores), Some(min_score)) = (&self.scores, cut.min_score) {
            for (k, s) in keep.iter_mut().zip(scores) {
                *k &= s.is_none_or(|s| s.passes(min_score));
            }
        }
        keep[0] = false;
        Ok(keep)
    }

    /// The kept components' labels (ids unchanged, the others 0).
    fn kept_labels(&self, keep: &[bool]) -> Volume<u32> {
        self.components.labels.map(|l| if keep[l as usize] { l } else { 0 })
    }

    /// The mask `nodal segment` writes for these cut-offs and `cfg` (its threshold must be the
    /// one the candidates were labelled at): the kept components after the mask threshold, size
    /// filter and filling. Splitting and relabelling change ids, not voxels, so they are skipped:
    /// this is what validation scores.
    ///
    /// # Errors
    /// As [`Recipe::apply`].
    pub fn mask(
        &self,
        prob: &Volume<f32>,
        cfg: &PostProcessConfig,
        cut: Cutoffs,
    ) -> Result<Volume<u8>, DetectError> {
        let mut labels = self.kept_labels(&self.keep(cut)?);
        finish_components(&mut labels, Some(prob), &pieces_cut_at(cfg, cut))?;
        Ok(labels.map(|l| u8::from(l > 0)))
    }

    /// The detections at these cut-offs with `cfg` (as for [`Self::mask`]).
    ///
    /// # Errors
    /// As [`Recipe::apply`].
    pub fn detect(
        &self,
        prob: &Volume<f32>,
        ct: Option<&Volume<i16>>,
        cfg: &PostProcessConfig,
        cut: Cutoffs,
    ) -> Result<Detected, DetectError> {
        let keep = self.keep(cut)?;
        let peak_only = self.keep(Cutoffs { min_score: None, ..cut })?;
        let n_removed_low_peak = peak_only[1..].iter().filter(|&&k| !k).count();
        let n_removed_by_filter = peak_only.iter().zip(&keep).filter(|(&p, &k)| p && !k).count();
        let labels = self.kept_labels(&keep);
        // Which scored component each voxel came from, kept sparse (the components are a small
        // part of the scan), for each node's verdict below.
        let scored_voxels: Vec<(usize, u32)> = match self.scores {
            Some(_) => {
                labels.as_slice().iter().enumerate().filter(|(_, &l)| l > 0).map(|(i, &l)| (i, l)).collect()
            }
            None => Vec::new(),
        };
        let nodes = finish_nodes(labels, Some(prob), ct, &pieces_cut_at(cfg, cut))?;
        let probabilities = label_probabilities(&nodes.labels, prob);
        let verdicts =
            self.scores.as_ref().map(|scores| node_verdicts(&nodes.labels, &scored_voxels, scores));
        let detections = nodes
            .measurements
            .into_iter()
            .map(|m| {
                let label = m.node_id;
                Detection {
                    probability: Some(probabilities[label as usize]),
                    filter: verdicts.as_ref().and_then(|v| v.get(&label).copied().flatten()),
                    measurement: m,
                }
            })
            .collect::<Vec<_>>();
        let report = PostProcessReport {
            config: *cfg,
            foreground_voxels: self.components.foreground_voxels,
            n_components: self.components.peaks.len() - 1,
            n_removed_small: nodes.steps.n_removed_small,
            n_removed_low_peak,
            n_removed_by_filter,
            filter_min_score: self.scores.as_ref().and(cut.min_score),
            holes_filled_voxels: nodes.steps.holes_filled_voxels,
            convex_filled_voxels: nodes.steps.convex_filled_voxels,
            n_components_split: nodes.steps.n_components_split,
            n_nodes: detections.len(),
        };
        Ok(Detected { labels: nodes.labels, detections, report })
    }
}

/// Each node's filter verdict: that of the scored component most of its voxels came from.
/// (Drawing at the mask threshold keeps a subset of one component, possibly split; only the
/// voxels that filling adds can come from elsewhere.) Ties go to the smaller component id, so the
/// choice does not depend on a map's order.
fn node_verdicts(
    nodes: &Volume<u32>,
    scored_voxels: &[(usize, u32)],
    scores: &[Option<FilterScore>],
) -> HashMap<u32, Option<FilterScore>> {
    let mut votes: HashMap<(u32, u32), usize> = HashMap::new();
    let nodes = nodes.as_slice();
    for &(i, raw) in scored_voxels {
        if nodes[i] > 0 {
            *votes.entry((nodes[i], raw)).or_default() += 1;
        }
    }
    let mut source: HashMap<u32, (usize, u32)> = HashMap::new();
    for ((node, raw), n) in votes {
        let best = source.entry(node).or_insert((n, raw));
        if (n, std::cmp::Reverse(raw)) > (best.0, std::cmp::Reverse(best.1)) {
            *best = (n, raw);
        }
    }
    source.into_iter().map(|(node, (_, raw))| (node, scores[raw as usize])).collect()
}

fn check_cutoffs(cut: Cutoffs) -> Result<(), DetectError> {
    let bad = |name, value: String| DetectError::InvalidOption { name, value, reason: "must be finite" };
    if let Some(p) = cut.min_peak.filter(|p| !p.is_finite()) {
        return Err(bad("min_peak_probability", p.to_string()));
    }
    if let Some(s) = cut.min_score.filter(|s| !s.is_finite()) {
        return Err(bad("filter cut-off", s.to_string()));
    }
    Ok(())
}
