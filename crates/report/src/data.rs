//! The report's input ([`ReportData`], filled by the caller from the pipeline's results) and the
//! derived [`ReportSummary`] — counts, flags and the node order — that the HTML is rendered from.
//! Both are serde types, so the numbers behind a report can be saved and checked as JSON.
pub use nodal_core::{NodeRadsSize, RecistCategory, Side};
pub use nodal_nodes::coverage::{BodyCoverage, BodyRegion};
use serde::{Deserialize, Serialize};

/// One measured node, as the node-analysis stage reports it. All positions are LPS millimetres.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// The node's id in the label map.
    pub node_id: u32,
    /// Largest axial short-axis diameter, mm.
    pub short_axis_mm: f64,
    /// Largest axial long-axis diameter, mm.
    pub long_axis_mm: f64,
    /// Axial slice index (k of the CT grid) on which the short axis was measured.
    pub short_axis_slice: usize,
    /// Axial slice index on which the long axis was measured.
    pub long_axis_slice: usize,
    /// The two end points of the short axis, LPS mm.
    pub short_axis_endpoints_mm: [[f64; 3]; 2],
    /// The two end points of the long axis, LPS mm.
    pub long_axis_endpoints_mm: [[f64; 3]; 2],
    /// RECIST 1.1 long axis: the longest diameter on the short axis's slice, mm (the report's long
    /// axis: both axes of a node on one image).
    #[serde(default)]
    pub recist_long_axis_mm: f64,
    /// Its end points, LPS mm, on `short_axis_slice`.
    #[serde(default)]
    pub recist_long_axis_endpoints_mm: [[f64; 3]; 2],
    /// Volume, mm^3.
    pub volume_mm3: f64,
    /// Centre of mass, LPS mm.
    pub centroid_mm: [f64; 3],
    /// Mean attenuation inside the node, HU (`None` when no CT was measured).
    pub hu_mean: Option<f64>,
    /// Fraction of the node's voxels below the necrosis threshold (a proxy, not a diagnosis);
    /// `None` when the node has too few interior voxels to judge.
    pub necrosis_fraction: Option<f64>,
    /// The node reaches the edge of the scanned volume: it may be cut off, its sizes are lower
    /// bounds.
    #[serde(default)]
    pub touches_volume_border: bool,
    /// Side of the midline.
    pub side: Side,
    /// Node-RADS size class as reported by the measurement stage.
    pub node_rads_size: Option<NodeRadsSize>,
    /// The network's highest probability in the node (`None` for label maps measured without a
    /// probability map).
    #[serde(default)]
    pub peak_probability: Option<f64>,
    /// The model's component filter on the component the node was drawn from (`None` without a
    /// filter).
    #[serde(default)]
    pub filter: Option<nodal_detect::filter::FilterScore>,
}

impl From<&nodal_detect::Detection> for NodeRecord {
    /// A detection as the report shows it (the one conversion used by every caller).
    fn from(d: &nodal_detect::Detection) -> Self {
        let m = &d.measurement;
        NodeRecord {
            node_id: m.node_id,
            short_axis_mm: m.axes.short_axis_mm,
            long_axis_mm: m.axes.long_axis_mm,
            short_axis_slice: m.axes.short_axis_slice,
            long_axis_slice: m.axes.long_axis_slice,
            short_axis_endpoints_mm: m.axes.short_axis_endpoints_mm,
            long_axis_endpoints_mm: m.axes.long_axis_endpoints_mm,
            recist_long_axis_mm: m.axes.recist_long_axis_mm,
            recist_long_axis_endpoints_mm: m.axes.recist_long_axis_endpoints_mm,
            volume_mm3: m.volume_mm3,
            centroid_mm: m.centroid_mm,
            hu_mean: m.hu.as_ref().map(|h| h.mean_hu),
            // Too few interior voxels to judge: not shown.
            necrosis_fraction: m
                .necrosis_fraction
                .filter(|_| m.interior_voxel_count >= nodal_nodes::measure::MIN_NECROSIS_INTERIOR_VOXELS),
            peak_probability: d.probability.map(|p| p.peak),
            filter: d.filter,
            touches_volume_border: m.touches_volume_border,
            side: m.side,
            node_rads_size: Some(m.node_rads_size),
        }
    }
}

/// Model that produced the segmentation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Model identifier, e.g. "nodal-unet3d-neck".
    pub id: String,
    /// Model version.
    pub version: String,
    /// The component filter's cut-off this run applied (the model's own or one set for the run);
    /// `None` for a model without a filter.
    #[serde(default)]
    pub filter_min_score: Option<f64>,
}

