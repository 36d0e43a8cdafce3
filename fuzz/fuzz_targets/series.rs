//! Series assembly on arbitrary bytes: the input is cut at every "NEXT" into up to 8 files of one
//! folder (each given the DICOM preamble and magic when missing), then the folder is listed and
//! read as one CT. Slices that disagree (sizes, orientations, positions, duplicates, several
//! series) must give `Ok` or a typed error, never a panic or an oversized allocation.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let mut start = 0;
    let mut n = 0;
    while start <= data.len() && n < 8 {
        let end = data[start..].windows(4).position(|w| w == b"NEXT").map_or(data.len(), |p| start + p);
        let mut bytes = Vec::with_capacity(end - start + 132);
        let part = &data[start..end];
        if part.len() < 132 || &part[128..132] != b"DICM" {
            bytes.extend_from_slice(&[0u8; 128]);
            bytes.extend_from_slice(b"DICM");
        }
        bytes.extend_from_slice(part);
        std::fs::write(dir.path().join(format!("{n}.dcm")), &bytes).unwrap();
        n += 1;
        start = end + 4;
    }
    let _ = nodal_io::list_series(dir.path());
    if let Ok(scan) = nodal_io::read_ct(dir.path()) {
        assert!(scan.hu.dims().iter().product::<usize>() <= nodal_io::MAX_VOXELS);
    }
});
