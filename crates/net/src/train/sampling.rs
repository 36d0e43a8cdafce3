//! Patch sampling: foreground oversampling by node, hard-negative centres, random augmentation.
use ndarray::Array3;
use rayon::prelude::*;

use crate::patch::{sample_training_patch, Augmentation};
use crate::rng::Rng;
use crate::train::config::TrainConfig;
use crate::train::dataset::TrainCase;

/// Index of a node drawn with weight `voxels^exponent`.
fn pick_node(nodes: &[Vec<[u32; 3]>], exponent: f64, rng: &mut Rng) -> usize {
    if exponent == 0.0 {
        return rng.below(nodes.len());
    }
    let weights: Vec<f64> = nodes.iter().map(|n| (n.len() as f64).powf(exponent)).collect();
    let mut u = rng.uniform(0.0, weights.iter().sum());
    for (i, w) in weights.iter().enumerate() {
        if u < *w {
            return i;
        }
        u -= w;
    }
    nodes.len() - 1
}

/// Draws one batch: per-level inputs `[b, 1, s, s, s]` and labels `[b, o, o, o]` (flat buffers).
pub(crate) fn draw_batch(cases: &[TrainCase], cfg: &TrainConfig, rng: &mut Rng) -> (Vec<Vec<f32>>, Vec<f32>) {
    let m = &cfg.model;
    let out = m.train_patch_out;
    let sizes = m.arch.input_sizes(out);
    let align = m.arch.alignment() as i64;
    let p = &m.preprocessing;
    let clip = [p.normalise(p.hu_clip[0]), p.normalise(p.hu_clip[1])];
    // Per-item RNG streams drawn sequentially keep the batch deterministic under parallel sampling.
    let items: Vec<(usize, [i64; 3], Augmentation, Rng)> = (0..cfg.batch_size)
        .map(|_| {
            let ci = rng.below(cases.len());
            let c = &cases[ci];
            let shape = c.pyramid.shape();
            // Within a quarter patch of voxel `v`, so the voxel is well inside the output patch.
            let near = |v: [u32; 3], rng: &mut Rng| -> [f64; 3] {
                let j = out as f64 / 4.0;
                std::array::from_fn(|a| v[a] as f64 + rng.uniform(-j, j))
            };
            let centre: [f64; 3] = if !c.nodes.is_empty() && rng.chance(cfg.foreground_fraction) {
                let node = &c.nodes[pick_node(&c.nodes, cfg.node_size_exponent, rng)];
                let v = node[rng.below(node.len())];
                near(v, rng)
            } else if !c.negatives.is_empty()
                && cfg.hard_negative_fraction > 0.0
                && rng.chance(cfg.hard_negative_fraction)
            {
                let v = c.negatives[rng.below(c.negatives.len())];
                near(v, rng)
            } else {
                std::array::from_fn(|a| rng.uniform(0.0, shape[a] as f64))
            };
            let snapped = centre.map(|v| ((v / align as f64).round() as i64) * align);
            let aug = if cfg.augment { Augmentation::random(rng) } else { Augmentation::identity() };
            (ci, snapped, aug, rng.fork())
        })
        .collect();
    let samples: Vec<(Vec<Array3<f32>>, Array3<u8>)> = items
        .into_par_iter()
        .map(|(ci, centre, aug, mut r)| {
            let c = &cases[ci];
            sample_training_patch(&c.pyramid, &c.label, centre, &sizes, out, &aug, &mut r, clip)
        })
        .collect();
    let mut inputs = vec![Vec::new(); sizes.len()];
    let mut labels = Vec::new();
    for (ins, lab) in samples {
        for (buf, p) in inputs.iter_mut().zip(ins) {
            buf.extend(p.iter());
        }
        labels.extend(lab.iter().map(|&v| v as f32));
    }
    (inputs, labels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::dataset::{list_cases, load_training_cases, NEGATIVES_DIR};
    use crate::train::testing::{synthetic_case, tiny_config, write_dataset};
    use crate::NetError;
    use nodal_core::Volume;

    #[test]
    fn node_sampling_follows_the_size_exponent() {
        // One node of 1 voxel and one of 9: exponent 0 draws both equally, exponent 1 by voxels.
        let nodes = vec![vec![[0u32; 3]; 1], vec![[0u32; 3]; 9]];
        let mut rng = Rng::new(3);
        let n = 20_000;
        for (exp, expected) in [(0.0, 0.5), (1.0, 0.9), (0.5, 0.75)] {
            let big = (0..n).filter(|_| pick_node(&nodes, exp, &mut rng) == 1).count() as f64 / n as f64;
            assert!((big - expected).abs() < 0.015, "exponent {exp}: {big}");
        }
    }

    #[test]
    fn hard_negative_patches_are_centred_on_the_mask() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        write_dataset(&data, 1);
        // A bright cube (half-edge 7.5 mm) whose centre voxel is the only hard negative.
        let (mut ct, lab) = synthetic_case(0);
        let g = *ct.geometry();
        let mut neg = Volume::<u8>::zeros(ct.dims(), g);
        for ((k, j, i), v) in ct.data_mut().indexed_iter_mut() {
            let w = g.index_to_world([i as f64, j as f64, k as f64]);
            if w.iter().all(|c| (c - 25.0).abs() <= 7.5) {
                *v = 300;
            }
        }
        let centre = g.world_to_index([25.0; 3]).map(|c| c.round() as usize);
        neg.data_mut()[[centre[2], centre[1], centre[0]]] = 1;
        nodal_io::write_nifti(&ct, data.join("imagesTr/case_000_0000.nii.gz")).unwrap();
        nodal_io::write_nifti(&lab, data.join("labelsTr/case_000.nii.gz")).unwrap();
        std::fs::create_dir_all(data.join(NEGATIVES_DIR)).unwrap();
        nodal_io::write_nifti(&neg, data.join(NEGATIVES_DIR).join("case_000.nii.gz")).unwrap();

        let files = list_cases(&data).unwrap();
        assert!(files[0].negatives.is_some());
        let mut cfg = tiny_config();
        cfg.foreground_fraction = 0.0;
        cfg.augment = false;
        cfg.batch_size = 16;
        let cases = load_training_cases(&files, &cfg.model).unwrap();
        // One 1.25 x 1.25 x 2.5 mm voxel covers two 1.25 mm model voxels.
        assert_eq!(cases[0].negatives.len(), 2);
        // Mean normalised intensity of the central 2^3 voxels of each finest-level input patch:
        // 2.0 inside the cube ((300 - 50) / 125).
        let in_cube = |cfg: &TrainConfig| {
            let (inputs, _) = draw_batch(&cases, cfg, &mut Rng::new(3));
            let s = cfg.model.arch.input_sizes(cfg.model.train_patch_out)[0];
            let per = s * s * s;
            inputs[0]
                .chunks(per)
                .filter(|p| {
                    let (a, b) = (s / 2 - 1, s / 2 + 1);
                    let mut sum = 0.0;
                    for z in a..b {
                        for y in a..b {
                            for x in a..b {
                                sum += p[(z * s + y) * s + x];
                            }
                        }
                    }
                    sum / 8.0 > 1.9
                })
                .count()
        };
        cfg.hard_negative_fraction = 1.0;
        assert_eq!(in_cube(&cfg), 16);
        // Uniform centres land in the cube (2.5% of the grid) only now and then.
        cfg.hard_negative_fraction = 0.0;
        assert!(in_cube(&cfg) <= 4, "{}", in_cube(&cfg));
        // A mask on another grid is refused, naming the mask.
        let path = data.join(NEGATIVES_DIR).join("case_000.nii.gz");
        nodal_io::write_nifti(&Volume::<u8>::zeros([4, 4, 4], g), &path).unwrap();
        match load_training_cases(&files, &cfg.model) {
            Err(NetError::Dataset { path: p, .. }) => assert_eq!(p, path),
            other => panic!("{:?}", other.err()),
        }
    }
}
