//! `nodal info` (to be completed with the readers).
use std::path::PathBuf;

/// Arguments of `nodal info`.
#[derive(clap::Args)]
pub struct Args {
    /// A NIfTI file (.nii/.nii.gz) or a DICOM folder/file.
    pub path: PathBuf,
}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("not yet implemented")
}
