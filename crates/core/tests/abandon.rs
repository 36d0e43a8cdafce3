//! `abandon_all` (what the binary calls on SIGINT/SIGTERM) removes the staging folder and lock of
//! every open output folder. Alone in its test binary: it acts on the whole process.
use nodal_core::output::{abandon_all, OutputDir};

#[test]
fn abandon_all_removes_staging_and_lock() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("run");
    let o = OutputDir::open(&out).unwrap();
    std::fs::write(o.staging().join("a.json"), "1").unwrap();
    assert!(root.path().join(".run.lock").exists());
    abandon_all();
    assert!(!o.staging().exists());
    assert!(!root.path().join(".run.lock").exists());
    drop(o);
    assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
}
