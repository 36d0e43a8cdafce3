//! A second-stage component filter: gradient-boosted decision trees that score each connected
//! component of a network's thresholded probability map as node or not, from a few numbers
//! measured about the component, and drop the components that score below a cut-off.
//!
//! A segmentation network sees a patch; its false positives are often blobs that look like a node
//! voxel by voxel but not as a whole — too large or elongated, a lukewarm peak, tissue of the wrong
//! density. Scoring whole components with what the measurements already give ([`Feature`]) is
//! the candidate-classification stage of classic lymph-node detection systems.
//!
//! Two features describe the component's surroundings rather than the component: the fat
//! fraction and mean HU of a shell [`SHELL_MM`] wide around it. A lymph node is a discrete oval
//! structure embedded in fat; the network's confident false positives are pieces of muscle,
//! vessel and bowel whose surroundings are not fat — what a reader looks at beside the blob itself.
//! A filter names the features it uses (`features`, a subset of [`Feature::ALL`]; by default
//! [`Feature::DEFAULT`], without the context), so filters fitted before a feature was added keep
//! working.
//!
//! The features leave out the spread of HU inside a component (standard deviation, percentiles):
//! the simulated nodes of the data engine are more textured than the tissue blobs a network
//! mistakes for nodes, so a filter trained on simulated data would learn the simulator's texture
//! from them rather than what makes a node.
//!
//! Fitting ([`ComponentFilter::fit`]) is Friedman's gradient boosting for the logistic loss with
//! depth-limited regression trees: each tree fits the residuals `y - p` by least squares (splits at
//! midpoints between distinct values, the largest variance reduction wins, ties to the earlier
//! feature and threshold), and each leaf takes one Newton step, `sum(y - p) / sum(p (1 - p))`.
//! Samples may carry weights (every sum above, and the prior, weighted; the leaf size still counts
//! samples). With the same settings this is scikit-learn's `GradientBoostingClassifier` with
//! `sample_weight` (up to ties).
use crate::probability::{label_probabilities, NodeProbability};
use crate::DetectError;
use nodal_core::morph::dilate_box;
use nodal_core::Volume;
use nodal_nodes::measure::{measure_nodes, MeasureOptions, NodeMeasurement};
use nodal_nodes::NodesError;
use serde::{Deserialize, Serialize};

/// One number measured about a component. The serde spelling is the name a filter file lists
/// its features by; the discriminant is the feature's column in [`ComponentFeatures::values`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    /// `ln` of the volume in mm^3.
    LnVolumeMm3,
    /// Axial short axis, mm.
    ShortAxisMm,
    /// Long axis / short axis.
    LongToShortAxis,
    /// Sphericity of the voxel surface.
    Sphericity,
    /// Mean HU.
    MeanHu,
    /// Fraction of the interior below the necrosis threshold.
    NecrosisFraction,
    /// Logit of the peak probability.
    PeakLogit,
    /// Mean probability.
    MeanProbability,
    /// Fraction of the shell around the component in fat.
    ShellFatFraction,
    /// Mean HU of the shell around the component.
    ShellMeanHu,
}

impl Feature {
    /// Every feature, in column order: the default ones, then the context ones.
    pub const ALL: [Feature; 10] = [
        Feature::LnVolumeMm3,
        Feature::ShortAxisMm,
        Feature::LongToShortAxis,
        Feature::Sphericity,
        Feature::MeanHu,
        Feature::NecrosisFraction,
        Feature::PeakLogit,
        Feature::MeanProbability,
        Feature::ShellFatFraction,
        Feature::ShellMeanHu,
    ];

    /// The features a filter uses unless told otherwise: those of the component itself. The
    /// context features are opt-in: on the shipped network's selection cases they removed false
    /// positives but also bulky metastases, whose surroundings (displaced muscle and vessels) are
    /// less fatty than a small node's.
    pub const DEFAULT: [Feature; 8] = {
        // The first columns of `ALL`, so the two lists cannot drift apart.
        let mut d = [Feature::LnVolumeMm3; 8];
        let mut i = 0;
        while i < d.len() {
            d[i] = Feature::ALL[i];
            i += 1;
        }
        d
    };

    /// The context features: the fat fraction and mean HU of a shell [`SHELL_MM`] wide around
    /// the component.
    pub const CONTEXT: [Feature; 2] = [Feature::ALL[8], Feature::ALL[9]];

    /// The feature's column in [`ComponentFeatures::values`].
    pub fn column(self) -> usize {
        self as usize
    }

    /// The name a filter file uses (the serde spelling), e.g. `peak_logit`.
    pub fn name(self) -> &'static str {
        match self {
            Feature::LnVolumeMm3 => "ln_volume_mm3",
            Feature::ShortAxisMm => "short_axis_mm",
            Feature::LongToShortAxis => "long_to_short_axis",
            Feature::Sphericity => "sphericity",
            Feature::MeanHu => "mean_hu",
            Feature::NecrosisFraction => "necrosis_fraction",
            Feature::PeakLogit => "peak_logit",
            Feature::MeanProbability => "mean_probability",
            Feature::ShellFatFraction => "shell_fat_fraction",
            Feature::ShellMeanHu => "shell_mean_hu",
        }
    }
}

