//! `nodal phantom`: one simulated neck CT with ground-truth nodes (procedural, or nodes inserted
//! into a real CT background).
use anyhow::Context;
use nodal_phantom::{background, generate_phantom, output, preview, PhantomConfig, PhantomSize};
use std::path::PathBuf;

/// Arguments of `nodal phantom`.
#[derive(clap::Args)]
pub struct Args {
    /// Seed: the same seed and options give byte-identical files.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Size preset: small (128^2, CI), full (512^2, clinical), train (0.8-1.0 mm, training set).
    #[arg(long, default_value = "small")]
    pub size: PhantomSize,
    /// Fixed in-plane spacing, mm (default: drawn from the preset's range).
    #[arg(long)]
    pub spacing: Option<f64>,
    /// Fixed slice thickness, mm (default: drawn).
    #[arg(long)]
    pub slice_thickness: Option<f64>,
    /// Insert nodes into this real CT (NIfTI, DICOM folder or InVesalius .inv3) instead.
    #[arg(long)]
    pub background: Option<PathBuf>,
    /// The background's organ label map on its grid (TotalSegmentator classes): nodes are placed
    /// by organ, not by HU alone.
    #[arg(long, requires = "background")]
    pub background_labels: Option<PathBuf>,
    /// SeriesInstanceUID of the background's DICOM series, for a folder holding several (default:
    /// chosen as `segment` chooses).
    #[arg(long = "series", value_name = "UID", requires = "background")]
    pub series: Option<String>,
    #[command(flatten)]
    pub randomization: super::dataset::RandomizationArg,
    /// Also write axial and coronal PNG montages with node contours.
    #[arg(long)]
    pub preview: bool,
    /// Output folder (ct.nii.gz, nodes.nii.gz, nodes.json).
    #[arg(short = 'o', long)]
    pub out: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    // Checked and locked before any work; written as one unit.
    let out = nodal_core::output::OutputDir::open(&args.out)?;
    let mut cfg = PhantomConfig::preset(args.size);
    cfg.in_plane_mm = args.spacing;
    cfg.slice_mm = args.slice_thickness;
    cfg.randomization = args.randomization.get()?;
    let t = std::time::Instant::now();
    let (p, bg) = match &args.background {
        Some(b) => {
            let vol = background::read_background_series(b, args.series.as_deref())
                .with_context(|| format!("reading background {}", b.display()))?;
            let labels = match &args.background_labels {
                Some(l) => Some(
                    background::read_background_labels(l, &vol, background::totalsegmentator_roles())
                        .with_context(|| format!("reading background labels {}", l.display()))?,
                ),
                None => None,
            };
            let p = background::insert_nodes_with(&vol, labels.as_ref(), &cfg, args.seed)?;
            (p, Some(b.to_string_lossy().into_owned()))
        }
        None => (generate_phantom(&cfg, args.seed)?, None),
    };
    let gen_s = t.elapsed().as_secs_f64();
    output::write_phantom(&p, out.staging(), bg)?;
    if args.preview {
        preview::write_previews(&p.ct, &p.labels, &p.nodes, out.staging())?;
    }
    out.commit(&["ct.nii.gz", "nodes.nii.gz", "nodes.json", "preview_axial.png", "preview_coronal.png"])?;
    let [ni, nj, nk] = p.ct.dims();
    let met = p.nodes.iter().filter(|n| n.metastatic).count();
    println!(
        "{}: {ni}x{nj}x{nk}, {} nodes ({met} metastatic), generated in {gen_s:.2} s",
        args.out.display(),
        p.nodes.len()
    );
    Ok(())
}
