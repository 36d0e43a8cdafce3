//! Post-processing through the recipe (probability maps) and `nodal_nodes::postprocess` (masks):
//! hole filling, splitting of touching balls, size filter, relabelling, the peak cut-off, the
//! component filter, bad input.
use ndarray::Array3;
use nodal_core::{Geometry, Label, Volume};
use nodal_detect::filter::{ComponentFilter, Feature};
use nodal_detect::{DetectError, Detection, PostProcessReport, Recipe};
use nodal_nodes::measure::{axial_axes, measure_nodes, MeasureOptions, NodeMeasurement};
use nodal_nodes::postprocess::{PostProcessConfig, SplitConfig};
use nodal_nodes::{label_components, NodesError};

/// A post-processing result as the tests read it: labels, each node's measurement and
/// detection, and the report.
struct Out {
    labels: Volume<u32>,
    measurements: Vec<NodeMeasurement>,
    detections: Vec<Detection>,
    report: PostProcessReport,
}

/// The recipe without a filter.
fn postprocess_probability(
    prob: &Volume<f32>,
    ct: Option<&Volume<i16>>,
    cfg: &PostProcessConfig,
) -> Result<Out, DetectError> {
    postprocess_probability_filtered(prob, ct, cfg, None)
}

/// The recipe with `filter` at its own cut-off.
fn postprocess_probability_filtered(
    prob: &Volume<f32>,
    ct: Option<&Volume<i16>>,
    cfg: &PostProcessConfig,
    filter: Option<&ComponentFilter>,
) -> Result<Out, DetectError> {
    let d = Recipe { postprocess: *cfg, filter: filter.cloned() }.apply(prob, ct)?;
    Ok(Out {
        labels: d.labels,
        measurements: d.detections.iter().map(|d| d.measurement.clone()).collect(),
        detections: d.detections,
        report: d.report,
    })
}

/// A mask's components through `nodal_nodes::postprocess::postprocess_mask`, with the counts of
/// the recipe's report that a mask has.
fn postprocess_mask<T: Label>(
    mask: &Volume<T>,
    ct: Option<&Volume<i16>>,
    cfg: &PostProcessConfig,
) -> Result<Out, NodesError> {
    let nodes = nodal_nodes::postprocess::postprocess_mask(mask, ct, cfg)?;
    let s = nodes.steps;
    let report = PostProcessReport {
        config: *cfg,
        foreground_voxels: mask.as_slice().iter().filter(|&&v| v != T::default()).count(),
        n_components: label_components(mask, cfg.connectivity).1,
        n_removed_small: s.n_removed_small,
        n_removed_low_peak: 0,
        n_removed_by_filter: 0,
        filter_min_score: None,
        holes_filled_voxels: s.holes_filled_voxels,
        convex_filled_voxels: s.convex_filled_voxels,
        n_components_split: s.n_components_split,
        n_nodes: nodes.measurements.len(),
    };
    let detections = nodes.measurements.iter().cloned().map(Detection::measured).collect();
    Ok(Out { labels: nodes.labels, measurements: nodes.measurements, detections, report })
}

fn grid(spacing: [f64; 3]) -> Geometry {
    Geometry::axis_aligned(spacing, [-20.0, 10.0, 50.0])
}

/// Voxels whose centre (in mm, relative to voxel (0,0,0)) satisfies `f`.
fn shape(dims: [usize; 3], sp: [f64; 3], f: impl Fn([f64; 3]) -> bool) -> Volume<u8> {
    let a = Array3::from_shape_fn([dims[2], dims[1], dims[0]], |(k, j, i)| {
        u8::from(f([i as f64 * sp[0], j as f64 * sp[1], k as f64 * sp[2]]))
    });
    Volume::new(a, grid(sp)).unwrap()
}

fn in_ball(p: [f64; 3], c: [f64; 3], r: f64) -> bool {
    (p[0] - c[0]).powi(2) + (p[1] - c[1]).powi(2) + (p[2] - c[2]).powi(2) <= r * r
}

#[test]
fn hole_filling_restores_a_ball_with_a_hollow_core() {
    let sp = [0.8, 0.8, 1.6];
    let c = [16.0, 16.0, 16.0];
    let full = shape([41, 41, 21], sp, |p| in_ball(p, c, 10.0));
    let hollow = shape([41, 41, 21], sp, |p| in_ball(p, c, 10.0) && !in_ball(p, c, 5.0));
    let cfg = PostProcessConfig::default();
    let out = postprocess_mask(&hollow, None, &cfg).unwrap();
    assert_eq!(out.report.n_nodes, 1);
    let want_fill = full.as_slice().iter().zip(hollow.as_slice()).filter(|(a, b)| a != b).count();
    assert!(want_fill > 100);
    assert_eq!(out.report.holes_filled_voxels, want_fill);
    let got: Vec<u8> = out.labels.as_slice().iter().map(|&v| u8::from(v > 0)).collect();
    assert_eq!(got, full.as_slice());
    // Without filling the core stays empty.
    let out = postprocess_mask(&hollow, None, &PostProcessConfig { fill_holes: false, ..cfg }).unwrap();
    assert_eq!(out.report.holes_filled_voxels, 0);
    assert_eq!(
        out.labels.as_slice().iter().filter(|&&v| v > 0).count(),
        hollow.as_slice().iter().filter(|&&v| v > 0).count()
    );
}

