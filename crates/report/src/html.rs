//! The self-contained HTML report: one file, inline CSS, images as base64 PNG data URIs, SVG
//! figures as base64 `data:image/svg+xml` images (so a figure can run no script and its ids cannot
//! collide with the page). No external fonts, scripts or stylesheets: it opens offline.
use crate::data::{summarize, RankedNode, RecistCategory, ReportData, ReportSummary};
use crate::views;
use crate::ReportError;
use base64::Engine;
use image::RgbImage;
use nodal_core::{Label, Volume};
use std::fmt::Write;

/// Most nodes that get thumbnails (the largest ones); all nodes are always in the table.
pub const MAX_THUMBNAILS: usize = 60;

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// PNG bytes of an image.
pub fn png_bytes(img: &RgbImage) -> Result<Vec<u8>, ReportError> {
    let mut buf = std::io::Cursor::new(Vec::new());
    img.write_to(&mut buf, image::ImageFormat::Png).map_err(|e| ReportError::Image(e.to_string()))?;
    Ok(buf.into_inner())
}

fn png_data_uri(img: &RgbImage) -> Result<String, ReportError> {
    Ok(format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(png_bytes(img)?)))
}

fn svg_data_uri(svg: &str) -> Result<String, ReportError> {
    let head = svg.trim_start();
    if !(head.starts_with("<svg") || head.starts_with("<?xml")) {
        return Err(ReportError::InvalidInput("an evaluation figure is not an SVG document".into()));
    }
    Ok(format!("data:image/svg+xml;base64,{}", base64::engine::general_purpose::STANDARD.encode(svg)))
}

