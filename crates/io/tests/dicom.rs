//! DICOM CT series reading on registry files, and every bad-input error on files derived from them.
mod common;

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use nodal_core::Volume;
use nodal_io::{list_series, read_ct, read_ct_files, read_ct_series, read_nifti, IoError};
use std::path::{Path, PathBuf};

fn ct5n() -> PathBuf {
    common::pydicom_files().join("dicomdirtests/98892001/CT5N")
}

fn ts_dicom() -> PathBuf {
    common::ts_ref().join("example_ct_dicom")
}

fn copy_dir(src: &Path, dst: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(dst).unwrap();
    let mut out = Vec::new();
    for e in std::fs::read_dir(src).unwrap() {
        let p = e.unwrap().path();
        let q = dst.join(p.file_name().unwrap());
        std::fs::copy(&p, &q).unwrap();
        out.push(q);
    }
    out.sort();
    out
}

fn set_str(path: &Path, tag: dicom_core::Tag, vr: VR, value: &str) {
    let mut obj = dicom_object::open_file(path).unwrap();
    obj.put(DataElement::new(tag, vr, PrimitiveValue::from(value)));
    obj.write_to_file(path).unwrap();
}

fn get_ipp(path: &Path) -> Vec<f64> {
    let obj = dicom_object::open_file(path).unwrap();
    obj.element(tags::IMAGE_POSITION_PATIENT).unwrap().to_multi_float64().unwrap()
}

/// The 512x512x20 JPEG 2000 series of TotalSegmentator's tests. Geometry facts from pydicom:
/// ImageOrientationPatient [1,0,0,0,1,0], PixelSpacing 0.9765625, positions z = -804.5 .. -766.5 step 2,
/// x/y of the first pixel (-249.51171875, -437.51171875).
#[test]
fn jpeg2000_series_reads_with_dicom_geometry() {
    let scan = read_ct(ts_dicom()).unwrap();
    let g = scan.hu.geometry();
    assert_eq!(scan.hu.dims(), [512, 512, 20]);
    assert_eq!(g.spacing_mm, [0.9765625, 0.9765625, 2.0]);
    assert_eq!(g.origin_mm, [-249.51171875, -437.51171875, -804.5]);
    assert_eq!(g.orientation_string(), "LPS");
    let refs = scan.dicom.unwrap();
    assert_eq!(refs.sop_instance_uids.len(), 20);
    assert_eq!(refs.series_description.as_deref(), Some("CT Body 3.0"));
    assert_eq!(refs.manufacturer.as_deref(), Some("SIEMENS"));
    assert_eq!(
        refs.frame_of_reference_uid.as_deref(),
        Some("1.3.12.2.1107.5.1.4.60064.30000022120807274275100000041")
    );
    // These files are anonymised with empty UIDs.
    assert_eq!(refs.series_instance_uid, None);
    // Air outside the patient is -1024 (stored 0, intercept -1024) and nothing saturates.
    let (lo, hi) = scan.hu.min_max();
    assert_eq!(lo, -1024.0);
    assert!(hi < 4000.0);
}

/// TotalSegmentator's segmentation of that series is stored LAS: after reorienting both, the grids
/// coincide voxel for voxel, and the labels sit on plausible HU (bone on dense voxels, air outside).
#[test]
fn series_grid_equals_its_segmentation_grid() {
    let scan = read_ct(ts_dicom()).unwrap();
    let seg: Volume<u8> = read_nifti(common::ts_ref().join("example_seg_dicom.nii.gz")).unwrap();
    assert_eq!(seg.geometry().orientation_string(), "LAS");
    assert!(!seg.same_grid(&scan.hu), "stored differently (j flipped)");
    // Every seg voxel centre is a CT voxel centre: j_ct = 511 - j_seg, i and k equal.
    for &(i, j, k) in &[(0usize, 0usize, 0usize), (511, 0, 0), (0, 511, 19), (100, 200, 7), (511, 511, 19)] {
        let w = seg.geometry().index_to_world([i as f64, j as f64, k as f64]);
        let idx = scan.hu.geometry().world_to_index(w);
        let want = [i as f64, 511.0 - j as f64, k as f64];
        for a in 0..3 {
            assert!((idx[a] - want[a]).abs() < 1e-6, "{idx:?} vs {want:?}");
        }
    }
    let seg = seg.reorient_canonical();
    assert!(seg.same_grid(&scan.hu));
    // TotalSegmentator v2 classes: 26..=50 vertebrae, 92..=115 ribs (bone).
    let mut bone = Vec::new();
    let mut background_air = 0usize;
    for (&l, &h) in seg.as_slice().iter().zip(scan.hu.as_slice()) {
        if (26..=50).contains(&l) || (92..=115).contains(&l) {
            bone.push(h);
        } else if l == 0 && h < -900 {
            background_air += 1;
        }
    }
    assert!(bone.len() > 1000);
    bone.sort_unstable();
    assert!(bone[bone.len() / 2] > 200, "median bone HU {}", bone[bone.len() / 2]);
    assert!(background_air > 100_000);
}

