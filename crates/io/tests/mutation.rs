//! Mutation sweep: valid NIfTI and DICOM files (built at test time) with bytes changed, cut short or
//! header fields overwritten must read as `Ok` or a typed error — never a panic, an abort or an
//! allocation beyond the voxel limit (a run that completes is the check for the latter).
//!
//! `NODAL_FUZZ_CASES` sets the number of mutants per input kind (default 64; e.g. 2000 for a sweep).
mod common;

use common::peak_rss_mib;
use common::synth::{self, Spec};
use nodal_io::{read_ct, read_nifti, read_nifti_header, write_nifti, MAX_VOXELS};
use proptest::prelude::*;
use std::path::Path;
use std::sync::OnceLock;

fn cases() -> u32 {
    std::env::var("NODAL_FUZZ_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(64)
}

/// The mutants are drawn from a fixed seed, so that every run (CI above all) tries the same inputs;
/// `NODAL_FUZZ_SEED=N` draws another set, `NODAL_FUZZ_SEED=random` a new one each run.
fn seed() -> proptest::test_runner::RngSeed {
    match std::env::var("NODAL_FUZZ_SEED").ok().as_deref() {
        Some("random") => proptest::test_runner::RngSeed::Random,
        s => proptest::test_runner::RngSeed::Fixed(s.and_then(|s| s.parse().ok()).unwrap_or(2026)),
    }
}

/// The valid inputs, built once: (name, bytes).
fn seeds() -> &'static Vec<(&'static str, Vec<u8>)> {
    static SEEDS: OnceLock<Vec<(&'static str, Vec<u8>)>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let mut out = Vec::new();
        let vol = synth::ct_volume([9, 7, 5], [0.8, 0.9, 2.0]);
        for name in ["ct.nii", "ct.nii.gz"] {
            let p = dir.path().join(name);
            write_nifti(&vol, &p).unwrap();
            out.push((name, std::fs::read(&p).unwrap()));
        }
        let fvol = Volume::<f32>::new(vol.data().mapv(|v| v as f32 * 0.5), *vol.geometry()).unwrap();
        let p = dir.path().join("f.nii");
        write_nifti(&fvol, &p).unwrap();
        out.push(("f.nii", std::fs::read(&p).unwrap()));
        for (name, rle) in [("native.dcm", false), ("rle.dcm", true)] {
            let spec = Spec { rle, slices: 1, ..Spec::default() };
            let files = synth::write_series(&spec, &dir.path().join(name));
            out.push((name, std::fs::read(&files[0]).unwrap()));
        }
        out
    })
}

use nodal_core::Volume;

#[derive(Clone, Debug)]
enum Mutation {
    /// XOR bytes at positions (taken modulo the length).
    Flip(Vec<(usize, u8)>),
    /// Keep this fraction (per mille) of the file.
    Truncate(u16),
    /// Overwrite 2 or 4 bytes at a header offset (NIfTI header fields; the first KB of a DICOM).
    Field { at: usize, bytes: Vec<u8> },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    // Values that make sizes and scalings extreme: 0, -1, max, NaN/inf float patterns.
    let special = prop_oneof![
        Just(vec![0u8, 0]),
        Just(vec![0xff, 0xff]),
        Just(vec![0xff, 0x7f]),
        Just(vec![0x00, 0x80]),
        Just(vec![0, 0, 0xc0, 0x7f]),
        Just(vec![0, 0, 0x80, 0x7f]),
        Just(vec![0xff, 0xff, 0xff, 0xff]),
        Just(vec![0, 0, 0, 0x80]),
        prop::collection::vec(any::<u8>(), 2..=4),
    ];
    prop_oneof![
        prop::collection::vec((any::<usize>(), 1u8..=255), 1..8).prop_map(Mutation::Flip),
        (0u16..1000).prop_map(Mutation::Truncate),
        (0usize..1024, special).prop_map(|(at, bytes)| Mutation::Field { at, bytes }),
        // NIfTI header fields: dims, datatype, pixdim, vox_offset, scl, q/sform codes, srow.
        (
            prop::sample::select(vec![
                40usize, 42, 44, 46, 48, 70, 72, 80, 84, 88, 108, 112, 116, 252, 254, 280, 300
            ]),
            prop::collection::vec(any::<u8>(), 2..=4)
        )
            .prop_map(|(at, bytes)| Mutation::Field { at, bytes }),
    ]
}

fn apply(seed: &[u8], m: &Mutation) -> Vec<u8> {
    let mut b = seed.to_vec();
    match m {
        Mutation::Flip(flips) => {
            for &(at, x) in flips {
                let n = b.len();
                b[at % n] ^= x;
            }
        }
        Mutation::Truncate(per_mille) => b.truncate(b.len() * *per_mille as usize / 1000),
        Mutation::Field { at, bytes } => {
            if at + bytes.len() <= b.len() {
                b[*at..at + bytes.len()].copy_from_slice(bytes);
            }
        }
    }
    b
}

