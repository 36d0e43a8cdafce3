//! The evaluation's tables on arbitrary bytes: node metadata as JSON (`nodes.json` / a list of
//! nodes) and as CSV (`case_id,node_id,metastatic`), and a case manifest (`case_id,pred,gt[,meta]`).
//! Each must give `Ok` or a typed error naming the file.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = nodal_eval::meta::NodeMeta::from_json_str(text);
    }
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("meta.csv");
    std::fs::write(&csv, data).unwrap();
    let _ = nodal_eval::meta::read_meta_csv(&csv);
    let _ = nodal_eval::read_manifest(&csv);
    let json = dir.path().join("nodes.json");
    std::fs::write(&json, data).unwrap();
    let _ = nodal_eval::meta::NodeMeta::from_json_file(&json);
});
