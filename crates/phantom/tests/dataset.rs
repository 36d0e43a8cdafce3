//! The dataset writer, the real-background mode and the InVesalius reader, on the fetched
//! registry data (run `bash scripts/fetch-test-data.sh` first; these tests fail without it).
use nodal_core::Volume;
use nodal_phantom::background::{insert_nodes, local_noise_std, read_background};
use nodal_phantom::dataset::{case_seed, write_dataset, DatasetConfig, Split};
use nodal_phantom::{generate_phantom, PhantomConfig, PhantomError};
use std::path::PathBuf;

fn testdata(rel: &str) -> PathBuf {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../.cache/testdata")).join(rel);
    assert!(p.exists(), "{} is missing: run `bash scripts/fetch-test-data.sh`", p.display());
    p
}

fn example_ct() -> PathBuf {
    testdata("totalsegmentator/tests/reference_files/example_ct.nii.gz")
}
fn held_out() -> PathBuf {
    testdata("totalsegmentator/tests/reference_files/aorta_report/example_ct.nii.gz")
}
fn cranium() -> PathBuf {
    testdata("invesalius/usr/share/doc/invesalius-examples/examples/Cranium.inv3")
}

fn cfg(n: usize, real_fraction: f64, backgrounds: Vec<PathBuf>) -> DatasetConfig {
    DatasetConfig {
        n,
        seed: 5,
        real_fraction,
        split: Split::Train,
        phantom: PhantomConfig::default(),
        backgrounds,
    }
}

#[test]
fn dataset_has_the_nnunet_layout_and_reproduces_each_case() {
    let d = tempfile::tempdir().unwrap();
    let c = cfg(3, 0.5, vec![example_ct()]);
    let rec = write_dataset(&c, d.path(), &|| {}).unwrap();
    assert_eq!(rec.cases.len(), 3);
    let ds: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.path().join("dataset.json")).unwrap()).unwrap();
    assert_eq!(ds["channel_names"]["0"], "CT");
    assert_eq!(ds["labels"]["background"], 0);
    assert_eq!(ds["labels"]["lymph_node"], 1);
    assert_eq!(ds["numTraining"], 3);
    assert_eq!(ds["file_ending"], ".nii.gz");
    for (i, case) in rec.cases.iter().enumerate() {
        let name = format!("case_{i:03}");
        assert_eq!(case.case, name);
        let img: Volume<i16> =
            nodal_io::read_nifti(d.path().join(format!("imagesTr/{name}_0000.nii.gz"))).unwrap();
        let lab: Volume<u16> =
            nodal_io::read_nifti(d.path().join(format!("instancesTr/{name}.nii.gz"))).unwrap();
        assert!(img.same_grid(&lab));
        // nnU-Net's labels: the declared classes only, on the same voxels.
        let binary: Volume<u8> =
            nodal_io::read_nifti(d.path().join(format!("labelsTr/{name}.nii.gz"))).unwrap();
        assert!(binary.same_grid(&lab));
        assert_eq!(binary.as_slice(), lab.map(|v| u8::from(v != 0)).as_slice());
        let nodes: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.path().join(format!("nodesTr/{name}.json"))).unwrap())
                .unwrap();
        let max = lab.as_slice().iter().copied().max().unwrap() as usize;
        assert_eq!(nodes["nodes"].as_array().unwrap().len(), max);
        assert_eq!(case.seed, case_seed(&c, i));
        // Any phantom case regenerates from its recorded seed alone.
        if case.source == "phantom" {
            let p = generate_phantom(&c.phantom, case.seed).unwrap();
            assert_eq!(p.ct.as_slice(), img.as_slice());
            assert_eq!(p.labels.as_slice(), lab.as_slice());
        }
    }
    let rec_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.path().join("nodal_dataset.json")).unwrap()).unwrap();
    assert!(rec_json["generator"].as_str().unwrap().starts_with("nodal-phantom"));
    assert_eq!(rec_json["config"]["seed"], 5);
    // A second run writes the same bytes.
    let d2 = tempfile::tempdir().unwrap();
    write_dataset(&c, d2.path(), &|| {}).unwrap();
    for f in [
        "imagesTr/case_001_0000.nii.gz",
        "labelsTr/case_002.nii.gz",
        "instancesTr/case_002.nii.gz",
        "nodesTr/case_000.json",
    ] {
        assert!(std::fs::read(d.path().join(f)).unwrap() == std::fs::read(d2.path().join(f)).unwrap(), "{f}");
    }
}