const CSS: &str = r#"
:root{--fg:#1d2733;--muted:#5b6b7c;--line:#dde3ea;--bg:#f5f7fa;--card:#fff;--accent:#1f5f99}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1180px;margin:0 auto;padding:24px 28px 40px}
header{display:flex;justify-content:space-between;align-items:flex-end;border-bottom:3px solid var(--accent);padding-bottom:10px;margin-bottom:18px}
h1{font-size:24px;margin:0;letter-spacing:.2px}
h2{font-size:17px;margin:26px 0 10px;color:var(--accent)}
.sub{color:var(--muted);font-size:13px}
.notice{background:#fff8e1;border:1px solid #f3d37a;border-radius:6px;padding:8px 12px;font-size:13px;margin:0 0 16px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:12px}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px 14px}
.card .k{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.5px}
.card .v{font-size:26px;font-weight:600;margin-top:2px}
.chip{display:inline-block;width:11px;height:11px;border-radius:3px;margin-right:6px;vertical-align:-1px}
ul.flags{margin:0;padding:0;list-style:none}
ul.flags li{background:var(--card);border:1px solid var(--line);border-left:4px solid #c0392b;border-radius:6px;padding:7px 12px;margin:6px 0}
ul.flags li.none{border-left-color:#27ae60}
.warn{background:#fdecea;border:1px solid #e6a19a;border-left:4px solid #c0392b;border-radius:6px;padding:8px 12px;font-size:14px;margin:0 0 10px}
.nodes-table th,.nodes-table td{padding:6px 6px}
table{border-collapse:collapse;width:100%;background:var(--card);border:1px solid var(--line);border-radius:8px;overflow:hidden}
th,td{padding:6px 8px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}
th{white-space:normal;vertical-align:bottom}
td.w{white-space:normal}
th{background:#eef2f6;font-size:12px;color:var(--muted);text-transform:uppercase;letter-spacing:.4px}
td.l,th.l{text-align:left}
tr:last-child td{border-bottom:none}
.overview{display:flex;gap:18px;align-items:flex-start;flex-wrap:wrap}
.overview img{max-width:100%;border-radius:6px;background:#000}
.legend{font-size:13px}
.legend div{margin:4px 0}
.nodes{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:14px}
.node{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:10px 12px}
.node h3{margin:0 0 8px;font-size:15px}
.node .imgs{display:flex;gap:8px}
.node figure{margin:0}
.node img{width:220px;height:220px;border-radius:4px;display:block;image-rendering:auto}
.node figcaption{font-size:11px;color:var(--muted);text-align:center;margin-top:2px}
.node dl{display:grid;grid-template-columns:auto 1fr;gap:1px 10px;margin:8px 0 0;font-size:13px}
.node dt{color:var(--muted)}
.node dd{margin:0}
/* A figure is never shown below 560 px of its 640, so its 14 px labels stay >= 12 px. */
.figs{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(560px,100%),1fr));gap:14px}
.figs figure{margin:0;background:var(--card);border:1px solid var(--line);border-radius:8px;padding:8px}
.figs img{width:100%}
.figs figcaption{font-size:12px;color:var(--muted);margin-top:4px}
footer{margin-top:30px;color:var(--muted);font-size:12px;border-top:1px solid var(--line);padding-top:10px}
@media print{body{background:#fff}.node,.card,table{break-inside:avoid}}
"#;

fn fmt1(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.1}")
    } else {
        "–".into()
    }
}

/// Marks the short axis of a node cut by the volume's edge (explained under the table).
const BORDER_MARK: &str = "<span title=\"reaches the edge of the scan: sizes are lower bounds\">*</span>";

fn chip(cat: RecistCategory) -> String {
    let [r, g, b] = cat.rgb();
    format!("<span class=\"chip\" style=\"background:rgb({r},{g},{b})\"></span>")
}

fn hu(n: &RankedNode) -> String {
    // `+ 0.0` turns a rounded -0 into 0.
    n.node.hu_mean.map_or("–".into(), |v| format!("{:.0}", v.round() + 0.0))
}

fn necrosis(n: &RankedNode) -> String {
    n.node.necrosis_fraction.map_or("–".into(), |f| format!("{:.0} %", f * 100.0))
}

fn peak_probability(n: &RankedNode) -> String {
    n.node.peak_probability.map_or("–".into(), fmt_probability)
}

fn filter_score(n: &RankedNode) -> String {
    match n.node.filter {
        None => "–".into(),
        Some(f) if f.kept_by_size_guard => format!("{:.2} (kept for its size)", f.score),
        Some(f) => format!("{:.2}", f.score),
    }
}

/// A probability with two significant digits of its distance from 1: a confident network puts
/// most nodes' peaks above 0.999, where three decimals would print "1.000" for all of them and hide
/// the ranking (0.999980 vs 0.9980). At least three decimals, at most seven.
fn fmt_probability(p: f64) -> String {
    let miss = 1.0 - p;
    let decimals = if miss > 0.0 { ((-miss.log10()).ceil() as usize + 1).clamp(3, 7) } else { 3 };
    format!("{p:.decimals$}")
}

/// The side, and the body region where it is not the neck ("left, chest").
fn side_and_region(n: &RankedNode) -> String {
    match n.region {
        Some(r) if r != crate::data::BodyRegion::Neck => format!("{}, {}", n.node.side.as_str(), r.name()),
        _ => n.node.side.as_str().to_string(),
    }
}

/// Where a node's key (short-axis) slice is, in terms a viewer shows: the slice index, its z (LPS,
/// mm) and, for DICOM input, the image's InstanceNumber.
fn slice_position(scan: &crate::ScanInfo, m: &crate::NodeRecord) -> String {
    let z = (m.short_axis_endpoints_mm[0][2] + m.short_axis_endpoints_mm[1][2]) / 2.0;
    let image = scan.image_number(m.short_axis_slice).map(|n| format!(", image {n}")).unwrap_or_default();
    format!("{} (z {z:.1} mm{image})", m.short_axis_slice)
}

/// Renders the report. `labels` is the node label map on the CT grid; each node's `node_id`
/// selects its voxels. Fails when the grids differ or a node's id is absent from the map.
pub fn render_report<L: Label>(
    data: &ReportData,
    ct: &Volume<i16>,
    labels: &Volume<L>,
) -> Result<String, ReportError> {
    ct.check_same_grid(labels).map_err(|e| ReportError::GridMismatch(e.to_string()))?;
    let summary = summarize(data);
    check_labels_present(&summary, labels)?;
    let overview = png_data_uri(&views::overview(ct, labels, &summary.nodes))?;
    let projection = views::overview_projection(ct);
    let mut thumbs = Vec::new();
    for n in summary.nodes.iter().take(MAX_THUMBNAILS) {
        thumbs.push((
            png_data_uri(&views::axial_thumbnail(ct, labels, n))?,
            png_data_uri(&views::coronal_thumbnail(ct, labels, n))?,
        ));
    }
    compose(data, &summary, &overview, projection, &thumbs)
}

fn check_labels_present<L: Label>(summary: &ReportSummary, labels: &Volume<L>) -> Result<(), ReportError> {
    // Only the nodes' labels matter: mark them as found in one pass, stopping once all are.
    let wanted: std::collections::HashSet<u32> = summary.nodes.iter().map(|n| n.node.node_id).collect();
    let mut missing = wanted.len();
    let mut found = std::collections::HashSet::new();
    let mut last = 0u32;
    for &v in labels.as_slice() {
        let v = v.as_usize() as u32;
        if v == 0 || v == last {
            continue;
        }
        last = v;
        if wanted.contains(&v) && found.insert(v) {
            missing -= 1;
            if missing == 0 {
                break;
            }
        }
    }
    for n in &summary.nodes {
        if n.node.node_id == 0 || !found.contains(&n.node.node_id) {
            return Err(ReportError::InvalidInput(format!(
                "node with short axis {:.1} mm has node id {}, which is not in the label map",
                n.node.short_axis_mm, n.node.node_id
            )));
        }
    }
    Ok(())
}

fn compose(
    data: &ReportData,
    s: &ReportSummary,
    overview_uri: &str,
    projection: views::Projection,
    thumbs: &[(String, String)],
) -> Result<String, ReportError> {
    let mut h = String::with_capacity(64 * 1024);
    let sc = &data.scan;
    // `write!` to a String cannot fail; the results are ignored deliberately.
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>Lymph node report – {}</title><style>{CSS}</style></head><body><main>",
        escape(&sc.source)
    );
    let _ = write!(
        h,
        "<header><div><h1>Lymph node report</h1><div class=\"sub\">{}</div></div>\
         <div class=\"sub\">{}<br>nodal {}</div></header>",
        escape(&sc.source),
        escape(&data.created),
        escape(&data.software_version)
    );
    h.push_str(
        "<p class=\"notice\">Automated measurements for research use; not a medical device. Findings below \
         are measurements to be confirmed by a radiologist, not diagnoses.</p>",
    );

    // What the scan shows: a scan that is not a neck, or cuts it off, is said so first.
    if let Some(c) = &sc.coverage {
        for w in &c.warnings {
            let _ = write!(h, "<p class=\"warn\" data-code=\"coverage\">{}</p>", escape(w));
        }
        let _ = write!(
            h,
            "<p class=\"sub\">Body regions the scan shows (estimated from the CT): {}.</p>",
            escape(&c.summary())
        );
    }

    // Key findings.
    h.push_str("<h2>Findings relevant to N staging</h2><ul class=\"flags\">");
    if s.flags.is_empty() {
        h.push_str(
            "<li class=\"none\">No node with short axis ≥ 10 mm; fewer than 6 nodes; one side only.</li>",
        );
    }
    for f in &s.flags {
        let _ = write!(h, "<li data-code=\"{}\">{}</li>", escape(&f.code), escape(&f.text));
    }
    h.push_str("</ul>");

    // Counts.
    h.push_str("<h2>Node counts</h2><div class=\"grid\">");
    let _ = write!(
        h,
        "<div class=\"card\"><div class=\"k\">Nodes</div><div class=\"v\">{}</div></div>",
        s.n_nodes
    );
    for (cat, n) in [
        (RecistCategory::NonPathological, s.by_recist.non_pathological),
        (RecistCategory::PathologicalNonTarget, s.by_recist.pathological_non_target),
        (RecistCategory::PathologicalTarget, s.by_recist.pathological_target),
    ] {
        let _ = write!(
            h,
            "<div class=\"card\"><div class=\"k\">{}Short axis {}</div><div class=\"v\">{n}</div></div>",
            chip(cat),
            cat.label()
        );
    }
    let _ = write!(
        h,
        "<div class=\"card\"><div class=\"k\">Right / left / midline</div><div class=\"v\">{} / {} / {}</div></div>",
        s.by_side.right, s.by_side.left, s.by_side.midline
    );
    h.push_str("</div>");

    // Overview.
    let _ = write!(
        h,
        "<h2>Overview</h2><div class=\"overview\"><img alt=\"Maximum-intensity projection with nodes\" \
         src=\"{overview_uri}\"><div class=\"legend\"><div>{}</div><div>Nodes filled by short-axis category, \
         numbered by rank:</div><div>{}{}</div><div>{}{}</div><div>{}{}</div></div></div>",
        projection.description(),
        chip(RecistCategory::NonPathological),
        RecistCategory::NonPathological.label(),
        chip(RecistCategory::PathologicalNonTarget),
        RecistCategory::PathologicalNonTarget.label(),
        chip(RecistCategory::PathologicalTarget),
        RecistCategory::PathologicalTarget.label()
    );

    // Table.
    h.push_str(
        "<h2>Nodes</h2><table class=\"nodes-table\"><thead><tr><th>#</th><th class=\"l\">Category</th>\
         <th>Short axis mm</th><th>Long axis mm</th><th>Slice (z, image)</th><th>Volume mm³</th>\
         <th>HU mean</th><th>Necrosis proxy</th><th>Peak probability</th><th>Filter score</th>\
         <th class=\"l\">Node-RADS size</th><th class=\"l\">Side</th></tr></thead><tbody>",
    );
    if s.nodes.is_empty() {
        h.push_str("<tr><td class=\"l\" colspan=\"12\">No nodes found.</td></tr>");
    }
    for n in &s.nodes {
        let m = &n.node;
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"l\">{}{}</td><td><b>{}</b>{}</td><td>{}</td><td class=\"w\">{}</td><td>{:.0}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>",
            n.rank,
            chip(n.recist),
            n.recist.label(),
            fmt1(m.short_axis_mm),
            if m.touches_volume_border { BORDER_MARK } else { "" },
            fmt1(m.recist_long_axis_mm),
            slice_position(&data.scan, m),
            m.volume_mm3,
            hu(n),
            necrosis(n),
            peak_probability(n),
            filter_score(n),
            escape(m.node_rads_size.map_or("–", nodal_core::NodeRadsSize::as_str)),
            side_and_region(n)
        );
    }
    h.push_str("</tbody></table>");
    if s.nodes.iter().any(|n| n.node.touches_volume_border) {
        h.push_str(
            "<p class=\"sub\">* The node reaches the edge of the scanned volume: it may be cut off, and \
             its sizes are lower bounds.</p>",
        );
    }

    // Thumbnails.
    if !thumbs.is_empty() {
        let _ = write!(
            h,
            "<h2>Node images</h2><p class=\"sub\">Soft-tissue window W400/L40. Axial images: patient right on \
             image left, anterior up; coronal: superior up. Yellow: node contour (grey: other nodes); \
             <span style=\"color:rgb({},{},{})\">■</span> short axis; \
             <span style=\"color:rgb({},{},{})\">■</span> long axis (RECIST 1.1: on the short axis's slice); \
             coronal ticks mark the short-axis slice.</p><div class=\"nodes\">",
            views::SAD_RGB[0],
            views::SAD_RGB[1],
            views::SAD_RGB[2],
            views::LAD_RGB[0],
            views::LAD_RGB[1],
            views::LAD_RGB[2]
        );
        for (n, (ax, co)) in s.nodes.iter().zip(thumbs) {
            let m = &n.node;
            let c = m.centroid_mm;
            let _ = write!(
                h,
                "<div class=\"node\" id=\"node-{}\"><h3>{}Node {} — short axis {} mm</h3><div class=\"imgs\">\
                 <figure><img alt=\"Axial view of node {}\" src=\"{ax}\"><figcaption>Axial, slice {}</figcaption></figure>\
                 <figure><img alt=\"Coronal view of node {}\" src=\"{co}\"><figcaption>Coronal through centroid</figcaption></figure>\
                 </div><dl><dt>Short / long axis</dt><dd>{} / {} mm (slice {}; largest long axis over slices {} mm, slice {})</dd>\
                 <dt>Volume</dt><dd>{:.0} mm³</dd><dt>HU mean</dt><dd>{}</dd><dt>Necrosis proxy</dt><dd>{}</dd>\
                 <dt>Peak probability</dt><dd>{}</dd><dt>Filter score</dt><dd>{}</dd><dt>Side</dt><dd>{}</dd><dt>Centroid (LPS)</dt><dd>{:.1}, {:.1}, {:.1} mm</dd></dl></div>",
                n.rank,
                chip(n.recist),
                n.rank,
                fmt1(m.short_axis_mm),
                n.rank,
                m.short_axis_slice,
                n.rank,
                fmt1(m.short_axis_mm),
                fmt1(m.recist_long_axis_mm),
                m.short_axis_slice,
                fmt1(m.long_axis_mm),
                m.long_axis_slice,
                m.volume_mm3,
                hu(n),
                necrosis(n),
                peak_probability(n),
                filter_score(n),
                side_and_region(n),
                c[0],
                c[1],
                c[2]
            );
        }
        h.push_str("</div>");
        if s.nodes.len() > thumbs.len() {
            let _ = write!(h, "<p class=\"sub\">Images shown for the {} largest nodes.</p>", thumbs.len());
        }
    }

    // Evaluation.
    if let Some(ev) = &data.evaluation {
        h.push_str("<h2>Evaluation against ground truth</h2>");
        if let Some(note) = &ev.note {
            let _ = write!(h, "<p class=\"sub\">{}</p>", escape(note));
        }
        if !ev.metrics.is_empty() {
            h.push_str("<div class=\"grid\">");
            for (k, v) in &ev.metrics {
                let _ = write!(
                    h,
                    "<div class=\"card\"><div class=\"k\">{}</div><div class=\"v\">{}</div></div>",
                    escape(k),
                    escape(v)
                );
            }
            h.push_str("</div>");
        }
        for t in &ev.tables {
            let _ = write!(h, "<h3>{}</h3><table><thead><tr>", escape(&t.caption));
            for (i, c) in t.header.iter().enumerate() {
                let _ = write!(h, "<th{}>{}</th>", if i == 0 { " class=\"l\"" } else { "" }, escape(c));
            }
            h.push_str("</tr></thead><tbody>");
            for row in &t.rows {
                h.push_str("<tr>");
                for (i, c) in row.iter().enumerate() {
                    let _ = write!(h, "<td{}>{}</td>", if i == 0 { " class=\"l\"" } else { "" }, escape(c));
                }
                h.push_str("</tr>");
            }
            h.push_str("</tbody></table>");
        }
        if !ev.figures.is_empty() {
            h.push_str("<div class=\"figs\" style=\"margin-top:14px\">");
            for f in &ev.figures {
                let _ = write!(
                    h,
                    "<figure><img alt=\"{}\" src=\"{}\"><figcaption>{}</figcaption></figure>",
                    escape(&f.caption),
                    svg_data_uri(&f.svg)?,
                    escape(&f.caption)
                );
            }
            h.push_str("</div>");
        }
    }

    // Scan details.
    h.push_str("<h2>Scan and processing</h2><table><tbody>");
    let row = |h: &mut String, k: &str, v: String| {
        let _ = write!(h, "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>", escape(k), escape(&v));
    };
    row(&mut h, "Source", sc.source.clone());
    if let Some(d) = &sc.description {
        row(&mut h, "Description", d.clone());
    }
    row(&mut h, "Dimensions (i × j × k)", format!("{} × {} × {}", sc.dims[0], sc.dims[1], sc.dims[2]));
    row(
        &mut h,
        "Voxel spacing",
        format!("{:.3} × {:.3} × {:.3} mm", sc.spacing_mm[0], sc.spacing_mm[1], sc.spacing_mm[2]),
    );
    row(&mut h, "Storage orientation", sc.orientation.clone());
    if let Some(m) = &data.model {
        row(&mut h, "Model", format!("{} (version {})", m.id, m.version));
        if let Some(cutoff) = m.filter_min_score {
            row(&mut h, "Component filter cut-off", format!("{cutoff}"));
        }
    }
    let total: f64 = data.timings.iter().map(|t| t.seconds).sum();
    for t in &data.timings {
        row(&mut h, &format!("Time: {}", t.stage), format!("{:.2} s", t.seconds));
    }
    if !data.timings.is_empty() {
        row(&mut h, "Time: total", format!("{total:.2} s"));
    }
    h.push_str("</tbody></table>");

    h.push_str(
        "<footer>Short axis and long axis as RECIST 1.1 measures a node, both on one axial slice: on the slice \
         where the node's short axis is largest, the long axis is the largest distance across the convex hull of \
         the node's pixels and the short axis the hull's width perpendicular to it. Short-axis categories: &lt; 10 mm, \
         10–14.9 mm, ≥ 15 mm. The necrosis proxy is the fraction of node voxels with low attenuation. \
         Positions are in the DICOM patient frame (LPS, mm).</footer></main></body></html>\n",
    );
    Ok(h)
}

/// Renders the report and writes it atomically to `path`.
pub fn write_report<L: Label>(
    path: &std::path::Path,
    data: &ReportData,
    ct: &Volume<i16>,
    labels: &Volume<L>,
) -> Result<(), ReportError> {
    let html = render_report(data, ct, labels)?;
    crate::atomic::write_atomic(path, html.as_bytes())
}

/// Writes the report's numbers ([`ReportSummary`] plus the input) as pretty JSON, atomically.
pub fn write_report_json(path: &std::path::Path, data: &ReportData) -> Result<(), ReportError> {
    #[derive(serde::Serialize)]
    struct Out<'a> {
        data: &'a ReportData,
        summary: ReportSummary,
    }
    let json = serde_json::to_vec_pretty(&Out { data, summary: summarize(data) })
        .map_err(|source| ReportError::Json { path: path.to_path_buf(), source })?;
    crate::atomic::write_atomic(path, &json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probabilities_near_one_keep_two_digits_of_their_distance_from_one() {
        assert_eq!(fmt_probability(0.9999796), "0.999980");
        assert_eq!(fmt_probability(0.997964), "0.9980");
        assert_eq!(fmt_probability(0.9871), "0.987");
        assert_eq!(fmt_probability(0.5), "0.500");
        assert_eq!(fmt_probability(1.0), "1.000");
        assert_eq!(fmt_probability(1.0 - 1e-12), "1.0000000");
    }

    #[test]
    fn escape_handles_markup() {
        assert_eq!(escape("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }

    #[test]
    fn non_svg_figure_is_rejected() {
        assert!(svg_data_uri("<script>alert(1)</script>").is_err());
        assert!(svg_data_uri("<svg xmlns=\"http://www.w3.org/2000/svg\"></svg>")
            .unwrap()
            .starts_with("data:image/svg"));
    }
}
