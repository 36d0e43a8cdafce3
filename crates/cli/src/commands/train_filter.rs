//! `nodal train-filter`: fits a component filter (`nodal_detect::filter`) to a model's components
//! on annotated datasets, chooses its peak and filter cut-offs on selection datasets by the
//! trainer's selection rule (`nodal_detect::fit::tune_filter`; by default only among the cut-offs
//! that lose none of the large nodes the model alone finds there), and writes the model with its
//! filter to a new folder: `config.json` (the chosen peak cut-off), `model.safetensors` (copied),
//! `component_filter.json` (trees, cut-off and the selection table) and `filter_samples.json` (every
//! training component with its features). The samples record carries the SHA-256 of the weights
//! and is rewritten after every case: an interrupted run started again with the same model and
//! output folder continues where it stopped.
use anyhow::Context;
use nodal_detect::filter::{BoostConfig, Feature};
use nodal_detect::fit::{train_filter, FitOptions};
use nodal_detect::select::LargeNodes;
use nodal_eval::ValMetrics;
use nodal_net::infer::InferOptions;
use std::path::PathBuf;

/// Arguments of `nodal train-filter`.
#[derive(clap::Args)]
pub struct Args {
    /// Annotated dataset (imagesTr/, labelsTr/) whose components train the filter (repeatable).
    /// Cases the network never trained on show its false positives as they are on new scans.
    #[arg(long, required = true)]
    pub data: Vec<PathBuf>,
    /// Annotated dataset on which the cut-offs are chosen (repeatable); not used for fitting.
    #[arg(long, required = true)]
    pub select: Vec<PathBuf>,
    /// Model folder (default: as `nodal segment`); a filter it already has is not used.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Output model folder (created; must not be the input model's folder).
    #[arg(short, long)]
    pub out: PathBuf,
    /// Components with at least this short axis (mm) are never dropped by the filter, so that no
    /// bulky or necrotic metastasis is filtered away (10 is the size at which a cervical node
    /// counts as enlarged); 0, the default, filters components of every size.
    #[arg(long, default_value_t = 0.0)]
    pub keep_short_axis_mm: f64,
    /// Which cut-offs may be chosen, as to the selection cases' nodes with SAD >= 15 mm:
    /// `no-loss`, only those that find as many of them as the model alone (its own peak cut-off, no
    /// filter); `any`, every cut-off.
    #[arg(long, value_enum, default_value_t = LargeNodesArg::NoLoss)]
    pub large_nodes: LargeNodesArg,
    /// Instead of `--large-nodes`: only cut-offs that find at least this fraction of the
    /// selection cases' nodes with SAD >= 15 mm (e.g. as many as another model finds there, when
    /// the model alone is not the reference).
    #[arg(long, conflicts_with = "large_nodes")]
    pub min_large_recall: Option<f64>,
    /// Weight in the fit of a training component that touches a node and has a short axis of at
    /// least 15 mm (every other component weighs 1). Large and necrotic nodes are rare among the
    /// components and look like the bulky false positives by volume and mean HU; a weight above 1
    /// makes missing one cost the fit more than keeping a false one, as it costs a reader.
    #[arg(long, default_value_t = 1.0)]
    pub large_node_weight: f64,
    /// The features the filter uses, comma-separated (default: the component's own, without the
    /// context features `shell_fat_fraction` and `shell_mean_hu`; the samples record every feature
    /// either way, so a run with other features resumes from the same samples).
    #[arg(long, value_delimiter = ',', value_name = "NAME,...", value_parser = parse_feature)]
    pub features: Vec<Feature>,
    /// Number of boosted trees.
    #[arg(long, default_value_t = BoostConfig::default().n_trees as u64, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub trees: u64,
    /// Depth of each tree (1 = stumps; deeper trees combine more features per split path).
    #[arg(long, default_value_t = BoostConfig::default().max_depth as u64, value_parser = clap::value_parser!(u64).range(1..=12))]
    pub max_depth: u64,
    #[command(flatten)]
    pub device: super::DeviceArg,
}

/// `--large-nodes`: [`LargeNodes`] on the command line.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum LargeNodesArg {
    NoLoss,
    Any,
}