/// `example_ct.nii.gz` is not this series: it is another 3-mm int32 RAS volume whose field of view
/// (z 94.3 .. 427.3 mm) does not meet the DICOM series' (z -804.5 .. -766.5 mm), so no world point is
/// shared and there is no voxel to compare. This pins that fact so the relation is not assumed.
#[test]
fn example_ct_nifti_and_the_dicom_series_share_no_world_point() {
    let scan = read_ct(ts_dicom()).unwrap();
    let ct = read_ct(common::ts_ref().join("example_ct.nii.gz")).unwrap();
    assert!(ct.dicom.is_none());
    let z_range = |v: &Volume<i16>| {
        let d = v.dims();
        let (a, b) = (
            v.geometry().index_to_world([0.0, 0.0, 0.0])[2],
            v.geometry().index_to_world([(d[0] - 1) as f64, (d[1] - 1) as f64, (d[2] - 1) as f64])[2],
        );
        (a.min(b), a.max(b))
    };
    let (a0, a1) = z_range(&scan.hu);
    let (b0, b1) = z_range(&ct.hu);
    assert!((a0, a1) == (-804.5, -766.5));
    assert!((b0 - 94.30176).abs() < 1e-3 && (b1 - 427.30176).abs() < 1e-3);
    assert!(a1 < b0, "the volumes would overlap");
}

#[test]
fn ct_small_single_file_reads() {
    // pydicom: 128x128, explicit VR little endian, IPP [-158.135803, -179.035797, -75.699997],
    // PixelSpacing 0.661468, SliceThickness 5, slope 1, intercept -1024, first raw pixels 175 180 166.
    let p = common::pydicom_files().join("CT_small.dcm");
    let series = list_series(&p).unwrap();
    assert_eq!(series.len(), 1);
    assert_eq!(series[0].transfer_syntax, "1.2.840.10008.1.2.1");
    let scan = read_ct(&p).unwrap();
    assert_eq!(scan.hu.dims(), [128, 128, 1]);
    let g = scan.hu.geometry();
    assert_eq!(g.spacing_mm, [0.661468, 0.661468, 5.0]);
    assert_eq!(g.origin_mm, [-158.135803, -179.035797, -75.699997]);
    assert_eq!(&scan.hu.as_slice()[..3], &[175 - 1024, 180 - 1024, 166 - 1024]);
    assert_eq!(scan.dicom.unwrap().sop_instance_uids.len(), 1);
}

#[test]
fn dicomdir_tests_list_all_series_and_need_a_choice() {
    let root = common::pydicom_files().join("dicomdirtests");
    let series = list_series(&root).unwrap();
    let modality = |m: &str| series.iter().filter(|s| s.modality.as_deref() == Some(m)).count();
    // Counted with pydicom by SeriesInstanceUID: 77654033: CR1, CR2, CR3, CT2; 98892001: CT2N, CT5N;
    // 98892003: 7 MR series; TINY_ALPHA: one CT series of files without an image (no Rows).
    assert_eq!(modality("CR"), 3);
    assert_eq!(modality("CT"), 4);
    assert_eq!(modality("MR"), 7);
    let ct_images = series.iter().filter(|s| s.modality.as_deref() == Some("CT") && s.dims.is_some()).count();
    assert_eq!(ct_images, 3);
    assert!(series.iter().all(|s| s.transfer_syntax == "1.2.840.10008.1.2.1"));
    let e = read_ct_series(&root, None).unwrap_err();
    match &e {
        IoError::AmbiguousSeries { series, .. } => assert_eq!(series.len(), 3),
        e => panic!("{e:?}"),
    }
    assert!(e.to_string().contains("--series"));
    // Choosing CT5N reads it.
    let uid = series.iter().find(|s| s.files[0].starts_with(ct5n())).unwrap().series_instance_uid.clone();
    let scan = read_ct_series(&root, Some(&uid)).unwrap();
    assert_eq!(scan.hu.dims(), [16, 16, 5]);
    // Unknown UID: a typed error listing what is there.
    assert!(matches!(read_ct_series(&root, Some("1.2.3")), Err(IoError::SeriesNotFound { .. })));
}

