//! `nodal info`: what a CT file or DICOM folder holds (size, spacing, orientation, HU range, series)
//! and, for a CT, the body regions it shows and how much of the neck.
use std::path::PathBuf;

/// Arguments of `nodal info`.
#[derive(clap::Args)]
pub struct Args {
    /// A NIfTI file (.nii/.nii.gz), or a DICOM file or folder (searched recursively).
    pub path: PathBuf,
    #[command(flatten)]
    pub series: super::SeriesArg,
}

/// Below this minimum the volume holds air: a CT in HU, not a label map or a mask.
const CT_AIR_MAX_HU: f64 = -500.0;

pub fn run(args: Args) -> anyhow::Result<()> {
    // The error already names the file and the problem.
    let text = nodal_io::describe(&args.path, args.series.uid.as_deref())?;
    print!("{text}");
    // The body coverage, for what reads as a CT volume (other DICOM objects and label maps aside).
    if let Ok(ct) = nodal_io::read_ct_choosing(&args.path, args.series.uid.as_deref()) {
        if ct.hu.min_max().0 <= CT_AIR_MAX_HU {
            let c = nodal_nodes::coverage::body_coverage(&ct.hu);
            println!("body regions: {} (neck: {})", c.summary(), neck_name(c.neck));
            for w in &c.warnings {
                println!("warning: {w}");
            }
        }
    }
    Ok(())
}

fn neck_name(n: nodal_nodes::coverage::NeckCoverage) -> &'static str {
    use nodal_nodes::coverage::NeckCoverage as N;
    match n {
        N::Full => "covered",
        N::LowerCut => "lower end cut",
        N::UpperCut => "upper end cut",
        N::BothCut => "both ends cut",
        N::Absent => "not shown",
    }
}
