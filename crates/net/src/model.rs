//! The networks: the foveal net (default) and a 3D U-Net baseline, both burn modules built from a
//! serialisable [`ArchConfig`].
//!
//! Tensors are `[batch, channels, z, y, x]` (burn's `[N, C, D, H, W]`); the spatial order matches the
//! `[nk, nj, ni]` order of [`nodal_core::Volume`] arrays, so no transposes are ever needed.
use burn::nn::conv::{Conv3d, Conv3dConfig, ConvTranspose3d, ConvTranspose3dConfig};
use burn::nn::{Initializer, InstanceNorm, InstanceNormConfig, PaddingConfig3d};
use burn::prelude::*;
use burn::tensor::activation::leaky_relu;
use serde::{Deserialize, Serialize};

use crate::NetError;

/// Negative slope of every LeakyReLU (nnU-Net's value).
pub const LEAKY_SLOPE: f64 = 0.01;

/// Which network, with its hyper-parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ArchConfig {
    /// Multi-resolution foveal net with valid convolutions (see [`FovealConfig`]).
    Foveal(FovealConfig),
    /// nnU-Net style 3D U-Net with same-padding convolutions (see [`UNetConfig`]).
    UNet(UNetConfig),
}

/// The foveal net: `levels` input patches centred on one point, level `l` sampled at
/// `2^l x` the model spacing. Each level has a pathway of `convs[l]` valid 3x3x3 conv + LeakyReLU
/// layers with `channels[l]` features. From the coarsest level down, the features are upsampled x2
/// by a transposed convolution, centre-cropped and concatenated with the next finer pathway, fused
/// to `channels[l]` by a 1x1x1 conv + LeakyReLU and refined by `merge_convs` valid 3x3x3 convs. A 1x1x1 conv gives the 2 class logits at the finest
/// level.
///
/// There is no normalisation layer and every convolution is valid, so the output at a voxel depends
/// only on the input inside its receptive field: tiled inference equals one full-volume pass
/// exactly (tested), with no seam artefacts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FovealConfig {
    /// Feature channels per level, finest first; its length is the number of levels.
    pub channels: Vec<usize>,
    /// Valid 3x3x3 convolutions in each level's pathway, finest first.
    pub convs: Vec<usize>,
    /// Valid 3x3x3 convolutions after each merge (levels 0..L-1).
    pub merge_convs: usize,
}

/// The 3D U-Net baseline (nnU-Net style): per stage two conv(3x3x3)-InstanceNorm-LeakyReLU blocks,
/// down-sampling by a stride-2 conv, up-sampling by a stride-2 transposed conv, skip concatenation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UNetConfig {
    /// Channels per stage, shallowest first; its length is the number of stages.
    pub channels: Vec<usize>,
}

/// Number of classes (background, node).
pub const NUM_CLASSES: usize = 2;

impl FovealConfig {
    /// Number of resolution levels.
    pub fn levels(&self) -> usize {
        self.channels.len()
    }

    /// Checks the lists are consistent.
    pub fn validate(&self) -> Result<(), NetError> {
        let l = self.channels.len();
        if l == 0 || l > 5 || self.convs.len() != l || self.channels.contains(&0) || self.convs.contains(&0) {
            return Err(NetError::InvalidConfig(format!(
                "foveal net: channels {:?} and convs {:?} must be non-empty lists of the same length \
                 (at most 5 levels) with positive entries",
                self.channels, self.convs
            )));
        }
        Ok(())
    }

    /// Input patch sizes per level (finest first) that produce an output of `out` voxels along one
    /// axis. `out` must be even. Sizes are the smallest even sizes that cover the receptive field,
    /// so patch centres stay on voxel corners of every level.
    pub fn input_sizes(&self, out: usize) -> Vec<usize> {
        let l = self.levels();
        let mut sizes = vec![0; l];
        // Size that the (merged) features of level `lev` must have.
        let mut need = out;
        for lev in 0..l {
            let merged = if lev + 1 < l { self.merge_convs } else { 0 };
            // Level `lev` features before the merge convs (the concatenation size).
            let concat = need + 2 * merged;
            sizes[lev] = concat + 2 * self.convs[lev];
            // The next coarser level must cover `concat` after x2 up-sampling: ceil(concat/2), even.
            need = concat.div_ceil(2).next_multiple_of(2);
        }
        sizes
    }

