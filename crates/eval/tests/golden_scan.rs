//! Hand-built scans where every number follows from the protocol by hand.
//!
//! SAD by the pixel-corner rule: an a x b pixel rectangle (spacing p in-plane) has the hull of its
//! corners = an (a p) x (b p) rectangle; LAD = its diagonal D = p sqrt(a^2 + b^2) and the width
//! perpendicular to the diagonal is 2 a b p^2 / D. A square of s pixels: SAD = LAD = s p sqrt 2.
use nodal_core::{Geometry, Volume};
use nodal_eval::{evaluate_scan, EvalError, Prediction};

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

fn rect_sad(a: f64, b: f64, p: f64) -> f64 {
    2.0 * a * b * p * p / (p * (a * a + b * b).sqrt())
}

/// 60 x 40 x 20 voxels at 1 mm:
/// * node 1 (5x5x4 = 100 voxels) covered by component A on exactly 40 voxels -> sensitivity 0.4, localized;
/// * node 2 (100 voxels) covered by component B on 39 voxels -> 0.39, not localized, B is a FP;
/// * nodes 3 and 4 touch and are both covered by one component C -> both localized, one TP;
/// * D: 6x6x3 FP (SAD 6 sqrt 2); E: 2x2x2 (SAD 2 sqrt 2 < 4.5, removed); F: 8x8x2 FP (SAD 8 sqrt 2 >= 10).
#[test]
fn localization_golden() {
    let g = Geometry::axis_aligned([1.0; 3], [0.0; 3]);
    let mut gt = Volume::<u16>::zeros([60, 40, 20], g);
    let mut pred = Volume::<u8>::zeros([60, 40, 20], g);
    set(&mut gt, 2..7, 2..7, 2..6, 1);
    set(&mut gt, 12..17, 2..7, 2..6, 2);
    set(&mut gt, 22..27, 2..7, 2..6, 3);
    set(&mut gt, 27..32, 2..7, 2..6, 4);
    set(&mut pred, 2..7, 0..4, 2..6, 1); // A: overlaps node 1 on i 2..7, j 2..4, k 2..6 = 40
    set(&mut pred, 12..17, 0..4, 2..6, 1); // B: 40 overlap ...
    pred.data_mut()[[3, 3, 14]] = 0; // ... minus one (not a hull corner) = 39
    set(&mut pred, 22..32, 2..7, 2..6, 1); // C
    set(&mut pred, 40..46, 10..16, 10..13, 1); // D
    set(&mut pred, 5..7, 30..32, 10..12, 1); // E
    set(&mut pred, 40..48, 25..33, 15..17, 1); // F

    let r = evaluate_scan(Prediction::Mask(&pred), &gt, None).unwrap();
    assert_eq!(r.n_gt_nodes, 4);
    assert_eq!(r.n_pred_components, 6);
    assert_eq!(r.n_pred_removed_small, 1);
    assert_eq!(r.n_pred, 5);
    assert_eq!((r.n_tp, r.n_fp, r.n_fp_sad_ge_10mm), (2, 3, 1));
    assert_eq!(r.n_gt_localized, 3);
    assert_eq!(r.recall, Some(0.75));
    assert_eq!(r.precision, Some(0.4));
    assert!(close(r.f1.unwrap(), 2.0 * 0.4 * 0.75 / 1.15));
    // filtered: pred A (80) + C (200) = 280; GT nodes 1, 3, 4 = 300; overlap 40 + 200
    assert!(close(r.dice.unwrap(), 480.0 / 580.0));

    let sens: Vec<(u32, f64, bool)> = r.nodes.iter().map(|n| (n.id, n.sensitivity, n.localized)).collect();
    assert_eq!(sens, vec![(1, 0.4, true), (2, 0.39, false), (3, 1.0, true), (4, 1.0, true)]);
    for n in &r.nodes {
        assert!(close(n.sad_mm, 5.0 * 2f64.sqrt()), "node {} SAD {}", n.id, n.sad_mm);
        assert!(close(n.lad_mm, 5.0 * 2f64.sqrt()));
        assert_eq!(n.n_voxels, 100);
        assert!(close(n.volume_mm3, 100.0));
        assert_eq!(n.metastatic, None);
    }

    let mut fps: Vec<(f64, usize, [f64; 3])> =
        r.fps.iter().map(|f| (f.sad_mm, f.n_voxels, f.centroid_mm)).collect();
    fps.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert_eq!(fps.len(), 3);
    // B: 5 x 4 pixels, 79 voxels; centroid from index sums
    assert!(close(fps[0].0, rect_sad(5.0, 4.0, 1.0)), "{}", fps[0].0);
    assert_eq!(fps[0].1, 79);
    let b_centroid = [(80.0 * 14.0 - 14.0) / 79.0, (80.0 * 1.5 - 3.0) / 79.0, (80.0 * 3.5 - 3.0) / 79.0];
    for a in 0..3 {
        assert!(close(fps[0].2[a], b_centroid[a]));
    }
    assert!(close(fps[1].0, 6.0 * 2f64.sqrt()));
    assert_eq!(fps[1].1, 108);
    assert_eq!(fps[1].2, [42.5, 12.5, 11.0]);
    assert!(close(fps[2].0, 8.0 * 2f64.sqrt()));
    assert_eq!(fps[2].2, [43.5, 28.5, 15.5]);
}

