//! `nodal` — finds, segments and measures lymph nodes in head-and-neck CT.
//!
//! Exit codes: 0 success; 1 an internal failure; 2 bad input (unreadable or invalid file, wrong
//! arguments, an output folder that is a file, read-only or in use by another run) — the message
//! names the file and the problem; 3 some cases of a cohort failed (the others were done; the
//! summary names them); 130 interrupted (SIGINT/SIGTERM; unfinished outputs removed).
use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod commands;
mod report_input;

#[derive(Parser)]
#[command(name = "nodal", version, about = "Finds, segments and measures lymph nodes in head-and-neck CT")]
struct Cli {
    #[command(flatten)]
    global: commands::GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print size, spacing, orientation, HU range and the series found in a CT (NIfTI or DICOM).
    Info(commands::info::Args),
    /// Generate one simulated neck CT with ground-truth lymph nodes (or insert nodes into a real CT).
    Phantom(commands::phantom::Args),
    /// Write an nnU-Net raw dataset of simulated cases.
    Dataset(commands::dataset::Args),
    /// Score predictions against ground-truth nodes with the evaluation protocol (JSON, CSV, Table 1, figures).
    Evaluate(commands::evaluate::Args),
    /// Segment lymph nodes in a CT (NIfTI or DICOM) with the CNN: instance labels, mask, node table.
    Segment(commands::segment::Args),
    /// Train the segmentation network on an nnU-Net raw-layout dataset.
    Train(commands::train::Args),
    /// Write the false-positive components of a model on a training dataset (negativesTr/), which
    /// `nodal train` oversamples as hard negatives.
    HardNegatives(commands::hard_negatives::Args),
    /// Fit a component filter to a model's components on annotated datasets, choose its cut-off
    /// on selection datasets, and write the model with the filter to a new folder.
    TrainFilter(commands::train_filter::Args),
    /// Measure every node of an instance label map or mask (RECIST axes, volume, HU): JSON, CSV, labels.
    Measure(commands::measure::Args),
    /// Generate a phantom CT, segment it with the shipped model, score it against its ground truth
    /// and write the HTML report.
    Demo(commands::demo::Args),
    /// Check, correct and annotate nodes in the browser (saved in the case folders); export the
    /// reviewed cases as a training dataset.
    Review(commands::review::Args),
    /// Score a model with the evaluation protocol on annotated cases (recall, FP/scan, Dice, ...).
    Validate(commands::validate::Args),
    /// Choose a model's operating point, filter cut-offs or mask drawing on annotated cases.
    #[command(subcommand)]
    Tune(commands::tune::Command),
    /// Make a model folder: average models, or export a training run's checkpoint.
    #[command(subcommand)]
    Model(commands::model::Command),
}

fn run(cli: Cli) -> anyhow::Result<()> {
    cli.global.apply()?;
    match cli.command {
        Command::Info(args) => commands::info::run(args),
        Command::Phantom(args) => commands::phantom::run(args),
        Command::Dataset(args) => commands::dataset::run(args),
        Command::Evaluate(args) => commands::evaluate::run(args),
        Command::Segment(args) => commands::segment::run(args),
        Command::Train(args) => commands::train::run(args),
        Command::HardNegatives(args) => commands::hard_negatives::run(args),
        Command::TrainFilter(args) => commands::train_filter::run(args),
        Command::Measure(args) => commands::measure::run(args),
        Command::Demo(args) => commands::demo::run(args),
        Command::Review(args) => commands::review::run(args),
        Command::Validate(args) => commands::validate::run(args),
        Command::Tune(command) => commands::tune::run(command),
        Command::Model(command) => commands::model::run(command),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Interrupted (Ctrl-C, SIGTERM): nothing half-written may stay behind, so the staging folders
    // and locks of unfinished outputs go before the process exits with 130.
    let _ = ctrlc::set_handler(|| {
        nodal_core::output::abandon_all();
        eprintln!("interrupted: unfinished outputs removed");
        std::process::exit(130);
    });
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(commands::exit_code(&err))
        }
    }
}
