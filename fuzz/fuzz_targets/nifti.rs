//! NIfTI reader on arbitrary bytes: every input must give `Ok` or a typed error. The readers take
//! paths (they stream from files), so each input is written to a temporary file first.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::io::Write;

fuzz_target!(|data: &[u8]| {
    let mut f = tempfile::Builder::new().suffix(".nii").tempfile().unwrap();
    f.write_all(data).unwrap();
    f.flush().unwrap();
    let _ = nodal_io::read_nifti_header(f.path());
    if let Ok(v) = nodal_io::read_nifti::<f32>(f.path()) {
        assert!(v.dims().iter().product::<usize>() <= nodal_io::MAX_VOXELS);
    }
    let _ = nodal_io::read_ct(f.path());
    let _ = nodal_io::describe(f.path(), None);
});