/// The seeds are a few KB: no mutant may make a reader touch anywhere near this much memory. (The peak
/// is the process', shared by the tests running in parallel: the first input to cross it is kept
/// under the target's tmp folder, see `read_all_ways`.)
const PEAK_RSS_LIMIT_MIB: u64 = 1024;

/// Reads `path` every way nodal does; all must return (the proptest fails on a panic).
fn read_all_ways(path: &Path) {
    // The peak is the process': keep a copy of the input that first crosses the limit (every later
    // case, shrinking included, fails too and says nothing more).
    let under_limit = peak_rss_mib().is_none_or(|p| p < PEAK_RSS_LIMIT_MIB);
    let bytes = std::fs::read(path).unwrap();
    let culprit = || {
        if under_limit && peak_rss_mib().is_some_and(|p| p >= PEAK_RSS_LIMIT_MIB) {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("rss-culprit-{name}"));
            let _ = std::fs::write(&keep, &bytes);
            eprintln!("the input that crossed the memory limit is kept in {}", keep.display());
        }
    };
    read_all_ways_inner(path);
    culprit();
    if let Some(peak) = peak_rss_mib() {
        assert!(peak < PEAK_RSS_LIMIT_MIB, "peak RSS {peak} MiB after reading {}", path.display());
    }
}

fn read_all_ways_inner(path: &Path) {
    if let Ok(v) = read_nifti::<f32>(path) {
        assert!(v.dims().iter().product::<usize>() <= MAX_VOXELS);
    }
    let _ = read_nifti::<i16>(path);
    let _ = read_nifti_header(path);
    if let Ok(scan) = read_ct(path) {
        assert!(scan.hu.dims().iter().product::<usize>() <= MAX_VOXELS);
    }
    let _ = nodal_io::list_series(path);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, rng_seed: seed(), ..ProptestConfig::default() })]

    #[test]
    fn mutated_inputs_never_panic(seed in 0usize..5, m in mutation()) {
        let (name, bytes) = &seeds()[seed];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, apply(bytes, &m)).unwrap();
        read_all_ways(&path);
        // The same bytes under the other family's name (a .dcm read as NIfTI and vice versa).
        let other = dir.path().join(if name.ends_with(".dcm") { "x.nii" } else { "x.dcm" });
        std::fs::copy(&path, &other).unwrap();
        read_all_ways(&other);
    }
}

/// A valid 4-slice series (native and RLE), built once: each file's bytes.
fn series_seeds() -> &'static Vec<Vec<Vec<u8>>> {
    static SERIES: OnceLock<Vec<Vec<Vec<u8>>>> = OnceLock::new();
    SERIES.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        [false, true]
            .iter()
            .map(|&rle| {
                let spec = Spec { rle, slices: 4, ..Spec::default() };
                let files = synth::write_series(&spec, &dir.path().join(format!("rle{rle}")));
                files.iter().map(|f| std::fs::read(f).unwrap()).collect()
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, rng_seed: seed(), ..ProptestConfig::default() })]

    /// Series assembly: one or two slices of a valid series mutated (sizes, orientations,
    /// positions, UIDs and pixel data then disagree across files), the folder read as one CT.
    #[test]
    fn mutated_slices_of_a_series_never_panic(
        rle in any::<bool>(),
        first in 0usize..4,
        m1 in mutation(),
        second in prop::option::of((0usize..4, mutation())),
    ) {
        let files = &series_seeds()[usize::from(rle)];
        let dir = tempfile::tempdir().unwrap();
        for (k, bytes) in files.iter().enumerate() {
            let mut b = if k == first { apply(bytes, &m1) } else { bytes.clone() };
            if let Some((s, m2)) = &second {
                if *s == k {
                    b = apply(&b, m2);
                }
            }
            std::fs::write(dir.path().join(format!("slice{k}.dcm")), b).unwrap();
        }
        let under_limit = peak_rss_mib().is_none_or(|p| p < PEAK_RSS_LIMIT_MIB);
        let _ = nodal_io::list_series(dir.path());
        if let Ok(scan) = read_ct(dir.path()) {
            prop_assert!(scan.hu.dims().iter().product::<usize>() <= MAX_VOXELS);
        }
        if let Some(peak) = peak_rss_mib() {
            if under_limit && peak >= PEAK_RSS_LIMIT_MIB {
                let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join("rss-culprit-series");
                let _ = std::fs::create_dir_all(&keep);
                for e in std::fs::read_dir(dir.path()).unwrap().flatten() {
                    let _ = std::fs::copy(e.path(), keep.join(e.file_name()));
                }
                eprintln!("the series that crossed the memory limit is kept in {}", keep.display());
            }
            prop_assert!(peak < PEAK_RSS_LIMIT_MIB, "peak RSS {} MiB after reading a series", peak);
        }
    }
}

#[test]
fn seeds_are_valid() {
    for files in series_seeds() {
        let dir = tempfile::tempdir().unwrap();
        for (k, bytes) in files.iter().enumerate() {
            std::fs::write(dir.path().join(format!("slice{k}.dcm")), bytes).unwrap();
        }
        assert_eq!(read_ct(dir.path()).unwrap().hu.dims()[2], 4);
    }
    for (name, bytes) in seeds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        read_ct(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}
