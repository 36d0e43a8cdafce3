//! `nodal train-filter`: fits a component filter (`nodal_nodes::filter`) to a model's components
//! on annotated datasets, chooses its peak and filter cut-offs on selection datasets by the
//! trainer's selection rule (`nodal_net::filter::tune_filter`; by default only among the cut-offs
//! that lose none of the large nodes the model alone finds there), and writes the model with its
//! filter to a new folder: `config.json` (the chosen peak cut-off), `model.safetensors` (copied),
//! `component_filter.json` (trees, cut-off and the selection table) and `filter_samples.json` (every
//! training component with its features). The samples record carries the SHA-256 of the weights
//! and is rewritten after every case: an interrupted run started again with the same model and
//! output folder continues where it stopped.
use anyhow::Context;
use nodal_net::config::{
    unfiltered_version, write_atomic, CONFIG_FILE, FILTERED_VERSION_SUFFIX, FILTER_FILE, WEIGHTS_FILE,
};
use nodal_net::filter::{case_samples, tune_filter, LargeNodes, Sample};
use nodal_net::infer::InferOptions;
use nodal_net::train::{list_cases, load_val_cases, SelectionTargets};
use nodal_nodes::filter::{feature_columns, BoostConfig, ComponentFilter, FEATURE_NAMES};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;

use super::ModelIdentity;
use crate::pipeline::load_model_arg;

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
    #[arg(long, value_delimiter = ',', value_name = "NAME,...")]
    pub features: Vec<String>,
    /// Number of boosted trees.
    #[arg(long, default_value_t = BoostConfig::default().n_trees as u64, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub trees: u64,
    /// Depth of each tree (1 = stumps; deeper trees combine more features per split path).
    #[arg(long, default_value_t = BoostConfig::default().max_depth as u64, value_parser = clap::value_parser!(u64).range(1..=12))]
    pub max_depth: u64,
    #[command(flatten)]
    pub device: super::DeviceArg,
}

/// Short axis from which a node component takes `--large-node-weight`, mm (the size the selection
/// rule's large nodes have).
const LARGE_NODE_MM: f64 = 15.0;

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

#[derive(Serialize, Deserialize)]
struct SamplesRecord {
    schema: String,
    #[serde(flatten)]
    producer: ModelIdentity,
    features: Vec<String>,
    cases: Vec<CaseSamples>,
}

#[derive(Serialize, Deserialize)]
struct CaseSamples {
    dataset: String,
    case: String,
    samples: Vec<Sample>,
}

