//! Golden test of the numbers behind the report: ranks, counts by RECIST category and side, and the
//! N-staging findings, for seven hand-made nodes whose expected values are worked out below.
use nodal_report::{summarize, NodeRecord, ReportData, ScanInfo, Side};
use serde_json::{json, Value};

fn node(node_id: u32, sad: f64, lad: f64, side: Side) -> NodeRecord {
    NodeRecord {
        node_id,
        short_axis_mm: sad,
        long_axis_mm: lad,
        short_axis_slice: 3,
        long_axis_slice: 4,
        short_axis_endpoints_mm: [[0.0, -sad / 2.0, 10.0], [0.0, sad / 2.0, 10.0]],
        long_axis_endpoints_mm: [[-lad / 2.0, 0.0, 10.0], [lad / 2.0, 0.0, 10.0]],
        recist_long_axis_mm: lad,
        recist_long_axis_endpoints_mm: [[-lad / 2.0, 0.0, 10.0], [lad / 2.0, 0.0, 10.0]],
        volume_mm3: 100.0 * node_id as f64,
        centroid_mm: [0.0, 0.0, 10.0],
        hu_mean: Some(40.0),
        necrosis_fraction: Some(0.25),
        touches_volume_border: false,
        side,
        node_rads_size: None,
        peak_probability: None,
        filter: None,
    }
}

fn data() -> ReportData {
    ReportData {
        scan: ScanInfo {
            source: "hand-made".into(),
            dims: [10, 10, 10],
            spacing_mm: [1.0; 3],
            orientation: "LPS".into(),
            description: None,
            slice_instance_numbers: vec![],
            coverage: None,
        },
        model: None,
        timings: vec![],
        // (node id, SAD, LAD, side): the boundaries 10.0, 14.99, 15.0 and 9.99 sit on both sides of
        // the category limits; node 5's LAD of 61 mm exceeds 60 mm.
        nodes: vec![
            node(1, 8.0, 12.0, Side::Right),
            node(2, 16.0, 22.0, Side::Left),
            node(3, 10.0, 14.0, Side::Right),
            node(4, 4.6, 6.0, Side::Left),
            node(5, 14.99, 61.0, Side::Left),
            node(6, 9.99, 11.0, Side::Midline),
            node(7, 15.0, 18.0, Side::Right),
        ],
        evaluation: None,
        created: "2026-01-01T00:00:00Z".into(),
        software_version: "test".into(),
    }
}

#[test]
fn summary_matches_hand_derived_values() {
    let s = serde_json::to_value(summarize(&data())).unwrap();
    // Sorted by SAD: 16 (2), 15 (7), 14.99 (5), 10 (3), 9.99 (6), 8 (1), 4.6 (4).
    let ranks: Vec<Value> = s["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| json!([n["rank"], n["node_id"], n["recist"]]))
        .collect();
    assert_eq!(
        Value::Array(ranks),
        json!([
            [1, 2, "pathological_target"],
            [2, 7, "pathological_target"],
            [3, 5, "pathological_non_target"],
            [4, 3, "pathological_non_target"],
            [5, 6, "non_pathological"],
            [6, 1, "non_pathological"],
            [7, 4, "non_pathological"]
        ])
    );
    assert_eq!(s["n_nodes"], json!(7));
    assert_eq!(
        s["by_recist"],
        json!({"non_pathological": 3, "pathological_non_target": 2, "pathological_target": 2})
    );
    assert_eq!(s["by_side"], json!({"left": 3, "right": 3, "midline": 1}));
    assert_eq!(
        s["flags"],
        json!([
            {"code": "sad_ge_10", "text": "4 nodes with short axis ≥ 10 mm"},
            {"code": "sad_ge_15", "text": "2 nodes with short axis ≥ 15 mm"},
            {"code": "lad_gt_60", "text": "1 node with long axis > 60 mm"},
            {"code": "count_ge_6", "text": "7 nodes detected (6 or more)"},
            {"code": "bilateral_sad_ge_10",
             "text": "Nodes with short axis ≥ 10 mm on both sides (bilateral / contralateral)"}
        ])
    );
}

#[test]
fn frozen_keys_of_the_report_json() {
    // A change here changes the JSON that downstream tools read: update them together.
    let s = serde_json::to_value(summarize(&data())).unwrap();
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&s), ["by_recist", "by_side", "flags", "n_nodes", "nodes"]);
    assert_eq!(
        keys(&s["nodes"][0]),
        [
            "centroid_mm",
            "filter",
            "hu_mean",
            "long_axis_endpoints_mm",
            "long_axis_mm",
            "long_axis_slice",
            "necrosis_fraction",
            "node_id",
            "node_rads_size",
            "peak_probability",
            "rank",
            "recist",
            "recist_long_axis_endpoints_mm",
            "recist_long_axis_mm",
            "region",
            "short_axis_endpoints_mm",
            "short_axis_mm",
            "short_axis_slice",
            "side",
            "touches_volume_border",
            "volume_mm3"
        ]
    );
}

#[test]
fn few_small_one_sided_nodes_raise_no_flag() {
    let mut d = data();
    d.nodes = vec![node(1, 5.0, 7.0, Side::Left), node(2, 9.9, 12.0, Side::Left)];
    let s = summarize(&d);
    assert!(s.flags.is_empty(), "{:?}", s.flags);
    // One large node on one side: only the size findings.
    d.nodes = vec![node(1, 15.0, 20.0, Side::Right)];
    let codes: Vec<String> = summarize(&d).flags.into_iter().map(|f| f.code).collect();
    assert_eq!(codes, ["sad_ge_10", "sad_ge_15"]);
    let s = summarize(&d);
    assert_eq!(s.flags[0].text, "1 node with short axis ≥ 10 mm");
}

#[test]
fn report_data_round_trips_through_json() {
    let d = data();
    let back: ReportData = serde_json::from_str(&serde_json::to_string(&d).unwrap()).unwrap();
    assert_eq!(back, d);
}