    /// Required alignment of tile centres, in finest voxels: `2^(L-1)`.
    pub fn alignment(&self) -> usize {
        1 << (self.levels() - 1)
    }
}

impl UNetConfig {
    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), NetError> {
        if self.channels.is_empty() || self.channels.len() > 6 || self.channels.contains(&0) {
            return Err(NetError::InvalidConfig(format!(
                "U-Net: channels {:?} must list 1..=6 positive stage widths",
                self.channels
            )));
        }
        Ok(())
    }

    /// Patch sizes must be multiples of this (one halving per stage below the first).
    pub fn alignment(&self) -> usize {
        1 << (self.channels.len() - 1)
    }
}

impl ArchConfig {
    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), NetError> {
        match self {
            ArchConfig::Foveal(c) => c.validate(),
            ArchConfig::UNet(c) => c.validate(),
        }
    }

    /// Builds the network with fresh weights drawn from the device RNG.
    pub fn init(&self, device: &Device) -> Result<Net, NetError> {
        self.build(device, None)
    }

    /// Builds the network with fresh weights drawn after seeding the device RNG with `seed`: the
    /// same weights for the same seed, whatever other threads initialise meanwhile.
    pub fn init_seeded(&self, device: &Device, seed: u64) -> Result<Net, NetError> {
        self.build(device, Some(seed))
    }

    fn build(&self, device: &Device, seed: Option<u64>) -> Result<Net, NetError> {
        self.validate()?;
        // The backend's RNG is process-wide: seeding and drawing every weight must be one step, or
        // a concurrent initialisation (parallel tests, a library user's threads) takes draws from
        // between them. burn initialises parameters lazily, on first use, so the draws are forced
        // here, under the lock.
        static INIT_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _guard = INIT_RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(seed) = seed {
            device.seed(seed);
        }
        let net = match self {
            ArchConfig::Foveal(c) => Net::Foveal(FovealNet::new(c, device)),
            ArchConfig::UNet(c) => Net::UNet(UNet3d::new(c, device)),
        };
        net.visit(&mut Materialise);
        Ok(net)
    }

    /// Number of input levels the network takes.
    pub fn levels(&self) -> usize {
        match self {
            ArchConfig::Foveal(c) => c.levels(),
            ArchConfig::UNet(_) => 1,
        }
    }

    /// Input patch size per level (one axis) for an output of `out` voxels.
    pub fn input_sizes(&self, out: usize) -> Vec<usize> {
        match self {
            ArchConfig::Foveal(c) => c.input_sizes(out),
            ArchConfig::UNet(_) => vec![out],
        }
    }

    /// Output sizes and tile corners must be multiples of this.
    pub fn alignment(&self) -> usize {
        match self {
            ArchConfig::Foveal(c) => c.alignment(),
            ArchConfig::UNet(c) => c.alignment(),
        }
    }

    /// True when tiles can be stitched exactly (valid convolutions, no normalisation over the
    /// patch), so overlapping tiles are not needed.
    pub fn is_translation_exact(&self) -> bool {
        matches!(self, ArchConfig::Foveal(_))
    }
}

/// He initialisation (gain sqrt(2) for ReLU-like activations). burn's default (PyTorch's) shrinks
/// the activation variance about 3x per layer, which normalisation layers undo; the foveal net has
/// none, and with the default its output was left to the biases.
fn he_init() -> Initializer {
    Initializer::KaimingNormal { gain: std::f64::consts::SQRT_2, fan_out_only: false }
}

