//! The review state against naive references: brushes, region growing and splits computed in world
//! millimetres straight from the geometry (not through the display frame), undo/redo and reloads
//! that give back exactly what was there, the files a save leaves, and the dataset export.
use nodal_core::{Geometry, Volume};
use nodal_detect::output::{write_nodes_json, Source};
use nodal_detect::Detection;
use nodal_nodes::measure::{measure_nodes, MeasureOptions};
use nodal_review::case::{MODEL_OUTPUT_DIR, NODES_FILE, REJECTED_FILE, REVIEW_FILE};
use nodal_review::record::{NodeClass, Origin, Status};
use nodal_review::{find_case_folders, Case, CaseFolder, Edit, ReviewError};
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::path::Path;

/// Stored dims (i, j, k).
const DIMS: [usize; 3] = [40, 36, 16];

/// RAS storage, as most NIfTI files: i runs to the patient's right, j anterior.
fn geometry() -> Geometry {
    Geometry {
        spacing_mm: [0.8, 0.9, 2.0],
        origin_mm: [20.0, 15.0, -10.0],
        direction: [[-1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]],
    }
}

fn world(f: usize) -> [f64; 3] {
    let [ni, nj, _] = DIMS;
    geometry().index_to_world([(f % ni) as f64, ((f / ni) % nj) as f64, (f / (ni * nj)) as f64])
}

fn dist2(a: [f64; 3], b: [f64; 3]) -> f64 {
    (0..3).map(|c| (a[c] - b[c]).powi(2)).sum()
}

/// A case folder: a CT with a bright blob (a node the model missed) in fat, and three model nodes:
/// two balls and one node in two pieces.
fn make_case(dir: &Path) -> CaseFolder {
    let g = geometry();
    let ball = |c: [usize; 3], r: f64| {
        move |i: usize, j: usize, k: usize| {
            let w = g.index_to_world([i as f64, j as f64, k as f64]);
            dist2(w, g.index_to_world(c.map(|v| v as f64))) <= r * r
        }
    };
    let (n1, n2, n3a, n3b, missed) = (
        ball([10, 10, 5], 4.0),
        ball([28, 12, 6], 3.0),
        ball([10, 26, 10], 2.5),
        ball([18, 27, 10], 2.5),
        ball([28, 26, 8], 4.5),
    );
    let ct = ndarray::Array3::from_shape_fn([DIMS[2], DIMS[1], DIMS[0]], |(k, j, i)| {
        if missed(i, j, k) {
            70
        } else if n1(i, j, k) || n2(i, j, k) || n3a(i, j, k) || n3b(i, j, k) {
            40
        } else {
            -90 + ((i * 7 + j * 3 + k) % 11) as i16
        }
    });
    let labels = ndarray::Array3::from_shape_fn([DIMS[2], DIMS[1], DIMS[0]], |(k, j, i)| {
        if n1(i, j, k) {
            1u16
        } else if n2(i, j, k) {
            2
        } else if n3a(i, j, k) || n3b(i, j, k) {
            3
        } else {
            0
        }
    });
    let ct = Volume::new(ct, g).unwrap();
    let labels = Volume::new(labels, g).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    nodal_io::write_nifti(&ct, dir.join("ct.nii.gz")).unwrap();
    nodal_io::write_nifti(&labels, dir.join(NODES_FILE)).unwrap();
    let nodes: Vec<Detection> = measure_nodes(&labels, Some(&ct), &MeasureOptions::default())
        .unwrap()
        .into_iter()
        .map(Detection::measured)
        .collect();
    let source = Source { labels: None, ct: None, input_kind: "label_map".into() };
    write_nodes_json(&dir.join("nodes.json"), &nodes, &source, None).unwrap();
    let mut found = find_case_folders(dir).unwrap();
    assert_eq!(found.len(), 1);
    found.remove(0)
}

fn edit(json: &str) -> Edit {
    serde_json::from_str(json).unwrap()
}

/// Display index of a stored voxel: the grid is RAS, display is LPS.
fn display_of(i: usize, j: usize, k: usize) -> [i64; 3] {
    [(DIMS[0] - 1 - i) as i64, (DIMS[1] - 1 - j) as i64, k as i64]
}

fn flat(i: usize, j: usize, k: usize) -> usize {
    i + DIMS[0] * (j + DIMS[1] * k)
}

fn voxels_of(v: &Volume<u32>, id: u32) -> BTreeSet<usize> {
    v.as_slice().iter().enumerate().filter(|(_, &x)| x == id).map(|(f, _)| f).collect()
}

