//! Helpers shared by the end-to-end tests of the `nodal` binary.
#![allow(dead_code)] // not every helper is used by every module

use std::path::{Path, PathBuf};
use std::process::Command;

use nodal_net::{save_model, ArchConfig, FovealConfig, ModelConfig};

/// A file or folder of the registry test data (`scripts/fetch-test-data.sh` fetches it).
pub fn testdata(rel: &str) -> PathBuf {
    let p = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../.cache/testdata")).join(rel);
    assert!(p.exists(), "{} missing: run `bash scripts/fetch-test-data.sh`", p.display());
    p
}

pub fn nodal() -> Command {
    Command::new(env!("CARGO_BIN_EXE_nodal"))
}

pub fn test_model(dir: &Path) -> PathBuf {
    let mut cfg = ModelConfig::default_foveal();
    cfg.arch = ArchConfig::Foveal(FovealConfig { channels: vec![3, 4], convs: vec![1, 1], merge_convs: 1 });
    cfg.train_patch_out = 8;
    cfg.infer_tile_out = 32;
    cfg.threshold = 1e-3;
    cfg.version = "test-random".into();
    let net = cfg.arch.init(&nodal_net::device()).unwrap();
    let folder = dir.join("model");
    save_model(&net, &cfg, &folder).unwrap();
    folder
}

pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

pub fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
