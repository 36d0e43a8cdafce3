//! Helpers shared by the integration tests.
#![allow(dead_code)]
use std::path::PathBuf;

/// Root of the registry test data; panics (fails the test) when it has not been fetched.
pub fn testdata() -> PathBuf {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../.cache/testdata"));
    assert!(
        p.join("totalsegmentator").is_dir() && p.join("pydicom").is_dir() && p.join("pydicom-data").is_dir(),
        "registry test data missing at {}: run `bash scripts/fetch-test-data.sh`",
        p.display()
    );
    p
}

pub fn ts_ref() -> PathBuf {
    testdata().join("totalsegmentator/tests/reference_files")
}

pub fn pydicom_files() -> PathBuf {
    testdata().join("pydicom/pydicom/data/test_files")
}

pub mod synth;

/// Asserts that an error's message names `path`.
pub fn names(e: &nodal_io::IoError, path: &std::path::Path) {
    let msg = e.to_string();
    assert!(msg.contains(&path.display().to_string()), "message does not name {}: {msg}", path.display());
}

/// Peak resident memory of this process (Linux), in MiB.
pub fn peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? / 1024)
}