#[test]
fn rejecting_keeps_the_model_output_and_moves_the_voxels_aside() {
    let dir = tempfile::tempdir().unwrap();
    let folder = make_case(&dir.path().join("case_a"));
    let original = std::fs::read(folder.folder.join(NODES_FILE)).unwrap();
    let mut case = Case::open(&folder, None).unwrap();
    assert_eq!(case.state().nodes.len(), 3);
    let before = voxels_of(case.labels(), 2);
    case.apply(&edit(r#"{"op":"annotate","node_id":2,"status":"rejected"}"#), "dr a").unwrap();
    case.apply(
        &edit(r#"{"op":"annotate","node_id":1,"class":"metastatic","level":"IIA","note":"necrotic, \"cystic\""}"#),
        "dr a",
    )
    .unwrap();

    let d = &folder.folder;
    assert_eq!(std::fs::read(d.join(MODEL_OUTPUT_DIR).join(NODES_FILE)).unwrap(), original);
    let kept = nodal_io::read_labels(d.join(NODES_FILE)).unwrap();
    let rejected = nodal_io::read_labels(d.join(REJECTED_FILE)).unwrap();
    assert!(voxels_of(&kept, 2).is_empty());
    assert_eq!(voxels_of(&rejected, 2), before);
    assert_eq!(voxels_of(&kept, 1), voxels_of(case.labels(), 1));
    let review: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join(REVIEW_FILE)).unwrap()).unwrap();
    assert_eq!(review["generation"], 2);
    assert_eq!(review["nodes"]["2"]["status"], "rejected");
    assert_eq!(review["nodes"]["1"]["class"], "metastatic");
    assert_eq!(review["nodes"]["1"]["level"], "IIA");
    assert_eq!(review["history"][0]["reviewer"], "dr a");
    let r = case.node(1).unwrap();
    assert_eq!(
        (r.class, r.status, r.origin),
        (Some(NodeClass::Metastatic), Status::Unreviewed, Origin::Model)
    );

    // Two reviews never hold one folder; a reload shows the reviewed state, rejected node included.
    let held = Case::open(&folder, None).unwrap_err();
    assert!(
        matches!(held, ReviewError::Folder { .. }) && held.to_string().contains("another nodal review"),
        "{held}"
    );
    let case = {
        let kept = (case.labels().clone(), case.record().nodes.clone());
        drop(case);
        kept
    };
    let again = Case::open(&folder, None).unwrap();
    assert_eq!(again.labels().as_slice(), case.0.as_slice());
    assert_eq!(again.record().nodes, case.1);
    assert!(again.state().nodes.iter().any(|n| n.review.node_id == 2 && n.review.status == Status::Rejected));

    // nodes.json lists the kept nodes as `nodal measure` measures the saved label map.
    let ct = nodal_io::read_nifti::<i16>(d.join("ct.nii.gz")).unwrap();
    let expected = measure_nodes(&kept, Some(&ct), &MeasureOptions::default()).unwrap();
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("nodes.json")).unwrap()).unwrap();
    let listed: Vec<Detection> = serde_json::from_value(file["nodes"].clone()).unwrap();
    assert_eq!(listed.iter().map(|n| n.measurement.clone()).collect::<Vec<_>>(), expected);
    assert_eq!(file["source"]["input_kind"], "reviewed");
    // Each node carries its review; the file the generation it was saved at.
    assert_eq!(file["review"]["generation"], 2);
    assert_eq!(file["nodes"][0]["node_id"], 1);
    assert_eq!(file["nodes"][0]["class"], "metastatic");
    assert_eq!(file["nodes"][0]["level"], "IIA");
    // The evaluation reads the reviewer's metastatic calls from it.
    let meta = nodal_eval::NodeMeta::from_json_file(&d.join("nodes.json")).unwrap();
    assert_eq!((meta.is_metastatic(1), meta.is_metastatic(3)), (Some(true), None));
    let csv = std::fs::read_to_string(d.join("nodes.csv")).unwrap();
    assert!(csv.lines().next().unwrap().ends_with(",status,class,level,note,origin,metastatic"));
    assert!(csv.contains(r#",unreviewed,metastatic,IIA,"necrotic, ""cystic""",model,true"#), "{csv}");
}

#[test]
fn a_sphere_brush_paints_the_background_within_the_radius_in_world_mm() {
    let dir = tempfile::tempdir().unwrap();
    let folder = make_case(&dir.path().join("case"));
    let mut case = Case::open(&folder, None).unwrap();
    let old = case.labels().clone();
    // Two points of a stroke, one next to node 1 so the brush overlaps it.
    let (p, q) = ((13usize, 10usize, 5usize), (16usize, 11usize, 6usize));
    let r = 3.1;
    let json = format!(
        r#"{{"op":"paint","points":[{:?},{:?}],"radius_mm":{r},"shape":"sphere","view":"axial","node_id":null}}"#,
        display_of(p.0, p.1, p.2),
        display_of(q.0, q.1, q.2)
    );
    case.apply(&edit(&json), "t").unwrap();
    let new_id = 4;
    let (wp, wq) = (world(flat(p.0, p.1, p.2)), world(flat(q.0, q.1, q.2)));
    let expected: BTreeSet<usize> = (0..old.len())
        .filter(|&f| old.as_slice()[f] == 0 && (dist2(world(f), wp) <= r * r || dist2(world(f), wq) <= r * r))
        .collect();
    assert!(expected.len() > 20);
    assert_eq!(voxels_of(case.labels(), new_id), expected);
    assert_eq!(voxels_of(case.labels(), 1), voxels_of(&old, 1), "painting took another node's voxels");
    let n = case.node(new_id).unwrap();
    assert_eq!((n.origin, n.status), (Origin::Added, Status::Accepted));

    // A disc in the axial view: the same, on the point's slice only.
    let json = format!(
        r#"{{"op":"erase","points":[{:?}],"radius_mm":{r},"shape":"disc","view":"axial","node_id":{new_id}}}"#,
        display_of(p.0, p.1, p.2)
    );
    let before = case.labels().clone();
    case.apply(&edit(&json), "t").unwrap();
    let erased: BTreeSet<usize> =
        voxels_of(&before, new_id).difference(&voxels_of(case.labels(), new_id)).copied().collect();
    let disc: BTreeSet<usize> = voxels_of(&before, new_id)
        .into_iter()
        .filter(|&f| dist2(world(f), wp) <= r * r && (world(f)[2] - wp[2]).abs() < 1e-9)
        .collect();
    assert_eq!(erased, disc);
}

#[test]
fn region_growing_is_the_flood_fill_of_the_window_within_the_radius() {
    let dir = tempfile::tempdir().unwrap();
    let folder = make_case(&dir.path().join("case"));
    let mut case = Case::open(&folder, None).unwrap();
    let ct = case.ct().clone();
    let seed = flat(28, 26, 8);
    let (lo, hi, radius) = (20.0, 120.0, 6.0);
    let json = format!(
        r#"{{"op":"grow","seed":{:?},"hu_min":{lo},"hu_max":{hi},"max_radius_mm":{radius}}}"#,
        display_of(28, 26, 8)
    );
    case.apply(&edit(&json), "t").unwrap();
    // Naive 6-connected flood fill on the stored grid.
    let ok = |f: usize| {
        let h = ct.as_slice()[f] as f64;
        (lo..=hi).contains(&h) && dist2(world(f), world(seed)) <= radius * radius
    };
    let mut region = BTreeSet::from([seed]);
    let mut stack = vec![seed];
    while let Some(f) = stack.pop() {
        let (i, j, k) = (f % DIMS[0], (f / DIMS[0]) % DIMS[1], f / (DIMS[0] * DIMS[1]));
        let n = [
            (i as i64 - 1, j as i64, k as i64),
            (i as i64 + 1, j as i64, k as i64),
            (i as i64, j as i64 - 1, k as i64),
            (i as i64, j as i64 + 1, k as i64),
            (i as i64, j as i64, k as i64 - 1),
            (i as i64, j as i64, k as i64 + 1),
        ];
        for (a, b, c) in n {
            if a < 0 || b < 0 || c < 0 || a >= DIMS[0] as i64 || b >= DIMS[1] as i64 || c >= DIMS[2] as i64 {
                continue;
            }
            let g = flat(a as usize, b as usize, c as usize);
            if ok(g) && region.insert(g) {
                stack.push(g);
            }
        }
    }
    assert!(region.len() > 50);
    assert_eq!(voxels_of(case.labels(), 4), region);
    // Seeds inside a node, or outside the window, are refused and change nothing.
    let generation = case.record().generation;
    let inside = format!(
        r#"{{"op":"grow","seed":{:?},"hu_min":0,"hu_max":100,"max_radius_mm":5}}"#,
        display_of(10, 10, 5)
    );
    assert!(matches!(case.apply(&edit(&inside), "t"), Err(ReviewError::BadEdit(_))));
    let fat = format!(
        r#"{{"op":"grow","seed":{:?},"hu_min":0,"hu_max":100,"max_radius_mm":5}}"#,
        display_of(2, 2, 2)
    );
    assert!(matches!(case.apply(&edit(&fat), "t"), Err(ReviewError::BadEdit(_))));
    assert_eq!(case.record().generation, generation);
}

#[test]
fn splits_go_to_the_nearest_seed_or_by_piece_and_merges_join() {
    let dir = tempfile::tempdir().unwrap();
    let folder = make_case(&dir.path().join("case"));
    let mut case = Case::open(&folder, None).unwrap();
    let whole = voxels_of(case.labels(), 3);
    case.apply(&edit(r#"{"op":"split","node_id":3}"#), "t").unwrap();
    let (a, b) = (voxels_of(case.labels(), 3), voxels_of(case.labels(), 4));
    assert_eq!(a.union(&b).copied().collect::<BTreeSet<_>>(), whole);
    assert!(a.len() >= b.len() && !b.is_empty());
    assert_eq!(case.node(4).unwrap().origin, Origin::Split);

    // Node 1 by two seeds: each voxel to the nearer seed in mm.
    let n1 = voxels_of(case.labels(), 1);
    let (s1, s2) = (flat(8, 10, 5), flat(12, 10, 5));
    let json = format!(
        r#"{{"op":"split","node_id":1,"seeds":[{:?},{:?}]}}"#,
        display_of(8, 10, 5),
        display_of(12, 10, 5)
    );
    case.apply(&edit(&json), "t").unwrap();
    let near_second: BTreeSet<usize> =
        n1.iter().copied().filter(|&f| dist2(world(f), world(s2)) < dist2(world(f), world(s1))).collect();
    assert_eq!(voxels_of(case.labels(), 5), near_second);
    assert_eq!(voxels_of(case.labels(), 1), n1.difference(&near_second).copied().collect());

    case.apply(&edit(r#"{"op":"merge","node_ids":[5,1]}"#), "t").unwrap();
    assert_eq!(voxels_of(case.labels(), 1), n1);
    assert_eq!(case.node(1).unwrap().origin, Origin::Merged);
    assert!(case.node(5).is_none());
    // New ids are never reused, even after nodes go.
    case.apply(&edit(r#"{"op":"grow","seed":[11,9,8],"hu_min":0,"hu_max":100,"max_radius_mm":3}"#), "t")
        .unwrap();
    assert!(case.node(6).is_some());
}

#[test]
fn bad_edits_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let folder = make_case(&dir.path().join("case"));
    let mut case = Case::open(&folder, None).unwrap();
    let labels = case.labels().clone();
    let bad = [
        r#"{"op":"paint","points":[[40,0,0]],"radius_mm":2,"shape":"sphere","view":"axial","node_id":null}"#,
        r#"{"op":"paint","points":[[1,1,1]],"radius_mm":0,"shape":"sphere","view":"axial","node_id":null}"#,
        r#"{"op":"paint","points":[[1,1,1]],"radius_mm":2,"shape":"sphere","view":"axial","node_id":99}"#,
        r#"{"op":"paint","points":[],"radius_mm":2,"shape":"sphere","view":"axial","node_id":null}"#,
        r#"{"op":"erase","points":[[-1,0,0]],"radius_mm":2,"shape":"disc","view":"axial","node_id":null}"#,
        r#"{"op":"annotate","node_id":1,"level":"VIII"}"#,
        r#"{"op":"annotate","node_id":1}"#,
        r#"{"op":"annotate","node_id":77,"status":"accepted"}"#,
        r#"{"op":"merge","node_ids":[1,1]}"#,
        r#"{"op":"split","node_id":1}"#,
        r#"{"op":"split","node_id":1,"seeds":[[0,0,0],[1,1,1]]}"#,
        r#"{"op":"grow","seed":[0,0,0],"hu_min":50,"hu_max":-50,"max_radius_mm":5}"#,
        r#"{"op":"undo"}"#,
        r#"{"op":"redo"}"#,
    ];
    for json in bad {
        let r = case.apply(&edit(json), "t");
        assert!(matches!(r, Err(ReviewError::BadEdit(_))), "{json}: {r:?}");
    }
    for json in [
        r#"{"op":"paint"}"#,
        r#"{"op":"annotate","node_id":1,"status":"maybe"}"#,
        r#"{"op":"drop","node_id":1}"#,
        r#"{"op":"annotate","node_id":1,"status":"accepted","extra":1}"#,
    ] {
        assert!(serde_json::from_str::<Edit>(json).is_err(), "{json}");
    }
    assert_eq!(case.labels().as_slice(), labels.as_slice());
    assert_eq!(case.record().generation, 0);
    assert!(!folder.folder.join(REVIEW_FILE).exists() && !folder.folder.join(MODEL_OUTPUT_DIR).exists());
}

fn arb_edit() -> impl Strategy<Value = String> {
    let point = (0i64..40, 0i64..36, 0i64..16).prop_map(|(x, y, z)| format!("[{x},{y},{z}]"));
    let node = prop_oneof![Just("null".to_string()), (1u32..7).prop_map(|n| n.to_string())];
    prop_oneof![
        (proptest::collection::vec(point.clone(), 1..4), 1.0f64..5.0, any::<bool>(), node.clone()).prop_map(
            |(p, r, sphere, n)| format!(
                r#"{{"op":"paint","points":[{}],"radius_mm":{r},"shape":"{}","view":"coronal","node_id":{n}}}"#,
                p.join(","),
                if sphere { "sphere" } else { "disc" }
            )
        ),
        (proptest::collection::vec(point.clone(), 1..3), 1.0f64..5.0, node).prop_map(|(p, r, n)| format!(
            r#"{{"op":"erase","points":[{}],"radius_mm":{r},"shape":"sphere","view":"sagittal","node_id":{n}}}"#,
            p.join(",")
        )),
        (point.clone(), 1.0f64..8.0).prop_map(|(p, r)| format!(
            r#"{{"op":"grow","seed":{p},"hu_min":-100,"hu_max":100,"max_radius_mm":{r}}}"#
        )),
        (1u32..7, prop_oneof![Just("accepted"), Just("rejected"), Just("unreviewed")])
            .prop_map(|(n, s)| format!(r#"{{"op":"annotate","node_id":{n},"status":"{s}","class":"benign"}}"#)),
        (1u32..7).prop_map(|n| format!(r#"{{"op":"split","node_id":{n}}}"#)),
        (1u32..7, 1u32..7).prop_map(|(a, b)| format!(r#"{{"op":"merge","node_ids":[{a},{b}]}}"#)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Any sequence of edits undone gives back the model output exactly, redone gives back the
    /// edited state, and the folder on disk reloads to that state.
    #[test]
    fn undo_redo_and_reload_give_back_exactly_each_state(edits in proptest::collection::vec(arb_edit(), 1..10)) {
        let dir = tempfile::tempdir().unwrap();
        let folder = make_case(&dir.path().join("case"));
        let mut case = Case::open(&folder, None).unwrap();
        let (labels0, nodes0) = (case.labels().clone(), case.record().nodes.clone());
        let mut applied = 0;
        for json in &edits {
            match case.apply(&edit(json), "t") {
                Ok(()) => applied += 1,
                Err(ReviewError::BadEdit(_)) => {}
                Err(e) => panic!("{json}: {e}"),
            }
        }
        let (labels1, nodes1) = (case.labels().clone(), case.record().nodes.clone());
        for _ in 0..applied {
            case.apply(&edit(r#"{"op":"undo"}"#), "t").unwrap();
        }
        prop_assert_eq!(case.labels().as_slice(), labels0.as_slice());
        prop_assert_eq!(&case.record().nodes, &nodes0);
        for _ in 0..applied {
            case.apply(&edit(r#"{"op":"redo"}"#), "t").unwrap();
        }
        prop_assert_eq!(case.labels().as_slice(), labels1.as_slice());
        prop_assert_eq!(&case.record().nodes, &nodes1);
        // Measurements always follow the voxels.
        let expected = measure_nodes(case.labels(), Some(case.ct()), &MeasureOptions::default()).unwrap();
        let state = case.state();
        prop_assert_eq!(state.nodes.len(), expected.len());
        for (n, m) in state.nodes.iter().zip(&expected) {
            prop_assert_eq!(n.review.node_id, m.node_id);
            prop_assert_eq!(n.voxel_count, m.voxel_count);
            prop_assert_eq!(n.short_axis_mm, m.axes.short_axis_mm);
        }
        drop(case);
        if applied > 0 {
            let again = Case::open(&folder, None).unwrap();
            prop_assert_eq!(again.labels().as_slice(), labels1.as_slice());
            prop_assert_eq!(&again.record().nodes, &nodes1);
        }
    }
}

#[test]
fn the_export_is_a_training_dataset_of_the_reviewed_cases() {
    let dir = tempfile::tempdir().unwrap();
    let a = make_case(&dir.path().join("cohort/case_a"));
    let _b = make_case(&dir.path().join("cohort/case_b"));
    let mut case = Case::open(&a, None).unwrap();
    case.apply(&edit(r#"{"op":"annotate","node_id":2,"status":"rejected"}"#), "dr a").unwrap();
    case.apply(&edit(r#"{"op":"annotate","node_id":1,"status":"accepted","class":"metastatic"}"#), "dr a")
        .unwrap();
    case.apply(&edit(r#"{"op":"annotate","node_id":3,"class":"benign"}"#), "dr b").unwrap();
    // An open case cannot be exported (it may be saving): closed, it can.
    let cases = find_case_folders(&dir.path().join("cohort")).unwrap();
    let out = dir.path().join("Dataset501_Reviewed");
    assert!(nodal_review::export::export_dataset(&cases, &out, &|_| {}).is_err());
    let (ct0, labels0) = (case.ct().clone(), case.labels().clone());
    drop(case);
    assert_eq!(cases.len(), 2);

    let bad_name = dir.path().join("reviewed");
    assert!(nodal_review::export::export_dataset(&cases, &bad_name, &|_| {}).is_err());
    let summary = nodal_review::export::export_dataset(&cases, &out, &|_| {}).unwrap();
    assert_eq!(summary.cases.len(), 1);
    assert_eq!(summary.not_reviewed, vec!["case_b".to_string()]);
    assert_eq!(summary.cases[0].reviewers, vec!["dr a".to_string(), "dr b".to_string()]);

    let labels = nodal_io::read_nifti::<u8>(out.join("labelsTr/case_a.nii.gz")).unwrap();
    let instances = nodal_io::read_labels(out.join("instancesTr/case_a.nii.gz")).unwrap();
    let negatives = nodal_io::read_nifti::<u8>(out.join("negativesTr/case_a.nii.gz")).unwrap();
    let ct = nodal_io::read_nifti::<i16>(out.join("imagesTr/case_a_0000.nii.gz")).unwrap();
    assert_eq!(ct.as_slice(), ct0.as_slice());
    for f in 0..labels.len() {
        let id = labels0.as_slice()[f];
        assert_eq!(labels.as_slice()[f] == 1, id == 1 || id == 3);
        assert_eq!(instances.as_slice()[f], if id == 2 { 0 } else { id });
        assert_eq!(negatives.as_slice()[f] == 1, id == 2);
    }
    let csv = std::fs::read_to_string(out.join("metastatic.csv")).unwrap();
    assert_eq!(csv, "case_id,node_id,metastatic\ncase_a,1,true\ncase_a,3,false\n");
    // The trainer reads it, hard negatives included.
    let listed = nodal_net::train::list_cases(&out).unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].negatives.is_some() && listed[0].label.ends_with("instancesTr/case_a.nii.gz"));
}

#[test]
fn the_export_refuses_an_external_validation_case_under_another_name() {
    let src = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/external-validation"));
    let (image, label) =
        (src.join("imagesTs/x2_abdomen_3mm_0000.nii.gz"), src.join("labelsTs/x2_abdomen_3mm.nii.gz"));
    if !image.is_file() {
        eprintln!("skipped: {} is absent", image.display());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let case_dir = dir.path().join("my_patient");
    std::fs::create_dir_all(&case_dir).unwrap();
    std::fs::copy(&image, case_dir.join("ct.nii.gz")).unwrap();
    std::fs::copy(&label, case_dir.join(NODES_FILE)).unwrap();
    let folder = find_case_folders(&case_dir).unwrap().remove(0);
    let mut case = Case::open(&folder, None).unwrap();
    case.apply(&edit(r#"{"op":"annotate","node_id":1,"status":"accepted"}"#), "t").unwrap();
    drop(case);
    let out = dir.path().join("Dataset502_Mine");
    let err = nodal_review::export::export_dataset(&[folder], &out, &|_| {}).unwrap_err();
    assert!(matches!(err, ReviewError::HeldOut(_)), "{err}");
    assert!(err.is_input());
    assert!(!out.exists(), "a refused export left {}", out.display());
}

/// One HTTP/1.1 request over a fresh connection: (status, body).
fn http(addr: std::net::SocketAddr, request: &str) -> (u16, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, raw[split + 4..].to_vec())
}

fn get(addr: std::net::SocketAddr, path: &str, token: Option<&str>) -> (u16, Vec<u8>) {
    let auth = token.map(|t| format!("X-Nodal-Token: {t}\r\n")).unwrap_or_default();
    http(addr, &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n"))
}

fn post(addr: std::net::SocketAddr, path: &str, token: &str, body: &str) -> (u16, Vec<u8>) {
    http(
        addr,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nX-Nodal-Token: {token}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

#[test]
fn the_server_needs_the_token_serves_only_its_cases_and_checks_edits() {
    let dir = tempfile::tempdir().unwrap();
    let folder = make_case(&dir.path().join("case_a"));
    let opts = nodal_review::ServeOptions::default();
    let remote = nodal_review::ServeOptions { bind: "0.0.0.0:0".into(), ..opts.clone() };
    let refused = nodal_review::serve(vec![folder.clone()], remote).unwrap_err();
    assert!(matches!(refused, ReviewError::Bind { .. }) && refused.is_input(), "{refused}");

    let server = std::sync::Arc::new(nodal_review::serve(vec![folder.clone()], opts).unwrap());
    let url = server.url();
    let token = url.split("token=").nth(1).unwrap().to_string();
    assert_eq!(token.len(), 32);
    let addr = server.addr();
    assert!(addr.ip().is_loopback());
    let running = std::sync::Arc::clone(&server);
    let worker = std::thread::spawn(move || running.run());

    // No token, a wrong one, one of another length: refused, page and data alike.
    for t in [None, Some("0".repeat(32)), Some("abc".to_string())] {
        for path in ["/", "/api/cases", "/api/cases/case_a/volume"] {
            assert_eq!(get(addr, path, t.as_deref()).0, 401, "{path} with {t:?}");
        }
    }
    let (status, page) = get(addr, &format!("/?token={token}"), None);
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&page).contains("<html"));
    // The page's own script runs by its hash; nothing else would (no 'unsafe-inline' scripts).
    let head = {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(s, "GET /?token={token} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).unwrap();
        raw.split("\r\n\r\n").next().unwrap().to_ascii_lowercase()
    };
    let csp = head.lines().find(|l| l.starts_with("content-security-policy:")).expect("a CSP header");
    assert!(csp.contains("script-src 'sha256-") && !csp.contains("script-src 'unsafe-inline'"), "{csp}");
    assert!(head.contains("referrer-policy: no-referrer"));
    // Only the cases given, by id: no path from a request reaches the file system.
    for path in [
        "/../../etc/passwd",
        "/api/cases/..%2F..%2Fetc/volume",
        "/api/cases/%2e%2e/nodes",
        "/api/cases/case_a/../../x",
        "/api/cases/case_b/volume",
        "/case_a/ct.nii.gz",
        "/api/cases/case_a/nodes.nii.gz",
    ] {
        let (status, _) = get(addr, path, Some(&token));
        assert_eq!(status, 404, "{path}");
    }
    let (status, body) = get(addr, "/api/cases/case_a/volume", Some(&token));
    assert_eq!(status, 200);
    let volume: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(volume["dims"], serde_json::json!([40, 36, 16]));

    // A slice: width, height, HU, labels; display x = 0 is the patient's right (stored i = 39).
    let (status, body) = get(addr, "/api/cases/case_a/slice?view=axial&index=5", Some(&token));
    assert_eq!(status, 200);
    let (w, h) = (
        u32::from_le_bytes(body[0..4].try_into().unwrap()),
        u32::from_le_bytes(body[4..8].try_into().unwrap()),
    );
    assert_eq!((w, h), (40, 36));
    assert_eq!(body.len(), 8 + 40 * 36 * 6);
    let ct = nodal_io::read_nifti::<i16>(folder.folder.join("ct.nii.gz")).unwrap();
    let labels = nodal_io::read_labels(folder.folder.join(NODES_FILE)).unwrap();
    let hu_at =
        |x: usize, y: usize| i16::from_le_bytes(body[8 + 2 * (y * 40 + x)..][..2].try_into().unwrap());
    let label_at = |x: usize, y: usize| {
        u32::from_le_bytes(body[8 + 2 * 40 * 36 + 4 * (y * 40 + x)..][..4].try_into().unwrap())
    };
    for (x, y) in [(0, 0), (39 - 10, 35 - 10), (5, 30)] {
        let f = flat(39 - x, 35 - y, 5);
        assert_eq!(hu_at(x, y), ct.as_slice()[f]);
        assert_eq!(label_at(x, y), labels.as_slice()[f]);
    }
    assert_eq!(label_at(29, 25), 1);
    assert_eq!(get(addr, "/api/cases/case_a/slice?view=axial&index=16", Some(&token)).0, 400);
    assert_eq!(get(addr, "/api/cases/case_a/slice?view=oblique&index=1", Some(&token)).0, 400);

    // Edits: a bad one is refused and saves nothing; a good one answers the saved state.
    let edit_path = "/api/cases/case_a/edit";
    let outside =
        r#"{"op":"paint","points":[[99,0,0]],"radius_mm":2,"shape":"sphere","view":"axial","node_id":null}"#;
    assert_eq!(post(addr, edit_path, &token, outside).0, 400);
    assert_eq!(post(addr, edit_path, &token, "{not json").0, 400);
    assert_eq!(post(addr, edit_path, "wrong", r#"{"op":"undo"}"#).0, 401);
    assert!(!folder.folder.join(REVIEW_FILE).exists());
    let (status, body) =
        post(addr, edit_path, &token, r#"{"op":"annotate","node_id":2,"status":"rejected"}"#);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let state: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(state["generation"], 1);
    assert!(folder.folder.join(REJECTED_FILE).is_file());
    let (_, body) = get(addr, "/api/cases/case_a/slice?view=axial&index=6", Some(&token));
    let rejected = (0..40 * 36)
        .map(|p| u32::from_le_bytes(body[8 + 2 * 40 * 36 + 4 * p..][..4].try_into().unwrap()))
        .any(|v| v == 0x8000_0002);
    assert!(rejected, "rejected voxels carry bit 31");

    server.stop();
    worker.join().unwrap();
}

/// This machine's address on its outward interface, if it has one (no packet is sent).
fn outward_ip() -> Option<std::net::IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[test]
fn with_allow_remote_other_machines_get_compressed_slices() {
    let Some(ip) = outward_ip() else {
        eprintln!("skipped: this machine has no outward interface");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let folder = make_case(&dir.path().join("case_a"));
    let opts =
        nodal_review::ServeOptions { bind: format!("{ip}:0"), allow_remote: true, ..Default::default() };
    let server = std::sync::Arc::new(nodal_review::serve(vec![folder.clone()], opts).unwrap());
    let token = server.url().split("token=").nth(1).unwrap().to_string();
    let addr = server.addr();
    assert_eq!(addr.ip(), ip);
    let running = std::sync::Arc::clone(&server);
    let worker = std::thread::spawn(move || running.run());
    // Connecting to the outward address comes from it too: a peer that is not loopback.
    let (status, body) = http(
        addr,
        &format!(
            "GET /api/cases/case_a/slice?view=axial&index=5 HTTP/1.1\r\nHost: x\r\nX-Nodal-Token: {token}\r\n\
             Accept-Encoding: gzip\r\nConnection: close\r\n\r\n"
        ),
    );
    assert_eq!(status, 200);
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut raw).unwrap();
    assert_eq!(raw.len(), 8 + 40 * 36 * 6);
    assert_eq!(get(addr, "/api/cases/case_a/volume", None).0, 401);
    server.stop();
    worker.join().unwrap();
}

#[test]
fn a_cohort_is_reviewed_case_by_case() {
    let dir = tempfile::tempdir().unwrap();
    make_case(&dir.path().join("cohort/case_a"));
    make_case(&dir.path().join("cohort/case_b"));
    let cases = find_case_folders(&dir.path().join("cohort")).unwrap();
    let server =
        std::sync::Arc::new(nodal_review::serve(cases, nodal_review::ServeOptions::default()).unwrap());
    let token = server.url().split("token=").nth(1).unwrap().to_string();
    let addr = server.addr();
    let running = std::sync::Arc::clone(&server);
    let worker = std::thread::spawn(move || running.run());
    let (_, body) = get(addr, "/api/cases", Some(&token));
    let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(list["cases"][0]["case_id"], "case_a");
    assert_eq!(list["cases"][1]["n_nodes"], 3);
    let reject = r#"{"op":"annotate","node_id":2,"status":"rejected"}"#;
    assert_eq!(post(addr, "/api/cases/case_a/edit", &token, reject).0, 200);
    assert_eq!(
        post(addr, "/api/cases/case_b/edit", &token, r#"{"op":"annotate","node_id":1,"note":"b"}"#).0,
        200
    );
    // Back to the first case: read again from its folder, with its review.
    let (_, body) = get(addr, "/api/cases/case_a/nodes", Some(&token));
    let state: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(state["generation"], 1);
    assert_eq!(state["nodes"][1]["status"], "rejected");
    let (_, body) = get(addr, "/api/cases", Some(&token));
    let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (&list["cases"][0]["reviewed"], &list["cases"][1]["reviewed"]),
        (&serde_json::json!(true), &serde_json::json!(true))
    );
    server.stop();
    worker.join().unwrap();
}