/// A 3 x 3 pixel square FP whose SAD is 4.4 mm (removed) or 4.6 mm (kept), by choosing the in-plane
/// spacing p = SAD / (3 sqrt 2); the ground truth is empty.
#[test]
fn small_fp_threshold_and_empty_gt() {
    for (sad, kept) in [(4.4, false), (4.6, true)] {
        let p = sad / (3.0 * 2f64.sqrt());
        let g = Geometry::axis_aligned([p, p, 2.0], [-10.0, 5.0, 0.0]);
        let gt = Volume::<u32>::zeros([10, 10, 6], g);
        let mut pred = Volume::<u8>::zeros([10, 10, 6], g);
        set(&mut pred, 3..6, 3..6, 2..4, 1);
        let r = evaluate_scan(Prediction::Mask(&pred), &gt, None).unwrap();
        assert_eq!(r.n_pred_components, 1);
        assert_eq!(r.n_gt_nodes, 0);
        assert_eq!(r.recall, None, "no GT nodes: recall undefined");
        assert_eq!(r.f1, None);
        assert_eq!(r.dice, None);
        assert_eq!(r.hd95, None);
        if kept {
            assert_eq!((r.n_pred_removed_small, r.n_pred, r.n_fp), (0, 1, 1));
            assert_eq!(r.precision, Some(0.0));
            assert!(close(r.fps[0].sad_mm, 4.6), "{}", r.fps[0].sad_mm);
            assert!(close(r.fps[0].volume_mm3, 18.0 * p * p * 2.0));
            // centroid index (4, 4, 2.5) in world: origin + index * spacing
            let c = r.fps[0].centroid_mm;
            assert!(close(c[0], -10.0 + 4.0 * p) && close(c[1], 5.0 + 4.0 * p) && close(c[2], 5.0));
        } else {
            assert_eq!((r.n_pred_removed_small, r.n_pred, r.n_fp), (1, 0, 0));
            assert_eq!(r.precision, None, "no predictions left: precision undefined");
        }
    }
}