#[test]
fn a_cavity_open_to_the_outside_is_not_filled() {
    // A hollow ball with a tunnel to the outside along +i: nothing is enclosed.
    let sp = [1.0; 3];
    let c = [15.0, 15.0, 15.0];
    let v = shape([31, 31, 31], sp, |p| {
        in_ball(p, c, 10.0)
            && !in_ball(p, c, 5.0)
            && !(p[0] > 15.0 && (p[1] - 15.0).abs() < 1.5 && (p[2] - 15.0).abs() < 1.5)
    });
    let out = postprocess_mask(&v, None, &PostProcessConfig::default()).unwrap();
    assert_eq!(out.report.holes_filled_voxels, 0);
}

#[test]
fn splitting_separates_two_touching_balls_and_leaves_one_alone() {
    let sp = [0.7, 0.7, 1.0];
    let (c1, c2) = ([12.0, 14.0, 14.0], [26.0, 14.0, 14.0]);
    // Radii 8 mm, centres 14 mm apart: the balls overlap in a neck of radius sqrt(64 - 49) = 3.9 mm.
    let two = shape([56, 40, 29], sp, |p| in_ball(p, c1, 8.0) || in_ball(p, c2, 8.0));
    let split = PostProcessConfig { split_touching: Some(SplitConfig::default()), ..Default::default() };
    let out = postprocess_mask(&two, None, &split).unwrap();
    assert_eq!(out.report.n_components, 1);
    assert_eq!(out.report.n_components_split, 1);
    assert_eq!(out.report.n_nodes, 2);
    // Each ball's centre lies in a different node, and every voxel is closer to its node's centre.
    let at = |c: [f64; 3]| {
        out.labels.get(
            (c[0] / sp[0]).round() as usize,
            (c[1] / sp[1]).round() as usize,
            (c[2] / sp[2]).round() as usize,
        )
    };
    let (l1, l2) = (at(c1), at(c2));
    assert!(l1 > 0 && l2 > 0 && l1 != l2);
    let [ni, nj, nk] = two.dims();
    let mut wrong = 0;
    for k in 0..nk {
        for j in 0..nj {
            for i in 0..ni {
                let l = out.labels.get(i, j, k);
                if l == 0 {
                    continue;
                }
                let p = [i as f64 * sp[0], j as f64 * sp[1], k as f64 * sp[2]];
                let nearer1 = (p[0] - c1[0]).abs() < (p[0] - c2[0]).abs();
                if (l == l1) != nearer1 && (p[0] - 19.0).abs() > sp[0] {
                    wrong += 1;
                }
            }
        }
    }
    assert_eq!(wrong, 0, "voxels away from the neck assigned to the far ball");
    // The same balls with splitting off stay one node.
    assert_eq!(postprocess_mask(&two, None, &PostProcessConfig::default()).unwrap().report.n_nodes, 1);
    // A single ball is left alone.
    let one = shape([56, 40, 29], sp, |p| in_ball(p, c1, 8.0));
    let out = postprocess_mask(&one, None, &split).unwrap();
    assert_eq!(out.report.n_nodes, 1);
    assert_eq!(out.report.n_components_split, 0);
}