impl std::str::FromStr for Feature {
    type Err = DetectError;
    fn from_str(s: &str) -> Result<Self, DetectError> {
        Feature::ALL.into_iter().find(|f| f.name() == s).ok_or_else(|| DetectError::InvalidOption {
            name: "filter features",
            value: s.to_string(),
            reason: "unknown feature (not one of this version's)",
        })
    }
}

/// Number of features.
pub const N_FEATURES: usize = Feature::ALL.len();

/// Width of the shell around a component that the context features describe, mm.
pub const SHELL_MM: f64 = 3.0;

/// HU range of fat (the usual adipose-tissue window).
const FAT_HU: std::ops::RangeInclusive<i16> = -190..=-30;

/// Version of the filter file format.
pub const FILTER_FORMAT: u32 = 1;

/// The features of one component.
#[derive(Clone, Debug, PartialEq)]
pub struct ComponentFeatures {
    /// The component's id in the label map.
    pub node_id: u32,
    /// Its axial short axis, mm (the protocol's size filter drops it below 4.5 mm).
    pub short_axis_mm: f64,
    /// Feature values in the order of [`Feature::ALL`] (index = [`Feature::column`]).
    pub values: [f64; N_FEATURES],
}

/// The features of every component of `labels` (ids > 0), from its measurements against `ct` and
/// the probabilities `prob` over its voxels; in increasing label order. The shell is not free
/// (0.1-0.4 s on a 512x512x250 scan), so [`Feature::CONTEXT`] are measured only `with_context`
/// (NaN otherwise, which a fit refuses).
///
/// # Errors
/// [`NodesError::GridMismatch`] (as [`DetectError::Nodes`]) when `prob` or `ct` is not on the
/// label map's grid.
pub fn component_features(
    labels: &Volume<u32>,
    prob: &Volume<f32>,
    ct: &Volume<i16>,
    with_context: bool,
) -> Result<Vec<ComponentFeatures>, DetectError> {
    labels
        .check_same_grid(prob)
        .map_err(|source| NodesError::GridMismatch { what: "probability map".into(), source })?;
    let probabilities = label_probabilities(labels, prob);
    let measurements = measure_nodes(labels, Some(ct), &MeasureOptions::default())?;
    let unmeasured = Shell { fat_fraction: f64::NAN, mean_hu: f64::NAN };
    Ok(measurements
        .iter()
        .map(|m| {
            let around = if with_context { shell(labels, ct, m) } else { unmeasured };
            ComponentFeatures {
                node_id: m.node_id,
                short_axis_mm: m.axes.short_axis_mm,
                values: feature_values(m, probabilities[m.node_id as usize], around),
            }
        })
        .collect())
}

/// The tissue around one component: the voxels within [`SHELL_MM`] of it that are not in it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Shell {
    /// Fraction of the shell's voxels in fat ([`FAT_HU`]).
    fat_fraction: f64,
    /// Mean HU of the shell's voxels.
    mean_hu: f64,
}

/// The [`Shell`] of the measured component `m` (zeros when the component fills the volume and
/// leaves no shell). The shell is a box neighbourhood: `±round(SHELL_MM / spacing)` voxels (at
/// least 1) along each index axis, clipped to the volume, searched only around the component's
/// bounding box; other components' voxels count as tissue like any other.
fn shell(labels: &Volume<u32>, ct: &Volume<i16>, m: &NodeMeasurement) -> Shell {
    let dims = labels.dims();
    let sp = labels.geometry().spacing_mm;
    let r: [usize; 3] = std::array::from_fn(|a| ((SHELL_MM / sp[a]).round() as usize).max(1));
    let start: [usize; 3] = std::array::from_fn(|a| m.bbox_min_index[a].saturating_sub(r[a]));
    let end: [usize; 3] = std::array::from_fn(|a| (m.bbox_max_index[a] + r[a] + 1).min(dims[a]));
    let (lab, hu) = (labels.data(), ct.data());
    let at = |(k, j, i): (usize, usize, usize)| [start[2] + k, start[1] + j, start[0] + i];
    let size = [end[2] - start[2], end[1] - start[1], end[0] - start[0]];
    let inside = ndarray::Array3::from_shape_fn(size, |idx| u8::from(lab[at(idx)] == m.node_id));
    let near = dilate_box(&inside, r);
    let (mut count, mut fat, mut sum) = (0usize, 0usize, 0f64);
    for ((idx, &d), &c) in near.indexed_iter().zip(inside.iter()) {
        if d == 1 && c == 0 {
            let h = hu[at(idx)];
            count += 1;
            fat += usize::from(FAT_HU.contains(&h));
            sum += f64::from(h);
        }
    }
    if count == 0 {
        return Shell::default();
    }
    Shell { fat_fraction: fat as f64 / count as f64, mean_hu: sum / count as f64 }
}

/// The features of one measured component with the probability over its voxels `prob` and
/// surroundings `shell`.
fn feature_values(m: &NodeMeasurement, prob: NodeProbability, shell: Shell) -> [f64; N_FEATURES] {
    let sad = m.axes.short_axis_mm;
    // The network's probabilities saturate near 1, where the useful differences are; the logit of
    // the peak spreads them out (clamped: f32 rounds 1 - 1e-7 to 1).
    let p = prob.peak.clamp(1e-6, 1.0 - 1e-6);
    [
        m.volume_mm3.max(1e-3).ln(),
        sad,
        if sad > 0.0 { m.axes.long_axis_mm / sad } else { 0.0 },
        m.sphericity,
        m.hu.map_or(0.0, |h| h.mean_hu),
        m.necrosis_fraction.unwrap_or(0.0),
        (p / (1.0 - p)).ln(),
        prob.mean,
        shell.fat_fraction,
        shell.mean_hu,
    ]
}

