//! Atomic file output: write a temporary file in the destination folder, then rename it over the
//! destination, so a reader never sees a half-written report and re-running into the same folder is
//! safe (the old file stays intact until the new one is complete).
use crate::ReportError;
use std::path::Path;

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    nodal_core::fs::write_atomic(path, bytes)
        .map_err(|source| ReportError::Write { path: path.to_path_buf(), source })
}

/// Calls `fill` with a writer on a temporary file next to `path`, then renames it to `path`. On
/// failure the temporary file is removed and `path` is left untouched.
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut std::io::BufWriter<&mut std::fs::File>) -> std::io::Result<()>,
) -> Result<(), ReportError> {
    nodal_core::fs::write_atomic_with(path, fill)
        .map_err(|source| ReportError::Write { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_folder_is_an_error_naming_the_file() {
        let r = write_atomic(Path::new("/nonexistent-folder-xyz/r.html"), b"x");
        let msg = r.unwrap_err().to_string();
        assert!(msg.contains("r.html"), "{msg}");
    }
}