#[test]
fn size_filter_and_relabel_by_decreasing_short_axis() {
    let sp = [0.5, 0.5, 1.0];
    // Balls of radius 2 (SAD ~ 4.7 mm > 4.5 -> kept? computed below), 6 and 9 mm, and a 1 mm speck.
    let centres = [
        ([8.0, 8.0, 10.0], 1.0),
        ([25.0, 10.0, 10.0], 6.0),
        ([50.0, 30.0, 12.0], 9.0),
        ([10.0, 40.0, 10.0], 3.0),
    ];
    let v = shape([130, 100, 24], sp, |p| centres.iter().any(|&(c, r)| in_ball(p, c, r)));
    let out = postprocess_mask(&v, None, &PostProcessConfig::default()).unwrap();
    assert_eq!(out.report.n_components, 4);
    // Independent check of the filter: the raw components' SAD against 4.5 mm.
    let raw = axial_axes(&nodal_nodes::label_components(&v, nodal_nodes::Connectivity::TwentySix).0);
    let small = raw.iter().flatten().filter(|a| a.short_axis_mm < 4.5).count();
    assert_eq!(small, 1, "only the 1 mm speck is below 4.5 mm");
    assert_eq!(out.report.n_removed_small, 1);
    assert_eq!(out.report.n_nodes, 3);
    let sads: Vec<f64> = out.measurements.iter().map(|m| m.axes.short_axis_mm).collect();
    assert!(sads.windows(2).all(|w| w[0] >= w[1]), "{sads:?}");
    assert_eq!(out.measurements.iter().map(|m| m.node_id).collect::<Vec<_>>(), vec![1, 2, 3]);
    // Label 1 is the 9 mm ball.
    let c = [50.0, 30.0, 12.0];
    assert_eq!(out.labels.get(100, 60, 12), 1, "{c:?}");
    // Probability input: same result after thresholding at 0.5.
    let prob = v.map(|x| if x > 0 { 0.75f32 } else { 0.25 });
    let out2 = postprocess_probability(&prob, None, &PostProcessConfig::default()).unwrap();
    assert_eq!(out2.labels, out.labels);
    // The report serialises (it is saved next to the outputs).
    let json = serde_json::to_string(&out.report).unwrap();
    assert!(json.contains("\"min_short_axis_mm\":4.5"));
}

#[test]
fn bad_input_is_a_typed_error_or_documented() {
    let g = grid([1.0; 3]);
    // Empty mask: no nodes, no error.
    let empty = Volume::<u8>::zeros([10, 10, 10], g);
    let out = postprocess_mask(&empty, None, &PostProcessConfig::default()).unwrap();
    assert_eq!(out.report.n_nodes, 0);
    assert!(out.measurements.is_empty());
    assert!(measure_nodes(&empty, None, &MeasureOptions::default()).unwrap().is_empty());
    assert_eq!(axial_axes(&empty), vec![None]);

    // CT on another grid.
    let mut lab = Volume::<u8>::zeros([10, 10, 10], g);
    lab.data_mut()[[5, 5, 5]] = 1;
    let ct = Volume::<i16>::zeros([10, 10, 11], g);
    assert!(matches!(
        measure_nodes(&lab, Some(&ct), &MeasureOptions::default()),
        Err(NodesError::GridMismatch { .. })
    ));
    let shifted = Volume::<i16>::zeros([10, 10, 10], grid([1.0, 1.0, 2.0]));
    assert!(matches!(
        measure_nodes(&lab, Some(&shifted), &MeasureOptions::default()),
        Err(NodesError::GridMismatch { .. })
    ));
    assert!(matches!(
        postprocess_mask(&lab, Some(&ct), &PostProcessConfig::default()),
        Err(NodesError::GridMismatch { .. })
    ));

    // Label map with gaps in its ids: absent ids are simply absent, ids are kept.
    let mut gaps = Volume::<u16>::zeros([20, 10, 10], g);
    gaps.data_mut()[[2, 2, 2]] = 3;
    gaps.data_mut()[[2, 2, 12]] = 17;
    let m = measure_nodes(&gaps, None, &MeasureOptions::default()).unwrap();
    assert_eq!(m.iter().map(|m| m.node_id).collect::<Vec<_>>(), vec![3, 17]);
    let ax = axial_axes(&gaps);
    assert_eq!(ax.len(), 18);
    assert_eq!(ax.iter().filter(|a| a.is_some()).count(), 2);

    // Negative ids.
    let mut neg = Volume::<i16>::zeros([5, 5, 5], g);
    neg.data_mut()[[1, 1, 1]] = -4;
    assert!(matches!(
        measure_nodes(&neg, None, &MeasureOptions::default()),
        Err(NodesError::NegativeLabel { id: -4 })
    ));

    // NaN probabilities and bad options.
    let mut prob = Volume::<f32>::zeros([4, 4, 4], g);
    prob.data_mut()[[1, 2, 3]] = f32::NAN;
    assert!(matches!(
        postprocess_probability(&prob, None, &PostProcessConfig::default()),
        Err(DetectError::Nodes(NodesError::NonFinite { index: [3, 2, 1] }))
    ));
    let bad = PostProcessConfig { min_short_axis_mm: Some(-1.0), ..Default::default() };
    assert!(matches!(postprocess_mask(&empty, None, &bad), Err(NodesError::InvalidOption { .. })));
}

/// The peak cut-off drops whole components whose highest probability stays below it — here a
/// lukewarm blob beside a confident one — and nothing of the confident one; a naive per-component
/// maximum over the thresholded foreground is the reference.
/// Centres of [`two_blobs`], voxel indices = mm (1 mm grid).
const BLOB_CENTRES: [[f64; 3]; 2] = [[10.0, 12.0, 8.0], [28.0, 12.0, 8.0]];