/// Wall-clock time of one pipeline stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageTiming {
    /// Stage name, e.g. "read", "segment", "measure".
    pub stage: String,
    /// Duration, seconds.
    pub seconds: f64,
}

/// The scanned image: where it came from and its voxel grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScanInfo {
    /// Path or description of the input (file, DICOM folder, "phantom seed 7", ...).
    pub source: String,
    /// Voxel counts (ni, nj, nk).
    pub dims: [usize; 3],
    /// Voxel size (i, j, k), mm.
    pub spacing_mm: [f64; 3],
    /// Storage orientation code, e.g. "LPS".
    pub orientation: String,
    /// Free-text description (series description, study date), shown as is.
    pub description: Option<String>,
    /// For DICOM input: the InstanceNumber of each k slice (the image number a PACS shows), so
    /// that a node's slice can be found in a viewer; empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slice_instance_numbers: Vec<Option<i64>>,
    /// The body regions the scan shows and how much of the neck (`None` when not estimated).
    #[serde(default)]
    pub coverage: Option<BodyCoverage>,
}

impl ScanInfo {
    /// Fills dims, spacing and orientation from a CT volume.
    pub fn from_volume<T: nodal_core::Voxel>(source: impl Into<String>, ct: &nodal_core::Volume<T>) -> Self {
        let g = ct.geometry();
        ScanInfo {
            source: source.into(),
            dims: ct.dims(),
            spacing_mm: g.spacing_mm,
            orientation: g.orientation_string(),
            description: None,
            slice_instance_numbers: Vec::new(),
            coverage: None,
        }
    }

    /// With the body regions the scan shows.
    pub fn with_coverage(mut self, coverage: BodyCoverage) -> Self {
        self.coverage = Some(coverage);
        self
    }

    /// With the InstanceNumber of each slice (DICOM input).
    pub fn with_instance_numbers(mut self, numbers: &[Option<i64>]) -> Self {
        self.slice_instance_numbers = numbers.to_vec();
        self
    }

    /// "image N" for slice `k` of DICOM input, when the slice has an InstanceNumber.
    pub fn image_number(&self, k: usize) -> Option<i64> {
        self.slice_instance_numbers.get(k).copied().flatten()
    }
}

/// A table in the evaluation section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// Caption shown above the table.
    pub caption: String,
    /// Column headers.
    pub header: Vec<String>,
    /// Rows of already formatted cells.
    pub rows: Vec<Vec<String>>,
}

/// An SVG figure (e.g. from the evaluation crate), embedded as an image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// Caption shown below the figure.
    pub caption: String,
    /// The SVG document.
    pub svg: String,
}

/// Evaluation against a ground truth (for `demo` and `evaluate`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvaluationSection {
    /// Headline metrics as (name, formatted value), e.g. ("recall", "0.92").
    pub metrics: Vec<(String, String)>,
    /// Tables (e.g. per SAD group).
    pub tables: Vec<Table>,
    /// Figures (box/violin/scatter plots).
    pub figures: Vec<Figure>,
    /// A sentence naming the protocol / definitions used.
    pub note: Option<String>,
}

/// Everything the report shows besides the images, filled by the caller.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportData {
    /// The scan.
    pub scan: ScanInfo,
    /// The model, when a network produced the segmentation.
    pub model: Option<ModelInfo>,
    /// Time per pipeline stage.
    pub timings: Vec<StageTiming>,
    /// The measured nodes (any order; the report sorts them by short axis).
    pub nodes: Vec<NodeRecord>,
    /// Evaluation against ground truth, if any.
    pub evaluation: Option<EvaluationSection>,
    /// Creation time as shown in the report (e.g. RFC 3339); the caller decides, so reports are
    /// reproducible.
    pub created: String,
    /// Version of the software that made the report.
    pub software_version: String,
}

/// Node counts by RECIST short-axis category, keyed by the category's spelling.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecistCounts {
    pub non_pathological: usize,
    pub pathological_non_target: usize,
    pub pathological_target: usize,
}

/// Node counts by side.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SideCounts {
    pub left: usize,
    pub right: usize,
    pub midline: usize,
}

/// A finding relevant to clinical N staging, worded as an observation (never a diagnosis).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flag {
    /// Stable key, e.g. "sad_ge_10".
    pub code: String,
    /// The sentence shown in the report.
    pub text: String,
}

/// A node in report order, with its rank (1 = largest short axis) and category.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RankedNode {
    /// 1-based position in the report (by decreasing short axis); also the DICOM segment number.
    pub rank: usize,
    /// RECIST category of the short axis.
    pub recist: RecistCategory,
    /// The body region at the node's centroid, when the scan's coverage was estimated.
    #[serde(default)]
    pub region: Option<BodyRegion>,
    /// The measurements.
    #[serde(flatten)]
    pub node: NodeRecord,
}

