//! `nodes.json` and `nodes.csv`: one record per node, written atomically.
//!
//! `nodes.json` is `{"schema": "nodal.nodes/1", "definitions": {...}, "source": {...},
//! "postprocess": <report or null>, "nodes": [Detection...]}`; `nodes.csv` has one row per
//! node with the same fields flattened (`centroid_mm` -> `centroid_x_mm`, `centroid_y_mm`,
//! `centroid_z_mm`; end points -> `..._p1_x_mm` ...; `probability` -> `peak_probability`,
//! `mean_probability`; `filter` -> `filter_score`; empty cells for absent values).
use crate::detection::Detection;
use crate::recipe::PostProcessReport;
use crate::DetectError;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// Version tag of `nodes.json`.
pub const NODES_SCHEMA: &str = "nodal.nodes/1";

/// What the measurements were taken from (free-form, for provenance).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Source {
    /// The label map or mask file.
    pub labels: Option<String>,
    /// The CT file, when given.
    pub ct: Option<String>,
    /// How the input was read: "label_map" (ids kept) or "mask" (components).
    pub input_kind: String,
}

#[derive(Serialize)]
struct NodesFile<'a, N: Serialize> {
    schema: &'static str,
    definitions: Definitions,
    source: &'a Source,
    postprocess: Option<&'a PostProcessReport>,
    nodes: &'a [N],
    /// Further top-level fields a writer adds (a review's generation).
    #[serde(flatten)]
    extra: &'a BTreeMap<&'static str, serde_json::Value>,
}

#[derive(Serialize)]
struct Definitions {
    frame: &'static str,
    axial_axes: &'static str,
    max_diameter_3d: &'static str,
    surface_area: &'static str,
    necrosis_fraction: &'static str,
    touches_volume_border: &'static str,
    node_rads_size: &'static str,
    probability: &'static str,
    filter: &'static str,
}

const DEFINITIONS: Definitions = Definitions {
    frame: "positions in DICOM patient LPS mm; indices (i, j, k) of the input grid",
    axial_axes:
        "per axial slice: convex hull of pixel corners; long axis = hull diameter, short axis = hull \
                 width perpendicular to it; short_axis_mm and long_axis_mm = maxima over slices (nodal \
                 evaluation protocol, possibly from two slices); recist_long_axis_mm = the long axis on \
                 the short axis's slice (RECIST 1.1: both axes on one image)",
    max_diameter_3d: "largest distance between two voxel corners",
    surface_area: "exposed voxel-face area x 2/3 (isotropic-orientation correction)",
    necrosis_fraction:
        "fraction of 6-eroded interior voxels below 20 HU; null without CT or interior; little \
                        to go on below 27 interior voxels (the report leaves it out there)",
    touches_volume_border: "the node reaches the first or last voxel of the volume on an axis: the scan may \
                            have cut it off, its sizes are lower bounds",
    node_rads_size: "bulky: long axis >= 30 mm; enlarged: short axis >= 10 mm; else normal",
    probability: "network probability over the node's voxels (peak, mean); null without a probability map",
    filter: "the model's component filter on the component the node was drawn from: score in [0, 1] \
             (kept when >= the filter's cut-off) and whether its size guard kept it regardless; null \
             without a filter",
};

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), DetectError> {
    nodal_core::fs::write_atomic(path, bytes).map_err(|e| DetectError::write(path, e))
}

/// Writes `nodes.json` (schema [`NODES_SCHEMA`]).
///
/// # Errors
/// [`DetectError::Write`] naming the file.
pub fn write_nodes_json(
    path: &Path,
    nodes: &[Detection],
    source: &Source,
    postprocess: Option<&PostProcessReport>,
) -> Result<(), DetectError> {
    write_nodes_json_with(path, nodes, source, postprocess, &BTreeMap::new())
}