/// A 40x24x16 probability map on a 1 mm grid with two blobs at [`BLOB_CENTRES`], peaking at
/// `peaks` and falling to 0 at 5 mm; `over` replaces the value at chosen voxels.
fn two_blobs(peaks: [f32; 2], over: impl Fn([f64; 3]) -> Option<f32>) -> Volume<f32> {
    let dims = [40, 24, 16];
    let a = Array3::from_shape_fn([dims[2], dims[1], dims[0]], |(k, j, i)| {
        let p = [i as f64, j as f64, k as f64];
        over(p).unwrap_or_else(|| {
            BLOB_CENTRES
                .iter()
                .zip(peaks)
                .map(|(c, peak)| {
                    let d = ((p[0] - c[0]).powi(2) + (p[1] - c[1]).powi(2) + (p[2] - c[2]).powi(2)).sqrt();
                    peak * (1.0 - (d / 5.0).powi(2)).max(0.0) as f32
                })
                .fold(0f32, f32::max)
        })
    });
    Volume::new(a, grid([1.0; 3])).unwrap()
}

#[test]
fn peak_cutoff_drops_lukewarm_components_only() {
    use nodal_nodes::postprocess::PeakComponents;
    use nodal_nodes::{label_components, Connectivity};
    // Two blobs; probability falls off from 0.99 (confident) or 0.8 (lukewarm) at the centre to 0
    // at 5 mm, so p >= 0.5 within 3.5 or 3.1 mm.
    let prob = two_blobs([0.99, 0.8], |_| None);
    let threshold = 0.5;
    let fg = prob.map(|p| u8::from(p >= threshold));
    let (labels, n) = label_components(&fg, Connectivity::TwentySix);
    assert_eq!(n, 2);
    let peak = |l: u32| {
        labels
            .as_slice()
            .iter()
            .zip(prob.as_slice())
            .filter(|(&x, _)| x == l)
            .map(|(_, &p)| p)
            .fold(0f32, f32::max)
    };
    let comps = PeakComponents::new(&prob, threshold, Connectivity::TwentySix).unwrap();
    for cutoff in [0.5f32, 0.9, 0.999] {
        let (mask, removed) = (comps.mask(Some(cutoff)).unwrap(), comps.n_below(Some(cutoff)).unwrap());
        let want: Vec<u8> = labels.as_slice().iter().map(|&l| u8::from(l > 0 && peak(l) >= cutoff)).collect();
        assert_eq!(mask.as_slice(), &want[..], "cut-off {cutoff}");
        assert_eq!(removed, (1..=2).filter(|&l| peak(l) < cutoff).count(), "cut-off {cutoff}");
    }
    // Through the pipeline: the lukewarm ball is dropped and counted.
    let cfg = PostProcessConfig { threshold, min_peak_probability: Some(0.9), ..Default::default() };
    let out = postprocess_probability(&prob, None, &cfg).unwrap();
    assert_eq!((out.report.n_components, out.report.n_removed_low_peak, out.report.n_nodes), (2, 1, 1));
    assert_eq!(out.report.foreground_voxels, fg.as_slice().iter().filter(|&&v| v > 0).count());
    let m = &out.measurements[0];
    assert_eq!((m.bbox_min_index[0], m.bbox_max_index[0]), (7, 13), "the confident ball at i = 10 is kept");
    let none =
        postprocess_probability(&prob, None, &PostProcessConfig { threshold, ..Default::default() }).unwrap();
    assert_eq!((none.report.n_removed_low_peak, none.report.n_nodes), (0, 2));
    // A non-finite cut-off is an error, not a silent no-op.
    let bad = PostProcessConfig { min_peak_probability: Some(f32::NAN), ..Default::default() };
    assert!(matches!(postprocess_probability(&prob, None, &bad), Err(DetectError::InvalidOption { .. })));
}

#[test]
fn each_node_carries_the_peak_and_mean_probability_of_its_voxels() {
    // Two blobs peaking at 0.97 and 0.7 at voxel centres, falling to 0 at 5 mm; the hole at the
    // first one's centre (p = 0.2 there) is filled, so its mean includes a voxel below threshold.
    let prob = two_blobs([0.97, 0.7], |p| (p == BLOB_CENTRES[0]).then_some(0.2));
    let out =
        postprocess_probability(&prob, None, &PostProcessConfig { threshold: 0.5, ..Default::default() })
            .unwrap();
    assert_eq!(out.report.n_nodes, 2);
    assert_eq!(out.report.holes_filled_voxels, 1);
    for d in &out.detections {
        let m = &d.measurement;
        let values: Vec<f64> = out
            .labels
            .as_slice()
            .iter()
            .zip(prob.as_slice())
            .filter(|(&l, _)| l == m.node_id)
            .map(|(_, &p)| p as f64)
            .collect();
        let p = d.probability.expect("a node from a probability map has one");
        assert_eq!(p.peak, values.iter().copied().fold(f64::MIN, f64::max));
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        assert!((p.mean - mean).abs() < 1e-12, "{} vs {mean}", p.mean);
        assert!(values.contains(&0.2f32.into()) == (m.bbox_min_index[0] < 20), "the filled hole");
    }
    // Labelled 1 = larger short axis: the 0.97 blob is wider above 0.5. Its neighbours of the
    // centre (1 mm away) carry the peak, 0.97 * (1 - 1/25).
    let peaks: Vec<f64> = out.detections.iter().map(|d| d.probability.unwrap().peak).collect();
    assert!((peaks[0] - 0.97 * 0.96).abs() < 1e-6 && (peaks[1] - 0.7).abs() < 1e-6, "{peaks:?}");
    // A mask has no probabilities to report.
    let mask = prob.map(|p| u8::from(p >= 0.5));
    let out = postprocess_mask(&mask, None, &PostProcessConfig::default()).unwrap();
    assert!(out.detections.iter().all(|d| d.probability.is_none()));
}

