//! `nodal validate`, `nodal tune` and `nodal model` end to end: the product workflows that score,
//! re-tune and assemble model folders.
use std::path::Path;

use crate::common::{json, nodal, run_ok, test_model};

fn shipped() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/default")
}

#[test]
fn validate_and_tune_score_annotated_cases_and_write_tuned_models() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("Dataset001_Data");
    // One CI-sized case keeps the several inferences below short.
    run_ok(nodal().args(["dataset", "--n", "1", "--size", "small", "--seed", "6", "-o"]).arg(&data));

    // A dataset and the same cases as explicit pairs score the same.
    let by_dataset = tmp.path().join("by_dataset.json");
    let stdout = run_ok(nodal().arg("validate").arg("--dataset").arg(&data).arg("--json").arg(&by_dataset));
    for line in ["recall (SAD >= 5 mm)", "recall ceiling", "recall (countable)", "FP/scan", "Dice"] {
        assert!(stdout.contains(line), "{line}: {stdout}");
    }
    let by_pairs = tmp.path().join("by_pairs.json");
    let mut cmd = nodal();
    cmd.arg("validate");
    // The node ids: labelsTr is nnU-Net's binary mask, in which touching nodes merge.
    cmd.arg("--case")
        .arg(data.join("imagesTr/case_000_0000.nii.gz"))
        .arg(data.join("instancesTr/case_000.nii.gz"));
    run_ok(cmd.arg("--json").arg(&by_pairs));
    let (a, b) = (json(&by_dataset), json(&by_pairs));
    assert_eq!(a["schema"], "nodal.validation/1");
    assert_eq!(a["metrics"]["n_cases"], 1);
    assert_eq!(a["metrics"], b["metrics"]);
    assert_eq!(a["model_version"], json(&shipped().join("config.json"))["version"]);
    // No cases is a usage error.
    let none = nodal().arg("validate").output().unwrap();
    assert_eq!(none.status.code(), Some(2));

    // The shipped model has a component filter: operating points only at its own threshold.
    let tuned = tmp.path().join("tuned");
    let stdout =
        run_ok(nodal().args(["tune", "operating-point", "--dataset"]).arg(&data).arg("-o").arg(&tuned));
    assert!(stdout.contains("chosen"), "{stdout}");
    let (old, new) = (json(&shipped().join("config.json")), json(&tuned.join("config.json")));
    assert_eq!(new["threshold"], old["threshold"]);
    let peak = new["min_peak_probability"].as_f64().map(|p| p as f32);
    assert!(nodal_detect::select::PEAK_GRID.contains(&peak), "{new}");
    assert!(new["version"].as_str().unwrap().ends_with("+tuned-operating-point"), "{new}");
    let bytes = |p: &Path| std::fs::read(p).unwrap();
    assert_eq!(bytes(&tuned.join("model.safetensors")), bytes(&shipped().join("model.safetensors")));
    assert_eq!(json(&tuned.join("component_filter.json")), json(&shipped().join("component_filter.json")));
    // A tuned model folder is a model: it validates.
    run_ok(nodal().arg("validate").arg("--model").arg(&tuned).arg("--dataset").arg(&data));

    let cut = tmp.path().join("cut");
    run_ok(
        nodal()
            .args(["tune", "filter-cutoffs", "--large-nodes", "any", "--dataset"])
            .arg(&data)
            .arg("-o")
            .arg(&cut),
    );
    let score = json(&cut.join("component_filter.json"))["min_score"].as_f64().unwrap();
    assert!(nodal_detect::fit::SCORE_GRID.contains(&score), "{score}");

    let stdout = run_ok(nodal().args(["tune", "mask", "--dataset"]).arg(&data));
    assert!(stdout.contains("mask_threshold"), "{stdout}");
    // A tuned model never overwrites a folder that holds something.
    let again =
        nodal().args(["tune", "mask", "--dataset"]).arg(&data).arg("-o").arg(&tuned).output().unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));
    // A model without a filter has no filter cut-offs to tune.
    let plain = test_model(tmp.path());
    let out = nodal()
        .args(["tune", "filter-cutoffs", "--model"])
        .arg(&plain)
        .arg("--dataset")
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no component filter"));
}

