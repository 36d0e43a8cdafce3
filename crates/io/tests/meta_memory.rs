//! Found by the mutation sweep: a 1 KB DICOM whose file meta declares a 775 MB value (the VR of
//! MediaStorageSOPInstanceUID changed to UN, so the UID's first bytes become a 4-byte length). The
//! length walk refuses it, and nothing may parse the meta afterwards (the directory check did,
//! reserving 760 MB). Alone in its test binary: it measures the process' peak memory.
mod common;

use common::peak_rss_mib;
use common::synth::{self, Spec};

#[test]
fn a_huge_length_in_the_file_meta_is_refused_without_parsing_it() {
    let dir = tempfile::tempdir().unwrap();
    let spec = Spec { slices: 1, ..Spec::default() };
    let file = synth::write_series(&spec, dir.path()).remove(0);
    let mut b = std::fs::read(&file).unwrap();
    // (0002,0003) UI: tag, "UI", 2-byte length, then the UID "1.2...".
    let at = b.windows(6).position(|w| w == [0x02, 0x00, 0x03, 0x00, b'U', b'I']).unwrap();
    b[at + 4..at + 6].copy_from_slice(b"UN");
    std::fs::write(&file, &b).unwrap();
    for e in [nodal_io::read_ct(&file).unwrap_err(), nodal_io::list_series(&file).unwrap_err()] {
        assert!(matches!(e, nodal_io::IoError::Dicom { .. }), "{e:?}");
        common::names(&e, &file);
        assert!(e.to_string().contains("(0002,0003)"), "{e}");
    }
    if let Some(peak) = peak_rss_mib() {
        assert!(peak < 256, "peak RSS {peak} MiB for a 1 KB file");
    }
}