/// Two balls of the same confidence, radius 6 mm and 3.5 mm (both above 4.5 mm short axis), their
/// CT, and a filter fitted on samples where only large components are nodes (ln volume splits
/// them; samples and labels returned too), with cut-off 0.5.
fn two_balls_and_a_size_filter() -> FilterCase {
    use nodal_detect::filter::{BoostConfig, N_FEATURES};
    let sp = [1.0, 1.0, 1.0];
    let big = shape([40, 24, 20], sp, |p| in_ball(p, [10.0, 12.0, 10.0], 6.0));
    let small = shape([40, 24, 20], sp, |p| in_ball(p, [28.0, 12.0, 10.0], 3.5));
    let prob = Volume::new(
        Array3::from_shape_fn([20, 24, 40], |(k, j, i)| {
            if big.data()[[k, j, i]] + small.data()[[k, j, i]] > 0 {
                0.99f32
            } else {
                0.0
            }
        }),
        grid(sp),
    )
    .unwrap();
    let ct = prob.map(|p| if p > 0.0 { 50i16 } else { -100 });
    // A filter fitted on samples where only large components are nodes: ln(volume) splits them.
    let sad = Feature::LnVolumeMm3.column();
    let x: Vec<[f64; N_FEATURES]> =
        (0..40).map(|i| std::array::from_fn(|f| if f == sad { 3.0 + i as f64 * 0.1 } else { 1.0 })).collect();
    let y: Vec<bool> = x.iter().map(|v| v[sad] > 5.5).collect();
    let mut filter = ComponentFilter::fit(&x, &y, None, None, BoostConfig::default()).unwrap();
    filter.min_score = 0.5;
    FilterCase { prob, ct, x, y, filter }
}

/// What [`two_balls_and_a_size_filter`] returns.
struct FilterCase {
    prob: Volume<f32>,
    ct: Volume<i16>,
    x: Vec<[f64; nodal_detect::filter::N_FEATURES]>,
    y: Vec<bool>,
    filter: ComponentFilter,
}

#[test]
fn component_filter_drops_what_it_scores_low_and_needs_a_ct() {
    use nodal_detect::filter::BoostConfig;
    let FilterCase { prob, ct, x, y, filter } = two_balls_and_a_size_filter();
    let sad = Feature::LnVolumeMm3.column();
    let cfg = PostProcessConfig { threshold: 0.5, ..Default::default() };
    let out = postprocess_probability_filtered(&prob, Some(&ct), &cfg, Some(&filter)).unwrap();
    // ln(V): big ball ~ ln(905) = 6.8 (kept), small ball ~ ln(180) = 5.2 (dropped).
    assert_eq!((out.report.n_components, out.report.n_removed_by_filter, out.report.n_nodes), (2, 1, 1));
    assert!(out.measurements[0].axes.short_axis_mm > 10.0, "the large ball is kept");
    // The same split from a filter that names its own features, in its own order: the trees index
    // that list, and scoring picks those features out of all of them.
    let own = [Feature::MeanHu, Feature::LnVolumeMm3];
    let mut narrow = ComponentFilter::fit(&x, &y, None, Some(&own), BoostConfig::default()).unwrap();
    narrow.min_score = 0.5;
    assert_eq!(narrow.features, own);
    assert_eq!(
        narrow.trees,
        filter
            .trees
            .iter()
            .map(|t| {
                let mut t = t.clone();
                for n in &mut t.nodes {
                    if let nodal_detect::filter::TreeNode::Split { feature, .. } = n {
                        assert_eq!(*feature, sad);
                        *feature = 1;
                    }
                }
                t
            })
            .collect::<Vec<_>>()
    );
    let narrow_out = postprocess_probability_filtered(&prob, Some(&ct), &cfg, Some(&narrow)).unwrap();
    assert_eq!(narrow_out.report, out.report);
    let unfiltered = postprocess_probability(&prob, Some(&ct), &cfg).unwrap();
    assert_eq!((unfiltered.report.n_removed_by_filter, unfiltered.report.n_nodes), (0, 2));
    // The filter's features are measured on the CT: none given is an error.
    let no_ct = postprocess_probability_filtered(&prob, None, &cfg, Some(&filter));
    assert!(matches!(no_ct, Err(DetectError::InvalidOption { .. })));
}

