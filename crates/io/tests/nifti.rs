//! NIfTI round trips, orientation handling, header fields and bad-input errors.
mod common;

use ndarray::Array3;
use nodal_core::{Geometry, Volume, Voxel};
use nodal_io::{read_nifti, read_nifti_header, write_nifti, IoError, NiftiVoxel};
use proptest::prelude::*;
use std::path::Path;

fn oblique_geometry() -> Geometry {
    let (s, c) = (0.3f64.sin(), 0.3f64.cos());
    Geometry {
        spacing_mm: [0.7, 0.8, 2.5],
        origin_mm: [10.25, -5.5, 100.0],
        direction: [[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, -1.0]],
    }
}

/// A volume whose voxels spread over the whole range of `T` (extremes included).
fn pattern<T: Voxel>(dims: [usize; 3], f: impl Fn(usize) -> T) -> Volume<T> {
    let n = dims[0] * dims[1] * dims[2];
    let data = Array3::from_shape_vec([dims[2], dims[1], dims[0]], (0..n).map(f).collect()).unwrap();
    Volume::new(data, oblique_geometry()).unwrap()
}

fn assert_bit_exact<T: NiftiVoxel>(vol: &Volume<T>, dir: &Path, name: &str) {
    let path = dir.join(name);
    write_nifti(vol, &path).unwrap();
    let back: Volume<T> = read_nifti(&path).unwrap();
    assert_eq!(back.dims(), vol.dims());
    // Bit-exact voxels (compare through bits so that NaN payloads and -0.0 count too).
    let bits = |v: &Volume<T>| v.as_slice().iter().map(|x| format!("{x:?}")).collect::<Vec<_>>();
    assert_eq!(bits(&back), bits(vol), "{name}");
    // Geometry survives the float32 header to float32 precision.
    assert!(back.geometry().same_grid(vol.geometry(), vol.dims(), 1e-4), "{name}: {:?}", back.geometry());
    // No temporary file is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn round_trips_are_bit_exact_per_dtype_nii_and_gz() {
    let dir = tempfile::tempdir().unwrap();
    let dims = [7, 5, 3];
    for ext in ["nii", "nii.gz"] {
        assert_bit_exact(&pattern(dims, |n| (n * 37 % 256) as u8), dir.path(), &format!("u8.{ext}"));
        assert_bit_exact(
            &pattern(dims, |n| match n {
                0 => i16::MIN,
                1 => i16::MAX,
                _ => (n as i16).wrapping_mul(977),
            }),
            dir.path(),
            &format!("i16.{ext}"),
        );
        assert_bit_exact(
            &pattern(dims, |n| if n == 0 { u16::MAX } else { (n as u16).wrapping_mul(4099) }),
            dir.path(),
            &format!("u16.{ext}"),
        );
        assert_bit_exact(
            &pattern(dims, |n| match n {
                0 => i32::MIN,
                1 => i32::MAX,
                _ => (n as i32).wrapping_mul(-123_456_789),
            }),
            dir.path(),
            &format!("i32.{ext}"),
        );
        assert_bit_exact(
            &pattern(dims, |n| match n {
                0 => f32::NAN,
                1 => -0.0,
                2 => f32::MAX,
                3 => f32::MIN_POSITIVE,
                _ => (n as f32).sin() * 1e3,
            }),
            dir.path(),
            &format!("f32.{ext}"),
        );
        assert_bit_exact(&pattern(dims, |n| (n as u32) * 1_000_003), dir.path(), &format!("u32.{ext}"));
        assert_bit_exact(&pattern(dims, |n| (n as f64).sqrt() / 3.0), dir.path(), &format!("f64.{ext}"));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// Random i16 volumes of random shapes and axis-aligned/flipped geometries survive a round trip.
    #[test]
    fn random_i16_round_trip(
        ni in 1usize..9, nj in 1usize..9, nk in 1usize..5, seed in any::<u64>(),
        flips in 0u8..8, gz in any::<bool>(),
    ) {
        let n = ni * nj * nk;
        let mut x = seed | 1;
        let data: Vec<i16> = (0..n).map(|_| { x ^= x << 13; x ^= x >> 7; x ^= x << 17; x as i16 }).collect();
        let mut g = Geometry::axis_aligned([0.5, 1.25, 3.0], [-20.0, 7.5, 33.0]);
        for a in 0..3 {
            if flips & (1 << a) != 0 {
                g.direction[a][a] = -1.0;
            }
        }
        let vol = Volume::new(Array3::from_shape_vec([nk, nj, ni], data).unwrap(), g).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(if gz { "v.nii.gz" } else { "v.nii" });
        write_nifti(&vol, &path).unwrap();
        let back: Volume<i16> = read_nifti(&path).unwrap();
        prop_assert_eq!(back.as_slice(), vol.as_slice());
        prop_assert!(back.same_grid(&vol));
    }
}

#[test]
fn written_header_has_sform_qform_units_and_is_gzip_only_for_gz() {
    let dir = tempfile::tempdir().unwrap();
    let vol = pattern([4, 3, 2], |n| n as i16);
    let p = dir.path().join("h.nii");
    write_nifti(&vol, &p).unwrap();
    let bytes = std::fs::read(&p).unwrap();
    assert_eq!(bytes.len(), 352 + 24 * 2);
    let i16_at = |o: usize| i16::from_le_bytes([bytes[o], bytes[o + 1]]);
    assert_eq!(i32::from_le_bytes(bytes[0..4].try_into().unwrap()), 348);
    assert_eq!(&bytes[344..348], b"n+1\0");
    assert_eq!(i16_at(252), 1, "qform_code");
    assert_eq!(i16_at(254), 1, "sform_code");
    assert_eq!(bytes[123] & 7, 2, "xyzt_units: mm");
    assert_eq!(i16_at(70), 4, "datatype int16");
    let h = read_nifti_header(&p).unwrap();
    assert_eq!(h.dims, [4, 3, 2]);
    assert_eq!(h.affine_source, "sform");
    // The stored sform is the RAS affine: LPS with the first two rows negated.
    let lps = vol.geometry().affine_lps();
    for c in 0..4 {
        assert!((h.affine_ras[0][c] + lps[0][c]).abs() < 1e-4);
        assert!((h.affine_ras[1][c] + lps[1][c]).abs() < 1e-4);
        assert!((h.affine_ras[2][c] - lps[2][c]).abs() < 1e-4);
    }
    let pgz = dir.path().join("h.nii.gz");
    write_nifti(&vol, &pgz).unwrap();
    assert_eq!(&std::fs::read(&pgz).unwrap()[..2], &[0x1f, 0x8b]);
}

/// Rewrites header bytes of an uncompressed .nii.
fn patch(path: &Path, edits: &[(usize, &[u8])]) {
    let mut b = std::fs::read(path).unwrap();
    for (off, bytes) in edits {
        b[*off..*off + bytes.len()].copy_from_slice(bytes);
    }
    std::fs::write(path, b).unwrap();
}

#[test]
fn qform_is_used_when_sform_code_is_zero_and_gives_the_same_grid() {
    let dir = tempfile::tempdir().unwrap();
    let vol = pattern([5, 4, 3], |n| n as i16);
    let p = dir.path().join("q.nii");
    write_nifti(&vol, &p).unwrap();
    // Move the sform's origin and switch the sform off: the quaternion alone must give the grid back.
    patch(&p, &[(254, &0i16.to_le_bytes()), (292, &1234.5f32.to_le_bytes())]);
    let h = read_nifti_header(&p).unwrap();
    assert_eq!(h.affine_source, "qform");
    assert!(h.geometry.same_grid(vol.geometry(), vol.dims(), 1e-4), "{:?}", h.geometry);
    // With sform on, the (moved) sform wins.
    patch(&p, &[(254, &2i16.to_le_bytes())]);
    let h = read_nifti_header(&p).unwrap();
    assert_eq!(h.affine_source, "sform");
    assert_eq!(h.affine_ras[0][3], 1234.5);
}

#[test]
fn scl_slope_and_inter_are_applied_and_slope_zero_means_none() {
    let dir = tempfile::tempdir().unwrap();
    let vol = pattern([4, 4, 2], |n| n as i16 - 10);
    let p = dir.path().join("s.nii");
    write_nifti(&vol, &p).unwrap();
    patch(&p, &[(112, &2.5f32.to_le_bytes()), (116, &(-1024.0f32).to_le_bytes())]);
    let f: Volume<f32> = read_nifti(&p).unwrap();
    for (got, raw) in f.as_slice().iter().zip(vol.as_slice()) {
        assert_eq!(*got, *raw as f32 * 2.5 - 1024.0);
    }
    // Integer output rounds the scaled value.
    let i: Volume<i16> = read_nifti(&p).unwrap();
    assert_eq!(i.as_slice()[1], ((-9.0f64 * 2.5 - 1024.0).round()) as i16);
    patch(&p, &[(112, &0.0f32.to_le_bytes())]);
    let none: Volume<i16> = read_nifti(&p).unwrap();
    assert_eq!(none.as_slice(), vol.as_slice());
}

/// Stores the same LPS volume with its axes flipped into RAS and LAS order; reading each back, every
/// world point must hold the same value.
#[test]
fn orientation_flips_keep_world_to_value_mapping() {
    let dims = [6, 5, 4];
    let lps_geom = Geometry::axis_aligned([0.9, 1.1, 2.0], [-30.0, 12.0, 50.0]);
    let lps = Volume::new(
        Array3::from_shape_fn([dims[2], dims[1], dims[0]], |(k, j, i)| (100 * k + 10 * j + i) as i16),
        lps_geom,
    )
    .unwrap();
    // flip[a]: whether index axis a is reversed.
    let flipped = |flip: [bool; 3]| -> Volume<i16> {
        let mut g = lps_geom;
        let mut corner = [0.0; 3];
        for a in 0..3 {
            if flip[a] {
                g.direction[a] = g.direction[a].map(|v| -v);
                corner[a] = (dims[a] - 1) as f64;
            }
        }
        g.origin_mm = lps_geom.index_to_world(corner);
        let data = Array3::from_shape_fn([dims[2], dims[1], dims[0]], |(k, j, i)| {
            let src = |a: usize, x: usize| if flip[a] { dims[a] - 1 - x } else { x };
            lps.get(src(0, i), src(1, j), src(2, k))
        });
        Volume::new(data, g).unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    for (code, flip) in [("LPS", [false; 3]), ("RAS", [true, true, false]), ("LAS", [false, true, false])] {
        let v = flipped(flip);
        assert_eq!(v.geometry().orientation_string(), code);
        let p = dir.path().join(format!("{code}.nii.gz"));
        write_nifti(&v, &p).unwrap();
        let back: Volume<i16> = read_nifti(&p).unwrap();
        assert_eq!(back.geometry().orientation_string(), code);
        for k in 0..dims[2] {
            for j in 0..dims[1] {
                for i in 0..dims[0] {
                    let w = lps_geom.index_to_world([i as f64, j as f64, k as f64]);
                    let idx = back.geometry().world_to_index(w);
                    let r = idx.map(|x| x.round());
                    assert!(idx.iter().zip(r.iter()).all(|(a, b)| (a - b).abs() < 1e-4));
                    let got = back.get(r[0] as usize, r[1] as usize, r[2] as usize);
                    assert_eq!(got, lps.get(i, j, k), "{code} at world {w:?}");
                }
            }
        }
        // Reorienting back to canonical storage gives the original array.
        assert_eq!(back.reorient_canonical().as_slice(), lps.as_slice(), "{code}");
    }
}

// ----- bad input: one test per failure, each built from a good file -----

fn good_file(dir: &Path, name: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    write_nifti(&pattern([16, 16, 8], |n| (n % 3000) as i16), &p).unwrap();
    p
}

fn names_file(e: &IoError, p: &Path) {
    let msg = e.to_string();
    assert!(msg.contains(&p.display().to_string()), "message does not name the file: {msg}");
}

#[test]
fn truncated_gzip_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = good_file(dir.path(), "t.nii.gz");
    let b = std::fs::read(&p).unwrap();
    std::fs::write(&p, &b[..b.len() / 2]).unwrap();
    let e = read_nifti::<i16>(&p).unwrap_err();
    assert!(matches!(e, IoError::Gzip { .. }), "{e:?}");
    names_file(&e, &p);
    // Only the 8-byte trailer missing: the voxels decode but the stream is still incomplete.
    std::fs::write(&p, &b[..b.len() - 4]).unwrap();
    let e = read_nifti::<i16>(&p).unwrap_err();
    assert!(matches!(e, IoError::Gzip { .. }), "{e:?}");
}

#[test]
fn corrupt_gzip_crc_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = good_file(dir.path(), "c.nii.gz");
    let mut b = std::fs::read(&p).unwrap();
    let n = b.len();
    b[n - 8] ^= 0xff; // CRC32 of the trailer
    std::fs::write(&p, &b).unwrap();
    let e = read_nifti::<i16>(&p).unwrap_err();
    assert!(matches!(e, IoError::Gzip { .. }), "{e:?}");
}

