//! One module per subcommand; each has `Args` (clap) and `run(args) -> anyhow::Result<()>`.
pub mod dataset;
pub mod demo;
pub mod evaluate;
pub mod hard_negatives;
pub mod info;
pub mod measure;
pub mod phantom;
pub mod segment;
pub mod train;
pub mod train_filter;

/// A progress bar of `len` steps drawn with `template` (indicatif syntax); the default style
/// should the template not parse.
pub fn progress_bar(len: u64, template: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// `--device`, for the commands that run the network.
#[derive(clap::Args)]
pub struct DeviceArg {
    /// Where the network runs: `cpu` (default), or `gpu` (builds with `--features gpu`).
    #[arg(long = "device", value_name = "DEVICE", default_value = "cpu", env = "NODAL_DEVICE")]
    pub name: String,
}

impl DeviceArg {
    /// Puts the network on this device for the rest of the process.
    pub fn select(&self) -> anyhow::Result<()> {
        nodal_net::select_compute(nodal_net::Compute::parse(&self.name)?)?;
        Ok(())
    }
}

/// The network behind the record of a command that resumes (`hard-negatives`, `train-filter`):
/// work recorded by another network is done again.
#[derive(serde::Serialize, serde::Deserialize, PartialEq)]
pub struct ModelIdentity {
    pub model_id: String,
    pub model_version: String,
    /// SHA-256 of the weights file, lower-case hex.
    pub model_sha256: String,
    /// Voxel threshold of the model's mask.
    pub threshold: f32,
}

impl ModelIdentity {
    /// The identity of `model` (reads its weights file to hash it).
    pub fn of(model: &nodal_net::LoadedModel) -> anyhow::Result<Self> {
        use anyhow::Context;
        use sha2::{Digest, Sha256};
        let path = model.folder.join(nodal_net::config::WEIGHTS_FILE);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        Ok(ModelIdentity {
            model_id: model.config.model_id.clone(),
            model_version: model.config.version.clone(),
            model_sha256: Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect(),
            threshold: model.config.threshold,
        })
    }
}

/// 2 when the error chain holds a typed input error from one of the library crates (the user can
/// fix the input), 1 otherwise.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    let input = err.chain().any(|e| {
        e.is::<nodal_io::IoError>()
            || e.is::<nodal_phantom::PhantomError>()
            || e.is::<nodal_core::CoreError>()
            || e.downcast_ref::<nodal_net::NetError>().is_some_and(|e| e.is_input_error())
            || e.downcast_ref::<nodal_eval::EvalError>().is_some_and(|e| e.is_input())
            || e.downcast_ref::<nodal_nodes::NodesError>().is_some_and(|e| e.is_input())
    });
    if input {
        2
    } else {
        1
    }
}
