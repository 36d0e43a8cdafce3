//! Small DICOM files that made the reader reserve gigabytes, each refused now within a small peak
//! memory. Alone in their test binary: they measure the process' peak memory.
//!
//! * Found by the mutation sweep: a 1 KB DICOM whose file meta declares a 775 MB value (the VR of
//!   MediaStorageSOPInstanceUID changed to UN, so the UID's first bytes become a 4-byte length). The
//!   length walk refuses it, and nothing may parse the meta afterwards (the directory check did,
//!   reserving 760 MB).
//! * Found by libFuzzer (`fuzz/`, targets `series` and `dicom`): two 3 KB structured reports in
//!   which an item delimiter's tag was mutated into another tag of its group, (FFFE,0000) and
//!   (FFFE,0D3A), among the elements of an item. The length walk stopped checking there and the
//!   parser, reading on, reserved 3.5 GB and 1.2 GB (8 s and 1 s); then a third with such a tag,
//!   (FFFE,0E1F), among the items of a sequence (0.7 GB). Kept as found, in `tests/fixtures/fuzz/`
//!   (the third with the VR of its SOP Class UID, which the fuzzer had also changed, put back to UI,
//!   so that it shows this problem alone).
//! * Found by libFuzzer: a JPEG 2000 CT with an item delimiter after its pixel data, among the
//!   top-level elements: the walk took it for the end of the data set, the full parse read on and
//!   reserved 4 GB (7 KB file).
//! * Found by libFuzzer: a JPEG 2000 slice whose codestream declares 512 x 4,194,816 pixels under
//!   a 512 x 512 header; the decoder reserved 8.6 GB for it. The codestream's SIZ marker is now
//!   checked against Rows, Columns and the samples per pixel before decoding.
//! * Found by libFuzzer: a 6-byte FD value (Timezone Offset whose VR was mutated); the parser reads
//!   whole 8-byte values and then takes the 6 bytes left for the next element's header (1.2 GB).
//!   Then the same with an 18-byte OV value (a sequence's VR mutated, in an RT Dose file of 7 KB):
//!   0.5 GB and 3 s under the fuzzer. The "other" VRs (OW, OF, OL, OD, OV) are held to whole
//!   values too.
//! * Found by libFuzzer: deflated files (transfer syntax 1.2.840.10008.1.2.1.99) whose data set,
//!   once inflated, declares a 1.1 GB or 0.8 GB value. The length walk skipped deflated data sets
//!   (their lengths say nothing about the file's size); it now walks them as they inflate, and
//!   refuses one that inflates beyond the largest CT nodal reads (a deflate bomb) or that cannot be
//!   inflated to its end (where a corrupt stream stops depends on the size of the reads, so the
//!   parser read on past where the walk had stopped: 0.5-0.8 GB).
mod common;

use common::peak_rss_mib;
use common::synth::{self, Spec};
use std::io::Read;

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

#[test]
fn a_stray_item_delimiter_tag_is_refused_without_parsing_on() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz");
    for (name, want) in [
        ("sr-stray-ffe-0000.dcm", "(FFFE,0000) out of place"),
        ("sr-stray-ffe-0d3a.dcm", "(FFFE,0D3A) out of place"),
        ("sr-stray-ffe-0e1f-in-sequence.dcm", "(FFFE,0E1F) where a sequence item or delimiter must be"),
        ("stray-item-end-after-pixel-data.dcm", "(FFFE,E00D) out of place"),
    ] {
        let file = fixtures.join(name);
        for e in [nodal_io::read_ct(&file).unwrap_err(), nodal_io::list_series(&file).unwrap_err()] {
            assert!(matches!(e, nodal_io::IoError::Dicom { .. }), "{e:?}");
            common::names(&e, &file);
            assert!(e.to_string().contains(want), "{e}");
        }
    }
    if let Some(peak) = peak_rss_mib() {
        assert!(peak < 256, "peak RSS {peak} MiB for three 3-6 KB files");
    }
}

#[test]
fn deflated_data_sets_and_odd_binary_values_are_refused_before_parsing() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz");
    for (name, element) in
        [("deflated-huge-length-a.dcm", "(0010,4C20)"), ("deflated-huge-length-b.dcm", "(0002,312E)")]
    {
        let file = fixtures.join(name);
        let e = nodal_io::list_series(&file).unwrap_err();
        assert!(matches!(e, nodal_io::IoError::Dicom { .. }), "{e:?}");
        common::names(&e, &file);
        assert!(e.to_string().contains(&format!("in the inflated data set: element {element}")), "{e}");
    }
    // A deflate bomb: 1 GiB of zeros in 1 MB, after the file meta of a deflated file.
    let dir = tempfile::tempdir().unwrap();
    let bomb = dir.path().join("bomb.dcm");
    let meta = std::fs::read(fixtures.join("deflated-huge-length-a.dcm")).unwrap()[..334].to_vec();
    let mut out = flate2::write::DeflateEncoder::new(meta, flate2::Compression::best());
    std::io::copy(&mut std::io::repeat(0).take(1 << 30), &mut out).unwrap();
    std::fs::write(&bomb, out.finish().unwrap()).unwrap();
    let e = nodal_io::list_series(&bomb).unwrap_err();
    assert!(e.to_string().contains("inflates to more than"), "{e}");
    if let Some(peak) = peak_rss_mib() {
        assert!(peak < 256, "peak RSS {peak} MiB");
    }
}

#[test]
fn binary_values_of_a_partial_length_are_refused_before_parsing() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz");
    for (name, element) in [
        ("fd-of-six-bytes.dcm", "FD has 6 bytes"),
        ("ov-of-eighteen-bytes.dcm", "(300C,0004) OV has 18 bytes"),
    ] {
        let file = fixtures.join(name);
        let e = nodal_io::list_series(&file).unwrap_err();
        assert!(matches!(e, nodal_io::IoError::Dicom { .. }), "{e:?}");
        common::names(&e, &file);
        assert!(e.to_string().contains(element) && e.to_string().contains("not a whole number"), "{e}");
    }
    if let Some(peak) = peak_rss_mib() {
        assert!(peak < 256, "peak RSS {peak} MiB");
    }
}

#[test]
fn a_jpeg_2000_codestream_larger_than_its_header_is_refused_before_decoding() {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/fuzz/j2k-codestream-larger-than-header.dcm");
    let e = nodal_io::read_ct(&file).unwrap_err();
    assert!(matches!(e, nodal_io::IoError::CorruptPixelData { .. }), "{e:?}");
    common::names(&e, &file);
    assert!(e.to_string().contains("declares 512x4194816"), "{e}");
    if let Some(peak) = peak_rss_mib() {
        assert!(peak < 256, "peak RSS {peak} MiB");
    }
}