#[test]
fn train_and_val_splits_never_share_a_seed() {
    let mut a = cfg(50, 0.0, vec![]);
    let train: Vec<u64> = (0..50).map(|i| case_seed(&a, i)).collect();
    a.split = Split::Val;
    assert!((0..50).all(|i| !train.contains(&case_seed(&a, i))));
}

#[test]
fn held_out_background_is_refused_by_path_and_by_content() {
    let d = tempfile::tempdir().unwrap();
    let err = write_dataset(&cfg(1, 1.0, vec![held_out()]), d.path(), &|| {}).unwrap_err();
    assert!(matches!(err, PhantomError::HeldOutBackground { .. }), "{err}");
    // A renamed copy is recognised by its content.
    let copy = d.path().join("renamed.nii.gz");
    std::fs::copy(held_out(), &copy).unwrap();
    let err = write_dataset(&cfg(1, 1.0, vec![copy]), d.path(), &|| {}).unwrap_err();
    assert!(matches!(err, PhantomError::HeldOutBackground { .. }), "{err}");
    // The training background is accepted.
    write_dataset(&cfg(1, 1.0, vec![example_ct()]), d.path(), &|| {}).unwrap();
}

#[test]
fn inserted_nodes_avoid_bone_air_and_vessels_and_carry_matched_noise() {
    for (path, seed) in [(example_ct(), 1u64), (cranium(), 2)] {
        let bg = read_background(&path).unwrap();
        let p = insert_nodes(&bg, &PhantomConfig::default(), seed).unwrap();
        assert!(p.nodes.len() >= 3, "{}: {} nodes", path.display(), p.nodes.len());
        assert!(p.ct.same_grid(&bg) && p.labels.same_grid(&bg));
        let (b, l) = (bg.as_slice(), p.labels.as_slice());
        for v in 0..l.len() {
            if l[v] != 0 {
                assert!(
                    (-300..=150).contains(&b[v]),
                    "{}: node voxel on background HU {}",
                    path.display(),
                    b[v]
                );
            }
        }
        // Outside the nodes (and their 1-voxel blend rim) the background is untouched.
        let changed = (0..l.len()).filter(|&v| p.ct.as_slice()[v] != b[v]).count();
        let node_vox = l.iter().filter(|&&x| x != 0).count();
        assert!(changed <= node_vox * 3, "{changed} changed voxels for {node_vox} node voxels");
        // Noise inside the nodes is of the order of the background's.
        let big = p.nodes.iter().max_by(|a, c| a.volume_mm3.total_cmp(&c.volume_mm3)).unwrap();
        let c = bg.geometry().world_to_index(big.centroid_mm).map(|x| x.round() as usize);
        let sd_bg = local_noise_std(&bg, c);
        assert!(sd_bg > 2.0 && sd_bg < 80.0, "{sd_bg}");
    }
}

#[test]
fn invesalius_project_reads_with_its_declared_shape_spacing_and_range() {
    let v = nodal_phantom::inv3::read_inv3(&cranium()).unwrap();
    // main.plist: shape [108, 256, 256], spacing [0.9570312, 0.9570312, 1.5]. Values from NumPy on
    // the raw matrix.dat (`np.frombuffer(..., '<i2').reshape(108, 256, 256)`): min -1024, max 2986,
    // sum -4147325847, a[50, 100, 120] = 29 and a[50, 155, 120] = 18 (rows are flipped on reading).
    assert_eq!(v.dims(), [256, 256, 108]);
    let s = v.geometry().spacing_mm;
    assert!((s[0] - 0.9570312).abs() < 1e-6 && (s[2] - 1.5).abs() < 1e-9);
    assert_eq!(v.min_max(), (-1024.0, 2986.0));
    assert_eq!(v.as_slice().iter().map(|&x| x as i64).sum::<i64>(), -4_147_325_847);
    assert_eq!(v.get(120, 255 - 100, 50), 29);
    assert_eq!(v.get(120, 255 - 155, 50), 18);
    let err = nodal_phantom::inv3::read_inv3(&example_ct()).unwrap_err();
    assert!(matches!(err, PhantomError::Inv3 { .. }));
    // A head CT from the palate up: the body coverage finds a head and no neck.
    let c = nodal_nodes::coverage::body_coverage(
        &nodal_phantom::background::read_background(&cranium()).unwrap(),
    );
    assert_eq!(c.neck, nodal_nodes::coverage::NeckCoverage::Absent, "{}", c.summary());
    assert!(c.regions.iter().any(|r| r.region == nodal_nodes::coverage::BodyRegion::Head), "{}", c.summary());
}
