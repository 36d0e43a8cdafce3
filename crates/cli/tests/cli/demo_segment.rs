//! End-to-end runs of the `nodal` binary: `demo` on a small phantom, `segment` on a phantom and on a
//! real DICOM series (SEG written on the source grid, one segment per node).
//!
//! The model is a small randomly initialised foveal net saved with `nodal_net::save_model`, with a
//! threshold of 1e-3 so that the whole body box is foreground: the runs are fast and always find
//! at least one node, which is what the structure of the outputs is checked against.
use std::path::Path;

use crate::common::{json, nodal, run_ok, test_model, testdata};

#[test]
fn demo_writes_report_and_evaluation() {
    let tmp = tempfile::tempdir().unwrap();
    let model = test_model(tmp.path());
    let out = tmp.path().join("demo");
    for _ in 0..2 {
        // The second run goes into the same folder and must succeed as well.
        let stdout =
            run_ok(nodal().args(["demo", "--size", "small", "--model"]).arg(&model).arg("-o").arg(&out));
        assert!(stdout.contains("report.html"), "{stdout}");
        assert!(stdout.contains("GT nodes"), "{stdout}");
    }
    for f in ["ct.nii.gz", "gt_nodes.nii.gz", "gt_nodes.json", "nodes.nii.gz", "nodes.json", "report.json"] {
        assert!(out.join(f).is_file(), "missing {f}");
    }
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<table"), "no table in report.html");
    assert!(html.contains("Table 1"), "no Table 1 in report.html");
    assert!(html.contains("test-random"), "model version missing from report.html");
    let eval = json(&out.join("evaluation/evaluation.json"));
    let gt = json(&out.join("gt_nodes.json"));
    assert_eq!(eval["summary"]["n_gt_nodes"], gt["nodes"].as_array().unwrap().len());
    let report = json(&out.join("report.json"));
    let nodes = json(&out.join("nodes.json"));
    assert!(!nodes["nodes"].as_array().unwrap().is_empty());
    // The evaluation scores the nodes written, not the probability map at another threshold.
    let s = &eval["summary"];
    assert_eq!(
        s["n_pred"].as_u64().unwrap() + s["n_pred_removed_small"].as_u64().unwrap(),
        nodes["nodes"].as_array().unwrap().len() as u64
    );
    assert!(!out.join("evaluation/froc.csv").exists());
    assert!(report.to_string().contains("\"evaluation\""));
    // No leftover temporary files.
    let stray: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

#[test]
fn segment_phantom_writes_report() {
    let tmp = tempfile::tempdir().unwrap();
    let model = test_model(tmp.path());
    let ph = tmp.path().join("phantom");
    run_ok(nodal().args(["phantom", "--seed", "3", "-o"]).arg(&ph));
    let out = tmp.path().join("seg");
    run_ok(nodal().arg("segment").arg(ph.join("ct.nii.gz")).arg("--model").arg(&model).arg("-o").arg(&out));
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<table"));
    assert!(out.join("report.json").is_file());
    // NIfTI input: no DICOM outputs.
    assert!(!out.join("nodes.seg.dcm").exists());
    let seg = json(&out.join("segment.json"));
    assert!(seg["outputs"].as_array().unwrap().iter().any(|o| o == "report.html"));
    // The phantom runs from the lung apices to the jaw: the neck is covered, nothing to warn of.
    assert_eq!(seg["body_coverage"]["neck"], "full", "{}", seg["body_coverage"]);
    assert!(!html.contains("does not seem to show the neck"));
}

#[test]
fn segment_dicom_writes_seg_with_one_segment_per_node() {
    let series = testdata("totalsegmentator/tests/reference_files/example_ct_dicom");
    let tmp = tempfile::tempdir().unwrap();
    let model = test_model(tmp.path());
    let out = tmp.path().join("seg");
    let mut cmd = nodal();
    let run = cmd.arg("segment").arg(series).arg("--model").arg(&model).arg("-o").arg(&out).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    // A crop of the upper abdomen: said so on the console and in segment.json.
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("does not seem to show the neck"), "{stderr}");
    let record = json(&out.join("segment.json"));
    assert_eq!(record["body_coverage"]["neck"], "absent", "{}", record["body_coverage"]);
    assert!(record["outputs"].as_array().unwrap().iter().any(|o| o == "nodes.rtstruct.dcm"));
    let nodes = json(&out.join("nodes.json"));
    let n_nodes = nodes["nodes"].as_array().unwrap().len();
    assert!(n_nodes > 0);
    assert!(out.join("report.html").is_file());
    assert!(out.join("nodes.sr.dcm").is_file());
    let rt = dicom_object::open_file(out.join("nodes.rtstruct.dcm")).unwrap();
    let rois = rt.element(dicom_dictionary_std::tags::STRUCTURE_SET_ROI_SEQUENCE).unwrap();
    assert_eq!(rois.items().unwrap().len(), n_nodes);
    let obj = dicom_object::open_file(out.join("nodes.seg.dcm")).unwrap();
    let segments = obj.element(dicom_dictionary_std::tags::SEGMENT_SEQUENCE).unwrap();
    assert_eq!(segments.items().unwrap().len(), n_nodes);
    let sop_class = obj.element(dicom_dictionary_std::tags::SOP_CLASS_UID).unwrap().to_str().unwrap();
    assert_eq!(sop_class.trim_end_matches('\0'), "1.2.840.10008.5.1.4.1.1.66.4");
}