/// Settings of [`ComponentFilter::fit`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct BoostConfig {
    /// Number of trees.
    pub n_trees: usize,
    /// Depth of each tree (1 = stumps).
    pub max_depth: usize,
    /// Shrinkage of each tree's contribution.
    pub learning_rate: f64,
    /// Fewest training samples in a leaf.
    pub min_samples_leaf: usize,
}

impl Default for BoostConfig {
    fn default() -> Self {
        BoostConfig { n_trees: 100, max_depth: 2, learning_rate: 0.1, min_samples_leaf: 5 }
    }
}

/// One node of a regression tree: a split (`x[feature] <= threshold` goes left, `feature` indexing
/// the filter's own feature list) or a leaf.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TreeNode {
    /// Internal node; `left` and `right` index the tree's node list.
    Split { feature: usize, threshold: f64, left: usize, right: usize },
    /// Leaf with its value (added to the logit, times the learning rate).
    Leaf { value: f64 },
}

/// A regression tree; node 0 is the root.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<TreeNode>,
}

impl Tree {
    /// The tree's value for a sample whose feature `f` (of the filter's list) is `x[f]`.
    fn eval(&self, x: &[f64]) -> f64 {
        let mut i = 0;
        loop {
            match self.nodes[i] {
                TreeNode::Split { feature, threshold, left, right } => {
                    i = if x[feature] <= threshold { left } else { right };
                }
                TreeNode::Leaf { value } => return value,
            }
        }
    }
}

/// A fitted filter with its cut-off; saved as JSON (`component_filter.json` in a model folder).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComponentFilter {
    /// [`FILTER_FORMAT`].
    pub format: u32,
    /// The features the trees index (in any order, each once).
    pub features: Vec<Feature>,
    /// The fitting settings.
    pub boost: BoostConfig,
    /// Initial logit (log-odds of the positive class in the training samples).
    pub base_logit: f64,
    /// The trees.
    pub trees: Vec<Tree>,
    /// Components scoring below this are dropped.
    pub min_score: f64,
    /// Components with at least this axial short axis are never dropped (score 1): bulky and
    /// necrotic metastases are rare among the components a filter learns from, and a node of this
    /// size is the one a reader must not miss, while a false one is quickly dismissed. `None`: no
    /// such guard.
    #[serde(default)]
    pub keep_short_axis_mm: Option<f64>,
    /// Where the filter came from (data, counts, the cut-off table); free-form, for people.
    #[serde(default)]
    pub record: serde_json::Value,
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

