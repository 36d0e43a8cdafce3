//! Held-out scans are refused as training backgrounds under any name: the external validation set
//! (`../shared/data/external-validation`) and the held-out validation patient (TotalSegmentator's
//! aorta_report CT and its pulmonary_report crop). Copies are made in a temporary folder at test
//! time; without the shared folder or the fetched test data the tests print a note and pass.
use nodal_phantom::dataset::{read_training_background, write_dataset, DatasetConfig, DatasetRecord, Split};
use nodal_phantom::{PhantomConfig, PhantomError, Randomization};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

fn external(rel: &str) -> Option<PathBuf> {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/external-validation"))
        .join(rel);
    if p.exists() {
        Some(p)
    } else {
        eprintln!("skipped: {} is absent", p.display());
        None
    }
}

fn testdata(rel: &str) -> Option<PathBuf> {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../.cache/testdata")).join(rel);
    if p.exists() {
        Some(p)
    } else {
        eprintln!("skipped: {} is absent (run scripts/fetch-test-data.sh)", p.display());
        None
    }
}

/// A renamed copy, and a renamed copy re-compressed at another gzip level (other bytes, same
/// voxels).
fn copies(src: &Path, dir: &Path) -> [PathBuf; 2] {
    let renamed = dir.join("my_training_background.nii.gz");
    std::fs::copy(src, &renamed).unwrap();
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(src).unwrap()).read_to_end(&mut raw).unwrap();
    let regz = dir.join("another_name.nii.gz");
    let mut enc =
        flate2::write::GzEncoder::new(std::fs::File::create(&regz).unwrap(), flate2::Compression::fast());
    enc.write_all(&raw).unwrap();
    enc.finish().unwrap();
    assert_ne!(std::fs::read(src).unwrap(), std::fs::read(&regz).unwrap(), "re-gzip gave the same bytes");
    [renamed, regz]
}

fn cfg(backgrounds: Vec<PathBuf>) -> DatasetConfig {
    DatasetConfig {
        n: 1,
        seed: 1,
        real_fraction: 1.0,
        split: Split::Train,
        phantom: PhantomConfig::default(),
        backgrounds,
    }
}

#[test]
fn external_validation_case_is_refused_under_any_name() {
    let Some(src) = external("imagesTs/x2_abdomen_3mm_0000.nii.gz") else { return };
    let d = tempfile::tempdir().unwrap();
    let [renamed, regz] = copies(&src, d.path());
    for p in [src.clone(), renamed, regz] {
        let err = read_training_background(&p).unwrap_err();
        match &err {
            PhantomError::ExternalValidationCase { path, case } => {
                assert_eq!(path, &p);
                assert_eq!(case, "x2_abdomen_3mm_0000.nii.gz");
            }
            e => panic!("{}: expected an external-validation refusal, got {e}", p.display()),
        }
        assert!(err.to_string().contains("external validation case"), "{err}");
        assert!(err.to_string().contains("not for training"), "{err}");
        // The dataset writer refuses it before writing any case.
        let out = d.path().join("ds");
        let e = write_dataset(&cfg(vec![p.clone()]), &out, &|| {}).unwrap_err();
        assert!(matches!(e, PhantomError::ExternalValidationCase { .. }), "{e}");
        assert!(
            !out.join("imagesTr").exists() || std::fs::read_dir(out.join("imagesTr")).unwrap().count() == 0
        );
    }
}

/// Re-saved through the NIfTI writer (a new header and compression): the decoded voxels match.
#[test]
fn external_validation_case_is_refused_after_a_resave() {
    let Some(src) = external("imagesTs/x5_phantom_neck_0p9x0p9x3p0_0000.nii.gz") else { return };
    let d = tempfile::tempdir().unwrap();
    let v = nodal_phantom::background::read_background(&src).unwrap();
    let p = d.path().join("resaved.nii.gz");
    nodal_io::write_nifti(&v, &p).unwrap();
    let err = read_training_background(&p).unwrap_err();
    assert!(matches!(err, PhantomError::ExternalValidationCase { .. }), "{err}");
}

#[test]
fn external_label_maps_are_refused_as_backgrounds() {
    let Some(src) = external("labelsTs/x2_abdomen_3mm.nii.gz") else { return };
    let err = read_training_background(&src).unwrap_err();
    assert!(matches!(err, PhantomError::ExternalValidationCase { .. }), "{err}");
}

#[test]
fn held_out_patient_crop_is_refused_under_any_name() {
    let Some(src) =
        testdata("totalsegmentator/tests/reference_files/pulmonary_report/models/ct_cropped.nii.gz")
    else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let [renamed, regz] = copies(&src, d.path());
    for p in [src.clone(), renamed, regz] {
        let err = read_training_background(&p).unwrap_err();
        assert!(matches!(err, PhantomError::HeldOutBackground { .. }), "{}: {err}", p.display());
    }
    let Some(aorta) = testdata("totalsegmentator/tests/reference_files/aorta_report/example_ct.nii.gz")
    else {
        return;
    };
    let [_, regz] = copies(&aorta, d.path());
    let err = read_training_background(&regz).unwrap_err();
    assert!(matches!(err, PhantomError::HeldOutBackground { .. }), "{err}");
}

#[test]
fn training_backgrounds_are_accepted() {
    let Some(src) = testdata("totalsegmentator/tests/reference_files/example_ct.nii.gz") else { return };
    read_training_background(&src).unwrap();
}

/// The randomization is recorded in `nodal_dataset.json`, and a case regenerates from the recorded
/// config and seed alone.
#[test]
fn dataset_records_the_randomization_and_reproduces_from_it() {
    let d = tempfile::tempdir().unwrap();
    let mut c = cfg(vec![]);
    c.real_fraction = 0.0;
    c.phantom.randomization = Randomization::wide();
    let rec = write_dataset(&c, d.path(), &|| {}).unwrap();
    assert!(rec.command.contains("--randomization wide"), "{}", rec.command);
    let back: DatasetRecord =
        serde_json::from_slice(&std::fs::read(d.path().join("nodal_dataset.json")).unwrap()).unwrap();
    assert_eq!(back.config.phantom.randomization, Randomization::wide());
    let p = nodal_phantom::generate_phantom(&back.config.phantom, back.cases[0].seed).unwrap();
    let img: nodal_core::Volume<i16> =
        nodal_io::read_nifti(d.path().join("imagesTr/case_000_0000.nii.gz")).unwrap();
    assert_eq!(p.ct.as_slice(), img.as_slice());
    // A config written before randomization existed reads as off.
    let mut j: serde_json::Value = serde_json::to_value(&back.config.phantom).unwrap();
    j.as_object_mut().unwrap().remove("randomization");
    let old: PhantomConfig = serde_json::from_value(j).unwrap();
    assert_eq!(old.randomization, Randomization::off());
}
