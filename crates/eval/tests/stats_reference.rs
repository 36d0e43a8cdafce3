//! nodal-eval's statistics against SciPy / scikit-posthocs on committed sample vectors
//! (tests/fixtures/eval/stats_reference.json, written by scripts/gen_stats_reference.py).
use nodal_eval::stats;
use serde_json::Value;

const REL: f64 = 1e-6;

fn fixture() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/eval/stats_reference.json");
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e}; regenerate with scripts/gen_stats_reference.py"));
    serde_json::from_str(&text).unwrap()
}

fn vec(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn groups(v: &Value) -> Vec<Vec<f64>> {
    v.as_array().unwrap().iter().map(vec).collect()
}

fn assert_rel(name: &str, what: &str, got: f64, want: f64) {
    let err = (got - want).abs() / want.abs().max(1e-300);
    assert!(
        err <= REL || (got - want).abs() < 1e-300,
        "{name} {what}: got {got:e}, SciPy {want:e} (rel {err:e})"
    );
}

#[test]
fn shapiro_equals_scipy() {
    let f = fixture();
    let cases = f["shapiro"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let r = stats::shapiro(&vec(&c["x"])).unwrap_or_else(|| panic!("{name}: undefined"));
        assert_rel(name, "W", r.statistic, c["w"].as_f64().unwrap());
        assert_rel(name, "p", r.p_value, c["p"].as_f64().unwrap());
    }
}

#[test]
fn kruskal_equals_scipy() {
    for c in fixture()["kruskal"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let g = groups(&c["groups"]);
        let refs: Vec<&[f64]> = g.iter().map(|x| x.as_slice()).collect();
        let r = stats::kruskal(&refs).unwrap();
        assert_rel(name, "H", r.statistic, c["h"].as_f64().unwrap());
        assert_rel(name, "p", r.p_value, c["p"].as_f64().unwrap());
    }
}

#[test]
fn dunn_equals_scikit_posthocs() {
    for c in fixture()["dunn"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let g = groups(&c["groups"]);
        let refs: Vec<&[f64]> = g.iter().map(|x| x.as_slice()).collect();
        let got = stats::dunn(&refs).unwrap();
        let want = c["pairs"].as_array().unwrap();
        assert_eq!(got.len(), want.len(), "{name}");
        for (p, w) in got.iter().zip(want) {
            assert_eq!(p.group_a as u64, w["a"].as_u64().unwrap());
            assert_eq!(p.group_b as u64, w["b"].as_u64().unwrap());
            assert_rel(name, "z", p.z, w["z"].as_f64().unwrap());
            assert_rel(name, "p", p.p_unadjusted, w["p"].as_f64().unwrap());
            assert_rel(name, "p_bonferroni", p.p_bonferroni, w["p_bonferroni"].as_f64().unwrap());
        }
    }
}

#[test]
fn pearson_equals_scipy() {
    for c in fixture()["pearson"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let r = stats::pearson(&vec(&c["x"]), &vec(&c["y"])).unwrap();
        assert_rel(name, "r", r.statistic, c["r"].as_f64().unwrap());
        assert_rel(name, "p", r.p_value, c["p"].as_f64().unwrap());
    }
}
