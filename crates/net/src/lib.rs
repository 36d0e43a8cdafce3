//! The foveal 3D CNN and a U-Net baseline in burn: preprocessing, training and sliding-window
//! inference for cervical lymph-node segmentation in CT. Runs on the pure-Rust `flex` CPU backend,
//! or on a GPU through wgpu in builds with the `gpu` feature ([`compute`]).
//!
//! * [`model`] — [`ArchConfig`] (serialisable) -> [`Net`] (a burn `Module`): the foveal net
//!   ([`FovealConfig`], the default) and a 3D U-Net baseline ([`UNetConfig`]). Tensors are
//!   `[batch, channel, z, y, x]`, the spatial order of [`nodal_core::Volume`] arrays.
//! * [`compute`] — [`Compute`]: where the network runs, chosen once per process.
//! * [`config`] — [`ModelConfig`]: architecture + [`Preprocessing`] + inference defaults, saved as
//!   `config.json` beside `model.safetensors`; [`load_model`] / [`save_model`] / [`default_model`].
//! * [`preprocess`] — reorient, body-mask crop, resample to the model spacing, HU clip + normalise:
//!   CT (`Volume<i16>`) -> [`preprocess::Prepared`] (a `Volume<f32>` on the model grid).
//! * [`patch`] — sampling of multi-level input patches (identity for inference, random affine +
//!   elastic + intensity augmentation for training) from a [`patch::Pyramid`].
//! * [`infer`] — sliding-window inference with Gaussian weighting, optional mirror TTA, and the
//!   probability map mapped back onto the CT grid: [`infer::predict`].
//! * [`train`] — nnU-Net raw-layout datasets, patch sampling with foreground and hard-negative
//!   oversampling, Dice + cross-entropy, AdamW with warm-up + cosine decay, checkpoints with
//!   resume: [`train::train`]. Validation is the caller's ([`train::Validator`]), so that it scores
//!   what `nodal-detect` makes of the probabilities.
//!
//! ```no_run
//! let model = nodal_net::default_model().unwrap();
//! let ct = nodal_io::read_ct("ct.nii.gz").unwrap();
//! let out = nodal_net::infer::predict(&model, &ct.hu, &nodal_net::infer::InferOptions::default(), None).unwrap();
//! println!("{:?}", out.probability.dims());
//! ```
pub mod compute;
pub mod config;
pub mod cpu_conv;
pub mod infer;
pub mod model;
pub mod patch;
pub mod preprocess;
pub mod rng;
pub mod train;

pub use compute::{device, select_compute, selected_compute, Compute};
pub use config::{default_model, load_model, save_model, LoadedModel, ModelConfig};
pub use model::{ArchConfig, FovealConfig, Net, UNetConfig};
pub use preprocess::Preprocessing;

use std::path::PathBuf;
use thiserror::Error;

/// Errors of the network crate. Input problems (bad model folder, unusable CT, bad dataset) are
/// separate variants from internal failures.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum NetError {
    /// A configuration is inconsistent.
    #[error("invalid model configuration: {0}")]
    InvalidConfig(String),
    /// A model folder is missing a file or its config cannot be read.
    #[error("model {path}: {reason}")]
    ModelFolder { path: PathBuf, reason: String },
    /// The weights file does not match the architecture in config.json.
    #[error("model {path}: weights do not match config.json: {reason}")]
    WeightsMismatch { path: PathBuf, reason: String },
    /// The CT cannot be segmented (no body, implausible values, ...).
    #[error("unusable CT: {0}")]
    UnusableInput(String),
    /// A training dataset is missing files or has mismatched images and labels.
    #[error("dataset {path}: {reason}")]
    Dataset { path: PathBuf, reason: String },
    /// A training run folder or checkpoint problem.
    #[error("run {path}: {reason}")]
    Run { path: PathBuf, reason: String },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// A volume could not be read or written.
    #[error(transparent)]
    Volume(#[from] nodal_io::IoError),
    /// Geometry error from the core crate.
    #[error(transparent)]
    Core(#[from] nodal_core::CoreError),
    /// The compute device cannot be used (not in this build, no driver, no GPU).
    #[error("device: {0}")]
    Device(String),
    /// Validating a checkpoint failed (the validator's error, with its own type, is the source).
    #[error("validation at step {step}: {source}")]
    Validation {
        step: usize,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl NetError {
    /// True when the user can fix the problem by changing the input (model folder, CT, dataset,
    /// config): the CLI maps these to exit code 2. A validation failure is decided by its source.
    pub fn is_input_error(&self) -> bool {
        !matches!(self, NetError::Validation { .. })
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        NetError::Io { path: path.into(), source }
    }
}