#[test]
fn each_node_carries_the_filter_verdict_of_its_component() {
    use nodal_nodes::Connectivity;
    let FilterCase { prob, ct, mut filter, .. } = two_balls_and_a_size_filter();
    let cfg = PostProcessConfig { threshold: 0.5, ..Default::default() };
    // The reference: the filter's scores of the thresholded components, found independently.
    let (raw, n) = label_components(&prob.map(|p| u8::from(p >= 0.5)), Connectivity::TwentySix);
    assert_eq!(n, 2);
    let want = filter.scores(&raw, &prob, &ct).unwrap();
    let raw_at = |m: &nodal_nodes::measure::NodeMeasurement| {
        let c: [usize; 3] = std::array::from_fn(|a| (m.bbox_min_index[a] + m.bbox_max_index[a]) / 2);
        raw.data()[[c[2], c[1], c[0]]] as usize
    };
    // Both kept (cut-off 0): each node reports its own component's verdict.
    filter.min_score = 0.0;
    let out = postprocess_probability_filtered(&prob, Some(&ct), &cfg, Some(&filter)).unwrap();
    assert_eq!(out.detections.len(), 2);
    for d in &out.detections {
        assert_eq!(d.filter, want[raw_at(&d.measurement)], "node {}", d.measurement.node_id);
    }
    let scores: Vec<f64> = out.detections.iter().map(|d| d.filter.unwrap().score).collect();
    assert!(scores[0] > 0.5 && scores[1] < 0.5, "the large ball scores high, the small one low: {scores:?}");
    // The CSV carries the score.
    let col = nodal_detect::output::csv_header().iter().position(|h| h == "filter_score").unwrap();
    let cell: f64 = nodal_detect::output::csv_row(&out.detections[1])[col].parse().unwrap();
    assert_eq!(cell, scores[1]);
    // A cut-off above both: only the size guard keeps the large ball, and says so; its score stays.
    filter.min_score = 0.99;
    filter.keep_short_axis_mm = Some(8.0);
    let guarded = postprocess_probability_filtered(&prob, Some(&ct), &cfg, Some(&filter)).unwrap();
    assert_eq!(guarded.detections.len(), 1);
    let v = guarded.detections[0].filter.unwrap();
    assert!(v.kept_by_size_guard && v.score == scores[0], "{v:?}");
    // Without a filter there is no verdict (and an empty cell).
    let plain = postprocess_probability(&prob, Some(&ct), &cfg).unwrap();
    assert!(plain.detections.iter().all(|d| d.filter.is_none()));
    assert_eq!(nodal_detect::output::csv_row(&plain.detections[0])[col], "");
}

#[test]
fn convex_fill_closes_a_bite_that_hole_filling_leaves_open() {
    // A ball with a wedge cut out towards +i (a rim open to one side, as a network leaves a large
    // necrotic node): hole filling adds nothing, the convex fill restores the ball slice by slice.
    let sp = [1.0, 1.0, 2.0];
    let c = [15.0, 15.0, 16.0];
    let ball = shape([31, 31, 17], sp, |p| in_ball(p, c, 12.0));
    let bitten = shape([31, 31, 17], sp, |p| {
        in_ball(p, c, 12.0) && !(p[0] > c[0] && (p[1] - c[1]).abs() < 0.5 * (p[0] - c[0]))
    });
    let with = |m: Option<f64>| PostProcessConfig { convex_fill_min_short_axis_mm: m, ..Default::default() };
    let plain = postprocess_mask(&bitten, None, &with(None)).unwrap();
    assert_eq!(plain.report.holes_filled_voxels, 0);
    assert_eq!(plain.report.convex_filled_voxels, 0);
    let filled = postprocess_mask(&bitten, None, &with(Some(10.0))).unwrap();
    assert_eq!(filled.report.n_nodes, 1);
    let got: Vec<u8> = filled.labels.as_slice().iter().map(|&v| u8::from(v > 0)).collect();
    // The fill stays inside the ball and takes all of the bite but the circular segments beyond
    // the chords that now close it (a 53-degree opening: ~6% of the disc's area per slice).
    let added = filled.report.convex_filled_voxels;
    let cut = ball.as_slice().iter().zip(bitten.as_slice()).filter(|(a, b)| a != b).count();
    assert!(got.iter().zip(bitten.as_slice()).all(|(&g, &b)| g >= b), "filling only adds");
    assert!(got.iter().zip(ball.as_slice()).all(|(&g, &b)| g <= b), "filling stays inside the ball");
    assert!(cut > 300 && added * 100 >= cut * 85, "filled {added} of a {cut}-voxel bite");
    // Below the size gate nothing changes.
    let gated = postprocess_mask(&bitten, None, &with(Some(30.0))).unwrap();
    assert_eq!(gated.report.convex_filled_voxels, 0);
    // A negative gate is refused.
    assert!(matches!(
        postprocess_mask(&bitten, None, &with(Some(-1.0))),
        Err(NodesError::InvalidOption { name: "convex_fill_min_short_axis_mm", .. })
    ));
}