/// A copy of CT5N's files `which` as another series of the same study (new series and instance UIDs),
/// with `image_type` when given.
fn derived_series(dir: &Path, name: &str, which: &[usize], image_type: Option<&str>) {
    let files = copy_dir(&ct5n(), &dir.join(name));
    for (n, f) in files.iter().enumerate() {
        if !which.contains(&n) {
            std::fs::remove_file(f).unwrap();
            continue;
        }
        set_str(f, tags::SERIES_INSTANCE_UID, VR::UI, &format!("1.2.826.0.1.3680043.10.1.{}", name.len()));
        set_str(f, tags::SOP_INSTANCE_UID, VR::UI, &format!("1.2.826.0.1.3680043.10.2.{}.{n}", name.len()));
        set_str(f, tags::SERIES_DESCRIPTION, VR::LO, name);
        if let Some(t) = image_type {
            set_str(f, tags::IMAGE_TYPE, VR::CS, t);
        }
    }
}

/// A PACS export of one study: a scout, the thin reconstruction and a thicker one. The reader takes
/// the axial CT volume with the most slices and says why; a tie or a second study needs `--series`.
#[test]
fn a_pacs_like_study_folder_reads_its_ct_volume_without_a_choice() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    copy_dir(&ct5n(), &root.join("thin"));
    derived_series(root, "thick", &[0, 2, 4], None);
    // The scout has as many slices as the thin series: only its ImageType sets it aside.
    derived_series(root, "scout-x", &[0, 1, 2, 3, 4], Some("ORIGINAL\\PRIMARY\\LOCALIZER"));
    let scan = read_ct(root).unwrap();
    assert_eq!(scan.hu.dims(), [16, 16, 5]);
    assert_eq!(scan.hu, read_ct(ct5n()).unwrap().hu);
    let choice = scan.series_choice.expect("the choice is recorded");
    assert_eq!((choice.n_slices, choice.n_series), (5, 3));
    assert!(choice.reason.contains("thick (fewer slices)") && choice.reason.contains("scout-x (localizer)"));
    // A single series needs no choice.
    assert!(read_ct(ct5n()).unwrap().series_choice.is_none());

    // Two reconstructions with as many slices: no clear choice.
    derived_series(root, "thin-bone", &[0, 1, 2, 3, 4], None);
    match read_ct(root).unwrap_err() {
        IoError::AmbiguousSeries { series, .. } => assert_eq!(series.len(), 4),
        e => panic!("{e:?}"),
    }
    std::fs::remove_dir_all(root.join("thin-bone")).unwrap();
    // A file of another study beside them: no choice across studies.
    std::fs::copy(common::pydicom_files().join("CT_small.dcm"), root.join("other.dcm")).unwrap();
    assert!(matches!(read_ct(root), Err(IoError::AmbiguousSeries { .. })));
    // Named, any of them reads; a NIfTI has no series to name.
    let uid = "1.2.826.0.1.3680043.10.1.5";
    assert_eq!(nodal_io::read_ct_choosing(root, Some(uid)).unwrap().hu.dims(), [16, 16, 3]);
    let e = nodal_io::read_ct_choosing(root.join("ct.nii.gz"), Some(uid)).unwrap_err();
    assert!(matches!(e, IoError::SeriesForNifti { .. }), "{e:?}");
}

