//! Bad input that used to crash, exhaust memory or pass silently: each case is built at test time and
//! must end in a typed error naming the file (or, where documented, a read with a warning).
mod common;

use common::synth::{self, Spec};
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use nodal_core::{Geometry, Volume};
use nodal_io::{describe, read_ct, read_nifti, read_nifti_header, write_nifti, IoError, MAX_VOXELS};
use std::path::Path;

fn patch(path: &Path, edits: &[(usize, &[u8])]) {
    let mut b = std::fs::read(path).unwrap();
    for (off, bytes) in edits {
        b[*off..*off + bytes.len()].copy_from_slice(bytes);
    }
    std::fs::write(path, b).unwrap();
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut enc, bytes).unwrap();
    enc.finish().unwrap()
}

// ----- RLE-compressed DICOM: corrupt frames -----

#[test]
fn synthetic_rle_series_reads_like_its_native_twin() {
    let dir = tempfile::tempdir().unwrap();
    let native = Spec::default();
    let rle = Spec { rle: true, ..Spec::default() };
    synth::write_series(&native, &dir.path().join("native"));
    synth::write_series(&rle, &dir.path().join("rle"));
    let a = read_ct(dir.path().join("native")).unwrap();
    let b = read_ct(dir.path().join("rle")).unwrap();
    assert_eq!(a.hu.as_slice(), synth::expected(&native).as_slice());
    assert_eq!(a.hu, b.hu);
    assert!(a.warnings.is_empty() && b.warnings.is_empty());
}