/// Naive reference: pixel `p` lies in the convex hull of `pts` when it lies in a triangle (or on
/// a segment) of three (two) of them — Carathéodory in the plane.
fn in_hull_naive(pts: &[[i64; 2]], p: [i64; 2]) -> bool {
    let cross =
        |o: [i64; 2], a: [i64; 2], b: [i64; 2]| (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);
    let on_segment = |a: [i64; 2], b: [i64; 2]| {
        cross(a, b, p) == 0
            && p[0] >= a[0].min(b[0])
            && p[0] <= a[0].max(b[0])
            && p[1] >= a[1].min(b[1])
            && p[1] <= a[1].max(b[1])
    };
    for (i, &a) in pts.iter().enumerate() {
        for (j, &b) in pts.iter().enumerate().skip(i) {
            if on_segment(a, b) {
                return true;
            }
            for &c in &pts[j..] {
                let (d1, d2, d3) = (cross(a, b, p), cross(b, c, p), cross(c, a, p));
                let same_side = (d1 >= 0 && d2 >= 0 && d3 >= 0) || (d1 <= 0 && d2 <= 0 && d3 <= 0);
                if same_side && cross(a, b, c) != 0 {
                    return true;
                }
            }
        }
    }
    false
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// On one axial slice, the convex fill gives each component exactly the background pixels in
    /// the hull of its pixel centres (when the hull is two-dimensional), never another
    /// component's pixels.
    #[test]
    fn convex_fill_equals_the_naive_hull(
        cells in proptest::collection::vec((0usize..12, 0usize..12), 3..25),
        other in proptest::collection::vec((0usize..12, 0usize..12), 0..6),
    ) {
        let mut a = Array3::<u32>::zeros([1, 12, 12]);
        for &(i, j) in &other {
            a[[0, j, i]] = 2;
        }
        for &(i, j) in &cells {
            a[[0, j, i]] = 1;
        }
        let before = Volume::new(a, grid([1.0, 1.0, 1.0])).unwrap();
        let mut labels = before.clone();
        let cfg = PostProcessConfig {
            min_short_axis_mm: None,
            fill_holes: false,
            convex_fill_min_short_axis_mm: Some(0.0),
            ..Default::default()
        };
        let done = nodal_nodes::postprocess::finish_components(&mut labels, None, &cfg).unwrap();
        // Reference: components in increasing id order, each taking the background pixels in
        // the hull of its own pixels.
        let mut want = before.clone();
        for id in [1u32, 2] {
            let pts: Vec<[i64; 2]> = (0..12)
                .flat_map(|j| (0..12).map(move |i| [i, j]))
                .filter(|p| before.get(p[0] as usize, p[1] as usize, 0) == id)
                .collect();
            // All centres on one line: the hull has no area and nothing is filled.
            let flat = pts.len() < 3
                || pts.iter().all(|p| {
                    let (o, a) = (pts[0], pts[1]);
                    (a[0] - o[0]) * (p[1] - o[1]) == (a[1] - o[1]) * (p[0] - o[0])
                });
            for j in 0..12 {
                for i in 0..12 {
                    if !flat && want.get(i, j, 0) == 0 && in_hull_naive(&pts, [i as i64, j as i64]) {
                        want.data_mut()[[0, j, i]] = id;
                    }
                }
            }
        }
        proptest::prop_assert_eq!(labels.as_slice(), want.as_slice());
        let added = before.as_slice().iter().zip(want.as_slice()).filter(|(a, b)| a != b).count();
        proptest::prop_assert_eq!(done.convex_filled_voxels, added);
    }
}

