//! End to end on NIfTI files: pairing, metadata, cohort figures, Table 1, outputs and the frozen
//! key set of `evaluation.json`.
use nodal_core::{Geometry, Volume};
use nodal_eval::cohort::{attach_meta, MetaSource, Status};
use nodal_eval::{evaluate_cohort, pair_dirs, read_manifest, write_outputs, EvalError};
use nodal_io::write_nifti;
use std::collections::BTreeSet;
use std::path::Path;

fn set<T: nodal_core::Voxel>(
    v: &mut Volume<T>,
    i: std::ops::Range<usize>,
    j: std::ops::Range<usize>,
    k: std::ops::Range<usize>,
    x: T,
) {
    for kk in k {
        for jj in j.clone() {
            for ii in i.clone() {
                v.data_mut()[[kk, jj, ii]] = x;
            }
        }
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * (1.0 + b.abs())
}

/// Three cases at 1 mm:
/// * a: node 1 (5x5x4, SAD 7.07, metastatic) fully predicted; node 2 (3x3x3, SAD 4.24, not
///   metastatic) missed;
/// * b: node 1 (12x12x4, SAD 16.97, metastatic) half predicted (0.5, localized); node 2 (8x8x3,
///   SAD 11.31, not metastatic) fully predicted;
/// * c: no nodes, one 6x6x3 false positive of probability 0.75 (a float probability map, named
///   with the nnU-Net `_0000` suffix).
fn build(dir: &Path) {
    let g = Geometry::axis_aligned([1.0; 3], [0.0; 3]);
    let dims = [40, 30, 12];
    for d in ["pred", "gt", "meta"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    let mut gt = Volume::<u16>::zeros(dims, g);
    let mut pred = Volume::<u8>::zeros(dims, g);
    set(&mut gt, 2..7, 2..7, 2..6, 1);
    set(&mut gt, 20..23, 2..5, 2..5, 2);
    set(&mut pred, 2..7, 2..7, 2..6, 1);
    write_nifti(&gt, dir.join("gt/a.nii.gz")).unwrap();
    write_nifti(&pred, dir.join("pred/a.nii.gz")).unwrap();
    std::fs::write(
        dir.join("meta/a.json"),
        r#"[{"id":1,"metastatic":true,"sad_mm":7.1},{"id":2,"metastatic":false}]"#,
    )
    .unwrap();

    let mut gt = Volume::<u16>::zeros(dims, g);
    let mut pred = Volume::<u8>::zeros(dims, g);
    set(&mut gt, 2..14, 2..14, 2..6, 1);
    set(&mut gt, 20..28, 2..10, 2..5, 2);
    set(&mut pred, 2..8, 2..14, 2..6, 1);
    set(&mut pred, 20..28, 2..10, 2..5, 1);
    write_nifti(&gt, dir.join("gt/b.nii")).unwrap();
    write_nifti(&pred, dir.join("pred/b.nii.gz")).unwrap();
    std::fs::write(
        dir.join("meta/b_nodes.json"),
        r#"{"nodes":[{"id":1,"metastatic":true},{"id":2,"metastatic":false}]}"#,
    )
    .unwrap();

    let gt = Volume::<u16>::zeros(dims, g);
    let mut pred = Volume::<f32>::zeros(dims, g);
    set(&mut pred, 10..16, 10..16, 3..6, 0.75);
    write_nifti(&gt, dir.join("gt/c.nii.gz")).unwrap();
    write_nifti(&pred, dir.join("pred/c_0000.nii.gz")).unwrap();
}

/// Every key path of a JSON value; array elements contribute the union of their keys as `[]`.
fn key_paths(v: &serde_json::Value, prefix: &str, out: &mut BTreeSet<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                let p = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                out.insert(p.clone());
                key_paths(x, &p, out);
            }
        }
        serde_json::Value::Array(a) => {
            for x in a {
                key_paths(x, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn cohort_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    build(dir);
    let mut cases = pair_dirs(&dir.join("pred"), &dir.join("gt")).unwrap();
    let ids: Vec<&str> = cases.iter().map(|c| c.case_id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c"]);
    attach_meta(&mut cases, &MetaSource::from_path(Some(&dir.join("meta")))).unwrap();
    assert!(cases[2].meta.is_none());
    let done = std::sync::atomic::AtomicUsize::new(0);
    let r = evaluate_cohort(&cases, &|_| {
        done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    })
    .unwrap();
    assert_eq!(done.into_inner(), 3);

    let s = &r.summary;
    assert_eq!(s.n_scans, 3);
    assert_eq!((s.recall.mean, s.recall.n_scans), (Some(0.75), 2));
    assert_eq!(s.precision.n_scans, 3);
    assert!(close(s.precision.mean.unwrap(), 2.0 / 3.0));
    assert!(close(s.fp_per_scan, 1.0 / 3.0));
    assert_eq!(s.fp_sad_ge_10mm_per_scan, 0.0);
    assert!(close(s.fp_mean_sad_mm.unwrap(), 6.0 * 2f64.sqrt()));
    assert_eq!((s.n_gt_nodes, s.n_gt_localized, s.recall_pooled), (4, 3, Some(0.75)));
    // Node 2 of case a (SAD 4.24 mm) is below the size filter: a perfect prediction misses it too.
    assert_eq!((s.recall_ceiling.mean, s.recall_ceiling.n_scans, s.n_gt_countable), (Some(0.75), 2, 3));
    let countable: Vec<bool> = r.scans[0].result.nodes.iter().map(|n| n.countable).collect();
    assert_eq!(countable, [true, false]);
    assert_eq!(r.scans[2].result.recall, None);
    // FROC from case c alone: no GT nodes (recall undefined), one FP up to threshold 0.75
    let froc = r.froc.as_ref().unwrap();
    assert_eq!(froc.len(), 19);
    for p in froc {
        assert_eq!(
            (p.recall, p.fp_per_scan, p.n_scans),
            (None, if p.threshold <= 0.75 { 1.0 } else { 0.0 }, 1)
        );
    }

    let cell = |g: &str, st: Status| r.table1.iter().find(|x| x.sad_group == g && x.status == st).unwrap();
    let c = cell("<5", Status::NonMetastatic);
    assert_eq!((c.n, c.recall, c.mean_sensitivity_localized), (1, Some(0.0), None));
    let c = cell("<5", Status::Metastatic);
    assert_eq!((c.n, c.recall), (0, None));
    let c = cell("5-9", Status::Metastatic);
    assert_eq!((c.n, c.recall, c.mean_sensitivity_localized), (1, Some(1.0), Some(1.0)));
    let c = cell("10-14", Status::NonMetastatic);
    assert_eq!((c.n, c.recall, c.mean_sensitivity_localized), (1, Some(1.0), Some(1.0)));
    let c = cell(">=15", Status::Metastatic);
    assert_eq!((c.n, c.recall, c.mean_sensitivity_localized), (1, Some(1.0), Some(0.5)));
    let c = cell("all", Status::Metastatic);
    assert_eq!((c.n, c.recall, c.mean_sensitivity_localized), (2, Some(1.0), Some(0.75)));
    let c = cell("all", Status::All);
    assert_eq!((c.n, c.n_localized, c.recall), (4, 3, Some(0.75)));
    assert!(close(c.mean_sensitivity_localized.unwrap(), 2.5 / 3.0));
    assert_eq!(r.table1.len(), 15);

    // Statistics on 4 nodes: sensitivities [1, 0, 0.5, 1], SADs [7.07, 4.24, 16.97, 11.31].
    let st = &r.statistics;
    let sh = st.shapiro_sensitivity_all_nodes.unwrap();
    let want = nodal_eval::stats::shapiro(&[1.0, 0.0, 0.5, 1.0]).unwrap();
    assert_eq!(sh, want);
    assert!(st.kruskal_localized_mets_vs_nonmets.is_some());
    assert!(st.pearson_sad_vs_sensitivity_all_nodes.is_some());
    // two nodes above 10 mm: r = +-1 with p = 1
    assert_eq!(st.pearson_sad_vs_sensitivity_sad_gt_10mm.map(|t| t.p_value), Some(1.0));

    let out = dir.join("out");
    let written = write_outputs(&r, &out).unwrap();
    for name in [
        "evaluation.json",
        "scans.csv",
        "nodes.csv",
        "fps.csv",
        "table1.md",
        "sensitivity_boxplot.svg",
        "sad_violin.svg",
        "sad_vs_sensitivity.svg",
        "froc.svg",
        "froc.csv",
    ] {
        assert!(out.join(name).is_file(), "{name} missing");
        assert!(written.contains(&out.join(name)));
    }
    assert!(!std::fs::read_dir(&out).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .contains(".tmp")));
    let nodes_csv = std::fs::read_to_string(out.join("nodes.csv")).unwrap();
    assert_eq!(nodes_csv.lines().count(), 5);
    let scans_csv = std::fs::read_to_string(out.join("scans.csv")).unwrap();
    let c_row = scans_csv.lines().find(|l| l.starts_with("c,")).unwrap();
    assert!(c_row.contains(",,"), "undefined recall of case c must be an empty cell: {c_row}");
    let svg = std::fs::read_to_string(out.join("sad_vs_sensitivity.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("evaluation.json")).unwrap()).unwrap();
    assert_eq!(json["schema"], "nodal.evaluation/3");
    assert!(json["scans"][2]["recall"].is_null());
    let mut keys = BTreeSet::new();
    key_paths(&json, "", &mut keys);
    let frozen: BTreeSet<String> =
        FROZEN_KEYS.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
    let added: Vec<_> = keys.difference(&frozen).collect();
    let removed: Vec<_> = frozen.difference(&keys).collect();
    assert!(
        added.is_empty() && removed.is_empty(),
        "evaluation.json key set changed (bump the schema version if intended): added {added:?}, removed {removed:?}"
    );

    // Masks have no FROC curve: rewriting the folder with such a result leaves none behind.
    let masks_only = nodal_eval::CohortResult { froc: None, ..r.clone() };
    let written = write_outputs(&masks_only, &out).unwrap();
    for name in ["froc.svg", "froc.csv"] {
        assert!(!out.join(name).exists(), "stale {name} left");
        assert!(!written.contains(&out.join(name)));
    }
    assert!(out.join("evaluation.json").is_file());
}

/// nnU-Net `labelsTr` are binary: such a ground truth is scored as its 26-connected components,
/// exactly as the same nodes labelled one id each, and the split is stated per scan.
#[test]
fn a_binary_ground_truth_scores_as_its_instance_labelled_twin() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    build(dir);
    std::fs::create_dir_all(dir.join("gt_binary")).unwrap();
    for name in ["a.nii.gz", "b.nii", "c.nii.gz"] {
        let gt: Volume<u16> = nodal_io::read_nifti(dir.join("gt").join(name)).unwrap();
        write_nifti(&gt.map(|v| u8::from(v != 0)), dir.join("gt_binary").join(name)).unwrap();
    }
    let score = |gt: &str| {
        let mut cases = pair_dirs(&dir.join("pred"), &dir.join(gt)).unwrap();
        attach_meta(&mut cases, &MetaSource::Dir(dir.join("meta"))).unwrap();
        evaluate_cohort(&cases, &|_| {}).unwrap()
    };
    let (labelled, binary) = (score("gt"), score("gt_binary"));
    let splits: Vec<_> = binary.scans.iter().map(|s| s.result.gt_split_from_binary).collect();
    // a and b hold two separate nodes each; c has none, so nothing is split.
    assert_eq!(splits, [Some(2), Some(2), None]);
    assert!(labelled.scans.iter().all(|s| s.result.gt_split_from_binary.is_none()));
    for (l, b) in labelled.scans.iter().zip(&binary.scans) {
        let b = nodal_eval::ScanResult { gt_split_from_binary: None, ..b.result.clone() };
        assert_eq!(l.result, b, "case {}", l.case_id);
    }
    assert_eq!(labelled.summary, binary.summary);
}

#[test]
fn grid_mismatch_names_both_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("p")).unwrap();
    std::fs::create_dir_all(dir.join("g")).unwrap();
    let g = Geometry::axis_aligned([1.0; 3], [0.0; 3]);
    write_nifti(&Volume::<u8>::zeros([8, 8, 8], g), dir.join("p/x.nii.gz")).unwrap();
    let g2 = Geometry::axis_aligned([1.0, 1.0, 2.0], [0.0; 3]);
    write_nifti(&Volume::<u16>::zeros([8, 8, 8], g2), dir.join("g/x.nii.gz")).unwrap();
    let cases = pair_dirs(&dir.join("p"), &dir.join("g")).unwrap();
    let err = evaluate_cohort(&cases, &|_| {}).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, EvalError::GridMismatch { .. }));
    assert!(msg.contains("p/x.nii.gz") && msg.contains("g/x.nii.gz"), "{msg}");
}