fn conv3(cin: usize, cout: usize, padding: PaddingConfig3d, device: &Device) -> Conv3d {
    Conv3dConfig::new([cin, cout], [3, 3, 3]).with_padding(padding).with_initializer(he_init()).init(device)
}

/// Centre-crops the three spatial axes of `x` `[b, c, z, y, x]` to `size`.
fn centre_crop(x: Tensor<5>, size: [usize; 3]) -> Tensor<5> {
    let [b, c, d, h, w] = x.dims();
    let have = [d, h, w];
    let mut off = [0; 3];
    for a in 0..3 {
        debug_assert!(
            have[a] >= size[a] && (have[a] - size[a]).is_multiple_of(2),
            "crop {have:?} -> {size:?}"
        );
        off[a] = (have[a] - size[a]) / 2;
    }
    x.slice([0..b, 0..c, off[0]..off[0] + size[0], off[1]..off[1] + size[1], off[2]..off[2] + size[2]])
}

fn spatial(x: &Tensor<5>) -> [usize; 3] {
    let [_, _, d, h, w] = x.dims();
    [d, h, w]
}

/// Draws every lazily initialised weight now.
struct Materialise;

impl burn::module::ModuleVisitor for Materialise {
    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
        let _ = param.base();
    }
}

/// A stack of valid 3x3x3 conv + LeakyReLU layers.
#[derive(Module, Debug)]
pub struct ConvStack {
    convs: Vec<Conv3d>,
}

impl ConvStack {
    fn new(cin: usize, cout: usize, n: usize, device: &Device) -> Self {
        let convs = (0..n)
            .map(|i| conv3(if i == 0 { cin } else { cout }, cout, PaddingConfig3d::Valid, device))
            .collect();
        ConvStack { convs }
    }

    fn forward(&self, mut x: Tensor<5>) -> Tensor<5> {
        for c in &self.convs {
            x = conv3_leaky(c, x);
        }
        x
    }
}

/// A valid 3x3x3 convolution (stride 1, as every one of a [`ConvStack`] is) and LeakyReLU: on the
/// CPU outside training the hand-written kernel ([`crate::cpu_conv`], 2-20x faster than burn's
/// there), burn's otherwise (a GPU, or gradients flowing through the layer).
fn conv3_leaky(c: &Conv3d, x: Tensor<5>) -> Tensor<5> {
    let w = c.weight.val();
    let co = w.dims()[0];
    let Some((input, weight, bias)) = cpu_kernel_inputs(&x, w, c.bias.as_ref().map(|b| b.val()), co) else {
        return leaky_relu(c.forward(x), LEAKY_SLOPE);
    };
    let [b, ci, d, h, wd] = x.dims();
    let shape = crate::cpu_conv::Shape4 { c: ci, d, h, w: wd };
    let (n_in, n_out) = (ci * d * h * wd, co * (d - 2) * (h - 2) * (wd - 2));
    let mut out = vec![0.0f32; b * n_out];
    for (sample, o) in input.chunks(n_in).zip(out.chunks_mut(n_out)) {
        crate::cpu_conv::conv3x3x3_valid(
            sample,
            shape,
            &weight,
            co,
            Some(&bias),
            Some(LEAKY_SLOPE as f32),
            o,
        );
    }
    Tensor::from_data(TensorData::new(out, [b, co, d - 2, h - 2, wd - 2]), &x.device())
}

/// The input, weights and bias as f32 values when the hand-written CPU kernel applies: the CPU,
/// no gradient flowing, f32 tensors. `None` sends the layer through burn.
fn cpu_kernel_inputs(
    x: &Tensor<5>,
    w: Tensor<5>,
    bias: Option<Tensor<1>>,
    c_out: usize,
) -> Option<(Vec<f32>, Vec<f32>, Vec<f32>)> {
    if crate::selected_compute() != crate::Compute::Cpu || w.is_require_grad() || x.is_require_grad() {
        return None;
    }
    let values = |t: Tensor<1>| t.into_data().try_to_vec::<f32>().ok();
    let bias = match bias {
        Some(b) => values(b)?,
        None => vec![0.0; c_out],
    };
    Some((values(x.clone().flatten(0, 4))?, values(w.flatten(0, 4))?, bias))
}