#[test]
fn model_average_and_export_make_loadable_model_folders() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (test_model(&tmp.path().join("a")), test_model(&tmp.path().join("b")));
    let soup = tmp.path().join("soup");
    let stdout = run_ok(
        nodal()
            .args(["model", "average", "-o"])
            .arg(&soup)
            .arg(format!("--model=3:{}", a.display()))
            .arg(format!("--model=1:{}", b.display())),
    );
    assert!(stdout.contains("soup(3*test-random + 1*test-random)"), "{stdout}");
    let loaded = nodal_net::load_model(&soup).unwrap();
    let (ma, mb) = (nodal_net::load_model(&a).unwrap(), nodal_net::load_model(&b).unwrap());
    let want = nodal_net::model::average_nets(&[&ma.net, &mb.net], &[3.0, 1.0]).unwrap();
    // The same network: the same output on an image (the file's byte order is not part of it).
    let g = nodal_core::Geometry::axis_aligned([1.0; 3], [0.0; 3]);
    let mut image = nodal_core::Volume::<f32>::zeros([16, 16, 16], g);
    for (n, v) in image.as_slice_mut().iter_mut().enumerate() {
        *v = ((n * 7919) % 97) as f32 / 48.0 - 1.0;
    }
    let opts = nodal_net::infer::InferOptions { tile_out: Some(16), ..Default::default() };
    let run = |net: &nodal_net::Net| {
        nodal_net::infer::predict_prepared(net, &loaded.config, &image, None, &opts, None).unwrap().0
    };
    let (got, expected) = (run(&loaded.net), run(&want));
    let worst =
        got.as_slice().iter().zip(expected.as_slice()).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(worst < 1e-6, "the soup is the weighted average: largest difference {worst}");
    assert!(run(&ma.net).as_slice() != got.as_slice(), "and not one of its models");
    // Models of another architecture do not average.
    let mut other = nodal_net::load_model(&a).unwrap().config;
    other.arch = nodal_net::ArchConfig::Foveal(nodal_net::FovealConfig {
        channels: vec![2, 4],
        convs: vec![1, 1],
        merge_convs: 1,
    });
    let c = tmp.path().join("c");
    nodal_net::save_model(&other.arch.init(&nodal_net::device()).unwrap(), &other, &c).unwrap();
    let mixed = nodal()
        .args(["model", "average", "-o"])
        .arg(tmp.path().join("mixed"))
        .arg(format!("--model=1:{}", a.display()))
        .arg(format!("--model=1:{}", c.display()))
        .output()
        .unwrap();
    assert_eq!(mixed.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&mixed.stderr).contains("another architecture"));
    for bad in ["0:x", "abc", "-1:x"] {
        let out = nodal()
            .args(["model", "average", "-o"])
            .arg(tmp.path().join("bad"))
            .arg(format!("--model={bad}"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}");
    }

    // A short training run, exported from its checkpoint.
    let data = tmp.path().join("Dataset001_Data");
    run_ok(nodal().args(["dataset", "--n", "1", "--size", "small", "--seed", "8", "-o"]).arg(&data));
    let mut cfg = nodal_net::train::testing::tiny_config();
    (cfg.steps, cfg.val_cases) = (2, 0);
    let config = tmp.path().join("train.json");
    std::fs::write(&config, serde_json::to_string(&cfg).unwrap()).unwrap();
    let run = tmp.path().join("run");
    run_ok(nodal().arg("train").arg("--data").arg(&data).arg("--config").arg(&config).arg("-o").arg(&run));
    let exported = tmp.path().join("exported");
    run_ok(nodal().args(["model", "export"]).arg(&run).arg("-o").arg(&exported));
    let model = nodal_net::load_model(&exported).unwrap();
    assert_eq!(model.config.version, "run-step2");
    assert_eq!(model.config.arch, cfg.model.arch);
}
