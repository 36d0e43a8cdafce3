//! `nodal info` end to end: real files describe, bad input exits 2 with a message naming the file.
use std::process::Command;

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
    let src = crate::common::testdata("totalsegmentator/tests/reference_files/example_seg_dicom.nii.gz");
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
    let dcm = crate::common::testdata("totalsegmentator/tests/reference_files/example_ct_dicom");
    let (code, out, err) = nodal(&["info".as_ref(), dcm.as_os_str()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("512 x 512 x 20"), "{out}");
    assert!(out.contains("orientation: LPS"), "{out}");
    assert!(out.contains("HU range: -1024"), "{out}");
    assert!(out.contains("CT Body 3.0"), "{out}");
    let seg = crate::common::testdata("totalsegmentator/tests/reference_files/example_seg_dicom.nii.gz");
    let (code, out, err) = nodal(&["info".as_ref(), seg.as_os_str()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("orientation: LAS"), "{out}");
    assert!(out.contains("value range: 0 .. 117"), "{out}");
}

#[test]
fn info_lists_several_series_and_a_wrong_choice_exits_2() {
    let root = crate::common::testdata("pydicom/pydicom/data/test_files/dicomdirtests");
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
    let ct = crate::common::testdata("totalsegmentator/tests/reference_files/example_seg_dicom.nii.gz");
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

/// The output folder is checked and locked before any work: a file, a path under a file, or a
/// folder another run holds end in exit 2 naming it, with nothing written (the CT named here does
/// not even exist: the output is refused first).
#[test]
fn output_folder_problems_exit_2_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let missing_ct = dir.path().join("no-such-ct.nii.gz");
    let file = dir.path().join("taken.txt");
    std::fs::write(&file, "x").unwrap();
    for (out, want) in [(file.clone(), "is not a folder"), (file.join("run"), "cannot write here")] {
        let (code, _, err) =
            nodal(&["segment".as_ref(), missing_ct.as_os_str(), "-o".as_ref(), out.as_os_str()]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains(&file.display().to_string()) && err.contains(want), "{err}");
    }
    let out = dir.path().join("busy");
    let held = nodal_core::output::OutputDir::open(&out).unwrap();
    let (code, _, err) = nodal(&["segment".as_ref(), missing_ct.as_os_str(), "-o".as_ref(), out.as_os_str()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("another nodal run is writing"), "{err}");
    drop(held);
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into())
        .collect();
    names.sort();
    assert_eq!(names, ["taken.txt"], "no output, staging or lock left");
}

/// SIGTERM during `segment` ends with exit 130 and removes the staging folder and the lock; the
/// output folder never appears.
#[cfg(unix)]
#[test]
fn sigterm_during_segment_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let g = nodal_core::Geometry::axis_aligned([0.8, 0.8, 2.0], [0.0; 3]);
    // Soft tissue in air, so that the network has a body to run over.
    let mut ct = nodal_core::Volume::<i16>::filled([256, 256, 120], g, -1000);
    for (n, v) in ct.as_slice_mut().iter_mut().enumerate() {
        let (i, j) = (n % 256, (n / 256) % 256);
        if (40..216).contains(&i) && (40..216).contains(&j) {
            *v = 40;
        }
    }
    let path = dir.path().join("ct.nii.gz");
    nodal_io::write_nifti(&ct, &path).unwrap();
    let out = dir.path().join("run");
    let child = Command::new(env!("CARGO_BIN_EXE_nodal"))
        .args(["segment".as_ref(), path.as_os_str(), "-o".as_ref(), out.as_os_str()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let staging = dir.path().join(format!(".run.tmp-{}", child.id()));
    let t0 = std::time::Instant::now();
    while !staging.exists() {
        assert!(t0.elapsed().as_secs() < 60, "no staging folder appeared");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let done = child.wait_with_output().unwrap();
    assert_eq!(done.status.code(), Some(130), "{}", String::from_utf8_lossy(&done.stderr));
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into())
        .collect();
    assert_eq!(names, ["ct.nii.gz"], "staging and lock removed, no output");
}

/// `measure` keeps every id of a uint32 label map, however large (no merging above 2^31-1), and
/// refuses a float label map holding a fractional value, naming the file.
#[test]
fn measure_keeps_large_ids_and_refuses_fractional_labels() {
    let dir = tempfile::tempdir().unwrap();
    let g = nodal_core::Geometry::axis_aligned([1.0; 3], [0.0; 3]);
    let mut labels = nodal_core::Volume::<u32>::zeros([40, 40, 12], g);
    let ids = [1u32, (1 << 31) + 5, u32::MAX];
    for (n, id) in ids.iter().enumerate() {
        for k in 3..9 {
            for j in 10..18 {
                for i in 2 + 12 * n..10 + 12 * n {
                    labels.data_mut()[[k, j, i]] = *id;
                }
            }
        }
    }
    let path = dir.path().join("labels.nii.gz");
    nodal_io::write_nifti(&labels, &path).unwrap();
    let out = dir.path().join("m");
    let (code, _, err) = nodal(&["measure".as_ref(), path.as_os_str(), "-o".as_ref(), out.as_os_str()]);
    assert_eq!(code, 0, "{err}");
    let nodes: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("nodes.json")).unwrap()).unwrap();
    let mut got: Vec<u64> =
        nodes["nodes"].as_array().unwrap().iter().map(|n| n["node_id"].as_u64().unwrap()).collect();
    got.sort();
    assert_eq!(got, ids.map(u64::from));

    let mut frac = nodal_core::Volume::<f32>::zeros([40, 40, 12], g);
    frac.data_mut()[[5, 12, 4]] = 0.5;
    frac.data_mut()[[5, 12, 20]] = 1.0;
    let bad = dir.path().join("float.nii.gz");
    nodal_io::write_nifti(&frac, &bad).unwrap();
    let out = dir.path().join("f");
    let (code, _, err) = nodal(&["measure".as_ref(), bad.as_os_str(), "-o".as_ref(), out.as_os_str()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&bad.display().to_string()) && err.contains("0.5") && err.contains("not a whole number"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn info_says_which_body_regions_a_ct_shows() {
    let tmp = tempfile::tempdir().unwrap();
    let ph = tmp.path().join("ph");
    let made = Command::new(env!("CARGO_BIN_EXE_nodal"))
        .args(["phantom", "--seed", "3", "-o"])
        .arg(&ph)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let ct = ph.join("ct.nii.gz");
    let (code, out, err) = nodal(&["info".as_ref(), ct.as_os_str()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("(neck: covered)") && !out.contains("warning"), "{out}");
    // Its upper half: the scan now ends in the neck above the thoracic inlet.
    let v = nodal_io::read_nifti::<i16>(&ct).unwrap();
    let [ni, nj, nk] = v.dims();
    let k0 = nk / 2;
    let mut g = *v.geometry();
    g.origin_mm = g.index_to_world([0.0, 0.0, k0 as f64]);
    let data = v.data();
    let upper = ndarray::Array3::from_shape_fn((nk - k0, nj, ni), |(k, j, i)| data[[k + k0, j, i]]);
    let top = nodal_core::Volume::new(upper, g).unwrap();
    let top_path = tmp.path().join("top.nii.gz");
    nodal_io::write_nifti(&top, &top_path).unwrap();
    let (code, out, err) = nodal(&["info".as_ref(), top_path.as_os_str()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("(neck: lower end cut)") && out.contains("levels IV, V-B, VI"), "{out}");
    // A real chest CT angiogram reaching the lower neck, and a real abdomen: no neck.
    for rel in [
        "totalsegmentator/tests/reference_files/aorta_report/example_ct.nii.gz",
        "totalsegmentator/tests/reference_files/example_ct.nii.gz",
    ] {
        let p = crate::common::testdata(rel);
        let (code, out, err) = nodal(&["info".as_ref(), p.as_os_str()]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("(neck: not shown)") && out.contains("chest"), "{rel}: {out}");
    }
}