/// A truncated segment, a changed byte, and a broken RLE header: each a typed error naming the bad
/// slice, also when it sits in a folder of good slices (which used to abort the whole read, exit 101).
#[test]
fn corrupt_rle_slice_is_a_typed_error_naming_the_file() {
    let spec = Spec { rle: true, ..Spec::default() };
    let words = synth::stored(&spec, 1);
    let good = synth::rle_frame(&words);
    let n = spec.rows * spec.cols;
    // The low-byte segment cut to a few bytes: the codec decodes too few and indexes past them.
    let mut truncated = good.clone();
    truncated.truncate(64 + (n.div_ceil(128) + n) + 6);
    // One byte changed: the first literal header of segment 0 becomes a 2-byte replicate run, so the
    // segment decodes far short of rows x cols.
    let mut flipped = good.clone();
    flipped[64] = 0xFF;
    // Header: 2^32-1 segments (the codec would size a 16 GiB table from it).
    let mut header = good.clone();
    header[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
    // Fewer than the 64 header bytes.
    let tiny = good[..20].to_vec();
    for (name, frag, want_contained_panic) in [
        ("truncated", truncated, true),
        ("flipped", flipped, true),
        ("header", header, false),
        ("tiny", tiny, false),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let files = synth::write_series(&spec, dir.path());
        synth::write(synth::slice_object(&spec, 1, Some(frag)), synth::RLE_LOSSLESS, &files[1]);
        for input in [files[1].as_path(), dir.path()] {
            let e = read_ct(input).unwrap_err();
            assert!(matches!(e, IoError::CorruptPixelData { .. }), "{name}: {e:?}");
            common::names(&e, &files[1]);
            let msg = e.to_string();
            assert!(msg.contains("corrupt pixel data (decoder failed)"), "{name}: {msg}");
            if want_contained_panic {
                // The decoder's own panic, contained: its message is the detail.
                assert!(msg.contains("index out of bounds") || msg.contains("range"), "{name}: {msg}");
            }
        }
    }
}

/// The whole file cut short or with a byte changed in the pixel data: an error, never a panic.
#[test]
fn truncated_or_flipped_rle_file_is_an_error_not_a_panic() {
    let spec = Spec { rle: true, slices: 1, ..Spec::default() };
    let dir = tempfile::tempdir().unwrap();
    let file = synth::write_series(&spec, dir.path()).remove(0);
    let bytes = std::fs::read(&file).unwrap();
    // The file ends with the 8-byte sequence delimiter; a cut inside it loses no pixel and still reads.
    for cut in [bytes.len() - 9, bytes.len() - 50, bytes.len() - 200, bytes.len() / 2] {
        std::fs::write(&file, &bytes[..cut]).unwrap();
        let e = match read_ct(&file) {
            Ok(scan) => panic!("cut at {cut} of {}: read {:?}", bytes.len(), scan.hu.dims()),
            Err(e) => e,
        };
        common::names(&e, &file);
    }
    // Every byte of the last 300 (pixel data) changed in turn: Ok (a changed value) or a typed error.
    for at in bytes.len() - 300..bytes.len() {
        let mut b = bytes.clone();
        b[at] ^= 0xA5;
        std::fs::write(&file, &b).unwrap();
        if let Err(e) = read_ct(&file) {
            common::names(&e, &file);
        }
    }
}

// ----- DICOM sizes -----

/// NumberOfFrames 2^31 without Rows/Columns in an ~800-byte file used to ask for 309 GB and abort;
/// 10^7 frames used to take 1.4 GB and "succeed".
#[test]
fn absurd_number_of_frames_is_refused_from_the_header() {
    let dir = tempfile::tempdir().unwrap();
    let spec = Spec::default();
    for (name, frames, rows_cols) in [
        ("no_rows_2e31.dcm", "2147483648", false),
        ("no_rows_1e7.dcm", "10000000", false),
        ("rows_1e7.dcm", "10000000", true),
    ] {
        let p = dir.path().join(name);
        let mut o = synth::slice_header(&spec, 0);
        if !rows_cols {
            o.remove_element(tags::ROWS);
            o.remove_element(tags::COLUMNS);
        }
        o.put(DataElement::new(tags::NUMBER_OF_FRAMES, VR::IS, PrimitiveValue::from(frames)));
        synth::write(o, synth::EXPLICIT_VR_LE, &p);
        assert!(std::fs::metadata(&p).unwrap().len() < 1200);
        let e = read_ct(&p).unwrap_err();
        assert!(matches!(e, IoError::InvalidDims { .. }), "{name}: {e:?}");
        common::names(&e, &p);
        assert!(e.to_string().contains(frames), "{name}: {e}");
    }
}

#[test]
fn pixel_data_length_must_match_the_image_size() {
    let dir = tempfile::tempdir().unwrap();
    let spec = Spec::default();
    // 16 x 12 x 16 bits = 384 bytes expected; 100 given.
    let p = dir.path().join("short.dcm");
    let mut o = synth::slice_header(&spec, 0);
    o.put(DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U16(vec![0u16; 50].into())));
    synth::write(o, synth::EXPLICIT_VR_LE, &p);
    match read_ct(&p).unwrap_err() {
        e @ IoError::DataSizeMismatch { expected_bytes: 384, found_bytes: 100, .. } => common::names(&e, &p),
        e => panic!("{e:?}"),
    }
    // Rows 1000 x Columns 1000 over the same 384 bytes.
    let p = dir.path().join("big.dcm");
    let mut o = synth::slice_object(&spec, 0, None);
    o.put(DataElement::new(tags::ROWS, VR::US, PrimitiveValue::from(1000u16)));
    o.put(DataElement::new(tags::COLUMNS, VR::US, PrimitiveValue::from(1000u16)));
    synth::write(o, synth::EXPLICIT_VR_LE, &p);
    let e = read_ct(&p).unwrap_err();
    assert!(matches!(e, IoError::DataSizeMismatch { expected_bytes: 2_000_000, .. }), "{e:?}");
    // No BitsAllocated / SamplesPerPixel (Type 1): the size cannot be known.
    for tag in [tags::BITS_ALLOCATED, tags::SAMPLES_PER_PIXEL] {
        let p = dir.path().join(format!("no{:04x}.dcm", tag.element()));
        let mut o = synth::slice_object(&spec, 0, None);
        o.remove_element(tag);
        synth::write(o, synth::EXPLICIT_VR_LE, &p);
        let e = read_ct(&p).unwrap_err();
        assert!(matches!(e, IoError::Dicom { .. }), "{e:?}");
        common::names(&e, &p);
    }
}

/// A length field changed to ~4 GB in a small file: the parser would zero-fill that much before
/// noticing; the length walk refuses it first.
#[test]
fn element_length_beyond_the_file_is_refused_before_parsing() {
    let dir = tempfile::tempdir().unwrap();
    let spec = Spec { slices: 1, ..Spec::default() };
    let file = synth::write_series(&spec, dir.path()).remove(0);
    let mut b = std::fs::read(&file).unwrap();
    // PixelData (7FE0,0010) OW: tag, VR, 2 reserved bytes, then the 4-byte length.
    let at = b.windows(6).rposition(|w| w == [0xE0, 0x7F, 0x10, 0x00, b'O', b'W']).unwrap();
    b[at + 8..at + 12].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    std::fs::write(&file, &b).unwrap();
    let e = read_ct(&file).unwrap_err();
    assert!(matches!(e, IoError::Dicom { .. }), "{e:?}");
    common::names(&e, &file);
    assert!(e.to_string().contains("4294967280"), "{e}");
}

