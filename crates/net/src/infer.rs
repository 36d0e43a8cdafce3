//! Sliding-window inference.
//!
//! The prepared image (model grid, body box) is covered by tiles of `tile_out` output voxels per
//! axis whose corners are multiples of the architecture's alignment. Each tile's per-level inputs
//! are copied from a [`Pyramid`]; tiles run through the network in batches; the node probability
//! (softmax channel 1) of each tile is accumulated with a Gaussian weight (sigma = tile / 8, as in
//! nnU-Net) and normalised by the summed weights. With the foveal net every output voxel sees its
//! full receptive field whatever tile it falls in, so tiles need no overlap and the stitched map
//! equals a single full-volume pass (tested); the U-Net uses 50% overlap by default.
//!
//! Optional mirror test-time augmentation averages the identity with the three single-axis flips.
use std::time::Instant;

use burn::prelude::*;
use burn::tensor::activation::softmax;
use indicatif::ProgressBar;
use ndarray::Array3;
use nodal_core::{Interpolation, Volume};
use serde::Serialize;

use crate::config::{LoadedModel, ModelConfig};
use crate::model::Net;
use crate::patch::{aligned_start, extract_aligned, Pyramid};
use crate::preprocess::prepare;
use crate::NetError;

/// Inference settings.
#[derive(Clone, Debug, PartialEq)]
pub struct InferOptions {
    /// Output tile edge (voxels); `None` = the model's `infer_tile_out`.
    pub tile_out: Option<usize>,
    /// Fraction of a tile shared with its neighbour; `None` = 0 for translation-exact networks,
    /// 0.5 otherwise.
    pub overlap: Option<f64>,
    /// Tiles per network call.
    pub batch: usize,
    /// Mirror test-time augmentation (4x the network time).
    pub tta: bool,
}

impl Default for InferOptions {
    fn default() -> Self {
        InferOptions { tile_out: None, overlap: None, batch: 2, tta: false }
    }
}

/// Seconds spent in each stage.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Timings {
    /// Reorientation, body crop, resampling, normalisation.
    pub preprocess_s: f64,
    /// Sliding-window network evaluation.
    pub network_s: f64,
    /// Mapping the probability map back onto the CT grid.
    pub map_back_s: f64,
}

/// The result of [`predict`].
#[derive(Clone, Debug)]
pub struct PredictOutput {
    /// Node probability in [0, 1] on the CT's own grid.
    pub probability: Volume<f32>,
    /// Node probability of the first pass on the model grid (body box at model spacing).
    pub model_grid_probability: Volume<f32>,
    /// Number of tiles evaluated (x TTA flips).
    pub n_tiles: usize,
    /// Stage timings.
    pub timings: Timings,
}

/// Tile start positions along one axis of `n` voxels for tiles of `out` voxels, multiples of `align`.
fn tile_starts(n: usize, out: usize, overlap: f64, align: usize) -> Vec<usize> {
    let step = (((out as f64) * (1.0 - overlap)).floor() as usize / align * align).max(align);
    let mut starts = Vec::new();
    let mut s = 0;
    while s + out < n {
        starts.push(s);
        s += step;
    }
    // The last tile ends at or just past the end (its start rounded up to the alignment).
    let last = n.saturating_sub(out).next_multiple_of(align);
    if starts.last().is_none_or(|&l| l < last) {
        starts.push(last);
    }
    starts
}

/// Gaussian importance weights of a tile `[z, y, x]`, floored at 1e-3 of the peak.
fn gaussian_weights(out: [usize; 3]) -> Array3<f32> {
    let axis = |n: usize| -> Vec<f64> {
        let c = (n as f64 - 1.0) / 2.0;
        let sigma = n as f64 / 8.0;
        (0..n).map(|t| (-(t as f64 - c).powi(2) / (2.0 * sigma * sigma)).exp()).collect()
    };
    let (wz, wy, wx) = (axis(out[0]), axis(out[1]), axis(out[2]));
    Array3::from_shape_fn(out, |(z, y, x)| ((wz[z] * wy[y] * wx[x]) as f32).max(1e-3))
}