#[test]
fn ct5n_is_sorted_along_the_normal() {
    // pydicom: files 2062, 2392, 2693, 3023, 3353 at z 8.7625, 6.2625, 3.7625, 1.2625, -1.2375;
    // orientation [1,0,0,0,1,0] so the normal is +z and the slices must come out in reverse file order.
    let files: Vec<PathBuf> =
        ["2062", "2392", "2693", "3023", "3353"].iter().map(|f| ct5n().join(f)).collect();
    let scan = read_ct(ct5n()).unwrap();
    let g = scan.hu.geometry();
    assert_eq!(scan.hu.dims(), [16, 16, 5]);
    assert!((g.spacing_mm[2] - 2.5).abs() < 1e-9);
    assert_eq!(g.origin_mm, [-72.199997, -143.0, -1.2375]);
    // The k-th slice is the file at the k-th lowest z: compare with reading each file alone.
    for (k, f) in files.iter().rev().enumerate() {
        let one = read_ct_files(f, std::slice::from_ref(f), None).unwrap();
        let plane = &scan.hu.as_slice()[k * 256..(k + 1) * 256];
        assert_eq!(plane, one.hu.as_slice(), "slice {k}");
        let sop = &scan.dicom.as_ref().unwrap().sop_instance_uids[k];
        assert_eq!(sop, &one.dicom.unwrap().sop_instance_uids[0]);
    }
    // A list of files in any order gives the same volume.
    let shuffled =
        vec![files[2].clone(), files[0].clone(), files[4].clone(), files[1].clone(), files[3].clone()];
    let again = read_ct_files(&ct5n(), &shuffled, None).unwrap();
    assert_eq!(again.hu, scan.hu);
}

#[test]
fn enhanced_multiframe_ct_uses_functional_groups() {
    // pydicom: 2 frames 512x512; shared IOP [-1,0,0,0,1,0], PixelSpacing 0.388672, rescale 1/-1024;
    // per-frame positions [99.5, -301.5, -159] and [99.5, -301.5, -149]. Normal = row x col = -z, so the
    // frame at z = -149 comes first.
    let p = common::testdata().join("pydicom-data/eCT_Supplemental.dcm");
    let scan = read_ct(&p).unwrap();
    let g = scan.hu.geometry();
    assert_eq!(scan.hu.dims(), [512, 512, 2]);
    assert_eq!(g.origin_mm, [99.5, -301.5, -149.0]);
    assert_eq!(g.spacing_mm, [0.388672, 0.388672, 10.0]);
    assert_eq!(g.orientation_string(), "RPI");
    let refs = scan.dicom.unwrap();
    assert_eq!(refs.sop_class_uid.as_deref(), Some("1.2.840.10008.5.1.4.1.1.2.1"));
    assert_eq!(refs.sop_instance_uids.len(), 2);
    // Stored range 0..1196 (pydicom) -> HU -1024..172.
    assert_eq!(scan.hu.min_max(), (-1024.0, 172.0));
}

// ----- bad input -----

fn names(e: &IoError, p: &Path) {
    assert!(e.to_string().contains(&p.display().to_string()), "{e}");
}

#[test]
fn mr_modality_is_refused_naming_the_modality() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("mr.dcm");
    std::fs::copy(common::pydicom_files().join("CT_small.dcm"), &p).unwrap();
    set_str(&p, tags::MODALITY, VR::CS, "MR");
    let e = read_ct(&p).unwrap_err();
    assert!(matches!(&e, IoError::NotCt { modality, .. } if modality == "MR"), "{e:?}");
    assert!(e.to_string().contains("MR"));
    // A real MR file too.
    let e = read_ct(common::pydicom_files().join("MR_small.dcm")).unwrap_err();
    assert!(matches!(&e, IoError::NotCt { modality, .. } if modality == "MR"), "{e:?}");
}

#[test]
fn mixed_series_without_a_choice_is_an_error_listing_them() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&ct5n(), &dir.path().join("a"));
    std::fs::copy(common::pydicom_files().join("CT_small.dcm"), dir.path().join("b.dcm")).unwrap();
    let e = read_ct(dir.path()).unwrap_err();
    match &e {
        IoError::AmbiguousSeries { series, .. } => assert_eq!(series.len(), 2),
        e => panic!("{e:?}"),
    }
    names(&e, dir.path());
    assert!(e.to_string().contains("1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322"), "{e}");
}

