//! Training with the protocol's validation: the best checkpoint carries the operating point it
//! was selected at, and validating the saved model there gives exactly the recorded metrics.
use nodal_detect::select::{operating_point_grid, OperatingPoint, PEAK_GRID};
use nodal_detect::tune::{tuning_points, ProtocolValidator};
use nodal_detect::validate::validate;
use nodal_detect::Model;
use nodal_net::infer::InferOptions;
use nodal_net::train::testing::{synthetic_case, tiny_config, write_dataset};
use nodal_net::train::{train, ValCase};
use nodal_net::ModelConfig;

#[test]
fn best_model_carries_the_operating_point_it_was_selected_at() {
    let dir = tempfile::tempdir().unwrap();
    let (data, val) = (dir.path().join("data"), dir.path().join("val"));
    write_dataset(&data, 2);
    std::fs::create_dir_all(val.join("imagesTr")).unwrap();
    std::fs::create_dir_all(val.join("labelsTr")).unwrap();
    let (ct, lab) = synthetic_case(7);
    nodal_io::write_nifti(&ct, val.join("imagesTr/case_007_0000.nii.gz")).unwrap();
    nodal_io::write_nifti(&lab, val.join("labelsTr/case_007.nii.gz")).unwrap();
    let mut cfg = tiny_config();
    (cfg.steps, cfg.augment, cfg.lr, cfg.checkpoint_every) = (40, false, 5e-3, 100);
    let run = dir.path().join("run");
    train(std::slice::from_ref(&data), Some(&val), &cfg, &run, false, None, &ProtocolValidator::default())
        .unwrap();
    let best = run.join("best");
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(best.join("metrics.json")).unwrap()).unwrap();
    let grid = record["grid"].as_array().unwrap();
    assert_eq!(grid.len(), operating_point_grid().len());
    let top = grid.iter().map(|row| row[1]["score"].as_f64().unwrap()).fold(f64::MIN, f64::max);
    assert_eq!(record["metrics"]["score"].as_f64().unwrap(), top);
    // The saved config holds the chosen point, and validating the saved model at it gives
    // exactly the recorded metrics.
    let model = nodal_detect::load_model(&best).unwrap();
    let point =
        OperatingPoint { threshold: model.config().threshold, min_peak: model.config().min_peak_probability };
    assert_eq!(serde_json::to_value(point).unwrap(), record["operating_point"]);
    let cases = vec![ValCase { id: "case_007".into(), ct, labels: lab }];
    let m = validate(&model, &cases, &InferOptions::default()).unwrap();
    assert_eq!(serde_json::to_value(&m).unwrap(), record["metrics"]);
}

#[test]
fn a_model_with_a_component_filter_is_tuned_only_at_its_own_threshold() {
    use nodal_detect::filter::{BoostConfig, ComponentFilter, N_FEATURES};
    let cfg = tiny_config();
    let config = ModelConfig { threshold: 0.3, ..cfg.model.clone() };
    assert_eq!(tuning_points(&config, false), operating_point_grid());
    let x = [[0.0; N_FEATURES], [1.0; N_FEATURES]];
    let boost = BoostConfig { min_samples_leaf: 1, ..Default::default() };
    let filter = ComponentFilter::fit(&x, &[false, true], None, None, boost).unwrap();
    let model = Model {
        net: nodal_net::LoadedModel {
            config,
            net: cfg.model.arch.init(&nodal_net::device()).unwrap(),
            folder: Default::default(),
        },
        filter: Some(filter),
    };
    let points = tuning_points(model.config(), model.filter.is_some());
    assert_eq!(points.len(), PEAK_GRID.len());
    assert!(points.iter().all(|p| p.threshold == 0.3));
    let peaks: Vec<_> = points.iter().map(|p| p.min_peak).collect();
    assert_eq!(peaks, PEAK_GRID.to_vec());
}