#[test]
fn pairing_and_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    build(dir);
    std::fs::remove_file(dir.join("gt/b.nii")).unwrap();
    let err = pair_dirs(&dir.join("pred"), &dir.join("gt")).unwrap_err();
    assert!(err.to_string().contains("\"b\""), "{err}");

    std::fs::write(
        dir.join("manifest.csv"),
        "case_id,pred,gt,meta\na,pred/a.nii.gz,gt/a.nii.gz,meta/a.json\nc,pred/c_0000.nii.gz,gt/c.nii.gz,\n",
    )
    .unwrap();
    let cases = read_manifest(&dir.join("manifest.csv")).unwrap();
    assert_eq!(cases.len(), 2);
    assert_eq!(cases[0].meta.as_ref().unwrap().is_metastatic(1), Some(true));
    assert!(cases[1].meta.is_none());
    let r = evaluate_cohort(&cases, &|_| {}).unwrap();
    assert_eq!(r.summary.n_gt_nodes, 2);
    std::fs::write(dir.join("bad.csv"), "case,pred\na,b\n").unwrap();
    assert!(matches!(read_manifest(&dir.join("bad.csv")), Err(EvalError::BadTable { .. })));
}

const FROZEN_KEYS: &str = "
froc
froc[].fp_per_scan
froc[].n_scans
froc[].recall
froc[].threshold
protocol
protocol.cohort_means
protocol.connectivity
protocol.hd95
protocol.localized_min_sensitivity
protocol.min_pred_sad_mm
protocol.probability_threshold
protocol.sad
protocol.significant_fp_sad_mm
protocol.surface_voxels
scans
scans[].assd
scans[].avg_hd
scans[].case_id
scans[].dice
scans[].f1
scans[].fps
scans[].fps[].centroid_mm
scans[].fps[].component
scans[].fps[].lad_mm
scans[].fps[].n_voxels
scans[].fps[].sad_mm
scans[].fps[].volume_mm3
scans[].froc
scans[].froc[].n_fp
scans[].froc[].n_gt
scans[].froc[].n_localized
scans[].froc[].threshold
scans[].gt
scans[].gt_split_from_binary
scans[].hd
scans[].hd95
scans[].mhd
scans[].n_fp
scans[].n_fp_sad_ge_10mm
scans[].n_gt_countable
scans[].n_gt_localized
scans[].n_gt_nodes
scans[].n_pred
scans[].n_pred_components
scans[].n_pred_removed_small
scans[].n_tp
scans[].nodes
scans[].nodes[].countable
scans[].nodes[].id
scans[].nodes[].lad_mm
scans[].nodes[].localized
scans[].nodes[].metastatic
scans[].nodes[].n_voxels
scans[].nodes[].sad_group
scans[].nodes[].sad_mm
scans[].nodes[].sensitivity
scans[].nodes[].volume_mm3
scans[].precision
scans[].pred
scans[].prediction_kind
scans[].recall
scans[].recall_ceiling
schema
statistics
statistics.dunn_localized_by_sad_group
statistics.dunn_localized_by_sad_group[].group_a
statistics.dunn_localized_by_sad_group[].group_b
statistics.dunn_localized_by_sad_group[].p_bonferroni
statistics.dunn_localized_by_sad_group[].p_unadjusted
statistics.dunn_localized_by_sad_group[].z
statistics.dunn_sensitivity_localized_by_sad_group
statistics.dunn_sensitivity_localized_by_sad_group[].group_a
statistics.dunn_sensitivity_localized_by_sad_group[].group_b
statistics.dunn_sensitivity_localized_by_sad_group[].p_bonferroni
statistics.dunn_sensitivity_localized_by_sad_group[].p_unadjusted
statistics.dunn_sensitivity_localized_by_sad_group[].z
statistics.kruskal_localized_by_sad_group
statistics.kruskal_localized_by_sad_group.p_value
statistics.kruskal_localized_by_sad_group.statistic
statistics.kruskal_localized_mets_vs_nonmets
statistics.kruskal_localized_mets_vs_nonmets.p_value
statistics.kruskal_localized_mets_vs_nonmets.statistic
statistics.kruskal_sad_mets_vs_nonmets
statistics.kruskal_sad_mets_vs_nonmets.p_value
statistics.kruskal_sad_mets_vs_nonmets.statistic
statistics.kruskal_sensitivity_localized_by_sad_group
statistics.kruskal_sensitivity_localized_by_sad_group.p_value
statistics.kruskal_sensitivity_localized_by_sad_group.statistic
statistics.kruskal_sensitivity_localized_mets_vs_nonmets
statistics.kruskal_sensitivity_localized_mets_vs_nonmets.p_value
statistics.kruskal_sensitivity_localized_mets_vs_nonmets.statistic
statistics.pearson_sad_vs_sensitivity_all_nodes
statistics.pearson_sad_vs_sensitivity_all_nodes.p_value
statistics.pearson_sad_vs_sensitivity_all_nodes.statistic
statistics.pearson_sad_vs_sensitivity_sad_gt_10mm
statistics.pearson_sad_vs_sensitivity_sad_gt_10mm.p_value
statistics.pearson_sad_vs_sensitivity_sad_gt_10mm.statistic
statistics.shapiro_sensitivity_all_nodes
statistics.shapiro_sensitivity_all_nodes.p_value
statistics.shapiro_sensitivity_all_nodes.statistic
summary
summary.assd
summary.assd.mean
summary.assd.n_scans
summary.avg_hd
summary.avg_hd.mean
summary.avg_hd.n_scans
summary.dice
summary.dice.mean
summary.dice.n_scans
summary.f1
summary.f1.mean
summary.f1.n_scans
summary.fp_mean_sad_mm
summary.fp_per_scan
summary.fp_sad_ge_10mm_per_scan
summary.hd
summary.hd.mean
summary.hd.n_scans
summary.hd95
summary.hd95.mean
summary.hd95.n_scans
summary.mhd
summary.mhd.mean
summary.mhd.n_scans
summary.n_fp
summary.n_gt_countable
summary.n_gt_localized
summary.n_gt_nodes
summary.n_pred
summary.n_pred_removed_small
summary.n_scans
summary.n_tp
summary.precision
summary.precision.mean
summary.precision.n_scans
summary.recall
summary.recall.mean
summary.recall.n_scans
summary.recall_ceiling
summary.recall_ceiling.mean
summary.recall_ceiling.n_scans
summary.recall_pooled
table1
table1[].mean_sensitivity_localized
table1[].n
table1[].n_localized
table1[].recall
table1[].sad_group
table1[].status
";