/// Found by the mutation sweep: encapsulated PixelData's tag changed to another tag keeps its
/// undefined length, which the parser would read to the end of the file after reserving 1.5 GB
/// for a 1 KB file. Refused from the header walk.
#[test]
fn undefined_length_outside_sequences_and_pixel_data_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let spec = Spec { rle: true, slices: 1, ..Spec::default() };
    let file = synth::write_series(&spec, dir.path()).remove(0);
    let mut b = std::fs::read(&file).unwrap();
    let at = b.windows(6).rposition(|w| w == [0xE0, 0x7F, 0x10, 0x00, b'O', b'B']).unwrap();
    b[at..at + 4].copy_from_slice(&[0x00, 0x00, 0x80, 0x00]);
    std::fs::write(&file, &b).unwrap();
    for e in [read_ct(&file).unwrap_err(), nodal_io::list_series(&file).unwrap_err()] {
        assert!(matches!(e, IoError::Dicom { .. }), "{e:?}");
        common::names(&e, &file);
        assert!(e.to_string().contains("undefined length"), "{e}");
    }
}

/// Found by fuzzing (the `series` target's seed corpus): pydicom's 674-byte `UN_sequence.dcm`, a
/// private sequence encoded as UN with undefined length, made the parser allocate 3.7 GB before
/// failing. Refused from the header walk, naming the element.
#[test]
fn un_sequence_of_undefined_length_is_refused_before_parsing() {
    let file = common::pydicom_files().join("UN_sequence.dcm");
    for e in [read_ct(&file).unwrap_err(), nodal_io::list_series(&file).unwrap_err()] {
        assert!(matches!(e, IoError::Dicom { .. }), "{e:?}");
        common::names(&e, &file);
        assert!(e.to_string().contains("(4453,100C)") && e.to_string().contains("UN"), "{e}");
    }
}

// ----- NIfTI sizes -----

/// A header claiming 512^3 int16 voxels (256 MiB) over no data: refused from the file length, before
/// any reservation; through gzip, the read fails after what the stream holds.
#[test]
fn nifti_header_larger_than_its_data_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("h.nii");
    write_nifti(&synth::ct_volume([4, 4, 4], [1.0, 1.0, 1.0]), &p).unwrap();
    let d = 512i16.to_le_bytes();
    patch(&p, &[(42, &d), (44, &d), (46, &d)]);
    match read_nifti::<i16>(&p).unwrap_err() {
        e @ IoError::DataSizeMismatch { expected_bytes, found_bytes: 128, .. } => {
            assert_eq!(expected_bytes, 2 * 512 * 512 * 512);
            common::names(&e, &p);
        }
        e => panic!("{e:?}"),
    }
    let gz = dir.path().join("h.nii.gz");
    std::fs::write(&gz, gzip(&std::fs::read(&p).unwrap())).unwrap();
    let e = read_nifti::<i16>(&gz).unwrap_err();
    assert!(matches!(e, IoError::DataSizeMismatch { .. }), "{e:?}");
    common::names(&e, &gz);
    // 2048 x 1024 x 1024 (the case that reserved 8 GB): over the voxel limit.
    patch(&p, &[(42, &2048i16.to_le_bytes()), (44, &1024i16.to_le_bytes()), (46, &1024i16.to_le_bytes())]);
    let e = read_nifti::<f32>(&p).unwrap_err();
    assert!(matches!(e, IoError::InvalidDims { .. }), "{e:?}");
}

/// A 0.5 MB .nii.gz holding 512 Mi uint8 voxels (all zero) used to be read into 2-3 GB.
#[test]
fn compressed_volume_over_the_voxel_limit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("s.nii");
    let g = Geometry::axis_aligned([1.0; 3], [0.0; 3]);
    write_nifti(&Volume::<u8>::filled([2, 2, 2], g, 0), &small).unwrap();
    let mut header = std::fs::read(&small).unwrap()[..352].to_vec();
    for (a, d) in [1024i16, 1024, 512].iter().enumerate() {
        header[42 + 2 * a..44 + 2 * a].copy_from_slice(&d.to_le_bytes());
    }
    let gz = dir.path().join("bomb.nii.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut enc, &header).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..512 {
        std::io::Write::write_all(&mut enc, &zeros).unwrap();
    }
    std::fs::write(&gz, enc.finish().unwrap()).unwrap();
    assert!(std::fs::metadata(&gz).unwrap().len() < 1 << 20);
    for e in
        [read_nifti::<i16>(&gz).unwrap_err(), read_ct(&gz).unwrap_err(), read_nifti_header(&gz).unwrap_err()]
    {
        assert!(matches!(e, IoError::InvalidDims { .. }), "{e:?}");
        common::names(&e, &gz);
        let msg = e.to_string();
        assert!(msg.contains("1024 x 1024 x 512") && msg.contains(&MAX_VOXELS.to_string()), "{msg}");
    }
}

