//! Validation, tuning and `segment` score the same mask: the voxels `segment_ct` labels are the
//! mask validation evaluates, at the model's own recipe and at any other point of a sweep.
use nodal_detect::recipe::{Candidates, Cutoffs, Recipe};
use nodal_detect::tune::tuning_points;
use nodal_detect::validate::{score_points, Point};
use nodal_detect::{segment_ct, Model};
use nodal_eval::{evaluate_scan, Prediction, SelectionTargets, ValTally};
use nodal_net::infer::InferOptions;
use nodal_net::train::ValCase;
use nodal_phantom::{generate_phantom, PhantomConfig};

#[test]
fn segment_validation_and_tuning_score_the_same_mask() {
    let model = nodal_detect::default_model().unwrap();
    assert!(
        model.filter.is_some(),
        "the shipped model has a component filter, so the filter path is covered"
    );
    let phantom = generate_phantom(&PhantomConfig::default(), 3).unwrap();
    let (ct, gt) = (phantom.ct, phantom.labels);
    let opts = InferOptions::default();
    let seg = segment_ct(&ct, &model, &opts, None).unwrap();
    let written = seg.detected.labels.map(|l| u8::from(l > 0));
    assert!(written.as_slice().iter().any(|&v| v > 0), "the case has detections");

    // Validation's mask at the model's own point is the written one ...
    let own = Point::of_model(&model);
    let cand = Candidates::new(&seg.probability, Some(&ct), &model.recipe()).unwrap();
    assert_eq!(
        cand.mask(&seg.probability, &own.postprocess, own.cutoffs).unwrap().as_slice(),
        written.as_slice()
    );
    // ... and so is its score.
    let cases = vec![ValCase { id: "phantom_3".into(), ct: ct.clone(), labels: gt.clone() }];
    let targets = SelectionTargets::default();
    let scored =
        score_points(&model.net, model.filter.as_ref(), &cases, &opts, &[own], &targets, None).unwrap();
    let mut tally = ValTally::default();
    tally.add(&evaluate_scan(Prediction::Mask(&written), &gt, None).unwrap());
    assert_eq!(scored[0], tally.metrics(1, &targets));

    // Every point tuning scores is the mask `segment` writes for the model at that point.
    for p in tuning_points(model.config(), model.filter.is_some()) {
        let config = model.config().at_operating_point(p.threshold, p.min_peak);
        let retuned = Model {
            net: nodal_net::LoadedModel {
                config,
                net: model.net.net.clone(),
                folder: model.net.folder.clone(),
            },
            filter: model.filter.clone(),
        };
        let point = Point::of_model(&retuned);
        assert_eq!(
            point.cutoffs,
            Cutoffs { min_peak: p.min_peak, min_score: model.filter.as_ref().map(|f| f.min_score) }
        );
        let by_recipe =
            retuned.recipe().apply(&seg.probability, Some(&ct)).unwrap().labels.map(|l| u8::from(l > 0));
        let swept =
            Candidates::with_filter(&seg.probability, Some(&ct), &point.postprocess, model.filter.as_ref())
                .unwrap()
                .mask(&seg.probability, &point.postprocess, point.cutoffs)
                .unwrap();
        assert_eq!(swept.as_slice(), by_recipe.as_slice(), "{p:?}");
    }
    // A recipe without the filter keeps at least what the filter keeps.
    let unfiltered = Recipe { filter: None, ..model.recipe() }.apply(&seg.probability, Some(&ct)).unwrap();
    assert!(unfiltered.detections.len() >= seg.detected.detections.len());
}
