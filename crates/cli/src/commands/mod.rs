//! One module per subcommand; each has `Args` (clap) and `run(args) -> anyhow::Result<()>`.
pub mod cohort;
pub mod dataset;
pub mod demo;
pub mod evaluate;
pub mod hard_negatives;
pub mod info;
pub mod measure;
pub mod model;
pub mod phantom;
pub mod review;
pub mod segment;
pub mod train;
pub mod train_filter;
pub mod tune;
pub mod validate;

/// Options every command takes.
#[derive(clap::Args, Debug)]
pub struct GlobalArgs {
    /// Errors only: no progress bars, notes or warnings.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// More detail on stderr: -v adds timestamps and debug lines, -vv trace lines.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Worker threads for the network, post-processing and I/O (default: one per core).
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
}

/// `--quiet`: progress bars are not drawn.
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl GlobalArgs {
    /// Sets up logging (tracing, on stderr), progress bars and the thread pool for the process.
    pub fn apply(&self) -> anyhow::Result<()> {
        use tracing::Level;
        QUIET.store(self.quiet, std::sync::atomic::Ordering::Relaxed);
        let level = match (self.quiet, self.verbose) {
            (true, _) => Level::ERROR,
            (false, 0) => Level::INFO,
            (false, 1) => Level::DEBUG,
            (false, _) => Level::TRACE,
        };
        let logs = tracing_subscriber::fmt().with_writer(std::io::stderr).with_max_level(level);
        // Plain lines by default ("WARN ..."); timestamps and module paths when asked for detail.
        let set = if self.verbose > 0 {
            logs.try_init()
        } else {
            logs.without_time().with_target(false).try_init()
        };
        set.map_err(|e| anyhow::anyhow!("setting up logging: {e}"))?;
        if let Some(n) = self.threads {
            // burn's CPU backend and every parallel stage run on rayon's global pool.
            rayon::ThreadPoolBuilder::new()
                .num_threads(n as usize)
                .build_global()
                .map_err(|e| anyhow::anyhow!("--threads {n}: {e}"))?;
        }
        Ok(())
    }
}

/// A progress bar of `len` steps drawn with `template` (indicatif syntax); the default style
/// should the template not parse. Hidden with `--quiet`.
pub fn progress_bar(len: u64, template: &str) -> indicatif::ProgressBar {
    if QUIET.load(std::sync::atomic::Ordering::Relaxed) {
        return indicatif::ProgressBar::hidden();
    }
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

/// `--series`, for the commands that read a CT.
#[derive(clap::Args)]
pub struct SeriesArg {
    /// SeriesInstanceUID of the DICOM series to read (as `nodal info FOLDER` lists them). Default:
    /// the only CT series, or among several of one study the axial CT volume with the most slices
    /// (localizers, secondary captures and single slices set aside); the choice is printed and
    /// recorded.
    #[arg(long = "series", value_name = "UID")]
    pub uid: Option<String>,
}

impl SeriesArg {
    /// Reads the CT at `path`, printing the reader's warnings and how the series was chosen.
    pub fn read_ct(&self, path: &std::path::Path) -> anyhow::Result<nodal_io::CtScan> {
        use anyhow::Context;
        let ct = nodal_io::read_ct_choosing(path, self.uid.as_deref())
            .with_context(|| format!("reading CT {}", path.display()))?;
        for w in &ct.warnings {
            tracing::warn!("{w}");
        }
        if let Some(c) = &ct.series_choice {
            tracing::info!(
                "{}: series {} \"{}\" chosen: {} (another: --series UID)",
                path.display(),
                c.series_instance_uid,
                c.series_description.as_deref().unwrap_or(""),
                c.reason
            );
        }
        Ok(ct)
    }
}

/// The model in `--model DIR`, else the default model (`$NODAL_MODEL`, then `models/default`).
pub fn load_model_arg(dir: Option<&std::path::Path>) -> anyhow::Result<nodal_detect::Model> {
    use anyhow::Context;
    nodal_detect::load_model_or_default(dir).context("loading the model")
}

/// 2 when the error is bad input the user can fix, 1 otherwise (an internal or output failure);
/// [`cohort::FAILED_CASES_EXIT`] when cases of a cohort failed (the others were done). Decided by
/// the outermost typed error of the chain (below the binary's own context): each library's error
/// knows whether what it wraps is input.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if err.is::<cohort::FailedCases>() {
        return cohort::FAILED_CASES_EXIT;
    }
    let verdict = err.chain().find_map(|e| {
        if let Some(e) = e.downcast_ref::<nodal_detect::DetectError>() {
            Some(e.is_input())
        } else if let Some(e) = e.downcast_ref::<nodal_net::NetError>() {
            // A failed validation wraps the validator's own error: that one decides.
            (!matches!(e, nodal_net::NetError::Validation { .. })).then(|| e.is_input_error())
        } else if let Some(e) = e.downcast_ref::<nodal_eval::EvalError>() {
            Some(e.is_input())
        } else if let Some(e) = e.downcast_ref::<nodal_nodes::NodesError>() {
            Some(e.is_input())
        } else if let Some(e) = e.downcast_ref::<nodal_io::IoError>() {
            Some(!matches!(e, nodal_io::IoError::Write { .. }))
        } else if let Some(e) = e.downcast_ref::<nodal_core::output::OutputError>() {
            // A bad output folder (a file, read-only, in use) is the user's to fix.
            Some(e.is_input())
        } else if let Some(e) = e.downcast_ref::<nodal_review::ReviewError>() {
            Some(e.is_input())
        } else if e.is::<nodal_report::ReportError>() {
            // Writing the report failed: its inputs came from this run.
            Some(false)
        } else {
            (e.is::<nodal_phantom::PhantomError>() || e.is::<nodal_core::CoreError>()).then_some(true)
        }
    });
    if verdict == Some(true) {
        2
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::exit_code;
    use nodal_detect::DetectError;
    use std::path::PathBuf;

    fn io_open() -> nodal_io::IoError {
        nodal_io::IoError::Open { path: "ct.nii.gz".into(), error: std::io::Error::other("gone") }
    }

    #[test]
    fn the_outermost_typed_error_decides_the_exit_code() {
        // Bad input, however deep and whatever context the binary adds: 2.
        let bad = anyhow::Error::new(DetectError::Volume(io_open()).on_case("case_1")).context("validating");
        assert_eq!(exit_code(&bad), 2);
        // An output that cannot be written wraps an io error, but is not bad input: 1.
        let write = DetectError::Write {
            path: PathBuf::from("out/nodes.json"),
            source: std::io::Error::other("full"),
        };
        assert_eq!(exit_code(&anyhow::Error::new(write.on_case("case_1"))), 1);
        let io_write =
            nodal_io::IoError::Write { path: "out/x.nii.gz".into(), error: std::io::Error::other("full") };
        assert_eq!(exit_code(&anyhow::Error::new(io_write)), 1);
        // A validation during training is decided by the validator's error.
        let during = |source: DetectError| {
            anyhow::Error::new(nodal_net::NetError::Validation { step: 3, source: Box::new(source) })
        };
        assert_eq!(exit_code(&during(DetectError::Volume(io_open()))), 2);
        assert_eq!(
            exit_code(&during(DetectError::Write {
                path: "x".into(),
                source: std::io::Error::other("full")
            })),
            1
        );
        // No typed error at all: an internal failure.
        assert_eq!(exit_code(&anyhow::anyhow!("something broke")), 1);
    }
}
