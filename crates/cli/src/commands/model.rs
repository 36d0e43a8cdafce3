//! `nodal model`: model folders from other model folders or training runs.
use anyhow::Context;
use nodal_detect::model::unfiltered_version;
use std::path::PathBuf;

/// What to make.
#[derive(clap::Subcommand)]
pub enum Command {
    /// The weighted average of models of one architecture (a "model soup"); config.json is the
    /// first model's, with a version naming the mix. A component filter is not carried over (it
    /// was fitted to another network's output).
    Average(AverageArgs),
    /// A training run's current checkpoint as a model folder (config.json + model.safetensors).
    Export(ExportArgs),
}

#[derive(clap::Args)]
pub struct AverageArgs {
    /// A model and its weight, `WEIGHT:DIR` (repeat for each model; weights are normalised).
    #[arg(long = "model", value_name = "WEIGHT:DIR", required = true, value_parser = parse_weighted)]
    pub models: Vec<(f64, PathBuf)>,
    /// Output model folder.
    #[arg(short = 'o', long = "out")]
    pub out: PathBuf,
}

#[derive(clap::Args)]
pub struct ExportArgs {
    /// Training run folder (written by `nodal train`).
    pub run: PathBuf,
    /// Output model folder.
    #[arg(short = 'o', long = "out")]
    pub out: PathBuf,
}

fn parse_weighted(s: &str) -> Result<(f64, PathBuf), String> {
    let (w, dir) = s.split_once(':').ok_or_else(|| format!("{s:?}: expected WEIGHT:DIR"))?;
    let w: f64 = w.parse().map_err(|_| format!("{s:?}: the weight {w:?} is not a number"))?;
    if !(w.is_finite() && w > 0.0) {
        return Err(format!("{s:?}: the weight must be > 0"));
    }
    Ok((w, PathBuf::from(dir)))
}

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Average(args) => average(args),
        Command::Export(args) => {
            nodal_net::train::export_checkpoint(&args.run, &args.out)
                .with_context(|| format!("exporting {}", args.run.display()))?;
            println!("{} -> {}", args.run.display(), args.out.display());
            Ok(())
        }
    }
}

fn average(args: AverageArgs) -> anyhow::Result<()> {
    let mut weights = Vec::new();
    let mut models = Vec::new();
    for (w, dir) in &args.models {
        weights.push(*w);
        models.push(nodal_net::load_model(dir).with_context(|| format!("loading {}", dir.display()))?);
    }
    for m in &models[1..] {
        if m.config.arch != models[0].config.arch {
            return Err(nodal_net::NetError::ModelFolder {
                path: m.folder.clone(),
                reason: format!(
                    "another architecture than {}: models of one architecture only",
                    models[0].folder.display()
                ),
            }
            .into());
        }
    }
    let nets: Vec<&nodal_net::Net> = models.iter().map(|m| &m.net).collect();
    let net = nodal_net::model::average_nets(&nets, &weights)?;
    let mut config = models[0].config.clone();
    let mix: Vec<String> = weights
        .iter()
        .zip(&models)
        .map(|(w, m)| format!("{w}*{}", unfiltered_version(&m.config.version)))
        .collect();
    config.version = format!("soup({})", mix.join(" + "));
    nodal_net::save_model(&net, &config, &args.out)
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!("{}: {}", args.out.display(), config.version);
    Ok(())
}