// ----- non-finite values -----

#[test]
fn nan_and_inf_voxels_are_an_error_with_count_and_first_index() {
    let dir = tempfile::tempdir().unwrap();
    let g = Geometry::axis_aligned([0.8, 0.8, 2.0], [0.0; 3]);
    let mut v = Volume::<f32>::filled([5, 4, 3], g, -100.0);
    v.as_slice_mut()[5 * 4 + 5 + 2] = f32::NAN; // (2, 1, 1)
    v.as_slice_mut()[40] = f32::INFINITY;
    v.as_slice_mut()[59] = f32::NEG_INFINITY;
    for name in ["f.nii", "f.nii.gz"] {
        let p = dir.path().join(name);
        write_nifti(&v, &p).unwrap();
        let errs =
            [read_nifti::<i16>(&p).unwrap_err(), read_ct(&p).unwrap_err(), describe(&p, None).unwrap_err()];
        for e in errs {
            match &e {
                IoError::NonFiniteVoxels { count: 3, first_index: [2, 1, 1], .. } => common::names(&e, &p),
                e => panic!("{e:?}"),
            }
        }
    }
    // A float read keeps the values as stored.
    let p = dir.path().join("f.nii");
    assert!(read_nifti::<f32>(&p).unwrap().as_slice()[27].is_nan());
    // All NaN: `nodal info` used to print "inf .. -inf".
    let p = dir.path().join("nan.nii");
    write_nifti(&Volume::<f64>::filled([3, 3, 3], g, f64::NAN), &p).unwrap();
    let e = describe(&p, None).unwrap_err();
    assert!(matches!(e, IoError::NonFiniteVoxels { count: 27, first_index: [0, 0, 0], .. }), "{e:?}");
}

#[test]
fn non_finite_scl_slope_or_inter_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let vol = synth::ct_volume([4, 4, 2], [1.0, 1.0, 1.0]);
    let p = dir.path().join("s.nii");
    for (slope, inter) in
        [(f32::INFINITY, 0.0), (f32::NEG_INFINITY, 0.0), (2.0, f32::NAN), (1.0, f32::INFINITY)]
    {
        write_nifti(&vol, &p).unwrap();
        patch(&p, &[(112, &slope.to_le_bytes()), (116, &inter.to_le_bytes())]);
        for e in [read_nifti::<i16>(&p).unwrap_err(), read_nifti_header(&p).unwrap_err()] {
            assert!(matches!(e, IoError::InvalidScaling { .. }), "{slope} {inter}: {e:?}");
            common::names(&e, &p);
        }
    }
    // NaN slope and intercept is nibabel's "no scaling": read unscaled.
    write_nifti(&vol, &p).unwrap();
    patch(&p, &[(112, &f32::NAN.to_le_bytes()), (116, &f32::NAN.to_le_bytes())]);
    assert_eq!(read_nifti::<i16>(&p).unwrap().as_slice(), vol.as_slice());
}

// ----- DICOM rescale -----

