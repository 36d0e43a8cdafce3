//! `nodal measure`: per-node measurements of an instance label map or a binary mask.
//!
//! Input kind: `--mask` reads the image as a binary mask (only 0 and 1 allowed) whose connected
//! components become the nodes, numbered in raster order of their first voxel; `--labels` keeps the
//! ids of an instance label map (gaps allowed, each id is one node even if it is split in pieces).
//! Without either flag the kind is detected: an image holding only 0 and 1 is a mask, anything
//! else a label map.
//!
//! Writes into `-o DIR`: `labels.nii.gz` (the instance label map measured: uint16 when the largest id
//! fits, else uint32), `nodes.json` (schema `nodal.nodes/1`) and `nodes.csv`, the folder as one unit
//! (`nodal_core::output`). Ids must be whole numbers in `0..=u32::MAX` (any stored type).
use anyhow::Context;
use nodal_core::output::OutputDir;
use nodal_core::Volume;
use nodal_detect::output::{write_nodes_csv, write_nodes_json, Source};
use nodal_detect::Detection;
use nodal_nodes::components::{check_binary, is_binary};
use nodal_nodes::measure::{measure_nodes, MeasureOptions};
use nodal_nodes::{label_components, Connectivity};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Instance label map or binary mask (NIfTI).
    input: PathBuf,
    /// CT on the same grid (NIfTI file or DICOM folder): adds HU statistics and the necrosis fraction.
    #[arg(long)]
    ct: Option<PathBuf>,
    #[command(flatten)]
    series: super::SeriesArg,
    /// Read the input as a binary mask (0/1): its connected components are the nodes.
    #[arg(long, conflicts_with = "labels")]
    mask: bool,
    /// Read the input as an instance label map: its ids are kept.
    #[arg(long)]
    labels: bool,
    /// Connectivity of components for a mask: 6, 18 or 26.
    #[arg(long, default_value_t = 26)]
    connectivity: usize,
    /// LPS x of the patient midline in mm (default: the x of the volume centre).
    #[arg(long)]
    midline_x_mm: Option<f64>,
    /// Output folder (created if missing).
    #[arg(short = 'o', long = "out")]
    out: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let conn =
        Connectivity::from_neighbours(args.connectivity).ok_or(nodal_nodes::NodesError::InvalidOption {
            name: "connectivity",
            value: args.connectivity.to_string(),
            reason: "must be 6, 18 or 26",
        })?;
    // Checked and locked before any work; written as one unit.
    let out = OutputDir::open(&args.out)?;
    // Whole, non-negative ids only: a cast would merge 0.5 with 0 or 1, or drop negative ids.
    let input: Volume<u32> =
        nodal_io::read_labels(&args.input).with_context(|| format!("reading {}", args.input.display()))?;
    let as_mask = if args.mask {
        check_binary(&input).with_context(|| format!("{} given as --mask", args.input.display()))?;
        true
    } else {
        !args.labels && is_binary(&input)
    };
    let labels: Volume<u32> = if as_mask { label_components(&input, conn).0 } else { input };
    let ct = match &args.ct {
        Some(p) => Some(args.series.read_ct(p)?.hu),
        None => None,
    };
    let opts = MeasureOptions { midline_x_mm: args.midline_x_mm, ..Default::default() };
    let nodes: Vec<Detection> = measure_nodes(&labels, ct.as_ref(), &opts)
        .with_context(|| format!("measuring {}", args.input.display()))?
        .into_iter()
        .map(Detection::measured)
        .collect();

    let label_path = out.staging().join("labels.nii.gz");
    let max_id = nodes.iter().map(|n| n.measurement.label).max().unwrap_or(0);
    if max_id <= u16::MAX as u32 {
        nodal_io::write_nifti(&labels.map(|v| v as u16), &label_path)?;
    } else {
        nodal_io::write_nifti(&labels, &label_path)?;
    }
    let source = Source {
        labels: Some(args.input.display().to_string()),
        ct: args.ct.as_ref().map(|p| p.display().to_string()),
        input_kind: if as_mask { "mask".into() } else { "label_map".into() },
    };
    write_nodes_json(&out.staging().join("nodes.json"), &nodes, &source, None)?;
    write_nodes_csv(&out.staging().join("nodes.csv"), &nodes)?;
    out.commit(&["labels.nii.gz", "nodes.json", "nodes.csv"])?;
    println!("{} nodes ({}) -> {}", nodes.len(), source.input_kind.replace('_', " "), args.out.display());
    Ok(())
}