/// The recall ceiling: node 1 (3x3 pixels, SAD 3 sqrt 2 = 4.24 mm < 4.5) stands alone, node 2 is
/// the same size but touches node 3 (6x6 pixels), node 4 is the same size as node 1 but the pixel
/// is 1.1 mm (SAD 4.67 mm). A prediction equal to the ground truth loses node 1 to the size filter
/// only; an empty prediction still has the same ceiling (it depends on the ground truth alone).
#[test]
fn recall_ceiling_counts_the_nodes_the_size_filter_lets_through() {
    for p in [1.0, 1.1] {
        let g = Geometry::axis_aligned([p, p, 1.0], [0.0; 3]);
        let mut gt = Volume::<u16>::zeros([40, 20, 6], g);
        set(&mut gt, 2..5, 2..5, 1..4, 1);
        set(&mut gt, 12..15, 2..5, 1..4, 2);
        set(&mut gt, 15..21, 2..8, 1..4, 3);
        set(&mut gt, 30..33, 10..13, 1..4, 4);
        let small_kept = p * 3.0 * 2f64.sqrt() >= 4.5;
        let oracle = gt.map(|v| u8::from(v != 0));
        let empty = Volume::<u8>::zeros([40, 20, 6], g);
        for pred in [&oracle, &empty] {
            let r = evaluate_scan(Prediction::Mask(pred), &gt, None).unwrap();
            let countable: Vec<bool> = r.nodes.iter().map(|n| n.countable).collect();
            assert_eq!(countable, vec![small_kept, true, true, small_kept], "pixel {p} mm");
            let n = 2 + 2 * usize::from(small_kept);
            assert_eq!(r.n_gt_countable, n);
            assert_eq!(r.recall_ceiling, Some(n as f64 / 4.0));
        }
        let r = evaluate_scan(Prediction::Mask(&oracle), &gt, None).unwrap();
        assert_eq!(r.recall, r.recall_ceiling, "the ground truth reaches its own ceiling");
    }
    let g = Geometry::axis_aligned([1.0; 3], [0.0; 3]);
    let r = evaluate_scan(
        Prediction::Mask(&Volume::<u8>::zeros([4, 4, 4], g)),
        &Volume::<u16>::zeros([4, 4, 4], g),
        None,
    )
    .unwrap();
    assert_eq!((r.n_gt_countable, r.recall_ceiling), (0, None));
}

#[test]
fn empty_prediction() {
    let g = Geometry::axis_aligned([0.8, 0.8, 1.5], [0.0; 3]);
    let mut gt = Volume::<u16>::zeros([20, 20, 10], g);
    set(&mut gt, 5..12, 5..12, 3..7, 7);
    let pred = Volume::<u8>::zeros([20, 20, 10], g);
    let r = evaluate_scan(Prediction::Mask(&pred), &gt, None).unwrap();
    assert_eq!(r.recall, Some(0.0));
    assert_eq!(r.precision, None);
    assert_eq!(r.f1, None);
    assert_eq!(r.dice, None);
    assert_eq!((r.assd, r.avg_hd, r.mhd, r.hd, r.hd95), (None, None, None, None, None));
    assert_eq!(r.nodes.len(), 1);
    assert_eq!((r.nodes[0].id, r.nodes[0].sensitivity, r.nodes[0].localized), (7, 0.0, false));
    assert!(close(r.nodes[0].sad_mm, 7.0 * 0.8 * 2f64.sqrt()));
    let json = serde_json::to_value(&r).unwrap();
    assert!(json["precision"].is_null() && json["hd95"].is_null(), "undefined values must be JSON null");
}

