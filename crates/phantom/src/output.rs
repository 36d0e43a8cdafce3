//! Writing a phantom folder: `ct.nii.gz`, `nodes.nii.gz`, `nodes.json`, optional previews.
use crate::{NodeInfo, Phantom, PhantomError, Scanner, GENERATOR_VERSION};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Content of `nodes.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodesFile {
    /// Generator name and version.
    pub generator: String,
    /// Seed of the phantom (or of the insertion, for real backgrounds).
    pub seed: u64,
    /// Background CT for inserted nodes; `null` for a procedural phantom.
    pub background: Option<String>,
    /// Voxel spacing (i, j, k), mm.
    pub spacing_mm: [f64; 3],
    /// Dims (i, j, k).
    pub dims: [usize; 3],
    /// Scanner protocol of a procedural phantom.
    pub scanner: Option<Scanner>,
    /// Label map semantics.
    pub labels: String,
    /// The nodes; `nodes[i].id == i + 1`.
    pub nodes: Vec<NodeInfo>,
}

impl NodesFile {
    /// The `nodes.json` of a phantom.
    pub fn of(p: &Phantom, background: Option<String>) -> NodesFile {
        NodesFile {
            generator: GENERATOR_VERSION.into(),
            seed: p.seed,
            background,
            spacing_mm: p.ct.geometry().spacing_mm,
            dims: p.ct.dims(),
            scanner: p.scanner.clone(),
            labels:
                "instance labels: 0 = background, k > 0 = node with id k; touching nodes keep distinct ids"
                    .into(),
            nodes: p.nodes.clone(),
        }
    }
}

/// Writes `bytes` to `path` atomically (temporary file in the same folder, then rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PhantomError> {
    nodal_io::write_atomic(path, bytes).map_err(|e| PhantomError::io(path, e))
}

/// Writes JSON atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), PhantomError> {
    let mut s = serde_json::to_string_pretty(value)
        .map_err(|e| PhantomError::Json { path: path.to_path_buf(), source: e })?;
    s.push('\n');
    write_atomic(path, s.as_bytes())
}

/// Writes `ct.nii.gz`, `nodes.nii.gz` and `nodes.json` into `dir` (created if needed).
pub fn write_phantom(p: &Phantom, dir: &Path, background: Option<String>) -> Result<(), PhantomError> {
    std::fs::create_dir_all(dir).map_err(|e| PhantomError::io(dir, e))?;
    nodal_io::write_nifti(&p.ct, dir.join("ct.nii.gz"))?;
    nodal_io::write_nifti(&p.labels, dir.join("nodes.nii.gz"))?;
    write_json(&dir.join("nodes.json"), &NodesFile::of(p, background))
}
