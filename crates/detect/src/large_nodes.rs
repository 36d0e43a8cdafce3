//! The large-node pass: a second network pass at a coarser spacing sees a bulky or necrotic node
//! whole where the first pass, at the model's spacing, sees pieces of it; its node-sized
//! components are merged into the first pass's probability map ([`merge_large_components`]).
//! `crate::model::predict` runs both passes.
use crate::DetectError;
use nodal_core::Volume;
use nodal_net::config::LargeNodePass;
use nodal_nodes::postprocess::PeakComponents;
use nodal_nodes::Connectivity;

/// Raises `probability` (the first pass) to `coarse` (the second), voxel-wise maximum, on the
/// components of `coarse >= threshold` (at `connectivity`, as the recipe labels them) that `pass`
/// admits: axial short axis within its range, and at least `min_fine_fraction` of their voxels at
/// `probability >= threshold`. Returns how many components were merged.
///
/// # Errors
/// [`DetectError::Core`] when the two maps are not on one grid; [`DetectError::Nodes`] for
/// non-finite probabilities.
pub fn merge_large_components(
    probability: &mut Volume<f32>,
    coarse: &Volume<f32>,
    threshold: f32,
    connectivity: Connectivity,
    pass: &LargeNodePass,
) -> Result<usize, DetectError> {
    probability.check_same_grid(coarse)?;
    let components = PeakComponents::new(coarse, threshold, connectivity)?.labels;
    let labels = components.as_slice();
    let n = labels.iter().copied().max().unwrap_or(0) as usize + 1;
    let (mut voxels, mut seen) = (vec![0usize; n], vec![0usize; n]);
    for (&l, &p) in labels.iter().zip(probability.as_slice()) {
        voxels[l as usize] += 1;
        seen[l as usize] += usize::from(p >= threshold);
    }
    let mut merge = vec![false; n];
    for (id, axes) in nodal_nodes::measure::axial_axes_sparse(&components) {
        let l = id as usize;
        let sized = (pass.min_short_axis_mm..=pass.max_short_axis_mm).contains(&axes.short_axis_mm);
        merge[l] = sized && seen[l] as f64 >= pass.min_fine_fraction * voxels[l] as f64;
    }
    for (p, (&c, &l)) in probability.as_slice_mut().iter_mut().zip(coarse.as_slice().iter().zip(labels)) {
        if merge[l as usize] {
            *p = p.max(c);
        }
    }
    Ok(merge.iter().filter(|&&k| k).count())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::predict;
    use ndarray::Array3;
    use nodal_core::Geometry;
    use nodal_net::infer::InferOptions;
    use nodal_net::{LoadedModel, ModelConfig};

    fn small_foveal() -> ModelConfig {
        let mut cfg = ModelConfig::default_foveal();
        cfg.arch = nodal_net::ArchConfig::Foveal(nodal_net::FovealConfig {
            channels: vec![4, 5, 6],
            convs: vec![2, 1, 2],
            merge_convs: 1,
        });
        cfg.infer_tile_out = 8;
        cfg
    }

    /// A probability map on `g` that is `inside` within `radius_mm` of each centre, else `outside`.
    fn balls(
        dims: [usize; 3],
        g: Geometry,
        balls: &[([f64; 3], f64)],
        inside: f32,
        outside: f32,
    ) -> Volume<f32> {
        let mut v = Volume::filled(dims, g, outside);
        for ((k, j, i), p) in v.data_mut().indexed_iter_mut() {
            let w = g.index_to_world([i as f64, j as f64, k as f64]);
            let d =
                |c: &[f64; 3]| ((w[0] - c[0]).powi(2) + (w[1] - c[1]).powi(2) + (w[2] - c[2]).powi(2)).sqrt();
            if balls.iter().any(|(c, r)| d(c) <= *r) {
                *p = inside;
            }
        }
        v
    }

    fn pass(min_short_axis_mm: f64, max_short_axis_mm: f64, min_fine_fraction: f64) -> LargeNodePass {
        LargeNodePass { spacing_factor: 2.0, min_short_axis_mm, max_short_axis_mm, min_fine_fraction }
    }

    #[test]
    fn only_node_sized_coarse_components_the_first_pass_saw_are_merged() {
        let g = Geometry::axis_aligned([1.0, 1.0, 2.0], [0.0; 3]);
        let dims = [30, 50, 50];
        let big = ([15.0, 15.0, 30.0], 10.0); // short axis ~21 mm
        let small = ([15.0, 40.0, 70.0], 4.0); // ~9 mm
        let coarse = balls(dims, g, &[big, small], 0.8, 0.1);
        let mut r = nodal_net::rng::Rng::new(3);
        let mut fine = Volume::filled(dims, g, 0.0f32);
        fine.as_slice_mut().iter_mut().for_each(|p| *p = r.uniform(0.0, 1.0) as f32);
        let in_big = balls(dims, g, &[big], 1.0, 0.0);
        let merged_with = |p: LargeNodePass| {
            let mut m = fine.clone();
            let n = merge_large_components(&mut m, &coarse, 0.5, Connectivity::TwentySix, &p).unwrap();
            (n, m)
        };
        let (n, merged) = merged_with(pass(15.0, 60.0, 0.0));
        assert_eq!(n, 1);
        for ((&m, &f), &b) in merged.as_slice().iter().zip(fine.as_slice()).zip(in_big.as_slice()) {
            assert_eq!(m, if b > 0.0 { f.max(0.8) } else { f });
        }
        assert_eq!(merged_with(pass(5.0, 60.0, 0.0)).0, 2);
        assert_eq!(merged_with(pass(5.0, 15.0, 0.0)).0, 1, "the small ball only");
        let (n, none) = merged_with(pass(40.0, 60.0, 0.0));
        assert_eq!(n, 0);
        assert_eq!(none.as_slice(), fine.as_slice());
        // The first pass's share of the big ball at the threshold, counted by brute force: merged
        // at exactly that share, not above it.
        let (seen, total) = fine
            .as_slice()
            .iter()
            .zip(in_big.as_slice())
            .filter(|(_, &b)| b > 0.0)
            .fold((0, 0), |(s, t), (&f, _)| (s + usize::from(f >= 0.5), t + 1));
        let share = seen as f64 / total as f64;
        assert!(share > 0.3 && share < 0.7, "{share}");
        assert_eq!(merged_with(pass(15.0, 60.0, share)).0, 1);
        assert_eq!(merged_with(pass(15.0, 60.0, share + 1e-3)).0, 0);
        // Another grid is an error, not a panic.
        let other = Volume::filled([30, 50, 49], g, 0.0f32);
        assert!(merge_large_components(
            &mut fine.clone(),
            &other,
            0.5,
            Connectivity::TwentySix,
            &pass(15.0, 60.0, 0.0)
        )
        .is_err());
    }

    #[test]
    fn the_large_node_pass_merges_the_coarse_pass_of_the_same_network() {
        let mut cfg = small_foveal();
        cfg.preprocessing.spacing_mm = [2.0; 3];
        let net = cfg.arch.init(&nodal_net::device()).unwrap();
        let g = Geometry::axis_aligned([1.0, 1.0, 2.0], [0.0; 3]);
        let mut r = nodal_net::rng::Rng::new(5);
        let ct = Volume::new(
            Array3::from_shape_fn([24, 48, 48], |(_, j, i)| {
                let body = (i as f64 - 24.0).powi(2) + (j as f64 - 24.0).powi(2) < 400.0;
                if body {
                    (40.0 + 60.0 * r.normal()) as i16
                } else {
                    -1000
                }
            }),
            g,
        )
        .unwrap();
        let model =
            |cfg: &ModelConfig| LoadedModel { config: cfg.clone(), net: net.clone(), folder: "test".into() };
        let opts = InferOptions { tile_out: Some(8), ..Default::default() };
        let fine = predict(&model(&cfg), &ct, &opts, None).unwrap();
        let mut coarse_cfg = cfg.clone();
        coarse_cfg.preprocessing.spacing_mm = [4.0; 3];
        let coarse = predict(&model(&coarse_cfg), &ct, &opts, None).unwrap();
        // A threshold that the untrained network's coarse map crosses in places.
        let mut sorted: Vec<f32> =
            coarse.probability.as_slice().iter().copied().filter(|&p| p > 0.0).collect();
        sorted.sort_by(f32::total_cmp);
        cfg.threshold = sorted[sorted.len() * 3 / 4];
        cfg.large_node_pass = Some(pass(0.0, f64::INFINITY, 0.0));
        let both = predict(&model(&cfg), &ct, &opts, None).unwrap();
        let mut expected = fine.probability.clone();
        let merged = merge_large_components(
            &mut expected,
            &coarse.probability,
            cfg.threshold,
            Connectivity::TwentySix,
            &pass(0.0, f64::INFINITY, 0.0),
        )
        .unwrap();
        assert!(merged > 0);
        assert_eq!(both.probability.as_slice(), expected.as_slice());
        assert_ne!(both.probability.as_slice(), fine.probability.as_slice());
        assert_eq!(both.n_tiles, fine.n_tiles + coarse.n_tiles);
        // No coarse component is that large: the single pass.
        cfg.large_node_pass = Some(pass(1e6, f64::INFINITY, 0.0));
        let one = predict(&model(&cfg), &ct, &opts, None).unwrap();
        assert_eq!(one.probability.as_slice(), fine.probability.as_slice());
    }
}
