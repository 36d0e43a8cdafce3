//! Prints the held-out table lines (`crates/phantom/src/holdout_hashes.txt`) of scans:
//! `cargo run -p nodal-phantom --example holdout_hashes -- GROUP FILE...` with GROUP `external` or
//! `patient`. Each scan gives three lines: the SHA-256 of the file, of its decoded voxels, and its
//! orientation-free fingerprint (see `nodal_phantom::holdout`). Run by `scripts/holdout_hashes.sh`.
use nodal_phantom::background::read_background;
use nodal_phantom::holdout::{fingerprint, sha256_hex, voxel_sha256};
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let group = args.next().ok_or("usage: holdout_hashes external|patient FILE...")?;
    if group != "external" && group != "patient" {
        return Err(format!("unknown group {group:?} (external|patient)").into());
    }
    for f in args.map(PathBuf::from) {
        // The patient's two files share a name with training files: keep their folder.
        let keep = if group == "patient" { 3 } else { 1 };
        let parts: Vec<String> = f.iter().map(|c| c.to_string_lossy().into_owned()).collect();
        let name = parts[parts.len().saturating_sub(keep)..].join("/");
        let bytes = std::fs::read(&f)?;
        let vol = read_background(&f)?;
        println!("{group} file {name} {}", sha256_hex(&bytes));
        println!("{group} voxels {name} {}", voxel_sha256(&vol));
        println!("{group} fingerprint {name} {}", fingerprint(&vol));
    }
    Ok(())
}
