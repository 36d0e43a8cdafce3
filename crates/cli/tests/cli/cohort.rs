//! Cohort runs: a folder of cases with a corrupt one, resumed and sharded, evaluated from the shared
//! folder; a PACS-like study folder segmented without options; a binary ground truth.
use crate::common::{json, nodal, run_ok, test_model, testdata};
use std::path::{Path, PathBuf};

/// Three small phantoms as `cts/p{seed}.nii.gz` (one with the nnU-Net `_0000` suffix) and their
/// labels as `gts/p{seed}.nii.gz`.
fn phantoms(dir: &Path) -> (PathBuf, PathBuf) {
    let (cts, gts) = (dir.join("cts"), dir.join("gts"));
    std::fs::create_dir_all(&cts).unwrap();
    std::fs::create_dir_all(&gts).unwrap();
    for seed in [3, 7, 11] {
        let ph = dir.join(format!("phantom{seed}"));
        run_ok(nodal().args(["phantom", "--seed", &seed.to_string(), "-o"]).arg(&ph));
        let name = if seed == 7 { "p7_0000.nii.gz".to_string() } else { format!("p{seed}.nii.gz") };
        std::fs::copy(ph.join("ct.nii.gz"), cts.join(name)).unwrap();
        std::fs::copy(ph.join("nodes.nii.gz"), gts.join(format!("p{seed}.nii.gz"))).unwrap();
    }
    (cts, gts)
}