#[test]
fn a_missing_slice_is_reported_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let files = copy_dir(&ct5n(), dir.path());
    std::fs::remove_file(&files[2]).unwrap(); // z = 3.7625
    match read_ct(dir.path()).unwrap_err() {
        IoError::MissingSlices { missing, before_mm, after_mm, spacing_mm, .. } => {
            assert_eq!(missing, 1);
            assert!((before_mm - 1.2625).abs() < 1e-6 && (after_mm - 6.2625).abs() < 1e-6);
            assert!((spacing_mm - 2.5).abs() < 1e-6);
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn registry_series_with_a_gap_and_with_mixed_orientations_are_refused() {
    // 77654033/CT2: z -99.48, 103.02, 104.27, 105.52 (pydicom) -> 161 slices of 1.25 mm missing.
    let ct2 = common::pydicom_files().join("dicomdirtests/77654033/CT2");
    match read_ct(&ct2).unwrap_err() {
        IoError::MissingSlices { missing, .. } => assert_eq!(missing, 161),
        e => panic!("{e:?}"),
    }
    // 98892001/CT2N: two slices of one series, one sagittal and one coronal.
    let e = read_ct(common::pydicom_files().join("dicomdirtests/98892001/CT2N")).unwrap_err();
    assert!(matches!(e, IoError::InconsistentSeries { .. }), "{e:?}");
}

/// Slices of different sizes name both files and print the sizes as numbers ("(missing)" for an
/// absent Rows), never as Rust options.
#[test]
fn slices_of_different_sizes_are_refused_naming_both_files() {
    let dir = tempfile::tempdir().unwrap();
    let files = copy_dir(&ct5n(), dir.path());
    let mut obj = dicom_object::open_file(&files[1]).unwrap();
    obj.remove_element(tags::ROWS);
    obj.write_to_file(&files[1]).unwrap();
    let e = read_ct(dir.path()).unwrap_err();
    let msg = e.to_string();
    assert!(!msg.contains("Some(") && !msg.contains("None"), "{msg}");
    assert!(msg.contains(&files[1].display().to_string()), "{msg}");
}

#[test]
fn non_uniform_spacing_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let files = copy_dir(&ct5n(), dir.path());
    let ipp = get_ipp(&files[0]); // z = 8.7625, neighbour at 6.2625
    set_str(&files[0], tags::IMAGE_POSITION_PATIENT, VR::DS, &format!("{}\\{}\\{}", ipp[0], ipp[1], 7.5));
    assert!(matches!(read_ct(dir.path()), Err(IoError::NonUniformSpacing { .. })));
}

#[test]
fn gantry_tilt_is_a_typed_error_not_a_sheared_volume() {
    let dir = tempfile::tempdir().unwrap();
    let files = copy_dir(&ct5n(), dir.path());
    // Shift y by tan(15 deg) per mm of z, as a tilted gantry does.
    for f in &files {
        let p = get_ipp(f);
        let y = p[1] + (p[2] * 15f64.to_radians().tan());
        set_str(f, tags::IMAGE_POSITION_PATIENT, VR::DS, &format!("{:.4}\\{:.4}\\{:.4}", p[0], y, p[2]));
    }
    match read_ct(dir.path()).unwrap_err() {
        IoError::GantryTilt { tilt_deg, .. } => assert!((tilt_deg - 15.0).abs() < 0.1, "{tilt_deg}"),
        e => panic!("{e:?}"),
    }
}

#[test]
fn unsupported_transfer_syntax_is_a_typed_error() {
    // JPEG-LS needs the CharLS C library, which nodal does not link. Relabel an MR JPEG-LS file as CT.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("jls.dcm");
    std::fs::copy(common::pydicom_files().join("MR_small_jpeg_ls_lossless.dcm"), &p).unwrap();
    set_str(&p, tags::MODALITY, VR::CS, "CT");
    let e = read_ct(&p).unwrap_err();
    match &e {
        IoError::UnsupportedTransferSyntax { uid, .. } => assert_eq!(uid, "1.2.840.10008.1.2.4.80"),
        e => panic!("{e:?}"),
    }
    names(&e, &p);
}

#[test]
fn unreadable_and_truncated_dicom_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    // DICM magic then garbage.
    let p = dir.path().join("garbage.dcm");
    let mut b = vec![0u8; 128];
    b.extend_from_slice(b"DICM");
    b.extend_from_slice(&[0xff; 64]);
    std::fs::write(&p, &b).unwrap();
    let e = read_ct(&p).unwrap_err();
    assert!(matches!(e, IoError::Dicom { .. }), "{e:?}");
    names(&e, &p);
    // Pixel data cut short.
    let p = dir.path().join("trunc.dcm");
    let good = std::fs::read(common::pydicom_files().join("CT_small.dcm")).unwrap();
    std::fs::write(&p, &good[..good.len() - 5000]).unwrap();
    let e = read_ct(&p).unwrap_err();
    assert!(matches!(e, IoError::Dicom { .. } | IoError::PixelDecode { .. }), "{e:?}");
    names(&e, &p);
}

