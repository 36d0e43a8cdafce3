//! Tiny synthetic datasets and configurations for tests of training (this crate's and
//! `nodal-detect`'s); not part of the product.
use std::path::Path;

use nodal_core::{Geometry, Volume};
use nodal_eval::SelectionTargets;

use crate::config::ModelConfig;
use crate::model::{ArchConfig, FovealConfig};
use crate::rng::Rng;
use crate::train::TrainConfig;

/// A tiny synthetic "CT": soft tissue body with bright-rimmed spheres as nodes.
pub fn synthetic_case(seed: u64) -> (Volume<i16>, Volume<u16>) {
    let mut r = Rng::new(seed);
    let g = Geometry::axis_aligned([1.25, 1.25, 2.5], [0.0, 0.0, 0.0]);
    let dims = [40, 40, 20];
    let mut ct = Volume::filled(dims, g, -1000i16);
    let mut lab = Volume::<u16>::zeros(dims, g);
    let centres: Vec<[f64; 3]> =
        (0..3).map(|_| [r.uniform(14.0, 36.0), r.uniform(14.0, 36.0), r.uniform(14.0, 36.0)]).collect();
    {
        let mut d = ct.data_mut();
        for ((k, j, i), v) in d.indexed_iter_mut() {
            let w = g.index_to_world([i as f64, j as f64, k as f64]);
            let body = ((w[0] - 25.0).powi(2) + (w[1] - 25.0).powi(2)).sqrt() < 22.0;
            if body {
                *v = (-80.0 + 10.0 * r.normal()) as i16; // fat
            }
        }
    }
    for (n, c) in centres.iter().enumerate() {
        let rad = 4.0 + n as f64;
        let mut d = ct.data_mut();
        let mut l = lab.data_mut();
        for ((k, j, i), v) in d.indexed_iter_mut() {
            let w = g.index_to_world([i as f64, j as f64, k as f64]);
            let dist = ((w[0] - c[0]).powi(2) + (w[1] - c[1]).powi(2) + (w[2] - c[2]).powi(2)).sqrt();
            if dist < rad {
                *v = 40;
                l[[k, j, i]] = n as u16 + 1;
            }
        }
    }
    (ct, lab)
}

pub fn write_dataset(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir.join("imagesTr")).unwrap();
    std::fs::create_dir_all(dir.join("labelsTr")).unwrap();
    for i in 0..n {
        let (ct, lab) = synthetic_case(i as u64);
        nodal_io::write_nifti(&ct, dir.join(format!("imagesTr/case_{i:03}_0000.nii.gz"))).unwrap();
        nodal_io::write_nifti(&lab, dir.join(format!("labelsTr/case_{i:03}.nii.gz"))).unwrap();
    }
}

pub fn tiny_config() -> TrainConfig {
    let mut model = ModelConfig::default_foveal();
    model.arch = ArchConfig::Foveal(FovealConfig { channels: vec![4, 6], convs: vec![1, 1], merge_convs: 1 });
    model.train_patch_out = 8;
    model.infer_tile_out = 16;
    TrainConfig {
        model,
        seed: 5,
        steps: 4,
        batch_size: 2,
        lr: 1e-2,
        weight_decay: 0.0,
        warmup_steps: 1,
        foreground_fraction: 0.5,
        node_size_exponent: 0.0,
        hard_negative_fraction: 0.0,
        init_from: None,
        augment: true,
        val_cases: 1,
        val_every: 0,
        checkpoint_every: 2,
        log_every: 1,
        max_train_cases: None,
        max_minutes: None,
        selection: SelectionTargets::default(),
    }
}