impl ComponentFilter {
    /// Fits the trees to samples `x` (every feature of [`Feature::ALL`]) with labels `y` (true =
    /// node) and optional positive sample weights (`None`: all 1), using the features named in
    /// `features` (`None`: [`Feature::DEFAULT`]); `min_score` starts at 0.5.
    ///
    /// # Errors
    /// [`DetectError::InvalidOption`] without samples of both classes, for non-finite features,
    /// weights that are not finite and positive or not one per sample, a repeated feature or
    /// none, or settings out of range.
    pub fn fit(
        x: &[[f64; N_FEATURES]],
        y: &[bool],
        weights: Option<&[f64]>,
        features: Option<&[Feature]>,
        boost: BoostConfig,
    ) -> Result<Self, DetectError> {
        let bad = |name, value: String, reason| DetectError::InvalidOption { name, value, reason };
        let features: Vec<Feature> = features.map_or_else(|| Feature::DEFAULT.to_vec(), <[Feature]>::to_vec);
        let columns = feature_columns(&features)?;
        let x: Vec<Vec<f64>> = x.iter().map(|xi| columns.iter().map(|&c| xi[c]).collect()).collect();
        if x.len() != y.len() {
            return Err(bad("samples", x.len().to_string(), "features and labels differ in count"));
        }
        let n_pos = y.iter().filter(|&&v| v).count();
        if n_pos == 0 || n_pos == y.len() {
            return Err(bad("samples", format!("{n_pos} of {}", y.len()), "need positives and negatives"));
        }
        if x.iter().flatten().any(|v| !v.is_finite()) {
            return Err(bad("samples", "non-finite".into(), "features must be finite"));
        }
        let w: Vec<f64> = match weights {
            None => vec![1.0; x.len()],
            Some(w) if w.len() != x.len() => {
                return Err(bad("sample weights", w.len().to_string(), "need one weight per sample"))
            }
            Some(w) => match w.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
                Some(v) => {
                    return Err(bad("sample weights", v.to_string(), "weights must be finite and > 0"))
                }
                None => w.to_vec(),
            },
        };
        if boost.max_depth == 0
            || boost.min_samples_leaf == 0
            || !boost.learning_rate.is_finite()
            || boost.learning_rate <= 0.0
        {
            return Err(bad("boost", format!("{boost:?}"), "depth, leaf size and learning rate must be > 0"));
        }
        let w_pos: f64 = w.iter().zip(y).filter(|(_, &v)| v).map(|(w, _)| w).sum();
        let prior = w_pos / w.iter().sum::<f64>();
        let base_logit = (prior / (1.0 - prior)).ln();
        let target: Vec<f64> = y.iter().map(|&v| f64::from(u8::from(v))).collect();
        let mut logit = vec![base_logit; x.len()];
        let mut trees = Vec::with_capacity(boost.n_trees);
        for _ in 0..boost.n_trees {
            let p: Vec<f64> = logit.iter().map(|&z| sigmoid(z)).collect();
            let resid: Vec<f64> = target.iter().zip(&p).map(|(t, p)| t - p).collect();
            let hess: Vec<f64> = p.iter().map(|p| p * (1.0 - p)).collect();
            let mut nodes = Vec::new();
            let idx: Vec<usize> = (0..x.len()).collect();
            let fit = Residuals { x: &x, resid: &resid, hess: &hess, w: &w };
            fit.grow(&mut nodes, idx, boost.max_depth, boost.min_samples_leaf);
            let tree = Tree { nodes };
            for (z, xi) in logit.iter_mut().zip(&x) {
                *z += boost.learning_rate * tree.eval(xi);
            }
            trees.push(tree);
        }
        Ok(ComponentFilter {
            format: FILTER_FORMAT,
            features,
            boost,
            base_logit,
            trees,
            min_score: 0.5,
            keep_short_axis_mm: None,
            record: serde_json::Value::Null,
        })
    }

    /// Probability that a component with features `x` (every feature of [`Feature::ALL`]) is a
    /// node.
    ///
    /// # Errors
    /// [`DetectError::InvalidOption`] when the filter names no feature or one twice.
    pub fn score(&self, x: &[f64; N_FEATURES]) -> Result<f64, DetectError> {
        Ok(self.score_columns(&feature_columns(&self.features)?, x))
    }

    /// [`Self::score`] with the filter's features at `columns` of `x`.
    fn score_columns(&self, columns: &[usize], x: &[f64; N_FEATURES]) -> f64 {
        let own: Vec<f64> = columns.iter().map(|&c| x[c]).collect();
        sigmoid(
            self.base_logit + self.boost.learning_rate * self.trees.iter().map(|t| t.eval(&own)).sum::<f64>(),
        )
    }

    /// Checks a filter read from a file: format, feature names, tree structure, finite numbers.
    ///
    /// # Errors
    /// [`DetectError::InvalidOption`] naming what is wrong.
    pub fn validate(&self) -> Result<(), DetectError> {
        let bad = |value: String, reason| {
            Err(DetectError::InvalidOption { name: "component filter", value, reason })
        };
        if self.format != FILTER_FORMAT {
            return bad(format!("format {}", self.format), "unknown filter format");
        }
        feature_columns(&self.features)?;
        if !self.base_logit.is_finite()
            || !self.boost.learning_rate.is_finite()
            || !self.min_score.is_finite()
        {
            return bad("base_logit / learning_rate / min_score".into(), "must be finite");
        }
        if let Some(g) = self.keep_short_axis_mm {
            if !(g.is_finite() && g > 0.0) {
                return bad(format!("keep_short_axis_mm {g}"), "must be a positive number of mm");
            }
        }
        for (t, tree) in self.trees.iter().enumerate() {
            // Children must come after their parent, which also rules out cycles.
            for (i, node) in tree.nodes.iter().enumerate() {
                let ok = match *node {
                    TreeNode::Split { feature, threshold, left, right } => {
                        feature < self.features.len()
                            && !threshold.is_nan()
                            && left > i
                            && right > i
                            && left < tree.nodes.len()
                            && right < tree.nodes.len()
                    }
                    TreeNode::Leaf { value } => value.is_finite(),
                };
                if !ok {
                    return bad(format!("tree {t} node {i}"), "malformed tree node");
                }
            }
            if tree.nodes.is_empty() {
                return bad(format!("tree {t}"), "empty tree");
            }
        }
        Ok(())
    }

    /// Which components of `labels` to keep: `keep[l]` for every id up to the largest (ids without
    /// voxels and 0 are false). Components scoring below [`Self::min_score`] are dropped, unless
    /// the short-axis guard keeps them.
    ///
    /// # Errors
    /// As [`component_features`].
    pub fn keep(
        &self,
        labels: &Volume<u32>,
        prob: &Volume<f32>,
        ct: &Volume<i16>,
    ) -> Result<Vec<bool>, DetectError> {
        let scores = self.scores(labels, prob, ct)?;
        Ok(scores.iter().map(|s| s.is_some_and(|s| s.passes(self.min_score))).collect())
    }

    /// The verdict on every component of `labels`, indexed by id (`None` for ids without voxels):
    /// the trees' score, and whether the short-axis guard ([`Self::keep_short_axis_mm`]) keeps it
    /// whatever that score.
    ///
    /// # Errors
    /// As [`component_features`].
    pub fn scores(
        &self,
        labels: &Volume<u32>,
        prob: &Volume<f32>,
        ct: &Volume<i16>,
    ) -> Result<Vec<Option<FilterScore>>, DetectError> {
        let columns = feature_columns(&self.features)?;
        let with_context = self.features.iter().any(|f| Feature::CONTEXT.contains(f));
        let n = labels.as_slice().iter().copied().max().unwrap_or(0) as usize;
        let mut scores = vec![None; n + 1];
        for f in component_features(labels, prob, ct, with_context)? {
            scores[f.node_id as usize] = Some(FilterScore {
                score: self.score_columns(&columns, &f.values),
                kept_by_size_guard: self.keep_short_axis_mm.is_some_and(|g| f.short_axis_mm >= g),
            });
        }
        Ok(scores)
    }
}

