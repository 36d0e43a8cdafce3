//! Refusal of held-out scans as training backgrounds.
//!
//! Two groups of scans must never reach a training set:
//!
//! * the **external validation set** (`../shared/data/external-validation`, `imagesTs` and
//!   `labelsTs`): nodes from an independent simulator, used only to measure transfer;
//! * the **held-out validation patient**: TotalSegmentator 2.18.0's `aorta_report` chest CTA and
//!   the `pulmonary_report` crop of the same patient.
//!
//! A path check is not enough (a copy can have any name), so each scan is recognised by content:
//! the SHA-256 of the file's bytes, the SHA-256 of its decoded voxels (catches a renamed,
//! re-compressed or re-headered copy) and an orientation-free fingerprint (sorted dims, sum and sum
//! of squares of the HU values; catches a flipped or transposed copy). The table is
//! `holdout_hashes.txt` beside this file, written by `scripts/holdout_hashes.sh` (which runs the
//! `holdout_hashes` example on the held-out files); no image data of those scans is in the
//! repository.
use crate::PhantomError;
use nodal_core::Volume;
use sha2::{Digest, Sha256};
use std::path::Path;

/// The table: `group kind name value` per line (`#` comments).
const TABLE: &str = include_str!("holdout_hashes.txt");

/// Which held-out group a scan belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeldOutGroup {
    /// The external validation set.
    External,
    /// The held-out validation patient (chest CTA and its cardiac crop).
    Patient,
}

/// A match against the table: the group and the held-out case's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldOutMatch {
    pub group: HeldOutGroup,
    pub case: String,
}

/// Lowercase hex SHA-256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of a CT's decoded voxels in canonical (LPS) storage: dims (i, j, k) as u64 LE, then
/// the int16 HU values, little-endian, i fastest.
pub fn voxel_sha256(v: &Volume<i16>) -> String {
    let mut h = Sha256::new();
    for d in v.dims() {
        h.update((d as u64).to_le_bytes());
    }
    let mut buf = Vec::with_capacity(v.len() * 2);
    for x in v.as_slice() {
        buf.extend_from_slice(&x.to_le_bytes());
    }
    h.update(&buf);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Orientation-free content fingerprint: `AxBxC:sum:sumsq` with the dims sorted.
pub fn fingerprint(v: &Volume<i16>) -> String {
    let mut d = v.dims();
    d.sort_unstable();
    let (s, s2) =
        v.as_slice().iter().fold((0i64, 0i64), |(s, s2), &x| (s + x as i64, s2 + (x as i64) * (x as i64)));
    format!("{}x{}x{}:{s}:{s2}", d[0], d[1], d[2])
}

fn lookup(kind: &str, value: &str) -> Option<HeldOutMatch> {
    TABLE.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() == 4 && f[1] == kind && f[3] == value {
            let group = if f[0] == "patient" { HeldOutGroup::Patient } else { HeldOutGroup::External };
            Some(HeldOutMatch { group, case: f[2].to_string() })
        } else {
            None
        }
    })
}

/// Number of entries of each kind in the shipped table (file, voxels, fingerprint).
pub fn table_counts() -> [usize; 3] {
    let mut c = [0; 3];
    for l in TABLE.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        match l.split_whitespace().nth(1) {
            Some("file") => c[0] += 1,
            Some("voxels") => c[1] += 1,
            Some("fingerprint") => c[2] += 1,
            _ => {}
        }
    }
    c
}

/// Is this file (by its bytes) a held-out scan? Folders (DICOM series) are not hashed here.
pub fn match_file(path: &Path) -> Result<Option<HeldOutMatch>, PhantomError> {
    if !path.is_file() {
        return Ok(None);
    }
    let bytes = std::fs::read(path).map_err(|e| PhantomError::io(path, e))?;
    Ok(lookup("file", &sha256_hex(&bytes)))
}

/// Is this decoded volume (LPS-stored, as [`crate::background::read_background`] gives it) a
/// held-out scan?
pub fn match_volume(v: &Volume<i16>) -> Option<HeldOutMatch> {
    lookup("voxels", &voxel_sha256(v)).or_else(|| lookup("fingerprint", &fingerprint(v)))
}

/// The typed refusal for a match.
pub fn refusal(path: &Path, m: HeldOutMatch) -> PhantomError {
    match m.group {
        HeldOutGroup::External => {
            PhantomError::ExternalValidationCase { path: path.to_path_buf(), case: m.case }
        }
        HeldOutGroup::Patient => PhantomError::HeldOutBackground { path: path.to_path_buf() },
    }
}

/// Refuses `path` (and its decoded voxels, when given) if it is a held-out scan.
pub fn check_not_held_out(path: &Path, vol: Option<&Volume<i16>>) -> Result<(), PhantomError> {
    if let Some(m) = match_file(path)? {
        return Err(refusal(path, m));
    }
    if let Some(m) = vol.and_then(match_volume) {
        return Err(refusal(path, m));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_lists_every_held_out_scan_three_ways() {
        // 5 external CTs + 5 external label maps + 2 held-out-patient CTs.
        assert_eq!(table_counts(), [12, 12, 12]);
        for l in TABLE.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')) {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 4, "{l}");
            assert!(matches!(f[0], "external" | "patient"), "{l}");
            if f[1] != "fingerprint" {
                assert!(f[3].len() == 64 && f[3].chars().all(|c| c.is_ascii_hexdigit()), "{l}");
            }
        }
    }

    #[test]
    fn sha256_of_known_input() {
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