/// The foveal net (see [`FovealConfig`]).
#[derive(Module, Debug)]
pub struct FovealNet {
    /// One pathway per level, finest first.
    pathways: Vec<ConvStack>,
    /// `ups[l]` brings merged level `l + 1` features to level `l` (x2, kernel 2, stride 2).
    ups: Vec<ConvTranspose3d>,
    /// `fuses[l]` (1x1x1) and `merges[l]` run after concatenating level `l` with the up-sampled
    /// coarser features.
    fuses: Vec<Conv3d>,
    merges: Vec<ConvStack>,
    head: Conv3d,
}

impl FovealNet {
    fn new(c: &FovealConfig, device: &Device) -> Self {
        let l = c.levels();
        let pathways = (0..l).map(|i| ConvStack::new(1, c.channels[i], c.convs[i], device)).collect();
        let mut ups = Vec::new();
        let mut fuses = Vec::new();
        let mut merges = Vec::new();
        for i in 0..l - 1 {
            // Merged width of level i + 1 is its channel count.
            let cin = c.channels[i + 1];
            ups.push(
                ConvTranspose3dConfig::new([cin, cin], [2, 2, 2])
                    .with_stride([2, 2, 2])
                    .with_initializer(he_init())
                    .init(device),
            );
            fuses.push(
                Conv3dConfig::new([c.channels[i] + cin, c.channels[i]], [1, 1, 1])
                    .with_initializer(he_init())
                    .init(device),
            );
            merges.push(ConvStack::new(c.channels[i], c.channels[i], c.merge_convs, device));
        }
        let head = Conv3dConfig::new([c.channels[0], NUM_CLASSES], [1, 1, 1]).init(device);
        FovealNet { pathways, ups, fuses, merges, head }
    }

    /// `inputs[l]`: `[b, 1, s_l, s_l, s_l]` (any per-axis sizes from
    /// [`FovealConfig::input_sizes`]). Returns logits `[b, 2, out_z, out_y, out_x]`.
    fn forward(&self, inputs: Vec<Tensor<5>>) -> Tensor<5> {
        let l = self.pathways.len();
        let mut feats: Vec<Tensor<5>> =
            inputs.into_iter().zip(&self.pathways).map(|(x, p)| p.forward(x)).collect();
        let mut coarse = feats.pop().expect("at least one level");
        for lev in (0..l - 1).rev() {
            let fine = feats.pop().expect("one feature map per level");
            let up = self.ups[lev].forward(coarse); // [b, c_{lev+1}, 2s, 2s, 2s]
            let up = centre_crop(up, spatial(&fine));
            let fused = leaky_relu(self.fuses[lev].forward(Tensor::cat(vec![fine, up], 1)), LEAKY_SLOPE);
            coarse = self.merges[lev].forward(fused);
        }
        self.head.forward(coarse)
    }
}

/// conv-InstanceNorm-LeakyReLU.
#[derive(Module, Debug)]
pub struct ConvNormAct {
    conv: Conv3d,
    norm: InstanceNorm,
}

impl ConvNormAct {
    fn new(cin: usize, cout: usize, stride: usize, device: &Device) -> Self {
        let conv = Conv3dConfig::new([cin, cout], [3, 3, 3])
            .with_stride([stride; 3])
            .with_padding(PaddingConfig3d::Explicit(1, 1, 1))
            .init(device);
        ConvNormAct { conv, norm: InstanceNormConfig::new(cout).init(device) }
    }

    fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        leaky_relu(self.norm.forward(self.conv.forward(x)), LEAKY_SLOPE)
    }
}

/// The U-Net baseline (see [`UNetConfig`]).
#[derive(Module, Debug)]
pub struct UNet3d {
    /// Stage `s`: block 1 (stride 2 for s > 0, the down-sampling) and block 2.
    encoder: Vec<(ConvNormAct, ConvNormAct)>,
    ups: Vec<ConvTranspose3d>,
    decoder: Vec<(ConvNormAct, ConvNormAct)>,
    head: Conv3d,
}