/// The numbers the HTML report shows, derived from [`ReportData`] by [`summarize`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportSummary {
    /// Number of nodes.
    pub n_nodes: usize,
    /// Counts by short-axis category.
    pub by_recist: RecistCounts,
    /// Counts by side.
    pub by_side: SideCounts,
    /// Findings relevant to N staging.
    pub flags: Vec<Flag>,
    /// Nodes sorted by decreasing short axis (ties: decreasing long axis, then label).
    pub nodes: Vec<RankedNode>,
}

/// Number of nodes at which the "many nodes" finding is raised (AJCC N2b/N2c-style counting starts
/// to matter; the report only states the count).
pub const MANY_NODES: usize = 6;

/// Greatest dimension above which the "> 60 mm" finding is raised (AJCC N3a size threshold).
pub const N3_GREATEST_DIMENSION_MM: f64 = 60.0;

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Sorts the nodes, counts them and words the N-staging findings.
pub fn summarize(data: &ReportData) -> ReportSummary {
    let mut nodes: Vec<NodeRecord> = data.nodes.clone();
    nodes.sort_by(|a, b| {
        b.short_axis_mm
            .total_cmp(&a.short_axis_mm)
            .then(b.long_axis_mm.total_cmp(&a.long_axis_mm))
            .then(a.node_id.cmp(&b.node_id))
    });
    let ranked: Vec<RankedNode> = nodes
        .into_iter()
        .enumerate()
        .map(|(i, node)| RankedNode {
            rank: i + 1,
            recist: RecistCategory::from_short_axis_mm(node.short_axis_mm),
            region: data.scan.coverage.as_ref().and_then(|c| c.region_at(node.centroid_mm[2])),
            node,
        })
        .collect();

    let mut by_recist = RecistCounts::default();
    let mut by_side = SideCounts::default();
    for r in &ranked {
        match r.recist {
            RecistCategory::NonPathological => by_recist.non_pathological += 1,
            RecistCategory::PathologicalNonTarget => by_recist.pathological_non_target += 1,
            RecistCategory::PathologicalTarget => by_recist.pathological_target += 1,
        }
        match r.node.side {
            Side::Left => by_side.left += 1,
            Side::Right => by_side.right += 1,
            Side::Midline => by_side.midline += 1,
        }
    }

    let mut flags = Vec::new();
    let n_ge10 = by_recist.pathological_non_target + by_recist.pathological_target;
    if n_ge10 > 0 {
        flags.push(Flag {
            code: "sad_ge_10".into(),
            text: format!("{} with short axis ≥ 10 mm", plural(n_ge10, "node", "nodes")),
        });
    }
    if by_recist.pathological_target > 0 {
        flags.push(Flag {
            code: "sad_ge_15".into(),
            text: format!(
                "{} with short axis ≥ 15 mm",
                plural(by_recist.pathological_target, "node", "nodes")
            ),
        });
    }
    let n_large = ranked.iter().filter(|r| r.node.long_axis_mm > N3_GREATEST_DIMENSION_MM).count();
    if n_large > 0 {
        flags.push(Flag {
            code: "lad_gt_60".into(),
            text: format!("{} with long axis > 60 mm", plural(n_large, "node", "nodes")),
        });
    }
    if ranked.len() >= MANY_NODES {
        flags.push(Flag {
            code: "count_ge_6".into(),
            text: format!("{} detected ({MANY_NODES} or more)", plural(ranked.len(), "node", "nodes")),
        });
    }
    // Small nodes on both sides are normal in any neck: only enlarged ones on both sides are a
    // finding (bilateral or contralateral nodes bear on N staging).
    let ge10_side = |s: Side| ranked.iter().any(|r| r.node.side == s && r.node.short_axis_mm >= 10.0);
    if ge10_side(Side::Left) && ge10_side(Side::Right) {
        flags.push(Flag {
            code: "bilateral_sad_ge_10".into(),
            text: "Nodes with short axis ≥ 10 mm on both sides (bilateral / contralateral)".into(),
        });
    }

    ReportSummary { n_nodes: ranked.len(), by_recist, by_side, flags, nodes: ranked }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recist_boundaries() {
        assert_eq!(RecistCategory::from_short_axis_mm(9.999), RecistCategory::NonPathological);
        assert_eq!(RecistCategory::from_short_axis_mm(10.0), RecistCategory::PathologicalNonTarget);
        assert_eq!(RecistCategory::from_short_axis_mm(14.99), RecistCategory::PathologicalNonTarget);
        assert_eq!(RecistCategory::from_short_axis_mm(15.0), RecistCategory::PathologicalTarget);
    }
}
