//! Mutation sweep over the evaluation's tables: valid node metadata (JSON and CSV) and a case
//! manifest with bytes changed, cut short, lines duplicated or fields emptied must parse or give
//! a typed error naming the file — never a panic. `NODAL_FUZZ_CASES` sets the number of mutants
//! (default 64).
use nodal_eval::meta::{read_meta_csv, NodeMeta};
use nodal_eval::{read_manifest, EvalError};
use proptest::prelude::*;

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

const SEEDS: [&str; 3] = [
    r#"{"schema": "nodal.nodes/1", "nodes": [{"id": 1, "metastatic": true, "sad_mm": 7.5}, {"id": 2, "metastatic": 0}]}"#,
    "case_id,node_id,metastatic\na,1,true\na,2,no\nb,7,1\n",
    "case_id,pred,gt,meta\na,pred/a.nii.gz,gt/a.nii.gz,meta/a.json\nc,pred/c_0000.nii.gz,gt/c.nii.gz,\n",
];

/// The metadata file the manifest seed names, so that a valid manifest reads.
const MANIFEST_META: &str = r#"[{"id": 1, "metastatic": true}]"#;

#[derive(Clone, Debug)]
enum Mutation {
    Flip(Vec<(usize, u8)>),
    Truncate(u16),
    Insert(usize, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let pieces = prop_oneof![
        Just(b",".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"-1".to_vec()),
        Just(b"4294967296".to_vec()),
        Just(b"NaN".to_vec()),
        Just(b"{".to_vec()),
        Just(b"]".to_vec()),
        Just(vec![0xff, 0xfe]),
        prop::collection::vec(any::<u8>(), 1..6),
    ];
    prop_oneof![
        prop::collection::vec((any::<usize>(), 1u8..=255), 1..6).prop_map(Mutation::Flip),
        (0u16..1000).prop_map(Mutation::Truncate),
        (any::<usize>(), pieces).prop_map(|(at, b)| Mutation::Insert(at, b)),
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
        Mutation::Insert(at, bytes) => {
            let at = at % (b.len() + 1);
            b.splice(at..at, bytes.iter().copied());
        }
    }
    b
}

/// A typed error must name the file (the table, or whatever file a row points to, found or
/// not), or say which case lacks a file.
fn names(e: &EvalError, dir: &std::path::Path) -> bool {
    let named = match e {
        EvalError::Io { path, .. } | EvalError::BadTable { path, .. } | EvalError::Read { path, .. } => {
            e.to_string().contains(&path.display().to_string())
        }
        EvalError::Pairing(_) => true,
        _ => false,
    };
    named || e.to_string().contains(&dir.display().to_string())
}

fn with_manifest_meta(dir: &std::path::Path) {
    std::fs::create_dir_all(dir.join("meta")).unwrap();
    std::fs::write(dir.join("meta/a.json"), MANIFEST_META).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, rng_seed: seed(), ..ProptestConfig::default() })]

    #[test]
    fn mutated_tables_parse_or_name_the_file(seed in 0usize..3, m in mutation()) {
        let bytes = apply(SEEDS[seed].as_bytes(), &m);
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let _ = NodeMeta::from_json_str(text);
        }
        let dir = tempfile::tempdir().unwrap();
        with_manifest_meta(dir.path());
        let path = dir.path().join("table.csv");
        std::fs::write(&path, &bytes).unwrap();
        if let Err(e) = read_meta_csv(&path) {
            prop_assert!(names(&e, dir.path()), "{e}");
        }
        if let Err(e) = read_manifest(&path) {
            prop_assert!(names(&e, dir.path()), "{e}");
        }
        let json = dir.path().join("nodes.json");
        std::fs::write(&json, &bytes).unwrap();
        if let Err(e) = NodeMeta::from_json_file(&json) {
            prop_assert!(names(&e, dir.path()), "{e}");
        }
    }
}

#[test]
fn seeds_are_valid() {
    NodeMeta::from_json_str(SEEDS[0]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    with_manifest_meta(dir.path());
    let p = dir.path().join("m.csv");
    std::fs::write(&p, SEEDS[1]).unwrap();
    assert_eq!(read_meta_csv(&p).unwrap().len(), 2);
    std::fs::write(&p, SEEDS[2]).unwrap();
    assert_eq!(read_manifest(&p).unwrap().len(), 2);
}