fn statuses(summary: &serde_json::Value) -> Vec<(String, String)> {
    summary["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["case_id"].as_str().unwrap().to_string(), c["status"].as_str().unwrap().to_string()))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

#[test]
fn a_cohort_with_a_corrupt_case_runs_resumes_shards_and_evaluates() {
    let tmp = tempfile::tempdir().unwrap();
    let model = test_model(tmp.path());
    let (cts, gts) = phantoms(tmp.path());
    // A truncated gzip: this case fails, the others go on.
    let good = std::fs::read(cts.join("p3.nii.gz")).unwrap();
    std::fs::write(cts.join("bad.nii.gz"), &good[..good.len() / 2]).unwrap();

    let out = tmp.path().join("out");
    let segment = || {
        let mut c = nodal();
        c.arg("segment").arg(&cts).arg("--model").arg(&model).arg("-o").arg(&out);
        c
    };
    let run = segment().output().unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("1 of 4 cases failed: bad"), "{stderr}");
    let summary = json(&out.join("cohort.json"));
    assert_eq!(
        statuses(&summary),
        pairs(&[("bad", "failed"), ("p11", "done"), ("p3", "done"), ("p7", "done")])
    );
    assert!(summary["cases"][0]["error"].as_str().unwrap().contains("bad.nii.gz"));
    assert!(!out.join("bad").exists(), "a failed case leaves no folder");
    // Each case folder is what a single run writes.
    let single = tmp.path().join("single");
    run_ok(
        nodal().arg("segment").arg(cts.join("p3.nii.gz")).arg("--model").arg(&model).arg("-o").arg(&single),
    );
    for name in ["nodes.csv", "nodes.nii.gz", "mask.nii.gz"] {
        assert_eq!(
            std::fs::read(out.join("p3").join(name)).unwrap(),
            std::fs::read(single.join(name)).unwrap()
        );
    }
    // The cohort table: every case's rows behind a case_id column.
    let cohort_csv = std::fs::read_to_string(out.join("nodes.csv")).unwrap();
    let mut expected = 0;
    for case in ["p11", "p3", "p7"] {
        let rows = std::fs::read_to_string(out.join(case).join("nodes.csv")).unwrap();
        let header = rows.lines().next().unwrap();
        assert_eq!(cohort_csv.lines().next().unwrap(), format!("case_id,{header}"));
        for row in rows.lines().skip(1) {
            assert!(cohort_csv.contains(&format!("{case},{row}\n")), "{case}: {row}");
            expected += 1;
        }
    }
    assert!(expected > 0);
    assert_eq!(cohort_csv.lines().count(), expected + 1);

    // A rerun skips what is done and retries the failed case.
    let before = std::fs::read(out.join("p3/segment.json")).unwrap();
    std::fs::remove_file(cts.join("bad.nii.gz")).unwrap();
    run_ok(&mut segment());
    assert_eq!(
        statuses(&json(&out.join("cohort.json"))),
        pairs(&[("p11", "skipped"), ("p3", "skipped"), ("p7", "skipped")])
    );
    assert_eq!(std::fs::read(out.join("p3/segment.json")).unwrap(), before);
    run_ok(segment().arg("--redo"));
    assert_eq!(json(&out.join("cohort.json"))["n_done"], 3);

    // Two shards into one folder: disjoint, together the cohort; evaluate reads them together.
    let sharded = tmp.path().join("sharded");
    let mut taken = Vec::new();
    for k in 1..=2 {
        run_ok(
            nodal()
                .arg("segment")
                .arg(&cts)
                .arg("--model")
                .arg(&model)
                .arg("-o")
                .arg(&sharded)
                .arg("--shard")
                .arg(format!("{k}/2")),
        );
        let s = json(&sharded.join(format!("cohort-shard-{k}-of-2.json")));
        taken.extend(statuses(&s).into_iter().map(|(c, _)| c));
    }
    taken.sort();
    assert_eq!(taken, ["p11", "p3", "p7"]);
    assert_eq!(std::fs::read(sharded.join("nodes.csv")).unwrap(), cohort_csv.as_bytes());
    let eval = tmp.path().join("eval");
    run_ok(nodal().arg("evaluate").arg("--pred").arg(&sharded).arg("--gt").arg(&gts).arg("-o").arg(&eval));
    assert_eq!(json(&eval.join("evaluation.json"))["summary"]["n_scans"], 3);
    let bad_shard =
        nodal().arg("segment").arg(&cts).arg("-o").arg(&sharded).args(["--shard", "3/2"]).output().unwrap();
    assert_eq!(bad_shard.status.code(), Some(2));

    // measure over the cohort's label maps, with their CTs matched by case id.
    let measured = tmp.path().join("measured");
    run_ok(nodal().arg("measure").arg(&gts).arg("--ct").arg(&cts).arg("-o").arg(&measured));
    for case in ["p11", "p3", "p7"] {
        let nodes = json(&measured.join(case).join("nodes.json"));
        assert!(nodes["source"]["ct"].as_str().unwrap().contains(case), "{case}");
    }
    let rerun = run_ok(nodal().arg("measure").arg(&gts).arg("--ct").arg(&cts).arg("-o").arg(&measured));
    assert!(rerun.contains("0 done, 3 already done"), "{rerun}");
}

/// A binary ground truth (nnU-Net labelsTr) scores as its components, with a notice.
#[test]
fn evaluate_splits_a_binary_ground_truth_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let ph = tmp.path().join("ph");
    run_ok(nodal().args(["phantom", "--seed", "3", "-o"]).arg(&ph));
    let labels: nodal_core::Volume<u16> = nodal_io::read_nifti(ph.join("nodes.nii.gz")).unwrap();
    let n_nodes = labels.as_slice().iter().copied().max().unwrap();
    assert!(n_nodes >= 2);
    for d in ["pred", "gt"] {
        std::fs::create_dir_all(tmp.path().join(d)).unwrap();
    }
    let binary = labels.map(|v| u8::from(v != 0));
    nodal_io::write_nifti(&binary, tmp.path().join("pred/c.nii.gz")).unwrap();
    nodal_io::write_nifti(&binary, tmp.path().join("gt/c.nii.gz")).unwrap();
    let out = tmp.path().join("eval");
    let run = nodal()
        .arg("evaluate")
        .arg("--pred")
        .arg(tmp.path().join("pred"))
        .arg("--gt")
        .arg(tmp.path().join("gt"))
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("binary ground truth split") && stderr.contains("c ("), "{stderr}");
    let scan = &json(&out.join("evaluation.json"))["scans"][0];
    // Touching phantom nodes merge in a mask, so there may be fewer components than labels.
    let parts = scan["gt_split_from_binary"].as_u64().unwrap();
    assert!(parts >= 2 && parts <= n_nodes as u64, "{parts} of {n_nodes}");
    assert_eq!(scan["n_gt_nodes"].as_u64(), Some(parts));
}

