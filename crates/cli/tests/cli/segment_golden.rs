//! `nodal segment` against recorded outputs: two CI-sized phantom CTs (seeds 3 and 7 of the data
//! engine's default preset, which `crates/phantom/tests/golden_off.rs` keeps byte-identical)
//! segmented with the shipped model (`tests/fixtures/segment/seed<N>/`, recorded by
//! `scripts/record_segment_golden.sh`). The
//! labels and the mask must be identical voxel for voxel and `nodes.json` equal (numbers to 1e-9
//! relative, the network's probabilities and the filter's score to 1e-5, the provenance of the
//! input file aside): a change after the network that moves any of them is a change of behaviour,
//! not a refactoring. The recording was made with burn's CPU convolution; the hand-written kernel
//! (`nodal_net::cpu_conv`) must give the same nodes.
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Equal JSON, numbers to a relative 1e-9; the path of the mismatch in the error.
fn same_json(a: &serde_json::Value, b: &serde_json::Value, at: &str) -> Result<(), String> {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            // The network's numbers may move within the CPU kernels' rounding (the probability
            // map within 1e-5); everything drawn from the mask must not move at all.
            let tol = if at.contains(".probability.") || at.contains(".filter.score") { 1e-5 } else { 1e-9 };
            if (x - y).abs() <= tol * x.abs().max(y.abs()).max(1.0) {
                Ok(())
            } else {
                Err(format!("{at}: {x} vs {y}"))
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            x.iter().zip(y).enumerate().try_for_each(|(i, (x, y))| same_json(x, y, &format!("{at}[{i}]")))
        }
        (Value::Object(x), Value::Object(y)) if x.keys().eq(y.keys()) => {
            x.iter().try_for_each(|(k, v)| same_json(v, &y[k], &format!("{at}.{k}")))
        }
        _ if a == b => Ok(()),
        _ => Err(format!("{at}: {a} vs {b}")),
    }
}

#[test]
fn segment_reproduces_the_recorded_outputs() {
    let fixtures = repo().join("tests/fixtures/segment");
    let tmp = tempfile::tempdir().unwrap();
    for seed in ["3", "7"] {
        let golden = fixtures.join(format!("seed{seed}"));
        let phantom = tmp.path().join(format!("phantom{seed}"));
        let made = Command::new(env!("CARGO_BIN_EXE_nodal"))
            .args(["phantom", "--seed", seed, "-o"])
            .arg(&phantom)
            .output()
            .unwrap();
        assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
        let out = tmp.path().join(format!("seg{seed}"));
        let run = Command::new(env!("CARGO_BIN_EXE_nodal"))
            .arg("segment")
            .arg(phantom.join("ct.nii.gz"))
            .arg("--model")
            .arg(repo().join("models/default"))
            .arg("-o")
            .arg(&out)
            .output()
            .unwrap();
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        for f in ["nodes.nii.gz", "mask.nii.gz"] {
            let want = nodal_io::read_nifti::<u16>(golden.join(f)).unwrap();
            let got = nodal_io::read_nifti::<u16>(out.join(f)).unwrap();
            assert_eq!(got.dims(), want.dims(), "{seed}/{f}");
            assert_eq!(got.geometry(), want.geometry(), "{seed}/{f}");
            let differ = got.as_slice().iter().zip(want.as_slice()).filter(|(a, b)| a != b).count();
            assert_eq!(differ, 0, "{seed}/{f}: {differ} voxels differ");
        }
        let json = |p: &Path| -> serde_json::Value {
            let mut v: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
            v.as_object_mut().unwrap().remove("source");
            v
        };
        let (want, got) = (json(&golden.join("nodes.json")), json(&out.join("nodes.json")));
        assert!(want["nodes"].as_array().is_some_and(|n| !n.is_empty()), "{seed}: the golden case has nodes");
        if let Err(e) = same_json(&got, &want, seed) {
            panic!("nodes.json differs at {e}");
        }
    }
}
