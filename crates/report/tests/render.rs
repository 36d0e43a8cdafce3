//! HTML report: self-contained output, content, image geometry and input errors.
use nodal_core::{Geometry, Volume};
use nodal_report::views::{axial_thumbnail, LAD_RGB, SAD_RGB, THUMB_PX};
use nodal_report::{
    render_report, summarize, write_report, EvaluationSection, Figure, NodeRecord, ReportData, ReportError,
    ScanInfo, Side, Table,
};

/// 64 x 64 x 20 voxels of 1 x 1 x 2 mm, LPS, soft tissue with two balls: label 1 (r = 6 mm) on the
/// patient's right, label 2 (r = 4 mm) on the left.
fn scene() -> (Volume<i16>, Volume<u16>) {
    let g = Geometry::axis_aligned([1.0, 1.0, 2.0], [-32.0, -32.0, 0.0]);
    let mut ct = Volume::<i16>::filled([64, 64, 20], g, 40);
    let mut lab = Volume::<u16>::zeros([64, 64, 20], g);
    for (label, c, r) in [(1u16, [-10.0, 0.0, 20.0], 6.0), (2, [12.0, 5.0, 20.0], 4.0)] {
        for k in 0..20 {
            for j in 0..64 {
                for i in 0..64 {
                    let p = g.index_to_world([i as f64, j as f64, k as f64]);
                    if (0..3).map(|a| (p[a] - c[a]) * (p[a] - c[a])).sum::<f64>() <= r * r {
                        lab.data_mut()[[k, j, i]] = label;
                        ct.data_mut()[[k, j, i]] = 70;
                    }
                }
            }
        }
    }
    (ct, lab)
}

fn node(node_id: u32, c: [f64; 3], sad: f64, lad: f64, side: Side) -> NodeRecord {
    NodeRecord {
        node_id,
        short_axis_mm: sad,
        long_axis_mm: lad,
        short_axis_slice: 10,
        long_axis_slice: 10,
        // SAD along y (anterior-posterior), LAD along x (right-left), both through the centre.
        short_axis_endpoints_mm: [[c[0], c[1] - sad / 2.0, c[2]], [c[0], c[1] + sad / 2.0, c[2]]],
        long_axis_endpoints_mm: [[c[0] - lad / 2.0, c[1], c[2]], [c[0] + lad / 2.0, c[1], c[2]]],
        recist_long_axis_mm: lad,
        recist_long_axis_endpoints_mm: [[c[0] - lad / 2.0, c[1], c[2]], [c[0] + lad / 2.0, c[1], c[2]]],
        volume_mm3: 500.0,
        centroid_mm: c,
        hu_mean: Some(70.0),
        necrosis_fraction: None,
        touches_volume_border: false,
        side,
        node_rads_size: Some(nodal_report::NodeRadsSize::Normal),
        peak_probability: Some(0.9871),
        filter: (node_id == 1)
            .then_some(nodal_detect::filter::FilterScore { score: 0.4321, kept_by_size_guard: true }),
    }
}

fn data(ct: &Volume<i16>) -> ReportData {
    ReportData {
        scan: ScanInfo::from_volume("scene <test>", ct),
        model: Some(nodal_report::ModelInfo {
            id: "unet".into(),
            version: "1".into(),
            filter_min_score: Some(0.375),
        }),
        timings: vec![nodal_report::StageTiming { stage: "segment".into(), seconds: 1.5 }],
        nodes: vec![
            node(2, [12.0, 5.0, 20.0], 8.0, 8.0, Side::Left),
            node(1, [-10.0, 0.0, 20.0], 12.0, 12.0, Side::Right),
        ],
        evaluation: None,
        created: "2026-01-01".into(),
        software_version: "test".into(),
    }
}

#[test]
fn report_is_self_contained_and_complete() {
    let (ct, lab) = scene();
    let d = data(&ct);
    let html = render_report(&d, &ct, &lab).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    // Nothing to fetch: no scripts, stylesheets, fonts or remote images.
    for bad in ["<script", "<link", "http://", "https://", "@import", "url("] {
        assert!(!html.contains(bad), "report contains {bad}");
    }
    // Overview + an axial and a coronal image per node.
    assert_eq!(html.matches("src=\"data:image/png;base64,").count(), 1 + 2 * 2);
    // User text is escaped.
    assert!(html.contains("scene &lt;test&gt;"));
    // The table lists the larger node first.
    let first = html.find("<b>12.0</b>").unwrap();
    let second = html.find("<b>8.0</b>").unwrap();
    assert!(first < second);
    assert!(html.contains("1 node with short axis ≥ 10 mm"));
    // One small node on each side is no finding; each node is placed by slice and z.
    assert!(!html.contains("both sides"));
    assert!(html.contains("10 (z "), "the key slice with its z in mm");
    assert!(html.contains("unet (version 1)"));
    let cutoff = "<tr><td class=\"l\">Component filter cut-off</td><td class=\"l\">0.375</td></tr>";
    assert!(html.contains(cutoff));
    let mut unfiltered = d.clone();
    unfiltered.model.as_mut().unwrap().filter_min_score = None;
    assert!(!render_report(&unfiltered, &ct, &lab).unwrap().contains("Component filter cut-off"));
    assert!(html.contains("64 × 64 × 20"));
    // Both nodes' peak probability, in the table and in the node card.
    assert_eq!(html.matches("<td>0.987</td>").count(), 2);
    assert_eq!(html.matches("<dt>Peak probability</dt><dd>0.987</dd>").count(), 2);
    // The filter's verdict in the card: one node has one (kept by the size guard), one has none.
    assert_eq!(html.matches("<dt>Filter score</dt><dd>0.43 (kept for its size)</dd>").count(), 1);
    assert_eq!(html.matches("<dt>Filter score</dt><dd>–</dd>").count(), 1);
    assert!(!html.contains("Evaluation against ground truth"));
}