/// A DICOM copy of CT5N's files `which` as another series of the study.
fn derived_series(src: &Path, dst: &Path, uid: &str, which: &[usize], image_type: Option<&str>) {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;
    std::fs::create_dir_all(dst).unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(src).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    for (n, f) in files.iter().enumerate().filter(|(n, _)| which.contains(n)) {
        let mut obj = dicom_object::open_file(f).unwrap();
        let mut put = |tag, vr, v: &str| obj.put(DataElement::new(tag, vr, PrimitiveValue::from(v)));
        put(tags::SERIES_INSTANCE_UID, VR::UI, uid);
        put(tags::SOP_INSTANCE_UID, VR::UI, &format!("{uid}.{n}"));
        if let Some(t) = image_type {
            put(tags::IMAGE_TYPE, VR::CS, t);
        }
        obj.write_to_file(dst.join(format!("{n}.dcm"))).unwrap();
    }
}

/// A PACS export: scout, thin and thick reconstructions of one study, each series in its own
/// folder. `segment` takes the thin axial series, says so and records it; `--series` picks another.
#[test]
fn a_pacs_like_study_folder_segments_without_options() {
    let ct5n = &testdata("pydicom/pydicom/data/test_files/dicomdirtests/98892001/CT5N");
    let tmp = tempfile::tempdir().unwrap();
    let model = test_model(tmp.path());
    let study = tmp.path().join("export");
    derived_series(ct5n, &study.join("s1"), "1.2.826.0.1.3680043.10.9.1", &[0, 1, 2, 3, 4], None);
    derived_series(ct5n, &study.join("s2"), "1.2.826.0.1.3680043.10.9.2", &[0, 1, 2, 3], None);
    let scout = Some("ORIGINAL\\PRIMARY\\LOCALIZER");
    derived_series(ct5n, &study.join("s0"), "1.2.826.0.1.3680043.10.9.3", &[0, 1, 2, 3, 4], scout);

    let out = tmp.path().join("seg");
    let run =
        nodal().arg("segment").arg(&study).arg("--model").arg(&model).arg("-o").arg(&out).output().unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(stderr.contains("series 1.2.826.0.1.3680043.10.9.1") && stderr.contains("chosen"), "{stderr}");
    let record = json(&out.join("segment.json"));
    assert_eq!(record["series_choice"]["series_instance_uid"], "1.2.826.0.1.3680043.10.9.1");
    assert_eq!(record["ct_dims"][2], 5);

    run_ok(
        nodal()
            .arg("segment")
            .arg(&study)
            .args(["--series", "1.2.826.0.1.3680043.10.9.2"])
            .arg("--model")
            .arg(&model)
            .arg("-o")
            .arg(&out),
    );
    let record = json(&out.join("segment.json"));
    assert!(record["series_choice"].is_null());
    assert_eq!(record["ct_dims"][2], 4);

    // -q: nothing on stderr (no note of the choice, no progress); --threads before or after the
    // command.
    let quiet = nodal()
        .args(["-q", "segment"])
        .arg(&study)
        .arg("--model")
        .arg(&model)
        .arg("-o")
        .arg(&out)
        .args(["--threads", "1"])
        .output()
        .unwrap();
    assert!(quiet.status.success());
    assert_eq!(String::from_utf8_lossy(&quiet.stderr), "");
    assert!(String::from_utf8_lossy(&quiet.stdout).contains("nodes"));
}