#[test]
fn wrong_magic_and_wrong_header_size_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = good_file(dir.path(), "m.nii");
    patch(&p, &[(344, b"xyz\0")]);
    let e = read_nifti::<i16>(&p).unwrap_err();
    assert!(matches!(e, IoError::NotNifti { .. }), "{e:?}");
    names_file(&e, &p);
    let p = good_file(dir.path(), "s.nii");
    patch(&p, &[(0, &540i32.to_le_bytes())]);
    assert!(matches!(read_nifti::<i16>(&p), Err(IoError::NotNifti { .. })));
    // A file shorter than a header.
    std::fs::write(&p, b"hello").unwrap();
    assert!(matches!(read_nifti::<i16>(&p), Err(IoError::NotNifti { .. })));
    // A missing file.
    assert!(matches!(read_nifti::<i16>(dir.path().join("none.nii")), Err(IoError::Open { .. })));
}

#[test]
fn data_shorter_than_header_declares_is_a_size_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let p = good_file(dir.path(), "d.nii");
    let b = std::fs::read(&p).unwrap();
    std::fs::write(&p, &b[..b.len() - 100]).unwrap();
    match read_nifti::<i16>(&p).unwrap_err() {
        IoError::DataSizeMismatch { expected_bytes, found_bytes, path } => {
            assert_eq!(expected_bytes, 16 * 16 * 8 * 2);
            assert_eq!(found_bytes, 16 * 16 * 8 * 2 - 100);
            assert_eq!(path, p);
        }
        e => panic!("{e:?}"),
    }
    // The same through gzip: the stream ends cleanly but too early.
    let gz = dir.path().join("d.nii.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut enc, &b[..b.len() - 100]).unwrap();
    std::fs::write(&gz, enc.finish().unwrap()).unwrap();
    assert!(matches!(read_nifti::<i16>(&gz), Err(IoError::DataSizeMismatch { .. })));
}

