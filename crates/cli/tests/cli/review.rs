//! `nodal review`: bad folders and addresses are refused with exit 2; a phantom's segmentation,
//! corrected through the review state, exports as a dataset that `nodal train` fine-tunes the
//! shipped model on, the rejected detection as its hard negatives.
use crate::common::{json, nodal, run_ok};
use nodal_review::{find_case_folders, Case, Edit};

fn edit(json: &str) -> Edit {
    serde_json::from_str(json).unwrap()
}

#[test]
fn review_refuses_what_it_cannot_serve() {
    let tmp = tempfile::tempdir().unwrap();
    let out = nodal().arg("review").arg(tmp.path().join("absent")).arg("--no-open").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("absent"));
    // A folder without nodes.nii.gz anywhere.
    let out = nodal().arg("review").arg(tmp.path()).arg("--no-open").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nodes.nii.gz"));
    // A case folder on every address but loopback, unless asked.
    let case = tmp.path().join("case");
    std::fs::create_dir(&case).unwrap();
    std::fs::write(case.join("nodes.nii.gz"), b"").unwrap();
    let out = nodal().arg("review").arg(&case).args(["--no-open", "--bind", "0.0.0.0:0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--allow-remote"));
}

#[test]
fn reviewed_cases_become_a_dataset_the_shipped_model_fine_tunes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let cohort = tmp.path().join("cohort");
    let case_dir = cohort.join("neck_1");
    run_ok(nodal().args(["demo", "--size", "small", "-q", "-o"]).arg(&case_dir));
    let model_nodes = std::fs::read(case_dir.join("nodes.nii.gz")).unwrap();

    // Nothing reviewed yet: nothing to export.
    let ds = tmp.path().join("Dataset042_Reviewed");
    let out = nodal().arg("review").arg(&cohort).arg("--export-dataset").arg(&ds).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!ds.exists());

    // The corrections a reviewer makes on the page: reject the first node, mark the second
    // metastatic, add a node where the model found none.
    let folder = find_case_folders(&cohort).unwrap().remove(0);
    let mut case = Case::open(&folder, None).unwrap();
    let state = case.state();
    assert!(state.nodes.len() >= 2, "the demo found {} nodes", state.nodes.len());
    let (first, second) = (state.nodes[0].review.node_id, state.nodes[1].review.node_id);
    case.apply(&edit(&format!(r#"{{"op":"annotate","node_id":{first},"status":"rejected"}}"#)), "dr test")
        .unwrap();
    case.apply(&edit(&format!(r#"{{"op":"annotate","node_id":{second},"class":"metastatic"}}"#)), "dr test")
        .unwrap();
    let [nx, ny, nz] = case.frame().dims();
    let free = format!(
        r#"{{"op":"paint","points":[[{},{},{}]],"radius_mm":4,"shape":"sphere","view":"axial","node_id":null}}"#,
        nx / 2,
        ny / 2 + ny / 8,
        nz / 2
    );
    case.apply(&edit(&free), "dr test").unwrap();
    drop(case);
    assert_eq!(std::fs::read(case_dir.join("model-output/nodes.nii.gz")).unwrap(), model_nodes);

    let stdout = run_ok(nodal().arg("review").arg(&cohort).arg("--export-dataset").arg(&ds));
    assert!(stdout.contains("1 reviewed cases"), "{stdout}");
    let export = json(&ds.join("nodal_review_export.json"));
    assert_eq!(export["cases"][0]["rejected"], 1);
    assert_eq!(export["cases"][0]["reviewers"][0], "dr test");
    for f in [
        "imagesTr/neck_1_0000.nii.gz",
        "labelsTr/neck_1.nii.gz",
        "instancesTr/neck_1.nii.gz",
        "negativesTr/neck_1.nii.gz",
        "nodesTr/neck_1.json",
        "dataset.json",
        "metastatic.csv",
    ] {
        assert!(ds.join(f).is_file(), "{f} missing");
    }
    assert!(std::fs::read_to_string(ds.join("metastatic.csv"))
        .unwrap()
        .contains(&format!("neck_1,{second},true")));

    // Fine-tuning the shipped model on it, hard negatives drawn from the rejected detection.
    let shipped = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/default"));
    let mut cfg = nodal_net::train::TrainConfig::default_foveal();
    cfg.model = nodal_net::ModelConfig::load(&shipped.join("config.json")).unwrap();
    (cfg.steps, cfg.batch_size, cfg.val_cases, cfg.checkpoint_every, cfg.warmup_steps) = (2, 1, 0, 2, 1);
    cfg.hard_negative_fraction = 0.5;
    cfg.init_from = Some(shipped.to_path_buf());
    let config = tmp.path().join("ft.json");
    std::fs::write(&config, serde_json::to_string(&cfg).unwrap()).unwrap();
    let run = tmp.path().join("ft");
    run_ok(nodal().arg("train").arg("--data").arg(&ds).arg("--config").arg(&config).arg("-o").arg(&run));
    let last = nodal_net::ModelConfig::load(&run.join("last/config.json")).unwrap();
    assert_eq!(last.arch, cfg.model.arch);
    assert!(run.join("log.csv").is_file());
}