/// The component filter's verdict on one component: what `nodes.json` reports for each node (the
/// component it was drawn from), so that detections can be ranked by the score the operating
/// point cuts.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct FilterScore {
    /// The trees' score in [0, 1]: the fitted probability that the component touches a node.
    pub score: f64,
    /// Kept whatever its score, because its short axis reaches the filter's
    /// [`ComponentFilter::keep_short_axis_mm`].
    pub kept_by_size_guard: bool,
}

impl FilterScore {
    /// Whether a component with this verdict is kept at cut-off `min_score`.
    pub fn passes(&self, min_score: f64) -> bool {
        self.kept_by_size_guard || self.score >= min_score
    }
}

/// The column of each of `features` in [`ComponentFeatures::values`].
///
/// # Errors
/// [`DetectError::InvalidOption`] for a repeated feature or none.
pub fn feature_columns(features: &[Feature]) -> Result<Vec<usize>, DetectError> {
    let bad =
        |value: String, reason| Err(DetectError::InvalidOption { name: "filter features", value, reason });
    if features.is_empty() {
        return bad("[]".into(), "a filter needs at least one feature");
    }
    for (i, f) in features.iter().enumerate() {
        if features[..i].contains(f) {
            return bad(f.name().to_string(), "feature named twice");
        }
    }
    Ok(features.iter().map(|f| f.column()).collect())
}

/// One boosting round's regression problem: the samples (the filter's features), their residuals
/// `y - p`, Hessians `p (1 - p)` and weights.
struct Residuals<'a> {
    x: &'a [Vec<f64>],
    resid: &'a [f64],
    hess: &'a [f64],
    w: &'a [f64],
}