const SCHEMA: &str = "nodal.filter_samples/1";
const SAMPLES_FILE: &str = "filter_samples.json";

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
    let features = (!args.features.is_empty()).then_some(args.features.as_slice());
    if let Some(f) = features {
        feature_columns(f).with_context(|| format!("--features (known: {})", FEATURE_NAMES.join(", ")))?;
    }

    let mut model = load_model_arg(args.model.as_deref())?;
    if model.component_filter.take().is_some() {
        println!("the model's own component filter is not used: the new one replaces it");
    }
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let same = |a: &PathBuf, b: &PathBuf| {
        a.canonicalize().ok().zip(b.canonicalize().ok()).is_some_and(|(a, b)| a == b)
    };
    anyhow::ensure!(
        !same(&args.out, &model.folder),
        "the output folder {} is the model's own folder; write the filtered model elsewhere",
        args.out.display()
    );
    let mut producer = ModelIdentity::of(&model)?;
    // The samples do not depend on the model's own filter (dropped above): a filtered model and the
    // model it was fitted to share them.
    producer.model_version = unfiltered_version(&model.config.version).to_string();
    let weights_sha256 = producer.model_sha256.clone();

    // Samples, resumed from an earlier run of the same model into the same folder.
    let samples_path = args.out.join(SAMPLES_FILE);
    let earlier =
        std::fs::read_to_string(&samples_path).ok().map(|t| serde_json::from_str::<SamplesRecord>(&t).ok());
    let mut done: HashMap<(String, String), Vec<Sample>> = match earlier {
        None => HashMap::new(),
        Some(Some(r)) if r.schema == SCHEMA && r.producer == producer && r.features == FEATURE_NAMES => {
            r.cases.into_iter().map(|c| ((c.dataset, c.case), c.samples)).collect()
        }
        Some(r) => {
            let why = match r {
                None => "cannot be read as a samples record".to_string(),
                Some(r) if r.producer != producer => format!(
                    "was made by another model ({} {}, threshold {}, weights sha256 {:.12}...)",
                    r.producer.model_id,
                    r.producer.model_version,
                    r.producer.threshold,
                    r.producer.model_sha256
                ),
                Some(_) => "has another schema or feature set".to_string(),
            };
            println!("{} {why}: every case is sampled again", samples_path.display());
            HashMap::new()
        }
    };
    let mut record = SamplesRecord {
        schema: SCHEMA.into(),
        producer,
        features: FEATURE_NAMES.iter().map(|s| s.to_string()).collect(),
        cases: Vec::new(),
    };
    let mut cases = Vec::new();
    for d in &args.data {
        cases.extend(list_cases(d)?.into_iter().map(|c| (d.display().to_string(), c)));
    }
    let bar = super::progress_bar(
        cases.len() as u64,
        "{elapsed_precise} [{bar:40}] training case {pos}/{len} {msg} (eta {eta})",
    );
    let opts = InferOptions::default();
    let mut n_kept = 0;
    for (dataset, c) in &cases {
        bar.set_message(c.id.clone());
        let samples = match done.remove(&(dataset.clone(), c.id.clone())) {
            Some(s) => {
                n_kept += 1;
                s
            }
            None => {
                let ct = nodal_io::read_nifti::<i16>(&c.image)?;
                let labels = nodal_io::read_nifti::<u16>(&c.label)?;
                let s = case_samples(&model, &ct, &labels, &opts)
                    .with_context(|| format!("case {} ({})", c.id, c.image.display()))?;
                record.cases.push(CaseSamples { dataset: dataset.clone(), case: c.id.clone(), samples: s });
                // Rewritten after every case, so an interrupted run resumes from here.
                write_atomic(&samples_path, serde_json::to_string(&record)?.as_bytes())?;
                bar.inc(1);
                continue;
            }
        };
        record.cases.push(CaseSamples { dataset: dataset.clone(), case: c.id.clone(), samples });
        bar.inc(1);
    }
    write_atomic(&samples_path, serde_json::to_string(&record)?.as_bytes())?;
    bar.finish_and_clear();
    let all: Vec<&Sample> = record.cases.iter().flat_map(|c| &c.samples).collect();
    let n_nodes = all.iter().filter(|s| s.is_node).count();
    let kept = if n_kept > 0 { format!(" ({n_kept} from the earlier run)") } else { String::new() };
    println!(
        "{} training cases{kept}: {} components >= 4.5 mm, {n_nodes} touching a node",
        cases.len(),
        all.len()
    );
    let x: Vec<_> = all.iter().map(|s| s.values).collect();
    let y: Vec<bool> = all.iter().map(|s| s.is_node).collect();
    let sad = FEATURE_NAMES
        .iter()
        .position(|&n| n == "short_axis_mm")
        .expect("the short axis is a component feature");
    let is_large = |s: &Sample| s.is_node && s.values[sad] >= LARGE_NODE_MM;
    let w: Vec<f64> = all.iter().map(|s| if is_large(s) { args.large_node_weight } else { 1.0 }).collect();
    let n_large = all.iter().filter(|s| is_large(s)).count();
    if args.large_node_weight != 1.0 {
        println!("{n_large} of them >= {LARGE_NODE_MM} mm weigh {} in the fit", args.large_node_weight);
    }
    let boost = BoostConfig {
        n_trees: args.trees as usize,
        max_depth: args.max_depth as usize,
        ..BoostConfig::default()
    };
    let mut filter =
        ComponentFilter::fit(&x, &y, Some(&w), features, boost).context("fitting the component filter")?;
    filter.keep_short_axis_mm = (args.keep_short_axis_mm > 0.0).then_some(args.keep_short_axis_mm);

    // Cut-offs on the selection cases.
    let mut select_files = Vec::new();
    for d in &args.select {
        select_files.extend(list_cases(d)?);
    }
    let select_cases = load_val_cases(&select_files)?;
    let targets = SelectionTargets::default();
    println!("choosing the cut-offs on {} selection cases", select_cases.len());
    let rule = args.min_large_recall.map_or(LargeNodes::from(args.large_nodes), LargeNodes::AtLeast);
    let tuned = tune_filter(&model, &filter, &select_cases, &opts, &targets, rule)?;
    let (point, metrics) = tuned.points[tuned.best].clone();
    let (_, alone) = &tuned.points[tuned.model_alone];
    filter.min_score = point.min_score;
    filter.record = serde_json::json!({
        "model_id": model.config.model_id,
        "model_version": model.config.version,
        "model_sha256": weights_sha256,
        "threshold": model.config.threshold,
        "training_datasets": args.data.iter().map(|d| d.display().to_string()).collect::<Vec<_>>(),
        "training_cases": cases.len(),
        "training_components": all.len(),
        "training_components_touching_a_node": n_nodes,
        "large_node_weight": args.large_node_weight,
        "training_components_touching_a_node_ge_15mm": n_large,
        "selection_datasets": args.select.iter().map(|d| d.display().to_string()).collect::<Vec<_>>(),
        "selection_cases": select_cases.len(),
        "selection_targets": targets,
        "large_nodes": rule,
        "model_alone": { "min_peak_probability": model.config.min_peak_probability, "metrics": alone },
        "chosen": { "min_peak_probability": point.min_peak, "min_score": point.min_score, "metrics": metrics },
        "table": tuned.points.iter().map(|(p, m)| serde_json::json!({ "point": p, "metrics": m })).collect::<Vec<_>>(),
    });

    let mut config = model.config.at_operating_point(model.config.threshold, point.min_peak);
    // A filter fitted to a model that had one replaces it, so the suffix is not repeated.
    config.version = format!("{}{FILTERED_VERSION_SUFFIX}", unfiltered_version(&model.config.version));
    let weights = args.out.join(WEIGHTS_FILE);
    let tmp = args.out.join(format!(".{WEIGHTS_FILE}.tmp"));
    std::fs::copy(model.folder.join(WEIGHTS_FILE), &tmp)
        .with_context(|| format!("copying the weights to {}", tmp.display()))?;
    std::fs::rename(&tmp, &weights).with_context(|| format!("writing {}", weights.display()))?;
    config.save(&args.out.join(CONFIG_FILE))?;
    write_atomic(&args.out.join(FILTER_FILE), serde_json::to_string_pretty(&filter)?.as_bytes())?;
    let summary = |m: &nodal_net::train::ValMetrics| {
        format!(
            "recall {:.3}, FP/scan {:.2}, Dice {}, recall SAD >= 15 mm {}, selection score {:.3}",
            m.recall,
            m.fp_per_scan,
            m.dice.map_or("-".into(), |d| format!("{d:.3}")),
            m.recall_sad_ge_15mm.map_or("-".into(), |r| format!("{r:.3}")),
            m.score
        )
    };
    println!("the model alone on the selection cases: {}", summary(alone));
    println!(
        "chosen ({}): peak cut-off {:?}, filter cut-off {}: {} -> {}",
        match rule {
            LargeNodes::NoLoss => "--large-nodes no-loss".to_string(),
            LargeNodes::Any => "--large-nodes any".to_string(),
            LargeNodes::AtLeast(r) => format!("--min-large-recall {r}"),
        },
        point.min_peak,
        point.min_score,
        summary(&metrics),
        args.out.display()
    );
    Ok(())
}