/// A 48 x 24 x 16 probability map at 1 mm: paraboloid lobes of radius 6 voxels centred at
/// (i, 12, 8) with the given peaks, over a bar of p = 0.3 along `bar_i` (1 voxel either side of
/// j = 12, k = 8).
fn lobes_on_a_bar(lobes: &[(f64, f32)], bar_i: std::ops::RangeInclusive<f64>) -> Volume<f32> {
    let a = Array3::from_shape_fn([16, 24, 48], |(k, j, i)| {
        let p = [i as f64, j as f64, k as f64];
        let bar = bar_i.contains(&p[0]) && (p[1] - 12.0).abs() <= 1.0 && (p[2] - 8.0).abs() <= 1.0;
        lobes
            .iter()
            .map(|&(ci, peak)| {
                let d = ((p[0] - ci).powi(2) + (p[1] - 12.0).powi(2) + (p[2] - 8.0).powi(2)).sqrt();
                peak * (1.0 - (d / 6.0).powi(2)).max(0.0) as f32
            })
            .fold(if bar { 0.3f32 } else { 0.0 }, f32::max)
    });
    Volume::new(a, grid([1.0, 1.0, 1.0])).unwrap()
}

/// The mask threshold redraws the kept components at a higher probability: a dumbbell found whole
/// at 0.25 becomes its two confident lobes (two nodes), exactly the voxels with p >= 0.5 (a naive
/// mask is the reference); a blob whose peak stays below the mask threshold disappears; a mask
/// input ignores it; a mask threshold below the threshold is refused.
#[test]
fn mask_threshold_redraws_kept_components_at_the_higher_probability() {
    // Lobes of peak 0.99 at i = 10 and 24 joined by a bar of p = 0.3; a lone blob of peak 0.45.
    let prob = lobes_on_a_bar(&[(10.0, 0.99), (24.0, 0.99), (38.0, 0.45)], 10.0..=24.0);
    let base = PostProcessConfig { threshold: 0.25, ..Default::default() };
    let whole = postprocess_probability(&prob, None, &base).unwrap();
    assert_eq!(whole.report.n_nodes, 2, "the dumbbell and the faint blob");
    let cfg = PostProcessConfig { mask_threshold: Some(0.5), ..base };
    let out = postprocess_probability(&prob, None, &cfg).unwrap();
    assert_eq!(out.report.n_nodes, 2, "the two lobes");
    let want: Vec<bool> = prob.as_slice().iter().map(|&p| p >= 0.5).collect();
    let got: Vec<bool> = out.labels.as_slice().iter().map(|&l| l > 0).collect();
    assert_eq!(got, want);
    let lobe_of = |i: usize| out.labels.get(i, 12, 8);
    assert!(lobe_of(10) > 0 && lobe_of(24) > 0 && lobe_of(10) != lobe_of(24));
    // A mask carries no probabilities: the mask threshold does not apply.
    let mask = prob.map(|p| u8::from(p >= 0.25));
    assert_eq!(postprocess_mask(&mask, None, &cfg).unwrap().report.n_nodes, 2);
    let bad = PostProcessConfig { mask_threshold: Some(0.2), ..base };
    assert!(matches!(
        postprocess_probability(&prob, None, &bad),
        Err(DetectError::Nodes(NodesError::InvalidOption { name: "mask_threshold", .. }))
    ));
}

/// A component kept by the peak cut-off for its confident core does not pass the cut-off on to
/// the other pieces the mask threshold makes of it: a lukewarm lobe (peak 0.7) joined at 0.25 to
/// a confident one (0.99) goes with a peak cut-off of 0.9 and stays without one; the mask and the
/// detections agree.
#[test]
fn mask_threshold_pieces_face_the_peak_cut_off_again() {
    let prob = lobes_on_a_bar(&[(10.0, 0.99), (26.0, 0.7)], 10.0..=26.0);
    let dims = prob.dims();
    let drawn = PostProcessConfig { threshold: 0.25, mask_threshold: Some(0.5), ..Default::default() };
    assert_eq!(postprocess_probability(&prob, None, &drawn).unwrap().report.n_nodes, 2, "both lobes");
    let cut = PostProcessConfig { min_peak_probability: Some(0.9), ..drawn };
    let out = postprocess_probability(&prob, None, &cut).unwrap();
    assert_eq!(out.report.n_nodes, 1, "the confident lobe only");
    assert_eq!(out.report.n_removed_low_peak, 0, "the component itself passed the cut-off");
    let want: Vec<bool> =
        prob.as_slice().iter().enumerate().map(|(n, &p)| p >= 0.5 && (n % dims[0]) < 18).collect();
    let got: Vec<bool> = out.labels.as_slice().iter().map(|&l| l > 0).collect();
    assert_eq!(got, want, "exactly the confident lobe's voxels with p >= 0.5");
    let recipe = Recipe { postprocess: cut, filter: None };
    let cand = nodal_detect::Candidates::new(&prob, None, &recipe).unwrap();
    let mask = cand.mask(&prob, &cut, recipe.cutoffs()).unwrap();
    let mask_fg: Vec<bool> = mask.as_slice().iter().map(|&m| m > 0).collect();
    assert_eq!(mask_fg, want, "validation scores the mask segment writes");
}