/// Two 4x4x4 cubes, B shifted by 2 voxels along i, spacing (1.5, 1.2, 2.0) mm (SAD of the
/// 6 x 4.8 mm cross-section = 7.5 mm, so the prediction survives the size filter).
/// Each cube has 56 surface voxels. From A's surface to B's (and symmetrically back):
/// the i=2 face (16 voxels) is 2 sx away, the i=3 ring (12) sx, the i=4 ring (12) and the
/// boundary ring of the i=5 face (12) are on B's surface (0), and the 4 centre voxels of the i=5
/// face lie inside B, min(sx, sy, sz) = sy = 1.2 mm from its surface.
#[test]
fn surface_distances_of_offset_boxes() {
    let g = Geometry::axis_aligned([1.5, 1.2, 2.0], [0.0; 3]);
    let mut gt = Volume::<u16>::zeros([12, 8, 8], g);
    let mut pred = Volume::<u8>::zeros([12, 8, 8], g);
    set(&mut gt, 2..6, 2..6, 2..6, 1);
    set(&mut pred, 4..8, 2..6, 2..6, 1);
    let r = evaluate_scan(Prediction::Mask(&pred), &gt, None).unwrap();
    assert_eq!(r.nodes[0].sensitivity, 0.5);
    assert!(close(r.dice.unwrap(), 0.5));
    let mean = (16.0 * 3.0 + 12.0 * 1.5 + 4.0 * 1.2) / 56.0;
    for v in [r.assd, r.avg_hd, r.mhd] {
        assert!(close(v.unwrap(), mean), "{v:?} vs {mean}");
    }
    assert_eq!(r.hd, Some(3.0));
    // 56 sorted values, 95th percentile at position 52.25: inside the sixteen 3.0 values
    assert_eq!(r.hd95, Some(3.0));
}

#[test]
fn grid_mismatch_is_an_error() {
    let g = Geometry::axis_aligned([1.0; 3], [0.0; 3]);
    let gt = Volume::<u16>::zeros([8, 8, 8], g);
    let pred = Volume::<u8>::zeros([8, 8, 9], g);
    assert!(matches!(evaluate_scan(Prediction::Mask(&pred), &gt, None), Err(EvalError::Geometry(_))));
    let shifted = Volume::<u8>::zeros([8, 8, 8], Geometry::axis_aligned([1.0; 3], [0.5, 0.0, 0.0]));
    assert!(matches!(evaluate_scan(Prediction::Mask(&shifted), &gt, None), Err(EvalError::Geometry(_))));
}

/// A probability map: the main evaluation uses p >= 0.5 and equals the mask evaluation; FROC counts
/// follow the thresholds.
#[test]
fn probability_map_and_froc() {
    let g = Geometry::axis_aligned([1.0; 3], [0.0; 3]);
    let mut gt = Volume::<u16>::zeros([30, 20, 10], g);
    set(&mut gt, 2..8, 2..8, 2..6, 1);
    set(&mut gt, 15..21, 2..8, 2..6, 2);
    let mut prob = Volume::<f32>::zeros([30, 20, 10], g);
    // probabilities exactly representable in f32 and f64, so `p >= t` is unambiguous
    set(&mut prob, 2..8, 2..8, 2..6, 0.875); // node 1, found up to t = 0.85
    set(&mut prob, 15..21, 2..8, 2..6, 0.25); // node 2, found only for t <= 0.25
    set(&mut prob, 2..10, 12..18, 2..5, 0.625); // FP 8x6x3, present for t <= 0.6
    let r = evaluate_scan(Prediction::Probability(&prob), &gt, None).unwrap();
    let mask = prob.map(|p| u8::from(p >= 0.5));
    let rm = evaluate_scan(Prediction::Mask(&mask), &gt, None).unwrap();
    assert_eq!(r.recall, Some(0.5));
    assert_eq!((r.recall, r.precision, r.dice, r.n_fp), (rm.recall, rm.precision, rm.dice, rm.n_fp));
    let froc = r.froc.unwrap();
    assert_eq!(froc.len(), 19);
    for f in &froc {
        let t = f.threshold;
        let want_loc = usize::from(t <= 0.875) + usize::from(t <= 0.25);
        let want_fp = usize::from(t <= 0.625);
        assert_eq!((f.n_gt, f.n_localized, f.n_fp), (2, want_loc, want_fp), "threshold {t}");
    }
    let mut bad = prob.clone();
    bad.data_mut()[[0, 0, 0]] = 1.5;
    assert!(matches!(
        evaluate_scan(Prediction::Probability(&bad), &gt, None),
        Err(EvalError::InvalidProbability { .. })
    ));
}