#[test]
fn ct_without_rescale_intercept_is_refused_unless_evidently_hu() {
    let dir = tempfile::tempdir().unwrap();
    // Unsigned stored values (HU + 1024) without the intercept would read 1024 HU high.
    let unsigned = Spec { rescale: false, ..Spec::default() };
    let files = synth::write_series(&unsigned, &dir.path().join("u"));
    let e = read_ct(dir.path().join("u")).unwrap_err();
    match &e {
        IoError::MissingRescale { path, .. } => assert!(files.contains(path)),
        e => panic!("{e:?}"),
    }
    assert!(e.to_string().contains("RescaleIntercept"), "{e}");
    // Signed stored values with negatives are HU already: read, with a warning.
    let signed = Spec { rescale: false, signed: true, ..Spec::default() };
    synth::write_series(&signed, &dir.path().join("s"));
    let scan = read_ct(dir.path().join("s")).unwrap();
    assert_eq!(scan.hu.as_slice(), synth::expected(&signed).as_slice());
    assert_eq!(scan.warnings.len(), 1, "{:?}", scan.warnings);
    assert!(scan.warnings[0].contains("RescaleIntercept"), "{:?}", scan.warnings);
    // Signed but no negative value anywhere: nothing shows the values are HU.
    let p = dir.path().join("pos.dcm");
    let spec = Spec { rescale: false, signed: true, slices: 1, ..Spec::default() };
    let mut o = synth::slice_header(&spec, 0);
    o.put(DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U16(vec![40u16; 16 * 12].into())));
    synth::write(o, synth::EXPLICIT_VR_LE, &p);
    let e = read_ct(&p).unwrap_err();
    assert!(matches!(e, IoError::MissingRescale { .. }), "{e:?}");
    common::names(&e, &p);
    // A non-finite or zero rescale is an error too.
    for (tag, value) in [(tags::RESCALE_SLOPE, "0"), (tags::RESCALE_INTERCEPT, "inf")] {
        let p = dir.path().join("bad_rescale.dcm");
        let mut o = synth::slice_object(&Spec { slices: 1, ..Spec::default() }, 0, None);
        o.put(DataElement::new(tag, VR::DS, PrimitiveValue::from(value)));
        synth::write(o, synth::EXPLICIT_VR_LE, &p);
        let e = read_ct(&p).unwrap_err();
        assert!(matches!(e, IoError::InvalidScaling { .. }), "{value}: {e:?}");
        common::names(&e, &p);
    }
}

// ----- spacing -----

/// An affine scaled x10 or x1e6 (cm/m instead of mm) used to make the pipeline ask for 8-17 GB or
/// panic in ndarray; the reader now refuses it.
#[test]
fn implausible_spacing_is_refused_for_nifti_and_dicom() {
    let dir = tempfile::tempdir().unwrap();
    for (name, spacing) in
        [("x10", [8.0, 8.0, 25.0]), ("x1e6", [8e5, 8e5, 2.5e6]), ("tiny", [0.8e-3, 0.8e-3, 2.5e-3])]
    {
        let p = dir.path().join(format!("{name}.nii.gz"));
        write_nifti(&synth::ct_volume([6, 5, 4], spacing), &p).unwrap();
        let e = read_ct(&p).unwrap_err();
        match &e {
            IoError::ImplausibleSpacing { spacing_mm, .. } => {
                assert!((spacing_mm[2] / spacing[2] - 1.0).abs() < 1e-5, "{spacing_mm:?}")
            }
            e => panic!("{name}: {e:?}"),
        }
        common::names(&e, &p);
        // The generic reader (masks, maps) still reads it: the plausibility is a CT's.
        read_nifti::<i16>(&p).unwrap();
    }
    for (name, ps, dz) in [("ps10", [8.0, 7.0], 25.0), ("ps1e6", [8e5, 7e5], 2.5)] {
        let folder = dir.path().join(name);
        synth::write_series(&Spec { pixel_spacing: ps, slice_spacing: dz, ..Spec::default() }, &folder);
        let e = read_ct(&folder).unwrap_err();
        assert!(matches!(e, IoError::ImplausibleSpacing { .. }), "{name}: {e:?}");
        common::names(&e, &folder);
        assert!(e.to_string().contains(&format!("{}", ps[1])), "{e}");
    }
    // The synthetic defaults (0.7 x 0.8 x 2.5 mm) pass.
    let folder = dir.path().join("ok");
    synth::write_series(&Spec::default(), &folder);
    let g = *read_ct(&folder).unwrap().hu.geometry();
    assert_eq!(g.spacing_mm.map(|s| (s * 1000.0).round() / 1000.0), [0.7, 0.8, 2.5]);
}

// ----- 2-D and few-slice inputs: the reader reports their true dims (the CLI decides) -----

#[test]
fn two_d_and_few_slice_inputs_report_their_true_dims() {
    let dir = tempfile::tempdir().unwrap();
    for slices in [1, 2, 3] {
        let folder = dir.path().join(format!("n{slices}"));
        synth::write_series(&Spec { slices, ..Spec::default() }, &folder);
        assert_eq!(read_ct(&folder).unwrap().hu.dims(), [16, 12, slices]);
    }
    // A 2-D NIfTI (dim[0] = 2).
    let p = dir.path().join("2d.nii");
    write_nifti(&synth::ct_volume([6, 5, 1], [0.8, 0.8, 1.0]), &p).unwrap();
    patch(&p, &[(40, &2i16.to_le_bytes())]);
    assert_eq!(read_nifti_header(&p).unwrap().dims, [6, 5, 1]);
    assert_eq!(read_ct(&p).unwrap().hu.dims(), [6, 5, 1]);
}
