//! `nodal info`: what a CT file or DICOM folder holds (size, spacing, orientation, HU range, series).
use std::path::PathBuf;

/// Arguments of `nodal info`.
#[derive(clap::Args)]
pub struct Args {
    /// A NIfTI file (.nii/.nii.gz), or a DICOM file or folder (searched recursively).
    pub path: PathBuf,
    #[command(flatten)]
    pub series: super::SeriesArg,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    // The error already names the file and the problem.
    let text = nodal_io::describe(&args.path, args.series.uid.as_deref())?;
    print!("{text}");
    Ok(())
}