/// Node probability on the model grid for a prepared image (`[z, y, x]` normalised intensities).
///
/// With `body`, tiles whose output region holds no body voxel are skipped (probability 0 there).
pub fn predict_prepared(
    net: &Net,
    config: &ModelConfig,
    image: &Volume<f32>,
    body: Option<&Volume<u8>>,
    opts: &InferOptions,
    progress: Option<&ProgressBar>,
) -> Result<(Volume<f32>, usize), NetError> {
    let arch = &config.arch;
    let align = arch.alignment();
    let tile = opts.tile_out.unwrap_or(config.infer_tile_out);
    if tile == 0 || !tile.is_multiple_of((2 * align).max(2)) {
        return Err(NetError::InvalidConfig(format!(
            "tile size {tile} must be a positive multiple of {}",
            (2 * align).max(2)
        )));
    }
    let overlap = opts.overlap.unwrap_or(if arch.is_translation_exact() { 0.0 } else { 0.5 });
    if !(0.0..0.95).contains(&overlap) {
        return Err(NetError::InvalidConfig(format!("overlap {overlap} outside [0, 0.95)")));
    }
    let data = image.data();
    let shape = [data.shape()[0], data.shape()[1], data.shape()[2]];
    let pyr = Pyramid::new(data, arch.levels(), config.preprocessing.pad_value());
    // Tiles per axis: as few as `tile` allows, of equal aligned size (so they batch), which wastes
    // less than one alignment step per tile instead of up to a whole tile at the far end.
    let step = (2 * align).max(2);
    let out: [usize; 3] = std::array::from_fn(|a| {
        let n = shape[a].next_multiple_of(step);
        let k = n.div_ceil(tile);
        n.div_ceil(k).next_multiple_of(step).min(tile)
    });
    let sizes_axis: [Vec<usize>; 3] = std::array::from_fn(|a| arch.input_sizes(out[a]));
    let starts: [Vec<usize>; 3] = std::array::from_fn(|a| tile_starts(shape[a], out[a], overlap, align));
    let mut tiles = Vec::new();
    for &z in &starts[0] {
        for &y in &starts[1] {
            for &x in &starts[2] {
                let t = [z, y, x];
                let has_body = body.is_none_or(|b| {
                    let end: [usize; 3] = std::array::from_fn(|a| (t[a] + out[a]).min(shape[a]));
                    let d = b.data();
                    (z..end[0]).any(|zz| (y..end[1]).any(|yy| (x..end[2]).any(|xx| d[[zz, yy, xx]] != 0)))
                });
                if has_body {
                    tiles.push(t);
                }
            }
        }
    }
    let flips: Vec<Vec<usize>> =
        if opts.tta { vec![vec![], vec![2], vec![3], vec![4]] } else { vec![vec![]] };
    let weights = gaussian_weights(out);
    let mut acc = Array3::<f32>::zeros(shape);
    let mut wsum = Array3::<f32>::zeros(shape);
    let device = crate::device();
    let batch = opts.batch.max(1);
    if let Some(pb) = progress {
        pb.set_length((tiles.len() * flips.len()) as u64);
    }
    for chunk in tiles.chunks(batch) {
        // Per level: [b, 1, sz, sy, sx]
        let mut level_inputs: Vec<Vec<f32>> = vec![Vec::new(); arch.levels()];
        for t in chunk {
            let centre: [i64; 3] = std::array::from_fn(|a| (t[a] + out[a] / 2) as i64);
            for (l, buf) in level_inputs.iter_mut().enumerate() {
                let size = [sizes_axis[0][l], sizes_axis[1][l], sizes_axis[2][l]];
                let p = extract_aligned(&pyr, l, aligned_start(centre, l, size), size);
                buf.extend(p.iter());
            }
        }
        let b = chunk.len();
        let mut prob_sum = vec![0.0f32; b * out[0] * out[1] * out[2]];
        for f in &flips {
            let inputs: Vec<Tensor<5>> = level_inputs
                .iter()
                .enumerate()
                .map(|(l, buf)| {
                    let shape = [b, 1, sizes_axis[0][l], sizes_axis[1][l], sizes_axis[2][l]];
                    let t = Tensor::<5>::from_data(TensorData::new(buf.clone(), shape), &device);
                    if f.is_empty() {
                        t
                    } else {
                        t.flip([f[0]])
                    }
                })
                .collect();
            let logits = net.forward(inputs); // [b, 2, oz, oy, ox]
            let [_, _, d, h, w] = logits.dims();
            if [d, h, w] != out {
                return Err(NetError::InvalidConfig(format!(
                    "network output {:?} != tile {out:?}",
                    [d, h, w]
                )));
            }
            let mut p = softmax(logits, 1).narrow(1, 1, 1); // [b, 1, oz, oy, ox]
            if !f.is_empty() {
                p = p.flip([f[0]]);
            }
            // A GPU can run out of memory here (the first read-back of a batch): an error that
            // says what to change, not a panic.
            let data = p.try_into_data().map_err(|e| {
                NetError::Device(format!(
                    "the network failed on the {} device with {b} tiles per call (fewer, `--batch`, \
                     need less device memory): {e}",
                    crate::selected_compute().name()
                ))
            })?;
            let v = data
                .try_to_vec::<f32>()
                .map_err(|e| NetError::Device(format!("reading back the network's output: {e:?}")))?;
            for (s, x) in prob_sum.iter_mut().zip(v) {
                *s += x;
            }
            if let Some(pb) = progress {
                pb.inc(b as u64);
            }
        }
        let inv = 1.0 / flips.len() as f32;
        let per = out[0] * out[1] * out[2];
        for (ti, t) in chunk.iter().enumerate() {
            let probs = &prob_sum[ti * per..(ti + 1) * per];
            let ext: [usize; 3] = std::array::from_fn(|a| out[a].min(shape[a] - t[a].min(shape[a])));
            for z in 0..ext[0] {
                for y in 0..ext[1] {
                    let row = (z * out[1] + y) * out[2];
                    for x in 0..ext[2] {
                        let w = weights[[z, y, x]];
                        let idx = [t[0] + z, t[1] + y, t[2] + x];
                        acc[idx] += w * probs[row + x] * inv;
                        wsum[idx] += w;
                    }
                }
            }
        }
    }
    ndarray::Zip::from(&mut acc)
        .and(&wsum)
        .for_each(|a, &w| *a = if w > 0.0 { (*a / w).clamp(0.0, 1.0) } else { 0.0 });
    Ok((image.with_data(acc)?, tiles.len() * flips.len()))
}