impl UNet3d {
    fn new(c: &UNetConfig, device: &Device) -> Self {
        let ch = &c.channels;
        let encoder = (0..ch.len())
            .map(|s| {
                let cin = if s == 0 { 1 } else { ch[s - 1] };
                let stride = if s == 0 { 1 } else { 2 };
                (ConvNormAct::new(cin, ch[s], stride, device), ConvNormAct::new(ch[s], ch[s], 1, device))
            })
            .collect();
        let mut ups = Vec::new();
        let mut decoder = Vec::new();
        for s in 0..ch.len() - 1 {
            ups.push(
                ConvTranspose3dConfig::new([ch[s + 1], ch[s]], [2, 2, 2]).with_stride([2, 2, 2]).init(device),
            );
            decoder.push((
                ConvNormAct::new(2 * ch[s], ch[s], 1, device),
                ConvNormAct::new(ch[s], ch[s], 1, device),
            ));
        }
        let head = Conv3dConfig::new([ch[0], NUM_CLASSES], [1, 1, 1]).init(device);
        UNet3d { encoder, ups, decoder, head }
    }

    /// `x`: `[b, 1, d, h, w]` with every size a multiple of the alignment; logits `[b, 2, d, h, w]`.
    fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        let mut skips = Vec::new();
        let mut x = x;
        for (a, b) in &self.encoder {
            x = b.forward(a.forward(x));
            skips.push(x.clone());
        }
        let mut x = skips.pop().expect("one stage");
        for s in (0..self.ups.len()).rev() {
            let up = self.ups[s].forward(x);
            let skip = skips.pop().expect("skip per stage");
            let (a, b) = &self.decoder[s];
            x = b.forward(a.forward(Tensor::cat(vec![skip, up], 1)));
        }
        self.head.forward(x)
    }
}

/// Either network. Inputs are one tensor per level (see [`ArchConfig::input_sizes`]).
#[derive(Module, Debug)]
pub enum Net {
    Foveal(FovealNet),
    UNet(UNet3d),
}

impl Net {
    /// Logits `[b, 2, z, y, x]` for per-level inputs `[b, 1, ...]`.
    pub fn forward(&self, inputs: Vec<Tensor<5>>) -> Tensor<5> {
        match self {
            Net::Foveal(n) => n.forward(inputs),
            Net::UNet(n) => n.forward(inputs.into_iter().next().expect("one input level")),
        }
    }
}