/// A GT label that is no id (negative, fractional) is refused naming the file, instead of the node
/// being dropped or merged; a probability outside [0, 1] names the case and its files.
#[test]
fn bad_ground_truth_ids_and_probabilities_name_the_case_and_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("p")).unwrap();
    std::fs::create_dir_all(dir.join("g")).unwrap();
    let g = Geometry::axis_aligned([1.0; 3], [0.0; 3]);
    let mut pred = Volume::<u8>::zeros([8, 8, 8], g);
    pred.data_mut()[[2, 2, 2]] = 1;
    write_nifti(&pred, dir.join("p/x.nii.gz")).unwrap();
    let one_voxel = |v: f32| {
        let mut vol = Volume::<f32>::zeros([8, 8, 8], g);
        vol.data_mut()[[1, 1, 1]] = v;
        vol
    };
    let mut negative = Volume::<i16>::zeros([8, 8, 8], g);
    negative.data_mut()[[1, 1, 1]] = -1;
    write_nifti(&negative, dir.join("g/x.nii.gz")).unwrap();
    for (bad_gt, want) in [(None, "-1"), (Some(one_voxel(0.5)), "0.5")] {
        if let Some(v) = bad_gt {
            write_nifti(&v, dir.join("g/x.nii.gz")).unwrap();
        }
        let cases = pair_dirs(&dir.join("p"), &dir.join("g")).unwrap();
        let err = evaluate_cohort(&cases, &|_| {}).unwrap_err();
        let msg = err.to_string();
        assert!(err.is_input());
        assert!(msg.contains("g/x.nii.gz") && msg.contains(want) && msg.contains("not a label id"), "{msg}");
    }
    write_nifti(&Volume::<u16>::zeros([8, 8, 8], g), dir.join("g/x.nii.gz")).unwrap();
    write_nifti(&one_voxel(2.0), dir.join("p/x.nii.gz")).unwrap();
    let cases = pair_dirs(&dir.join("p"), &dir.join("g")).unwrap();
    let err = evaluate_cohort(&cases, &|_| {}).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("case x") && msg.contains("p/x.nii.gz") && msg.contains("outside [0, 1]"), "{msg}");
}