/// [`write_nodes_json`] for nodes that carry more than a [`Detection`] (a review's verdict
/// flattened beside it), with more top-level fields in `extra`.
///
/// # Errors
/// [`DetectError::Write`] naming the file.
pub fn write_nodes_json_with<N: Serialize>(
    path: &Path,
    nodes: &[N],
    source: &Source,
    postprocess: Option<&PostProcessReport>,
    extra: &BTreeMap<&'static str, serde_json::Value>,
) -> Result<(), DetectError> {
    let file =
        NodesFile { schema: NODES_SCHEMA, definitions: DEFINITIONS, source, postprocess, nodes, extra };
    let mut bytes = serde_json::to_vec_pretty(&file).map_err(|e| DetectError::write(path, e.into()))?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// The CSV header, in column order.
pub fn csv_header() -> Vec<String> {
    let mut h: Vec<String> = ["node_id", "voxel_count", "volume_mm3"].map(String::from).to_vec();
    let xyz = |p: &str, h: &mut Vec<String>| {
        for c in ["x", "y", "z"] {
            h.push(format!("{p}_{c}_mm"));
        }
    };
    let ijk = |p: &str, h: &mut Vec<String>| {
        for c in ["i", "j", "k"] {
            h.push(format!("{p}_{c}"));
        }
    };
    xyz("centroid", &mut h);
    ijk("bbox_min_index", &mut h);
    ijk("bbox_max_index", &mut h);
    xyz("bbox_min", &mut h);
    xyz("bbox_max", &mut h);
    h.extend(["short_axis_mm", "long_axis_mm", "short_axis_slice", "long_axis_slice"].map(String::from));
    for axis in ["short_axis", "long_axis"] {
        for p in ["p1", "p2"] {
            xyz(&format!("{axis}_{p}"), &mut h);
        }
    }
    h.push("recist_long_axis_mm".into());
    for p in ["p1", "p2"] {
        xyz(&format!("recist_long_axis_{p}"), &mut h);
    }
    h.extend(
        [
            "axial_reformatted",
            "max_diameter_3d_mm",
            "surface_area_mm2",
            "sphericity",
            "mean_hu",
            "std_hu",
            "p10_hu",
            "p50_hu",
            "p90_hu",
            "interior_voxel_count",
            "necrosis_fraction",
            "touches_volume_border",
            "side",
            "recist_category",
            "node_rads_size",
            "peak_probability",
            "mean_probability",
            "filter_score",
        ]
        .map(String::from),
    );
    h
}

fn enum_name<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
}

/// One CSV row (same order as [`csv_header`]).
pub fn csv_row(d: &Detection) -> Vec<String> {
    let m = &d.measurement;
    let f = |v: f64| format!("{v}");
    let mut r = vec![m.node_id.to_string(), m.voxel_count.to_string(), f(m.volume_mm3)];
    r.extend(m.centroid_mm.map(f));
    r.extend(m.bbox_min_index.map(|v| v.to_string()));
    r.extend(m.bbox_max_index.map(|v| v.to_string()));
    r.extend(m.bbox_min_mm.map(f));
    r.extend(m.bbox_max_mm.map(f));
    let a = &m.axes;
    r.extend([
        f(a.short_axis_mm),
        f(a.long_axis_mm),
        a.short_axis_slice.to_string(),
        a.long_axis_slice.to_string(),
    ]);
    for p in a.short_axis_endpoints_mm.iter().chain(&a.long_axis_endpoints_mm) {
        r.extend(p.map(f));
    }
    r.push(f(a.recist_long_axis_mm));
    for p in &a.recist_long_axis_endpoints_mm {
        r.extend(p.map(f));
    }
    r.extend([
        m.axial_reformatted.to_string(),
        f(m.max_diameter_3d_mm),
        f(m.surface_area_mm2),
        f(m.sphericity),
    ]);
    match &m.hu {
        Some(h) => r.extend([h.mean_hu, h.std_hu, h.p10_hu, h.p50_hu, h.p90_hu].map(f)),
        None => r.extend(std::iter::repeat_n(String::new(), 5)),
    }
    r.push(m.interior_voxel_count.to_string());
    r.push(m.necrosis_fraction.map(f).unwrap_or_default());
    r.push(m.touches_volume_border.to_string());
    r.extend([enum_name(&m.side), enum_name(&m.recist_category), enum_name(&m.node_rads_size)]);
    match &d.probability {
        Some(p) => r.extend([f(p.peak), f(p.mean)]),
        None => r.extend([String::new(), String::new()]),
    }
    r.push(d.filter.map(|v| f(v.score)).unwrap_or_default());
    r
}

/// Writes `nodes.csv`: a header and one row per node. No field needs quoting (numbers and
/// snake_case names only).
///
/// # Errors
/// [`DetectError::Write`] naming the file.
pub fn write_nodes_csv(path: &Path, nodes: &[Detection]) -> Result<(), DetectError> {
    write_nodes_csv_with(path, nodes, &[], |_| vec![])
}

/// [`write_nodes_csv`] with more columns after the standard ones: `extra_header`, and per node
/// `extra(i)` for the `i`-th node (quoted as CSV needs, so free text may hold commas, quotes and
/// line breaks).
pub fn write_nodes_csv_with(
    path: &Path,
    nodes: &[Detection],
    extra_header: &[&str],
    extra: impl Fn(usize) -> Vec<String>,
) -> Result<(), DetectError> {
    let mut s = csv_header().join(",");
    for h in extra_header {
        s.push(',');
        s.push_str(h);
    }
    s.push('\n');
    for (i, m) in nodes.iter().enumerate() {
        s.push_str(&csv_row(m).join(","));
        for cell in extra(i) {
            s.push(',');
            s.push_str(&csv_quote(&cell));
        }
        s.push('\n');
    }
    write_atomic(path, s.as_bytes())
}

/// A CSV cell: quoted (quotes doubled) when it holds a comma, quote or line break (RFC 4180).
fn csv_quote(cell: &str) -> String {
    if cell.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell.to_string()
    }
}