#[test]
fn zero_and_absurd_dims_are_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let p = good_file(dir.path(), "z.nii");
    patch(&p, &[(44, &0i16.to_le_bytes())]);
    let e = read_nifti::<i16>(&p).unwrap_err();
    assert!(matches!(e, IoError::InvalidDims { .. }), "{e:?}");
    names_file(&e, &p);
    // 32767^3 voxels (~70 TB) would abort on allocation; it must be refused from the header alone.
    let p = good_file(dir.path(), "a.nii");
    let big = 32767i16.to_le_bytes();
    patch(&p, &[(42, &big), (44, &big), (46, &big)]);
    assert!(matches!(read_nifti::<i16>(&p), Err(IoError::InvalidDims { .. })));
    assert!(matches!(read_nifti_header(&p), Err(IoError::InvalidDims { .. })));
    let p = good_file(dir.path(), "n.nii");
    patch(&p, &[(42, &(-5i16).to_le_bytes())]);
    assert!(matches!(read_nifti::<i16>(&p), Err(IoError::InvalidDims { .. })));
}

#[test]
fn nan_spacing_or_affine_is_invalid_geometry() {
    let dir = tempfile::tempdir().unwrap();
    let p = good_file(dir.path(), "nan.nii");
    patch(&p, &[(280, &f32::NAN.to_le_bytes())]); // srow_x[0]
    let e = read_nifti::<i16>(&p).unwrap_err();
    assert!(matches!(e, IoError::InvalidGeometry { .. }), "{e:?}");
    names_file(&e, &p);
    // qform path: NaN pixdim.
    let p = good_file(dir.path(), "nanq.nii");
    patch(&p, &[(254, &0i16.to_le_bytes()), (84, &f32::NAN.to_le_bytes())]);
    assert!(matches!(read_nifti::<i16>(&p), Err(IoError::InvalidGeometry { .. })));
    // A sheared sform.
    let p = good_file(dir.path(), "shear.nii");
    patch(&p, &[(284, &0.5f32.to_le_bytes())]); // srow_x[1]
    assert!(matches!(read_nifti::<i16>(&p), Err(IoError::InvalidGeometry { .. })));
}