#[test]
fn evaluation_section_embeds_svg_figures() {
    let (ct, lab) = scene();
    let mut d = data(&ct);
    d.evaluation = Some(EvaluationSection {
        metrics: vec![("recall".into(), "0.50".into())],
        tables: vec![Table {
            caption: "By SAD group".into(),
            header: vec!["group".into(), "n".into()],
            rows: vec![vec!["<5".into(), "3".into()]],
        }],
        figures: vec![Figure {
            caption: "Sensitivity".into(),
            svg: "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"10\" height=\"10\"></svg>".into(),
        }],
        note: Some("Protocol: evaluation-protocol.md".into()),
    });
    let html = render_report(&d, &ct, &lab).unwrap();
    assert!(html.contains("Evaluation against ground truth"));
    assert_eq!(html.matches("src=\"data:image/svg+xml;base64,").count(), 1);
    assert!(html.contains("<td class=\"l\">&lt;5</td>"));
    // The SVG's namespace URL travels base64-encoded, never as a link in the page.
    assert!(!html.contains("http://"));
}

#[test]
fn axial_thumbnail_draws_axes_from_their_end_points() {
    let (ct, lab) = scene();
    let s = summarize(&data(&ct));
    let n = &s.nodes[0]; // label 1, centre (-10, 0, 20), SAD 12 (along y), LAD 12 (along x)
    assert_eq!(n.node.node_id, 1);
    let img = axial_thumbnail(&ct, &lab, n);
    assert_eq!((img.width(), img.height()), (THUMB_PX, THUMB_PX));
    // Field of view 12 * 2.2 + 16 = 42.4 mm over 220 px, centred on the centroid.
    let px_mm = 42.4 / THUMB_PX as f64;
    let c = (THUMB_PX as f64 - 1.0) / 2.0;
    let at = |dx_mm: f64, dy_mm: f64| {
        let x = (c + dx_mm / px_mm).round() as u32;
        let y = (c + dy_mm / px_mm).round() as u32;
        img.get_pixel(x, y).0
    };
    // The short axis runs anterior (up) to posterior (down) through the centre.
    assert_eq!(at(0.0, -3.0), SAD_RGB);
    assert_eq!(at(0.0, 3.0), SAD_RGB);
    // The long axis runs right (image left) to left (image right).
    assert_eq!(at(-3.0, 0.0), LAD_RGB);
    assert_eq!(at(3.0, 0.0), LAD_RGB);
    // Away from the lines the node is plain grey (70 HU in W400/L40).
    let g = at(3.0, 3.0);
    assert_eq!(g[0], g[1]);
    assert_eq!(g[1], g[2]);
}

#[test]
fn rewriting_into_the_same_folder_is_safe() {
    let (ct, lab) = scene();
    let d = data(&ct);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("report.html");
    write_report(&p, &d, &ct, &lab).unwrap();
    let first = std::fs::read_to_string(&p).unwrap();
    write_report(&p, &d, &ct, &lab).unwrap();
    assert_eq!(std::fs::read_to_string(&p).unwrap(), first, "the report is deterministic");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary files left");
}

#[test]
fn inconsistent_inputs_are_typed_errors() {
    let (ct, lab) = scene();
    let mut d = data(&ct);
    d.nodes[0].node_id = 9;
    let e = render_report(&d, &ct, &lab).unwrap_err();
    assert!(matches!(e, ReportError::InvalidInput(ref m) if m.contains("node id 9")), "{e}");
    let other = Volume::<u16>::zeros([64, 64, 19], *lab.geometry());
    let e = render_report(&data(&ct), &ct, &other).unwrap_err();
    assert!(matches!(e, ReportError::GridMismatch(_)), "{e}");
}

#[test]
fn empty_report_renders() {
    let (ct, _) = scene();
    let lab = Volume::<u16>::zeros(ct.dims(), *ct.geometry());
    let mut d = data(&ct);
    d.nodes.clear();
    let html = render_report(&d, &ct, &lab).unwrap();
    assert!(html.contains("No nodes found."));
    assert_eq!(html.matches("data:image/png").count(), 1);
}

#[test]
fn write_outputs_writes_every_file_and_reruns_safely() {
    let (ct, lab) = scene();
    let d = data(&ct);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let src = nodal_report::DicomSource {
        frame_of_reference_uid: "2.25.1".into(),
        sop_instance_uids: (0..20).map(|k| format!("2.25.{}", 100 + k)).collect(),
        ..Default::default()
    };
    let opts = nodal_report::DicomOptions::default();
    for _ in 0..2 {
        let w = nodal_report::write_outputs(&out, &d, &ct, &lab, Some(&src), &opts).unwrap();
        assert_eq!(w.seg.as_ref().unwrap().1.segments.len(), 2);
        assert_eq!(w.sr.as_ref().unwrap().1.n_groups, 2);
        assert_eq!(w.rtstruct.as_ref().unwrap().1.rois.len(), 2);
        let mut names: Vec<String> =
            std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(
            names,
            ["nodes.rtstruct.dcm", "nodes.seg.dcm", "nodes.sr.dcm", "report.html", "report.json"]
        );
    }
    // Without DICOM references only the report is written.
    let out2 = dir.path().join("nifti");
    let w = nodal_report::write_outputs(&out2, &d, &ct, &lab, None, &opts).unwrap();
    assert!(w.seg.is_none() && w.sr.is_none() && w.rtstruct.is_none());
    assert_eq!(std::fs::read_dir(&out2).unwrap().count(), 2);
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&w.json).unwrap()).unwrap();
    assert_eq!(json["summary"]["n_nodes"], 2);
}