/// The weighted average of networks of one architecture, parameter by parameter (weights are
/// normalised to sum to 1): a "model soup". Networks fine-tuned one from another at a small
/// learning rate sit in one basin of the loss, so their average is itself a working network that
/// often generalises better than either end point; networks trained apart do not average.
///
/// # Errors
/// [`NetError::InvalidConfig`] when there are no networks, the weights do not match them or are not
/// positive, or the networks' parameters differ in number or shape.
pub fn average_nets(nets: &[&Net], weights: &[f64]) -> Result<Net, NetError> {
    use burn::module::{ModuleMapper, ModuleVisitor, Param};
    use burn::tensor::TensorData;

    /// Every float parameter's values, in visiting order.
    struct Collect(Vec<TensorData>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.push(param.val().into_data());
        }
    }
    /// Replaces each float parameter by its weighted average with the collected ones.
    struct Mix<'a> {
        others: Vec<std::vec::IntoIter<TensorData>>,
        weights: &'a [f64],
    }
    impl ModuleMapper for Mix<'_> {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let others: Vec<TensorData> =
                self.others.iter_mut().map(|it| it.next().expect("same parameter count")).collect();
            let weights = self.weights;
            param.map(|t| {
                let device = t.device();
                others.into_iter().zip(&weights[1..]).fold(t.mul_scalar(weights[0]), |acc, (d, &w)| {
                    acc.add(Tensor::<D>::from_data(d, &device).mul_scalar(w))
                })
            })
        }
    }

    let bad = |reason: String| NetError::InvalidConfig(format!("averaging networks: {reason}"));
    if nets.is_empty() || nets.len() != weights.len() {
        return Err(bad(format!("{} networks, {} weights", nets.len(), weights.len())));
    }
    if weights.iter().any(|w| !(w.is_finite() && *w > 0.0)) {
        return Err(bad(format!("weights must be positive, got {weights:?}")));
    }
    let total: f64 = weights.iter().sum();
    let weights: Vec<f64> = weights.iter().map(|w| w / total).collect();
    let collected: Vec<Vec<TensorData>> = nets
        .iter()
        .map(|n| {
            let mut c = Collect(Vec::new());
            n.visit(&mut c);
            c.0
        })
        .collect();
    for (i, c) in collected.iter().enumerate().skip(1) {
        let same =
            c.len() == collected[0].len() && c.iter().zip(&collected[0]).all(|(a, b)| a.shape() == b.shape());
        if !same {
            return Err(bad(format!("network {} differs in its parameters from the first", i + 1)));
        }
    }
    let mut mix =
        Mix { others: collected.into_iter().skip(1).map(Vec::into_iter).collect(), weights: &weights };
    Ok((*nets[0]).clone().map(&mut mix))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every weight is drawn inside `init` (burn would otherwise draw lazily, at first use).
    #[test]
    fn the_cpu_kernel_layer_equals_burns_within_1e_5() {
        let device = crate::device();
        for (ci, co, n, b) in [(1, 8, 9, 1), (8, 16, 12, 2), (24, 24, 7, 1), (3, 5, 20, 1)] {
            let conv = conv3(ci, co, PaddingConfig3d::Valid, &device);
            let x = Tensor::<5>::random(
                [b, ci, n, n + 1, n + 19],
                burn::tensor::Distribution::Normal(0.0, 1.0),
                &device,
            );
            let want =
                leaky_relu(conv.forward(x.clone()), LEAKY_SLOPE).into_data().try_to_vec::<f32>().unwrap();
            let got = conv3_leaky(&conv, x).into_data().try_to_vec::<f32>().unwrap();
            assert_eq!(got.len(), want.len());
            let worst =
                got.iter().zip(&want).map(|(g, w)| (g - w).abs() / (1.0 + w.abs())).fold(0.0f32, f32::max);
            assert!(worst <= 1e-5, "{ci}->{co} at {n}: {worst}");
        }
    }

    #[test]
    fn init_draws_every_weight() {
        struct Lazy(usize);
        impl burn::module::ModuleVisitor for Lazy {
            fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
                self.0 += usize::from(!param.is_initialized());
            }
        }
        let mut lazy = Lazy(0);
        let arch = crate::ModelConfig::default_foveal().arch;
        arch.init_seeded(&crate::device(), 1).unwrap().visit(&mut lazy);
        assert_eq!(lazy.0, 0);
    }

    fn foveal() -> FovealConfig {
        FovealConfig { channels: vec![4, 6, 8], convs: vec![2, 2, 3], merge_convs: 1 }
    }

    #[test]
    fn foveal_input_sizes_by_hand() {
        // out 8: level 0 concat 8 + 2 = 10, input 10 + 4 = 14; level 1 needs ceil(10/2) = 5 -> 6,
        // concat 8, input 12; level 2 needs ceil(8/2) = 4, no merge, input 4 + 6 = 10.
        assert_eq!(foveal().input_sizes(8), vec![14, 12, 10]);
    }

    #[test]
    fn output_shapes() {
        let device = Device::flex();
        let arch = ArchConfig::Foveal(foveal());
        let net = arch.init(&device).unwrap();
        let sizes = arch.input_sizes(8);
        let inputs = sizes.iter().map(|&s| Tensor::<5>::zeros([2, 1, s, s, s], &device)).collect();
        assert_eq!(net.forward(inputs).dims(), [2, 2, 8, 8, 8]);
        // Anisotropic sizes work per axis.
        let sz = arch.input_sizes(4);
        let inputs =
            sizes.iter().zip(&sz).map(|(&s, &t)| Tensor::<5>::zeros([1, 1, t, s, s], &device)).collect();
        assert_eq!(net.forward(inputs).dims(), [1, 2, 4, 8, 8]);

        let unet = ArchConfig::UNet(UNetConfig { channels: vec![4, 8, 16] });
        let net = unet.init(&device).unwrap();
        let x = Tensor::<5>::zeros([1, 1, 16, 8, 12], &device);
        assert_eq!(net.forward(vec![x]).dims(), [1, 2, 16, 8, 12]);
    }

    #[test]
    fn bad_configs_are_rejected() {
        let bad = ArchConfig::Foveal(FovealConfig { channels: vec![4, 4], convs: vec![1], merge_convs: 1 });
        assert!(matches!(bad.validate(), Err(NetError::InvalidConfig(_))));
        assert!(ArchConfig::UNet(UNetConfig { channels: vec![] }).validate().is_err());
    }

    /// Every float parameter's values, flattened, in visiting order.
    fn params(net: &Net) -> Vec<Vec<f32>> {
        struct Flat(Vec<Vec<f32>>);
        impl burn::module::ModuleVisitor for Flat {
            fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
                self.0.push(param.val().into_data().try_to_vec::<f32>().unwrap());
            }
        }
        let mut f = Flat(Vec::new());
        net.visit(&mut f);
        f.0
    }

    #[test]
    fn average_is_the_weighted_mean_of_each_parameter() {
        let device = Device::flex();
        let arch = ArchConfig::Foveal(foveal());
        let (a, b) = (arch.init_seeded(&device, 1).unwrap(), arch.init_seeded(&device, 2).unwrap());
        let soup = average_nets(&[&a, &b], &[1.0, 3.0]).unwrap();
        let (pa, pb, ps) = (params(&a), params(&b), params(&soup));
        assert_eq!(ps.len(), pa.len());
        let mut n = 0;
        for ((xa, xb), xs) in pa.iter().zip(&pb).zip(&ps) {
            for ((&va, &vb), &vs) in xa.iter().zip(xb).zip(xs) {
                assert!((vs - (0.25 * va + 0.75 * vb)).abs() <= 1e-6 * (1.0 + va.abs() + vb.abs()));
                n += 1;
            }
        }
        assert!(n > 1000 && pa != pb);
        // A network averaged with itself is itself; the inputs are left as they were.
        let same = average_nets(&[&a, &a, &a], &[0.2, 0.3, 0.5]).unwrap();
        for (x, y) in params(&same).iter().zip(&pa) {
            assert!(x.iter().zip(y).all(|(u, v)| (u - v).abs() <= 1e-6 * (1.0 + v.abs())));
        }
        assert_eq!(params(&a), pa);
    }

    #[test]
    fn average_refuses_mismatched_input() {
        let device = Device::flex();
        let a = ArchConfig::Foveal(foveal()).init_seeded(&device, 1).unwrap();
        let other = FovealConfig { channels: vec![4, 6, 10], ..foveal() };
        let b = ArchConfig::Foveal(other).init_seeded(&device, 1).unwrap();
        let err = |r: Result<Net, NetError>| match r {
            Err(NetError::InvalidConfig(m)) => m,
            _ => panic!("expected an InvalidConfig error"),
        };
        assert!(err(average_nets(&[&a, &b], &[1.0, 1.0])).contains("network 2 differs"));
        assert!(err(average_nets(&[], &[])).contains("0 networks"));
        assert!(err(average_nets(&[&a, &a], &[1.0])).contains("2 networks, 1 weights"));
        assert!(err(average_nets(&[&a, &a], &[1.0, 0.0])).contains("positive"));
        assert!(err(average_nets(&[&a, &a], &[1.0, f64::NAN])).contains("positive"));
    }
}