#[test]
fn unsupported_datatype_and_4d_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = good_file(dir.path(), "dt.nii");
    patch(&p, &[(70, &128i16.to_le_bytes())]); // RGB24
    let e = read_nifti::<i16>(&p).unwrap_err();
    assert!(matches!(e, IoError::UnsupportedNifti { .. }), "{e:?}");
    let p = good_file(dir.path(), "4d.nii");
    patch(&p, &[(40, &4i16.to_le_bytes()), (48, &2i16.to_le_bytes())]);
    assert!(matches!(read_nifti::<i16>(&p), Err(IoError::UnsupportedNifti { .. })));
}

#[test]
fn write_to_a_missing_folder_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let vol = pattern([2, 2, 2], |n| n as u8);
    let e = write_nifti(&vol, dir.path().join("no/such/dir/x.nii")).unwrap_err();
    assert!(matches!(e, IoError::Write { .. }), "{e:?}");
}

// ----- registry files -----

/// Big-endian and int8 storage are read (built from a good file by byte-swapping / retyping).
#[test]
fn big_endian_and_int8_files_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let vol = pattern([4, 3, 2], |n| n as i16 * 300 - 2000);
    let p = dir.path().join("le.nii");
    write_nifti(&vol, &p).unwrap();
    let le = std::fs::read(&p).unwrap();
    // Swap every header field by its size (layout from the NIfTI-1 standard) and the int16 voxels.
    let mut be = le.clone();
    let swap = |b: &mut Vec<u8>, off: usize, size: usize| b[off..off + size].reverse();
    swap(&mut be, 0, 4);
    for a in 0..8 {
        swap(&mut be, 40 + 2 * a, 2);
    }
    for off in [68, 70, 72, 74] {
        swap(&mut be, off, 2);
    }
    for off in (76..=116).step_by(4).chain((124..=140).step_by(4)) {
        swap(&mut be, off, 4);
    }
    swap(&mut be, 252, 2);
    swap(&mut be, 254, 2);
    for off in (256..344).step_by(4) {
        swap(&mut be, off, 4);
    }
    for v in (352..be.len()).step_by(2) {
        swap(&mut be, v, 2);
    }
    let pbe = dir.path().join("be.nii");
    std::fs::write(&pbe, &be).unwrap();
    let h = read_nifti_header(&pbe).unwrap();
    assert!(h.big_endian);
    let back: Volume<i16> = read_nifti(&pbe).unwrap();
    assert_eq!(back.as_slice(), vol.as_slice());
    assert!(back.same_grid(&vol));

    // int8: same header, datatype 256, one byte per voxel.
    let small = pattern([4, 3, 2], |n| (n as i8 - 12) as i16);
    let mut b = le[..352].to_vec();
    b[70..72].copy_from_slice(&256i16.to_le_bytes());
    b[72..74].copy_from_slice(&8i16.to_le_bytes());
    b.extend(small.as_slice().iter().map(|&v| v as i8 as u8));
    let p8 = dir.path().join("i8.nii");
    std::fs::write(&p8, &b).unwrap();
    let back: Volume<i16> = read_nifti(&p8).unwrap();
    assert_eq!(back.as_slice(), small.as_slice());
}

#[test]
fn registry_nifti_files_read_with_expected_header_facts() {
    // Facts below were read with nibabel 5.3.2 (`img.shape`, `img.get_data_dtype()`, `aff2axcodes`).
    let ts = common::ts_ref();
    let ct = ts.join("example_ct.nii.gz");
    let h = read_nifti_header(&ct).unwrap();
    assert_eq!(h.dims, [122, 101, 112]);
    assert_eq!(h.dtype, nodal_io::NiftiDtype::I32);
    assert_eq!(h.affine_source, "sform");
    let v: Volume<i32> = read_nifti(&ct).unwrap();
    assert_eq!(v.geometry().orientation_string(), "RAS");
    assert_eq!(v.min_max(), (-1207.0, 3382.0));
    let seg = read_nifti_header(ts.join("example_seg_dicom.nii.gz")).unwrap();
    assert_eq!(seg.dims, [512, 512, 20]);
    assert_eq!(seg.dtype, nodal_io::NiftiDtype::U8);
    assert_eq!(seg.geometry.orientation_string(), "LAS");
}