#[test]
fn no_dicom_files_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not dicom").unwrap();
    let e = read_ct(dir.path()).unwrap_err();
    assert!(matches!(e, IoError::NoDicomFiles { .. }), "{e:?}");
    names(&e, dir.path());
    assert!(matches!(read_ct(dir.path().join("missing")), Err(IoError::Open { .. })));
}

// ----- transfer syntaxes -----

/// pydicom ships one 64x64 MR image in several transfer syntaxes. Relabelled as CT, each must decode
/// to exactly the HU of the explicit-VR original.
#[test]
fn transfer_syntaxes_decode_to_identical_hu() {
    let dir = tempfile::tempdir().unwrap();
    let relabel = |name: &str| {
        let p = dir.path().join(name);
        std::fs::copy(common::pydicom_files().join(name), &p).unwrap();
        set_str(&p, tags::MODALITY, VR::CS, "CT");
        // An MR has no rescale, which a CT must have (Type 1): give it the identity.
        set_str(&p, tags::RESCALE_INTERCEPT, VR::DS, "0");
        set_str(&p, tags::RESCALE_SLOPE, VR::DS, "1");
        p
    };
    let reference = read_ct(relabel("MR_small.dcm")).unwrap().hu;
    assert_eq!(reference.dims(), [64, 64, 1]);
    let (lo, hi) = reference.min_max();
    assert!(hi - lo > 100.0, "a real image, not a constant");
    for (name, ts) in [
        ("MR_small_implicit.dcm", "1.2.840.10008.1.2"),
        ("MR_small_RLE.dcm", "1.2.840.10008.1.2.5"),
        ("MR_small_jp2klossless.dcm", "1.2.840.10008.1.2.4.90"),
    ] {
        let p = relabel(name);
        assert_eq!(list_series(&p).unwrap()[0].transfer_syntax, ts);
        let v = read_ct(&p).unwrap().hu;
        assert_eq!(v, reference, "{name}");
    }
    // Deflated explicit VR little endian: re-encode the CT_small data set deflated.
    let src = common::pydicom_files().join("CT_small.dcm");
    let mut obj = dicom_object::open_file(&src).unwrap();
    obj.update_meta(|m| {
        m.set_transfer_syntax(&dicom_transfer_syntax_registry::entries::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN)
    });
    let dfl = dir.path().join("deflated.dcm");
    obj.write_to_file(&dfl).unwrap();
    assert_eq!(list_series(&dfl).unwrap()[0].transfer_syntax, "1.2.840.10008.1.2.1.99");
    assert!(std::fs::metadata(&dfl).unwrap().len() < std::fs::metadata(&src).unwrap().len());
    assert_eq!(read_ct(&dfl).unwrap().hu, read_ct(&src).unwrap().hu);
    // Big endian is refused (typed), not misread.
    let e = read_ct(relabel("MR_small_bigendian.dcm")).unwrap_err();
    assert!(matches!(e, IoError::UnsupportedTransferSyntax { .. }), "{e:?}");
}

#[test]
fn absurd_frame_count_and_zero_spacing_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("frames.dcm");
    std::fs::copy(common::pydicom_files().join("CT_small.dcm"), &p).unwrap();
    // 128 x 128 x 2e9 frames: must be refused from the header, before any allocation.
    set_str(&p, tags::NUMBER_OF_FRAMES, VR::IS, "2000000000");
    let e = read_ct(&p).unwrap_err();
    assert!(matches!(e, IoError::InvalidDims { .. }), "{e:?}");
    names(&e, &p);
    let p = dir.path().join("spacing.dcm");
    std::fs::copy(common::pydicom_files().join("CT_small.dcm"), &p).unwrap();
    set_str(&p, tags::PIXEL_SPACING, VR::DS, "0\\0");
    let e = read_ct(&p).unwrap_err();
    assert!(matches!(e, IoError::InvalidGeometry { .. }), "{e:?}");
    names(&e, &p);
}