/// Fewest voxels along each axis of a CT the network is run on.
pub const MIN_CT_VOXELS_PER_AXIS: usize = 4;

/// Full inference on a CT in HU at the model's own preprocessing: preprocessing, sliding window,
/// probability back on the CT grid. (A model's optional large-node pass is a second call at a
/// coarser spacing, [`predict_with`], merged by `nodal-detect`.)
pub fn predict(
    model: &LoadedModel,
    ct: &Volume<i16>,
    opts: &InferOptions,
    progress: Option<&ProgressBar>,
) -> Result<PredictOutput, NetError> {
    predict_with(model, &model.config.preprocessing, ct, opts, progress)
}

/// [`predict`] with other `preprocessing` (e.g. a coarser spacing) than the model's.
pub fn predict_with(
    model: &LoadedModel,
    preprocessing: &crate::Preprocessing,
    ct: &Volume<i16>,
    opts: &InferOptions,
    progress: Option<&ProgressBar>,
) -> Result<PredictOutput, NetError> {
    // A 2D image or a stack of a few slices is not a CT the network can read: refused, rather
    // than answered with "0 nodes".
    if let Some(n) = ct.dims().into_iter().find(|&n| n < MIN_CT_VOXELS_PER_AXIS) {
        let [ni, nj, nk] = ct.dims();
        return Err(NetError::UnusableInput(format!(
            "{ni} x {nj} x {nk} voxels: {n} along one axis, a 3D CT needs at least {MIN_CT_VOXELS_PER_AXIS}"
        )));
    }
    let t0 = Instant::now();
    let prep = prepare(ct, preprocessing)?;
    let t1 = Instant::now();
    let (model_grid_probability, n_tiles) =
        predict_prepared(&model.net, &model.config, &prep.image, Some(&prep.body), opts, progress)?;
    let t2 = Instant::now();
    let probability =
        model_grid_probability.resample_to(ct.geometry(), ct.dims(), Interpolation::Linear, 0.0);
    let timings = Timings {
        preprocess_s: (t1 - t0).as_secs_f64(),
        network_s: (t2 - t1).as_secs_f64(),
        map_back_s: t2.elapsed().as_secs_f64(),
    };
    Ok(PredictOutput { probability, model_grid_probability, n_tiles, timings })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ArchConfig, FovealConfig, UNetConfig};
    use nodal_core::Geometry;

    #[test]
    fn tile_starts_cover_and_align() {
        assert_eq!(tile_starts(10, 16, 0.0, 4), vec![0]);
        assert_eq!(tile_starts(40, 16, 0.0, 4), vec![0, 16, 24]);
        assert_eq!(tile_starts(40, 16, 0.5, 4), vec![0, 8, 16, 24]);
        assert_eq!(tile_starts(30, 8, 0.0, 4), vec![0, 8, 16, 24]);
        for (n, out, ov, al) in [(37, 16, 0.0, 4), (100, 32, 0.5, 8), (5, 8, 0.25, 2)] {
            let s = tile_starts(n, out, ov, al);
            assert!(s.iter().all(|v| v % al == 0));
            // Every voxel is covered.
            assert!((0..n).all(|i| s.iter().any(|&st| st <= i && i < st + out)));
        }
    }

    fn random_image(shape: [usize; 3]) -> Volume<f32> {
        let mut r = crate::rng::Rng::new(11);
        let data = Array3::from_shape_fn(shape, |_| r.normal() as f32);
        Volume::new(data, Geometry::axis_aligned([1.0; 3], [0.0; 3])).unwrap()
    }

    fn small_foveal() -> ModelConfig {
        let mut cfg = ModelConfig::default_foveal();
        cfg.arch = ArchConfig::Foveal(FovealConfig {
            channels: vec![4, 5, 6],
            convs: vec![2, 1, 2],
            merge_convs: 1,
        });
        cfg.infer_tile_out = 8;
        cfg
    }

    #[test]
    fn sliding_window_equals_single_pass() {
        let cfg = small_foveal();
        let net = cfg.arch.init(&crate::device()).unwrap();
        let img = random_image([20, 18, 22]);
        let tiled = |tile: usize, overlap: f64| {
            let opts = InferOptions { tile_out: Some(tile), overlap: Some(overlap), batch: 3, tta: false };
            predict_prepared(&net, &cfg, &img, None, &opts, None).unwrap()
        };
        // One 24^3 tile covers the whole volume: the single full-volume pass.
        let (single, n1) = tiled(24, 0.0);
        assert_eq!(n1, 1);
        for (tile, ov) in [(8, 0.0), (8, 0.5), (16, 0.25)] {
            let (p, n) = tiled(tile, ov);
            assert!(n > 1);
            let diff =
                single.as_slice().iter().zip(p.as_slice()).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(diff < 1e-5, "tile {tile} overlap {ov}: max diff {diff}");
        }
        assert!(single.as_slice().iter().all(|v| (0.0..=1.0).contains(v)));
    }

    #[test]
    fn tiles_per_call_do_not_change_the_result() {
        let cfg = small_foveal();
        let net = cfg.arch.init(&crate::device()).unwrap();
        let img = random_image([20, 18, 22]);
        let run = |batch: usize| {
            let opts = InferOptions { tile_out: Some(8), overlap: Some(0.5), batch, tta: false };
            predict_prepared(&net, &cfg, &img, None, &opts, None).unwrap()
        };
        let (one, n) = run(1);
        // 7 does not divide the 80 tiles, so the last call holds fewer.
        assert_eq!(n, 80);
        for batch in [2, 7, 100] {
            let (p, _) = run(batch);
            assert_eq!(p.as_slice(), one.as_slice(), "batch {batch}");
        }
    }

    #[test]
    fn tta_flip_of_symmetric_input_is_consistent_and_unet_runs() {
        let cfg = small_foveal();
        let net = cfg.arch.init(&crate::device()).unwrap();
        let img = random_image([16, 16, 16]);
        let opts = InferOptions { tile_out: Some(16), overlap: None, batch: 1, tta: true };
        let (p, n) = predict_prepared(&net, &cfg, &img, None, &opts, None).unwrap();
        assert_eq!(n, 4);
        assert!(p.as_slice().iter().all(|v| (0.0..=1.0).contains(v)));

        let mut ucfg = ModelConfig::default_foveal();
        ucfg.arch = ArchConfig::UNet(UNetConfig { channels: vec![4, 8] });
        ucfg.infer_tile_out = 8;
        let unet = ucfg.arch.init(&crate::device()).unwrap();
        let (p, n) = predict_prepared(&unet, &ucfg, &img, None, &InferOptions::default(), None).unwrap();
        assert_eq!(n, 27); // starts 0, 4, 8 per axis at 50% overlap
        assert!(p.as_slice().iter().all(|v| (0.0..=1.0).contains(v)));
    }
}
