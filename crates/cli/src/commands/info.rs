//! `nodal info`: what a CT file or DICOM folder holds (size, spacing, orientation, HU range, series).
use std::path::PathBuf;

/// Arguments of `nodal info`.
#[derive(clap::Args)]
pub struct Args {
    /// A NIfTI file (.nii/.nii.gz), or a DICOM file or folder (searched recursively).
    pub path: PathBuf,
    /// SeriesInstanceUID of the DICOM series to describe when the folder holds several CT series
    /// (as listed by `nodal info <folder>`).
    #[arg(long)]
    pub series: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    // The error already names the file and the problem.
    let text = nodal_io::describe(&args.path, args.series.as_deref())?;
    print!("{text}");
    Ok(())
}
