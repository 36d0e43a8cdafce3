//! DICOM reader on arbitrary bytes (the 128-byte preamble and "DICM" are prepended when missing, so
//! that the fuzzer spends its time past the magic check). Every input must give `Ok` or a typed error.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::io::Write;

fuzz_target!(|data: &[u8]| {
    let mut f = tempfile::Builder::new().suffix(".dcm").tempfile().unwrap();
    if data.len() < 132 || &data[128..132] != b"DICM" {
        f.write_all(&[0u8; 128]).unwrap();
        f.write_all(b"DICM").unwrap();
    }
    f.write_all(data).unwrap();
    f.flush().unwrap();
    let _ = nodal_io::list_series(f.path());
    if let Ok(scan) = nodal_io::read_ct(f.path()) {
        assert!(scan.hu.dims().iter().product::<usize>() <= nodal_io::MAX_VOXELS);
    }
});
