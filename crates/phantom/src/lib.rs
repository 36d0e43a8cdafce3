//! Data engine: simulated contrast-enhanced neck CT with ground-truth lymph nodes.
//!
//! No public CT comes with lymph-node labels, so `nodal` makes its own ground truth:
//!
//! * [`generate_phantom`] builds a procedural neck ([`anatomy`]: skin, fat, muscles, vertebrae,
//!   mandible, hyoid, larynx/trachea, thyroid, salivary glands, tortuous carotid arteries and jugular
//!   veins, small vessels), places 10-40 nodes along the cervical node levels I-VI ([`nodes`]:
//!   lobulated, reniform with fatty hilum, necrotic, cystic, calcified, touching clusters) and
//!   images it with a scanner model ([`render`]: slice-profile integration, metal and shoulder
//!   streaks, correlated noise, point-spread blur). The result is a [`Phantom`]: CT in HU
//!   (`Volume<i16>`), an instance label map (`Volume<u16>`, 0 = background, 1..n = one node each,
//!   touching nodes keep distinct ids), the anatomy's tissue map and per-node [`NodeInfo`] whose
//!   SAD/LAD are measured on the final label map with `nodal_nodes::measure::axial_axes` — the
//!   evaluator's own code.
//! * [`background`] inserts the same nodes into a real CT (read with `nodal_io::read_ct`, or an
//!   InVesalius project via [`inv3`]), only in plausible tissue.
//! * [`dataset`] writes an nnU-Net raw dataset of phantoms and real-background cases, in parallel,
//!   reproducible from its `nodal_dataset.json`.
//! * [`preview`] renders axial and coronal PNG montages with node contours.
//!
//! All volumes are stored LPS (identity direction): index `i` runs to patient left, `j` to
//! posterior, `k` to superior; arrays are `[nk, nj, ni]` (see `nodal_core`).
//!
//! ```
//! use nodal_phantom::{generate_phantom, PhantomConfig};
//! let p = generate_phantom(&PhantomConfig::default(), 7).unwrap();
//! assert_eq!(p.ct.dims(), p.labels.dims());
//! assert!(p.nodes.iter().all(|n| n.sad_mm > 0.0));
//! ```
pub mod anatomy;
pub mod background;
pub mod config;
pub mod confounders;
pub mod context;
pub mod dataset;
mod error;
mod generate;
pub mod holdout;
pub mod inv3;
pub mod mass;
pub mod nodes;
pub mod output;
pub mod preview;
pub mod randomization;
pub mod render;
pub mod rng;
pub mod scan_rand;
pub mod shapes;
pub mod style;

pub use anatomy::Tissue;
pub use config::{PhantomConfig, PhantomSize, Scanner};
pub use error::PhantomError;
pub use generate::generate_phantom;
pub use nodes::Level;
pub use randomization::Randomization;

use nodal_core::{Side, Volume};
use serde::{Deserialize, Serialize};

/// Version of the generator, recorded in every output so a dataset can be reproduced exactly.
pub const GENERATOR_VERSION: &str = concat!("nodal-phantom ", env!("CARGO_PKG_VERSION"), " (engine 1)");

/// One ground-truth node as written to `nodes.json`. SAD, LAD, volume and centroid are measured
/// on the final label map (not the drawn parameters).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Label id in the instance map.
    pub id: u16,
    /// Cervical level.
    pub level: Level,
    /// Patient side.
    pub side: Side,
    pub metastatic: bool,
    pub necrotic: bool,
    pub cystic: bool,
    pub calcified: bool,
    /// Nodes with the same cluster id touch each other (bulky disease).
    pub cluster_id: Option<u32>,
    /// Centroid of the node's voxels, LPS mm.
    pub centroid_mm: [f64; 3],
    /// Axial short-axis diameter, mm (evaluation-protocol definition).
    pub sad_mm: f64,
    /// Axial long-axis diameter, mm.
    pub lad_mm: f64,
    /// Voxel count times voxel volume, mm^3.
    pub volume_mm3: f64,
}

/// A generated scan with its ground truth.
#[derive(Clone, Debug)]
pub struct Phantom {
    /// CT, HU, int16, LPS.
    pub ct: Volume<i16>,
    /// Instance labels: 0 background, 1..n nodes.
    pub labels: Volume<u16>,
    /// Tissue under the nodes and everywhere else ([`Tissue`] as `u8`); nodes are *not* painted
    /// here, so it shows what each node displaced.
    pub tissue: Volume<u8>,
    /// Per-node ground truth, `nodes[i].id == i + 1`.
    pub nodes: Vec<NodeInfo>,
    /// The drawn scanner protocol (`None` for nodes inserted into a real CT).
    pub scanner: Option<Scanner>,
    /// The seed.
    pub seed: u64,
}
