//! A model as `nodal segment` uses it: the network (`nodal_net`) and, when its folder has one,
//! the component filter fitted to that network's outputs (`component_filter.json`); and the
//! model's probability map, with its optional large-node pass merged in.
use crate::filter::ComponentFilter;
use crate::large_nodes::merge_large_components;
use crate::recipe::Recipe;
use crate::DetectError;
use indicatif::ProgressBar;
use nodal_core::Volume;
use nodal_net::infer::{predict_with, InferOptions, PredictOutput};
use nodal_net::{LoadedModel, ModelConfig};
use std::path::Path;
use std::time::Instant;

/// Component filter file name in a model folder (optional).
pub const FILTER_FILE: &str = "component_filter.json";

/// Suffix `nodal train-filter` appends to the version of a model whose component filter it fitted.
pub const FILTERED_VERSION_SUFFIX: &str = "+filter";

/// The version of the weights behind a (possibly filtered) model version: without
/// [`FILTERED_VERSION_SUFFIX`], which belongs to the folder's filter, not to its network.
pub fn unfiltered_version(version: &str) -> &str {
    version.strip_suffix(FILTERED_VERSION_SUFFIX).unwrap_or(version)
}

/// A network with its component filter.
#[derive(Debug)]
pub struct Model {
    /// The network, its configuration and folder.
    pub net: LoadedModel,
    /// The component filter fitted to this network's outputs, applied after its threshold and
    /// peak cut-off; `None` when the folder has none.
    pub filter: Option<ComponentFilter>,
}

impl Model {
    /// A network without a filter.
    pub fn unfiltered(net: LoadedModel) -> Self {
        Model { net, filter: None }
    }

    /// The network's configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.net.config
    }

    /// The folder the model was loaded from.
    pub fn folder(&self) -> &Path {
        &self.net.folder
    }

    /// The model's recipe: its post-processing and its filter at the filter's own cut-off.
    pub fn recipe(&self) -> Recipe {
        Recipe { postprocess: self.net.config.postprocess_config(), filter: self.filter.clone() }
    }
}

/// Reads and validates a component filter file.
///
/// # Errors
/// [`DetectError::FilterFile`] naming the file for unreadable JSON, an unknown feature or a
/// malformed tree.
pub fn load_filter(path: &Path) -> Result<ComponentFilter, DetectError> {
    let bad = |reason: String| DetectError::FilterFile { path: path.into(), reason };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let filter: ComponentFilter = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    filter.validate().map_err(|e| bad(e.to_string()))?;
    Ok(filter)
}

/// Loads a model folder: `config.json` + `model.safetensors`, and `component_filter.json` when
/// present.
///
/// # Errors
/// [`DetectError::Net`] for the network's files, [`DetectError::FilterFile`] for the filter.
pub fn load_model(folder: &Path) -> Result<Model, DetectError> {
    let net = nodal_net::load_model(folder)?;
    with_filter(net)
}

/// The default model (see `nodal_net::default_model` for where it is looked for).
///
/// # Errors
/// As [`load_model`].
pub fn default_model() -> Result<Model, DetectError> {
    with_filter(nodal_net::default_model()?)
}

/// The model in `dir`, else the default model.
///
/// # Errors
/// As [`load_model`].
pub fn load_model_or_default(dir: Option<&Path>) -> Result<Model, DetectError> {
    match dir {
        Some(dir) => load_model(dir),
        None => default_model(),
    }
}

fn with_filter(net: LoadedModel) -> Result<Model, DetectError> {
    let path = net.folder.join(FILTER_FILE);
    let filter = if path.exists() { Some(load_filter(&path)?) } else { None };
    Ok(Model { net, filter })
}

/// The model's node probability on the CT's own grid: one network pass at the model's spacing
/// and, when the model has a [`nodal_net::config::LargeNodePass`], a second pass at a coarser
/// spacing whose node-sized components are merged in ([`merge_large_components`], at the
/// recipe's threshold and connectivity).
///
/// # Errors
/// Inference errors ([`DetectError::Net`]).
pub fn predict(
    net: &LoadedModel,
    ct: &Volume<i16>,
    opts: &InferOptions,
    progress: Option<&ProgressBar>,
) -> Result<PredictOutput, DetectError> {
    let config = &net.config;
    let mut out = predict_with(net, &config.preprocessing, ct, opts, progress)?;
    if let Some(pass) = &config.large_node_pass {
        let mut coarse = config.preprocessing.clone();
        coarse.spacing_mm = coarse.spacing_mm.map(|s| s * pass.spacing_factor);
        if let Some(pb) = progress {
            pb.reset();
            pb.set_message("large-node pass");
        }
        let second = predict_with(net, &coarse, ct, opts, progress)?;
        let t = Instant::now();
        let post = config.postprocess_config();
        merge_large_components(
            &mut out.probability,
            &second.probability,
            post.threshold,
            post.connectivity,
            pass,
        )?;
        out.timings.preprocess_s += second.timings.preprocess_s;
        out.timings.network_s += second.timings.network_s;
        out.timings.map_back_s += second.timings.map_back_s + t.elapsed().as_secs_f64();
        out.n_tiles += second.n_tiles;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::{BoostConfig, N_FEATURES};

    #[test]
    fn component_filter_is_loaded_when_present_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = ModelConfig::default_foveal();
        let net = cfg.arch.init(&nodal_net::device()).unwrap();
        nodal_net::save_model(&net, &cfg, dir.path()).unwrap();
        assert!(load_model(dir.path()).unwrap().filter.is_none());
        let x: Vec<[f64; N_FEATURES]> = (0..20).map(|i| [i as f64; N_FEATURES]).collect();
        let y: Vec<bool> = (0..20).map(|i| i >= 10).collect();
        let filter =
            ComponentFilter::fit(&x, &y, None, None, BoostConfig { n_trees: 3, ..Default::default() })
                .unwrap();
        let path = dir.path().join(FILTER_FILE);
        std::fs::write(&path, serde_json::to_string(&filter).unwrap()).unwrap();
        assert_eq!(load_model(dir.path()).unwrap().filter, Some(filter.clone()));
        // A filter that does not parse, whose trees index a feature that does not exist, or that
        // names a feature this version does not compute, is an error naming the file.
        for text in [
            "{".to_string(),
            serde_json::to_string(&filter).unwrap().replace("\"feature\":", "\"feature\":9"),
            serde_json::to_string(&filter).unwrap().replace("\"mean_hu\"", "\"hu_spread\""),
        ] {
            std::fs::write(&path, text).unwrap();
            let e = load_model(dir.path()).unwrap_err();
            assert!(matches!(e, DetectError::FilterFile { .. }), "{e:?}");
            assert!(e.to_string().contains(FILTER_FILE), "{e}");
            assert!(e.is_input());
        }
    }

    #[test]
    fn versions_name_their_filter() {
        assert_eq!(unfiltered_version("stage10-step3000+filter"), "stage10-step3000");
        assert_eq!(unfiltered_version("stage10-step3000"), "stage10-step3000");
    }
}