#[test]
fn hard_negatives_writes_one_mask_per_case_on_its_grid() {
    let tmp = tempfile::tempdir().unwrap();
    let model = test_model(tmp.path());
    let data = tmp.path().join("Dataset001_Data");
    run_ok(nodal().args(["dataset", "--n", "2", "--size", "small", "--seed", "4", "-o"]).arg(&data));
    let stdout = run_ok(nodal().args(["hard-negatives", "--model"]).arg(&model).arg("--data").arg(&data));
    assert!(stdout.contains("2 cases"), "{stdout}");
    // The test model calls the whole body box a node: one component touching the nodes, so no
    // false-positive component and an empty mask (the mining itself is unit-tested in nodal-net).
    for case in ["case_000", "case_001"] {
        let ct = nodal_io::read_nifti::<i16>(data.join(format!("imagesTr/{case}_0000.nii.gz"))).unwrap();
        let neg = nodal_io::read_nifti::<u8>(data.join(format!("negativesTr/{case}.nii.gz"))).unwrap();
        ct.check_same_grid(&neg).unwrap();
        assert!(neg.as_slice().iter().all(|&v| v == 0));
    }
    let record = json(&data.join("negativesTr/negatives.json"));
    assert_eq!(record["schema"], "nodal.hard_negatives/1");
    assert_eq!(record["model_version"], "test-random");
    assert_eq!(record["cases"].as_array().unwrap().len(), 2);
    assert_eq!(record["cases"][0]["false_positive_components"], 0);
    let sha = record["model_sha256"].as_str().unwrap();
    assert!(sha.len() == 64 && sha.chars().all(|c| c.is_ascii_hexdigit()), "{sha}");
    // Run again with the same model: the finished cases are kept; a missing mask is mined again.
    let again = run_ok(nodal().args(["hard-negatives", "--model"]).arg(&model).arg("--data").arg(&data));
    assert!(again.contains("2 mined earlier by the same model"), "{again}");
    std::fs::remove_file(data.join("negativesTr/case_001.nii.gz")).unwrap();
    let again = run_ok(nodal().args(["hard-negatives", "--model"]).arg(&model).arg("--data").arg(&data));
    assert!(again.contains("1 mined earlier by the same model"), "{again}");
    assert!(data.join("negativesTr/case_001.nii.gz").is_file());
    assert_eq!(json(&data.join("negativesTr/negatives.json"))["cases"].as_array().unwrap().len(), 2);
    // Another model (other weights) starts over.
    let other = test_model(&tmp.path().join("other"));
    let fresh = run_ok(nodal().args(["hard-negatives", "--model"]).arg(&other).arg("--data").arg(&data));
    assert!(!fresh.contains("mined earlier"), "{fresh}");
    // A folder that is no dataset: exit 2, nothing written.
    let out = nodal()
        .args(["hard-negatives", "--model"])
        .arg(&model)
        .arg("--data")
        .arg(tmp.path().join("none"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!tmp.path().join("none").exists());
}

#[test]
fn train_filter_writes_the_model_with_its_filter_and_resumes() {
    // The shipped network on small phantoms: its components there are both nodes and false
    // positives, which the filter needs to be fitted.
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/default");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("Dataset001_Data");
    let select = tmp.path().join("Dataset002_Select");
    run_ok(nodal().args(["dataset", "--n", "2", "--size", "small", "--seed", "6", "-o"]).arg(&data));
    run_ok(
        nodal()
            .args(["dataset", "--n", "1", "--size", "small", "--seed", "7", "--split", "val", "-o"])
            .arg(&select),
    );
    let out = tmp.path().join("filtered");
    let train_from = |model: &Path| {
        let mut c = nodal();
        c.arg("train-filter").arg("--model").arg(model).arg("--data").arg(&data).arg("--select").arg(&select);
        c.arg("-o").arg(&out);
        c
    };
    let train = || train_from(&shipped);
    let stdout = run_ok(&mut train());
    assert!(stdout.contains("2 training cases"), "{stdout}");
    assert!(stdout.contains("chosen (--large-nodes no-loss)"), "{stdout}");
    // Same weights, the chosen cut-offs in the config and the filter file, and a loadable folder.
    let bytes = |p: &Path| std::fs::read(p).unwrap();
    assert_eq!(bytes(&out.join("model.safetensors")), bytes(&shipped.join("model.safetensors")));
    let loaded = nodal_detect::load_model(&out).unwrap();
    let filter = loaded.filter.expect("component_filter.json");
    assert!(nodal_detect::fit::SCORE_GRID.contains(&filter.min_score));
    assert!(nodal_detect::select::PEAK_GRID.contains(&loaded.net.config.min_peak_probability));
    // The shipped model has a filter already: the new one replaces it, and so does its version.
    assert_eq!(loaded.net.config.version.matches("+filter").count(), 1, "{}", loaded.net.config.version);
    assert_eq!(filter.record["training_cases"], 2);
    assert_eq!(filter.record["selection_cases"], 1);
    // By default the chosen point finds every large selection node the model alone finds.
    assert_eq!(filter.record["large_nodes"], "no_loss");
    let large = |m: &serde_json::Value| m["recall_sad_ge_15mm"].as_f64().unwrap_or(0.0);
    let alone = &filter.record["model_alone"];
    // "The model alone" is the input folder at its own peak cut-off.
    let shipped_peak = json(&shipped.join("config.json"))["min_peak_probability"].as_f64();
    let alone_peak = alone["min_peak_probability"].as_f64();
    assert_eq!(alone_peak.is_some(), shipped_peak.is_some(), "{alone}");
    if let (Some(a), Some(b)) = (alone_peak, shipped_peak) {
        assert!((a - b).abs() < 1e-6, "{alone}");
    }
    assert!(large(&filter.record["chosen"]["metrics"]) >= large(&alone["metrics"]), "{}", filter.record);
    let samples = json(&out.join("filter_samples.json"));
    assert_eq!(samples["cases"].as_array().unwrap().len(), 2);
    let n: usize =
        samples["cases"].as_array().unwrap().iter().map(|c| c["samples"].as_array().unwrap().len()).sum();
    assert_eq!(filter.record["training_components"], n);
    // Again into the same folder, from the model the shipped one was filtered from (the same weights,
    // its version without `+filter`): the samples of both cases are reused.
    assert_eq!(filter.keep_short_axis_mm, None);
    let copy = tmp.path().join("copy");
    std::fs::create_dir_all(&copy).unwrap();
    std::fs::copy(shipped.join("model.safetensors"), copy.join("model.safetensors")).unwrap();
    let mut config = json(&shipped.join("config.json"));
    let version = config["version"].as_str().unwrap().strip_suffix("+filter").unwrap().to_string();
    config["version"] = version.into();
    std::fs::write(copy.join("config.json"), config.to_string()).unwrap();
    let again = run_ok(train_from(&copy).args(["--keep-short-axis-mm", "12", "--large-nodes", "any"]));
    assert!(again.contains("(2 from the earlier run)"), "{again}");
    assert!(again.contains("chosen (--large-nodes any)"), "{again}");
    let guarded = nodal_detect::load_model(&out).unwrap().filter.unwrap();
    assert_eq!(guarded.keep_short_axis_mm, Some(12.0));
    assert_eq!(guarded.record["large_nodes"], "any");
    let floor = run_ok(train_from(&copy).args([
        "--min-large-recall",
        "0.5",
        "--large-node-weight",
        "2",
        "--features",
        "shell_fat_fraction,short_axis_mm",
    ]));
    assert!(floor.contains("(2 from the earlier run)"), "{floor}");
    assert!(floor.contains("chosen (--min-large-recall 0.5)"), "{floor}");
    let floored = nodal_detect::load_model(&out).unwrap().filter.unwrap();
    assert_eq!(floored.record["large_nodes"], serde_json::json!({ "at_least": 0.5 }));
    assert_eq!(floored.record["large_node_weight"], 2.0);
    use nodal_detect::filter::Feature;
    assert_eq!(floored.features, [Feature::ShellFatFraction, Feature::ShortAxisMm]);
    for f in ["hu_spread", "short_axis_mm,short_axis_mm"] {
        let bad = train().arg(format!("--features={f}")).output().unwrap();
        assert!(!bad.status.success(), "{f}");
        assert!(String::from_utf8_lossy(&bad.stderr).contains("--features"), "{f}");
    }
    let bad = train().arg("--keep-short-axis-mm=-1").output().unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--keep-short-axis-mm"));
    let both = train().args(["--large-nodes", "any", "--min-large-recall", "0.5"]).output().unwrap();
    assert!(!both.status.success());
    let bad = train().arg("--min-large-recall=1.5").output().unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--min-large-recall"));
    for w in ["0", "-2", "nan"] {
        let bad = train().arg(format!("--large-node-weight={w}")).output().unwrap();
        assert!(!bad.status.success(), "{w}");
        assert!(String::from_utf8_lossy(&bad.stderr).contains("--large-node-weight"), "{w}");
    }
    // The filtered model segments, and says what its filter removed.
    let seg = tmp.path().join("seg");
    let ct = data.join("imagesTr/case_000_0000.nii.gz");
    let stdout = run_ok(nodal().arg("segment").arg(&ct).arg("--model").arg(&out).arg("-o").arg(&seg));
    assert!(stdout.contains("by the component filter"), "{stdout}");
    let report = json(&seg.join("nodes.json"));
    assert!(report["postprocess"]["n_removed_by_filter"].is_u64(), "{report}");
    // This filter's own cut-off keeps everything; the same filter cutting at the median score of
    // these nodes drops some, and `--filter-min-score` moves the cut-off of that model: to 0, the
    // result is the first run's; to 1, only what scores 1 is left.
    let first_cutoff = nodal_detect::load_model(&out).unwrap().filter.unwrap().min_score;
    assert_eq!(report["postprocess"]["filter_min_score"].as_f64(), Some(first_cutoff), "{report}");
    let node_scores = |nodes: &serde_json::Value| -> Vec<f64> {
        nodes["nodes"].as_array().unwrap().iter().map(|n| n["filter"]["score"].as_f64().unwrap()).collect()
    };
    let mut scores = node_scores(&report);
    scores.sort_by(f64::total_cmp);
    let median = scores[scores.len() / 2];
    let cut = tmp.path().join("cut");
    std::fs::create_dir_all(&cut).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(out.join(f), cut.join(f)).unwrap();
    }
    let mut filter = json(&out.join("component_filter.json"));
    filter["min_score"] = median.into();
    std::fs::write(cut.join("component_filter.json"), filter.to_string()).unwrap();
    let segment_cut = |cutoff: Option<&str>| {
        let dir = tmp.path().join(format!("seg-{}", cutoff.unwrap_or("own")));
        let mut cmd = nodal();
        cmd.arg("segment").arg(&ct).arg("--model").arg(&cut).arg("-o").arg(&dir);
        if let Some(c) = cutoff {
            cmd.args(["--filter-min-score", c]);
        }
        let said = run_ok(&mut cmd);
        let nodes = json(&dir.join("nodes.json"));
        let applied = cutoff.map_or(median, |c| c.parse().unwrap());
        assert_eq!(nodes["postprocess"]["filter_min_score"].as_f64(), Some(applied));
        assert!(said.contains(&format!("by the component filter at cut-off {applied})")), "{said}");
        assert!(node_scores(&nodes).iter().all(|&s| s >= applied), "{nodes}");
        assert_eq!(
            json(&dir.join("report.json"))["data"]["model"]["filter_min_score"].as_f64(),
            Some(applied)
        );
        let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
        assert!(html.contains(&format!("Component filter cut-off</td><td class=\"l\">{applied}</td>")));
        (nodes, bytes(&dir.join("mask.nii.gz")), nodal_io::read_nifti::<u8>(dir.join("mask.nii.gz")).unwrap())
    };
    let (own, _, own_mask) = segment_cut(None);
    assert!(own["postprocess"]["n_removed_by_filter"].as_u64() > Some(0), "{}", own["postprocess"]);
    let (all, all_bytes, all_mask) = segment_cut(Some("0"));
    assert_eq!(all["postprocess"]["n_removed_by_filter"], 0);
    assert_eq!(all_bytes, bytes(&seg.join("mask.nii.gz")));
    let voxels = |m: &nodal_core::Volume<u8>| m.as_slice().iter().filter(|&&v| v > 0).count();
    assert!(own_mask.as_slice().iter().zip(all_mask.as_slice()).all(|(&own, &all)| own == 0 || all > 0));
    assert!(voxels(&all_mask) > voxels(&own_mask));
    let (_, _, strict_mask) = segment_cut(Some("1"));
    assert!(strict_mask.as_slice().iter().zip(own_mask.as_slice()).all(|(&s, &own)| s == 0 || own > 0));
    // A cut-off outside [0, 1], or one for a model without a filter, is refused before anything
    // is written.
    for (model, cutoff, said) in [
        (&out, "1.5", "must be a score in [0, 1]"),
        (&out, "nan", "must be a score"),
        (&copy, "0.5", "has no component filter"),
    ] {
        let dir = tmp.path().join("refused-seg");
        let refused = nodal()
            .arg("segment")
            .arg(&ct)
            .arg("--model")
            .arg(model)
            .args(["--filter-min-score", cutoff])
            .arg("-o")
            .arg(&dir)
            .output()
            .unwrap();
        assert!(!refused.status.success(), "{cutoff}");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains("--filter-min-score") && stderr.contains(said), "{stderr}");
        assert!(!dir.exists());
    }
    // The model's own folder as output is refused before anything is written there.
    let refused = nodal()
        .args(["train-filter", "--model"])
        .arg(&copy)
        .arg("--data")
        .arg(&data)
        .arg("--select")
        .arg(&select)
        .arg("-o")
        .arg(&copy)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("model's own folder"));
    let mut names: Vec<_> = std::fs::read_dir(&copy).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    assert_eq!(names, ["config.json", "model.safetensors"]);
    // A model with another threshold would sample every case again, and says why; a run that then
    // fails (here on a missing dataset) leaves the earlier samples as they were.
    let before = bytes(&out.join("filter_samples.json"));
    config["threshold"] = 0.3.into();
    std::fs::write(copy.join("config.json"), config.to_string()).unwrap();
    let missing = tmp.path().join("missing");
    let failed = train_from(&copy).arg("--data").arg(&missing).output().unwrap();
    assert_eq!(failed.status.code(), Some(2), "{}", String::from_utf8_lossy(&failed.stderr));
    let said = String::from_utf8_lossy(&failed.stdout);
    assert!(said.contains("was made by another model"), "{said}");
    assert_eq!(bytes(&out.join("filter_samples.json")), before);
}