impl From<LargeNodesArg> for LargeNodes {
    fn from(a: LargeNodesArg) -> Self {
        match a {
            LargeNodesArg::NoLoss => LargeNodes::NoLoss,
            LargeNodesArg::Any => LargeNodes::Any,
        }
    }
}

/// A feature name of `--features`.
fn parse_feature(name: &str) -> Result<Feature, String> {
    name.parse::<Feature>().map_err(|_| {
        let known: Vec<&str> = Feature::ALL.iter().map(|f| f.name()).collect();
        format!("unknown feature {name:?} (known: {})", known.join(", "))
    })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    args.device.select()?;
    anyhow::ensure!(
        args.keep_short_axis_mm.is_finite() && args.keep_short_axis_mm >= 0.0,
        "--keep-short-axis-mm {}: must be a number of mm >= 0",
        args.keep_short_axis_mm
    );
    if let Some(r) = args.min_large_recall {
        anyhow::ensure!((0.0..=1.0).contains(&r), "--min-large-recall {r}: must be a fraction in [0, 1]");
    }
    anyhow::ensure!(
        args.large_node_weight.is_finite() && args.large_node_weight > 0.0,
        "--large-node-weight {}: must be a number > 0",
        args.large_node_weight
    );
    for (i, f) in args.features.iter().enumerate() {
        anyhow::ensure!(!args.features[..i].contains(f), "--features: {} is named twice", f.name());
    }
    let mut model = super::load_model_arg(args.model.as_deref())?;
    if model.filter.take().is_some() {
        println!("the model's own component filter is not used: the new one replaces it");
    }
    let rule = args.min_large_recall.map_or(LargeNodes::from(args.large_nodes), LargeNodes::AtLeast);
    let opts = FitOptions {
        data: args.data.clone(),
        select: args.select.clone(),
        out: args.out.clone(),
        keep_short_axis_mm: (args.keep_short_axis_mm > 0.0).then_some(args.keep_short_axis_mm),
        rule,
        large_node_weight: args.large_node_weight,
        features: (!args.features.is_empty()).then(|| args.features.clone()),
        boost: BoostConfig {
            n_trees: args.trees as usize,
            max_depth: args.max_depth as usize,
            ..BoostConfig::default()
        },
        opts: InferOptions::default(),
    };
    let bar =
        super::progress_bar(0, "{elapsed_precise} [{bar:40}] training case {pos}/{len} {msg} (eta {eta})");
    let fitted = train_filter(&model, &opts, Some(&bar), &mut |notice| println!("{notice}"))
        .with_context(|| format!("fitting a filter into {}", args.out.display()))?;
    bar.finish_and_clear();
    let kept = if fitted.n_cases_kept > 0 {
        format!(" ({} from the earlier run)", fitted.n_cases_kept)
    } else {
        String::new()
    };
    println!(
        "{} training cases{kept}: {} components >= 4.5 mm, {} touching a node",
        fitted.n_cases, fitted.n_components, fitted.n_nodes
    );
    if args.large_node_weight != 1.0 {
        println!("{} of them >= 15 mm weigh {} in the fit", fitted.n_large, args.large_node_weight);
    }
    println!("cut-offs chosen on {} selection cases", fitted.n_select);
    let summary = |m: &ValMetrics| {
        format!(
            "recall {:.3}, FP/scan {:.2}, Dice {}, recall SAD >= 15 mm {}, selection score {:.3}",
            m.recall,
            m.fp_per_scan,
            m.dice.map_or("-".into(), |d| format!("{d:.3}")),
            m.recall_sad_ge_15mm.map_or("-".into(), |r| format!("{r:.3}")),
            m.score
        )
    };
    let (point, metrics) = &fitted.chosen;
    println!("the model alone on the selection cases: {}", summary(&fitted.model_alone));
    println!(
        "chosen ({}): peak cut-off {:?}, filter cut-off {}: {} -> {}",
        match rule {
            LargeNodes::NoLoss => "--large-nodes no-loss".to_string(),
            LargeNodes::Any => "--large-nodes any".to_string(),
            LargeNodes::AtLeast(r) => format!("--min-large-recall {r}"),
        },
        point.min_peak,
        point.min_score,
        summary(metrics),
        args.out.display()
    );
    Ok(())
}