impl Residuals<'_> {
    /// Grows a weighted least-squares regression tree on the residuals of the samples `idx`,
    /// appending its nodes to `nodes`; returns the index of the subtree's root.
    fn grow(&self, nodes: &mut Vec<TreeNode>, idx: Vec<usize>, depth: usize, min_leaf: usize) -> usize {
        let at = nodes.len();
        let split = if depth > 0 { self.best_split(&idx, min_leaf) } else { None };
        let Some((feature, threshold)) = split else {
            let r: f64 = idx.iter().map(|&i| self.w[i] * self.resid[i]).sum();
            let h: f64 = idx.iter().map(|&i| self.w[i] * self.hess[i]).sum();
            nodes.push(TreeNode::Leaf { value: if h > 1e-12 { r / h } else { 0.0 } });
            return at;
        };
        nodes.push(TreeNode::Leaf { value: 0.0 }); // replaced below, once the children are placed
        let (l, r): (Vec<usize>, Vec<usize>) =
            idx.into_iter().partition(|&i| self.x[i][feature] <= threshold);
        let left = self.grow(nodes, l, depth - 1, min_leaf);
        let right = self.grow(nodes, r, depth - 1, min_leaf);
        nodes[at] = TreeNode::Split { feature, threshold, left, right };
        at
    }

    /// The split of `idx` with the largest reduction of the residuals' weighted sum of squares,
    /// `S_l^2 / W_l + S_r^2 / W_r - S^2 / W` (`S`: weighted sum of residuals, `W`: sum of weights),
    /// both sides holding at least `min_leaf` samples; `None` when no split reduces it.
    fn best_split(&self, idx: &[usize], min_leaf: usize) -> Option<(usize, f64)> {
        let (x, n) = (self.x, idx.len());
        if n < 2 * min_leaf {
            return None;
        }
        let total: f64 = idx.iter().map(|&i| self.w[i] * self.resid[i]).sum();
        let total_w: f64 = idx.iter().map(|&i| self.w[i]).sum();
        let base = total * total / total_w;
        let mut best: Option<(f64, usize, f64)> = None;
        let mut order = idx.to_vec();
        for f in 0..x[idx[0]].len() {
            order.sort_by(|&a, &b| x[a][f].total_cmp(&x[b][f]).then(a.cmp(&b)));
            let (mut left, mut left_w) = (0.0, 0.0);
            for k in 1..n {
                let i = order[k - 1];
                left += self.w[i] * self.resid[i];
                left_w += self.w[i];
                let (lo, hi) = (x[i][f], x[order[k]][f]);
                if k < min_leaf || n - k < min_leaf || lo >= hi {
                    continue;
                }
                let right = total - left;
                let gain = left * left / left_w + right * right / (total_w - left_w) - base;
                if gain > 1e-12 && best.is_none_or(|(g, _, _)| gain > g) {
                    // The midpoint, unless it rounds up to `hi` (adjacent floats): `lo <= t < hi`.
                    let mid = lo + (hi - lo) / 2.0;
                    best = Some((gain, f, if mid < hi { mid } else { lo }));
                }
            }
        }
        best.map(|(_, f, t)| (f, t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nodal_core::Geometry;
    use proptest::prelude::*;

    fn sample(seed: u64, n: usize) -> (Vec<[f64; N_FEATURES]>, Vec<bool>) {
        // A small deterministic generator (xorshift) so the tests need no RNG crate.
        let mut s = seed.max(1);
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        let x: Vec<[f64; N_FEATURES]> =
            (0..n).map(|_| std::array::from_fn(|_| (next() * 20.0).round())).collect();
        let y = x.iter().map(|v| v[6] > 10.0 && v[0] < 15.0).collect();
        (x, y)
    }

    #[test]
    fn learns_a_rule_two_splits_deep() {
        let (x, y) = sample(7, 400);
        let f = ComponentFilter::fit(&x, &y, None, None, BoostConfig::default()).unwrap();
        let wrong = x.iter().zip(&y).filter(|(xi, &yi)| (f.score(xi).unwrap() >= 0.5) != yi).count();
        assert_eq!(wrong, 0, "a depth-2 rule on two features must be learnt exactly");
        let (xt, yt) = sample(99, 200);
        let wrong = xt.iter().zip(&yt).filter(|(xi, &yi)| (f.score(xi).unwrap() >= 0.5) != yi).count();
        assert!(wrong <= 4, "{wrong} of 200 unseen samples wrong");
    }

    #[test]
    fn training_loss_falls_with_more_trees() {
        let (x, y) = sample(3, 300);
        let loss = |n_trees| {
            let f = ComponentFilter::fit(&x, &y, None, None, BoostConfig { n_trees, ..Default::default() })
                .unwrap();
            x.iter()
                .zip(&y)
                .map(|(xi, &yi)| {
                    -f.score(xi).unwrap().max(1e-12).ln() * f64::from(u8::from(yi))
                        - (1.0 - f.score(xi).unwrap()).max(1e-12).ln() * f64::from(u8::from(!yi))
                })
                .sum::<f64>()
        };
        let (l0, l10, l50) = (loss(0), loss(10), loss(50));
        assert!(l10 < l0 && l50 < l10, "{l0} {l10} {l50}");
    }

    #[test]
    fn zero_trees_score_the_prior_and_bad_input_is_refused() {
        let x = vec![[0.0; N_FEATURES]; 4];
        let f = ComponentFilter::fit(
            &x,
            &[true, false, false, false],
            None,
            None,
            BoostConfig { n_trees: 0, ..Default::default() },
        )
        .unwrap();
        assert!((f.score(&x[0]).unwrap() - 0.25).abs() < 1e-12);
        assert!(ComponentFilter::fit(&x, &[false; 4], None, None, BoostConfig::default()).is_err());
        assert!(ComponentFilter::fit(&x, &[true, false], None, None, BoostConfig::default()).is_err());
        let mut nan = x.clone();
        nan[1][3] = f64::NAN;
        assert!(ComponentFilter::fit(&nan, &[true, false, false, false], None, None, BoostConfig::default())
            .is_err());
    }

    #[test]
    fn json_round_trip_and_validation() {
        let (x, y) = sample(11, 200);
        let f = ComponentFilter::fit(&x, &y, None, None, BoostConfig { n_trees: 5, ..Default::default() })
            .unwrap();
        assert_eq!(f.features, Feature::DEFAULT);
        let back: ComponentFilter = serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
        assert_eq!(back, f);
        back.validate().unwrap();
        let mut cyclic = f.clone();
        cyclic.trees[0].nodes[0] = TreeNode::Split { feature: 0, threshold: 1.0, left: 0, right: 0 };
        assert!(cyclic.validate().is_err());
        // A name this version does not know is refused when the file is read.
        let renamed = serde_json::to_string(&f).unwrap().replacen("long_to_short_axis", "elongation", 1);
        let e = serde_json::from_str::<ComponentFilter>(&renamed).unwrap_err();
        assert!(e.to_string().contains("elongation"), "{e}");
        let mut repeated = f.clone();
        repeated.features[2] = repeated.features[3];
        assert!(repeated.validate().is_err());
        let mut fewer = f.clone();
        fewer.features.pop();
        let dropped = fewer.features.len();
        let unused = fewer
            .trees
            .iter()
            .flat_map(|t| &t.nodes)
            .all(|n| !matches!(n, TreeNode::Split { feature, .. } if *feature == dropped));
        // Dropping a feature's name is valid exactly when no tree splits on it.
        assert_eq!(fewer.validate().is_ok(), unused);
        // A filter fitted on a subset names it, and its trees index it.
        let own = [Feature::PeakLogit, Feature::LnVolumeMm3];
        let narrow =
            ComponentFilter::fit(&x, &y, None, Some(&own), BoostConfig { n_trees: 5, ..Default::default() })
                .unwrap();
        assert_eq!(narrow.features, own);
        narrow.validate().unwrap();
        for bad in [vec![], vec![own[0], own[0]]] {
            let e = ComponentFilter::fit(&x, &y, None, Some(&bad), BoostConfig::default()).unwrap_err();
            assert!(e.to_string().contains("feature"), "{e}");
        }
        assert!("hu_spread".parse::<Feature>().is_err());
        for f in Feature::ALL {
            assert_eq!(f.name().parse::<Feature>().unwrap(), f);
            assert_eq!(serde_json::to_string(&f).unwrap(), format!("\"{}\"", f.name()));
            assert_eq!(Feature::ALL[f.column()], f);
        }
        let mut bad_feature = f;
        bad_feature.trees[1].nodes[0] =
            TreeNode::Split { feature: N_FEATURES, threshold: 1.0, left: 1, right: 2 };
        assert!(bad_feature.validate().is_err());
    }

    proptest! {
        /// The weighted split search equals a brute-force search over every feature and threshold.
        #[test]
        fn best_split_matches_brute_force(seed in 1u64..10_000, n in 2usize..40, min_leaf in 1usize..5) {
            let (x, _) = sample(seed, n);
            let resid: Vec<f64> = (0..n).map(|i| ((i * 7919 + seed as usize) % 13) as f64 - 6.0).collect();
            let w: Vec<f64> = (0..n).map(|i| 0.5 + ((i * 31 + seed as usize) % 5) as f64).collect();
            let idx: Vec<usize> = (0..n).collect();
            let sse_gain = |f: usize, t: f64| {
                let (l, r): (Vec<usize>, Vec<usize>) = idx.iter().partition(|&&i| x[i][f] <= t);
                if l.len() < min_leaf || r.len() < min_leaf {
                    return None;
                }
                // Weighted sum of squares around the weighted mean, before and after.
                let sse = |v: &[usize]| {
                    let wsum: f64 = v.iter().map(|&i| w[i]).sum();
                    let mean = v.iter().map(|&i| w[i] * resid[i]).sum::<f64>() / wsum;
                    v.iter().map(|&i| w[i] * (resid[i] - mean).powi(2)).sum::<f64>()
                };
                Some(sse(&idx) - sse(&l) - sse(&r))
            };
            let mut brute: Option<f64> = None;
            for f in 0..N_FEATURES {
                for &i in &idx {
                    if let Some(g) = sse_gain(f, x[i][f]) {
                        if g > 1e-9 && brute.is_none_or(|b| g > b) {
                            brute = Some(g);
                        }
                    }
                }
            }
            let hess = vec![1.0; n];
            let x: Vec<Vec<f64>> = x.iter().map(|xi| xi.to_vec()).collect();
            let fit = Residuals { x: &x, resid: &resid, hess: &hess, w: &w };
            match fit.best_split(&idx, min_leaf) {
                None => prop_assert!(brute.is_none()),
                Some((f, t)) => {
                    let g = sse_gain(f, t).expect("chosen split respects the leaf size");
                    prop_assert!((g - brute.unwrap()).abs() < 1e-7, "{} vs {:?}", g, brute);
                }
            }
        }
    }

    #[test]
    fn integer_weights_fit_as_repeated_samples() {
        // With one sample per leaf allowed, a sample of weight k is k copies of it: the same
        // prior, split gains and leaf steps, so the same trees.
        let (x, y) = sample(5, 150);
        let w: Vec<f64> = (0..x.len()).map(|i| (1 + i % 3) as f64).collect();
        let (mut xr, mut yr) = (Vec::new(), Vec::new());
        for ((xi, &yi), &wi) in x.iter().zip(&y).zip(&w) {
            for _ in 0..wi as usize {
                xr.push(*xi);
                yr.push(yi);
            }
        }
        let boost = BoostConfig { n_trees: 20, min_samples_leaf: 1, ..Default::default() };
        let weighted = ComponentFilter::fit(&x, &y, Some(&w), None, boost).unwrap();
        let repeated = ComponentFilter::fit(&xr, &yr, None, None, boost).unwrap();
        assert!((weighted.base_logit - repeated.base_logit).abs() < 1e-12);
        for xi in &x {
            assert!((weighted.score(xi).unwrap() - repeated.score(xi).unwrap()).abs() < 1e-9);
        }
        // Weights shift the fit: the unweighted one differs.
        let plain = ComponentFilter::fit(&x, &y, None, None, boost).unwrap();
        assert!((plain.base_logit - weighted.base_logit).abs() > 1e-3);
        // Bad weights are refused with the reason.
        for bad in [vec![1.0; 3], vec![0.0; x.len()], vec![f64::NAN; x.len()], vec![-1.0; x.len()]] {
            let e = ComponentFilter::fit(&x, &y, Some(&bad), None, boost).unwrap_err().to_string();
            assert!(e.contains("weight"), "{e}");
        }
    }

    #[test]
    fn shell_features_match_a_brute_force_shell() {
        // Two irregular components on an anisotropic grid, one touching the volume's edge, in
        // tissue of varied HU; the shell is every voxel within the box radius of a component voxel
        // that is not in that component.
        let g = Geometry::axis_aligned([0.7, 1.0, 2.5], [0.0; 3]);
        let dims = [20, 14, 9];
        let mut labels = Volume::<u32>::zeros(dims, g);
        let mut ct = Volume::<i16>::zeros(dims, g);
        for ((k, j, i), v) in ct.data_mut().indexed_iter_mut() {
            *v = [-100, -500, 40, 250, -30, -190, -191, -29][(i * 7 + j * 3 + k) % 8];
        }
        for ((k, j, i), l) in labels.data_mut().indexed_iter_mut() {
            let (x, y, z) = (i as f64 - 6.0, j as f64 - 6.0, k as f64 - 4.0);
            if x * x / 9.0 + y * y / 6.0 + z * z / 2.0 <= 1.0 {
                *l = 1;
            } else if i >= 16 && j <= 3 && k >= 6 && (i + j) % 3 != 0 {
                *l = 2;
            }
        }
        let prob = labels.map(|l| if l > 0 { 0.9f32 } else { 0.0 });
        let f = component_features(&labels, &prob, &ct, true).unwrap();
        assert_eq!(f.len(), 2);
        // 3 mm: 4 voxels of 0.7 mm, 3 of 1 mm, 1 of 2.5 mm.
        let r = [4usize, 3, 1];
        let lab = labels.data();
        for (c, feat) in f.iter().enumerate() {
            let l = c as u32 + 1;
            let (mut n, mut fat, mut sum) = (0usize, 0usize, 0f64);
            for ((k, j, i), &v) in lab.indexed_iter() {
                let near = v != l
                    && lab.indexed_iter().any(|((kk, jj, ii), &w)| {
                        w == l && kk.abs_diff(k) <= r[2] && jj.abs_diff(j) <= r[1] && ii.abs_diff(i) <= r[0]
                    });
                if near {
                    let h = ct.data()[[k, j, i]];
                    n += 1;
                    fat += usize::from((-190..=-30).contains(&h));
                    sum += f64::from(h);
                }
            }
            assert!(n > 0 && fat > 0 && fat < n, "label {l}: a mixed shell ({fat} of {n})");
            assert!((feat.values[8] - fat as f64 / n as f64).abs() < 1e-12, "label {l}");
            assert!((feat.values[9] - sum / n as f64).abs() < 1e-9, "label {l}");
        }
    }

    #[test]
    fn features_of_a_block_component() {
        let g = Geometry::axis_aligned([1.0, 1.0, 2.0], [0.0; 3]);
        let mut labels = Volume::<u32>::zeros([12, 12, 6], g);
        let mut prob = Volume::<f32>::zeros([12, 12, 6], g);
        let mut ct = Volume::<i16>::zeros([12, 12, 6], g);
        for k in 1..4 {
            for j in 2..8 {
                for i in 2..6 {
                    labels.data_mut()[[k, j, i]] = 3;
                    prob.data_mut()[[k, j, i]] = if (i, j, k) == (3, 3, 2) { 0.999 } else { 0.5 };
                    ct.data_mut()[[k, j, i]] = 40;
                }
            }
        }
        let f = component_features(&labels, &prob, &ct, true).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].node_id, 3);
        let v = f[0].values;
        assert!((v[0] - (72.0f64 * 2.0).ln()).abs() < 1e-9, "volume 72 voxels of 2 mm^3");
        let m = &measure_nodes(&labels, Some(&ct), &MeasureOptions::default()).unwrap()[0];
        assert_eq!(v[1], m.axes.short_axis_mm);
        // 4 x 6 mm block: the long axis is the diagonal, the short axis the width across it.
        assert!((v[1] - 48.0 / 52f64.sqrt()).abs() < 1e-9, "{}", v[1]);
        assert_eq!(v[2], m.axes.long_axis_mm / m.axes.short_axis_mm);
        assert_eq!(v[3], m.sphericity);
        assert_eq!(v[4], 40.0);
        assert!((v[6] - (0.999f32 as f64 / (1.0 - 0.999f32 as f64)).ln()).abs() < 1e-6);
        assert!((v[7] - (71.0 * 0.5 + 0.999f32 as f64) / 72.0).abs() < 1e-6);
        let off_grid = Volume::<f32>::zeros([12, 12, 5], g);
        assert!(component_features(&labels, &off_grid, &ct, true).is_err());
        // Without the context, its features are not measured, and nothing else changes.
        let plain = component_features(&labels, &prob, &ct, false).unwrap();
        assert!(plain[0].values[8..].iter().all(|v| v.is_nan()));
        assert_eq!(plain[0].values[..8], v[..8]);

        // The short-axis guard: a filter that drops everything (prior 0.25 < cut-off 0.5) keeps
        // this component exactly when its short axis reaches the guard.
        let x = vec![[0.0; N_FEATURES]; 4];
        let mut filter = ComponentFilter::fit(
            &x,
            &[true, false, false, false],
            None,
            None,
            BoostConfig { n_trees: 0, ..Default::default() },
        )
        .unwrap();
        filter.min_score = 0.5;
        assert!(!filter.keep(&labels, &prob, &ct).unwrap()[3]);
        filter.keep_short_axis_mm = Some(v[1] - 0.01);
        assert!(filter.keep(&labels, &prob, &ct).unwrap()[3]);
        // The guard keeps it; its score stays the trees' (here the prior).
        let s = filter.scores(&labels, &prob, &ct).unwrap()[3].unwrap();
        assert!(s.kept_by_size_guard && (s.score - 0.25).abs() < 1e-12, "{s:?}");
        filter.keep_short_axis_mm = Some(v[1] + 0.01);
        assert!(!filter.keep(&labels, &prob, &ct).unwrap()[3]);
        filter.validate().unwrap();
        for bad in [0.0, -3.0, f64::NAN, f64::INFINITY] {
            filter.keep_short_axis_mm = Some(bad);
            assert!(filter.validate().is_err(), "{bad}");
        }
    }
}
