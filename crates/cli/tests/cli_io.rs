//! `nodal info` end to end: real files describe, bad input exits 2 with a message naming the file.
use std::path::PathBuf;
use std::process::Command;

fn testdata() -> PathBuf {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../.cache/testdata"));
    assert!(p.join("totalsegmentator").is_dir(), "test data missing: run `bash scripts/fetch-test-data.sh`");
    p
}

fn nodal(args: &[&std::ffi::OsStr]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_nodal")).args(args).output().unwrap();
    (
        out.status.code().expect("exited, not killed by a signal"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn truncated_nii_gz_exits_2_naming_the_file_without_panic() {
    let src = testdata().join("totalsegmentator/tests/reference_files/example_seg_dicom.nii.gz");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("truncated.nii.gz");
    let bytes = std::fs::read(&src).unwrap();
    std::fs::write(&bad, &bytes[..bytes.len() / 3]).unwrap();
    let (code, _, err) = nodal(&["info".as_ref(), bad.as_os_str()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&bad.display().to_string()), "{err}");
    assert!(err.contains("gzip"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn info_describes_the_dicom_series_and_the_nifti() {
    let dcm = testdata().join("totalsegmentator/tests/reference_files/example_ct_dicom");
    let (code, out, err) = nodal(&["info".as_ref(), dcm.as_os_str()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("512 x 512 x 20"), "{out}");
    assert!(out.contains("orientation: LPS"), "{out}");
    assert!(out.contains("HU range: -1024"), "{out}");
    assert!(out.contains("CT Body 3.0"), "{out}");
    let seg = testdata().join("totalsegmentator/tests/reference_files/example_seg_dicom.nii.gz");
    let (code, out, err) = nodal(&["info".as_ref(), seg.as_os_str()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("orientation: LAS"), "{out}");
    assert!(out.contains("value range: 0 .. 117"), "{out}");
}

#[test]
fn info_lists_several_series_and_a_wrong_choice_exits_2() {
    let root = testdata().join("pydicom/pydicom/data/test_files/dicomdirtests");
    let (code, out, err) = nodal(&["info".as_ref(), root.as_os_str()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("--series"), "{out}");
    assert!(out.contains("1.3.6.1.4.1.5962.1.1.0.0.0.1194734704.16302.0.6"), "{out}");
    let (code, out, err) = nodal(&[
        "info".as_ref(),
        root.as_os_str(),
        "--series".as_ref(),
        "1.3.6.1.4.1.5962.1.1.0.0.0.1194734704.16302.0.6".as_ref(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("16 x 16 x 5"), "{out}");
    let (code, _, err) = nodal(&["info".as_ref(), root.as_os_str(), "--series".as_ref(), "1.2.3".as_ref()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not found"), "{err}");
}

#[test]
fn an_unusable_device_exits_2_before_any_output() {
    let dir = tempfile::tempdir().unwrap();
    let ct = testdata().join("totalsegmentator/tests/reference_files/example_seg_dicom.nii.gz");
    let out = dir.path().join("seg");
    let segment = |device: &str| {
        nodal(&[
            "segment".as_ref(),
            ct.as_os_str(),
            "-o".as_ref(),
            out.as_os_str(),
            "--device".as_ref(),
            device.as_ref(),
        ])
    };
    let (code, _, err) = segment("tpu");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unknown device \"tpu\"") && err.contains("cpu, gpu"), "{err}");
    if !cfg!(feature = "gpu") {
        let (code, _, err) = segment("gpu");
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("--features gpu"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    assert!(!out.exists());
    // The environment variable chooses too.
    let o = Command::new(env!("CARGO_BIN_EXE_nodal"))
        .env("NODAL_DEVICE", "tpu")
        .args(["segment".as_ref(), ct.as_os_str(), "-o".as_ref(), out.as_os_str()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("\"tpu\""), "{err}");
    assert!(!out.exists());
}

#[test]
fn segment_refuses_a_ct_of_a_few_slices_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    for slices in [1usize, 3] {
        let g = nodal_core::Geometry::axis_aligned([0.8, 0.8, 2.5], [0.0; 3]);
        let ct = nodal_core::Volume::<i16>::filled([64, 64, slices], g, 40);
        let path = dir.path().join(format!("slices{slices}.nii.gz"));
        nodal_io::write_nifti(&ct, &path).unwrap();
        let out = dir.path().join(format!("out{slices}"));
        let (code, _, err) = nodal(&["segment".as_ref(), path.as_os_str(), "-o".as_ref(), out.as_os_str()]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("3D CT needs at least 4"), "{err}");
        assert!(!out.exists(), "nothing is written for a refused input");
    }
}
