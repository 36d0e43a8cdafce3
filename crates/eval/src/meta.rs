//! Per-node metadata: which ground-truth nodes are metastatic.
//!
//! Two formats are read:
//! * `nodes.json` as the phantom writes it: a JSON array of objects, each with an integer `id`
//!   (the label value in the ground-truth map) and a boolean `metastatic`; any other fields are
//!   ignored, and an object may instead be wrapped as `{"nodes": [...]}`. `metastatic` may also be
//!   0/1 or "true"/"false"/"yes"/"no" (lenient, since such files are often written by hand).
//! * a CSV with a header containing `case_id`, `node_id` and `metastatic` (any column order; extra
//!   columns ignored), covering many cases at once.
use crate::EvalError;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// Metadata of the nodes of one case, keyed by ground-truth label id.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct NodeMeta {
    /// label id -> metastatic.
    pub metastatic: BTreeMap<u32, bool>,
}

impl NodeMeta {
    /// Whether node `id` is metastatic; `None` when the metadata does not mention it.
    pub fn is_metastatic(&self, id: u32) -> Option<bool> {
        self.metastatic.get(&id).copied()
    }

    /// Reads a `nodes.json` file.
    pub fn from_json_file(path: &Path) -> Result<Self, EvalError> {
        let text = std::fs::read_to_string(path).map_err(|e| EvalError::io(path, e))?;
        Self::from_json_str(&text).map_err(|reason| EvalError::BadTable { path: path.into(), reason })
    }

    /// Parses the text of a `nodes.json` file.
    pub fn from_json_str(text: &str) -> Result<Self, String> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let arr = match &v {
            serde_json::Value::Array(a) => a,
            serde_json::Value::Object(o) => match o.get("nodes") {
                Some(serde_json::Value::Array(a)) => a,
                _ => return Err("expected an array of nodes or an object with a \"nodes\" array".into()),
            },
            _ => return Err("expected an array of nodes".into()),
        };
        let mut metastatic = BTreeMap::new();
        for (n, item) in arr.iter().enumerate() {
            let id = item
                .get("node_id")
                .or_else(|| item.get("id"))
                .or_else(|| item.get("label"))
                .and_then(|x| x.as_u64().or_else(|| x.as_str().and_then(|s| s.trim().parse().ok())))
                .and_then(|x| u32::try_from(x).ok())
                .ok_or_else(|| format!("node #{n}: missing or invalid integer \"node_id\""))?;
            let Some(m) = item.get("metastatic") else { continue };
            let m = json_bool(m).ok_or_else(|| format!("node id {id}: \"metastatic\" is not a boolean"))?;
            metastatic.insert(id, m);
        }
        Ok(NodeMeta { metastatic })
    }
}

fn json_bool(v: &serde_json::Value) -> Option<bool> {
    match v {
        serde_json::Value::Bool(b) => Some(*b),
        serde_json::Value::Number(n) => match n.as_u64() {
            Some(0) => Some(false),
            Some(1) => Some(true),
            _ => None,
        },
        serde_json::Value::String(s) => parse_bool(s),
        _ => None,
    }
}

/// Lenient boolean: true/false, 1/0, yes/no, y/n (case-insensitive).
pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "y" | "t" => Some(true),
        "false" | "0" | "no" | "n" | "f" => Some(false),
        _ => None,
    }
}

/// Reads a metadata CSV (`case_id,node_id,metastatic`) into per-case metadata.
pub fn read_meta_csv(path: &Path) -> Result<BTreeMap<String, NodeMeta>, EvalError> {
    let rows = crate::table::read_csv(path, &["case_id", "node_id", "metastatic"])?;
    let mut out: BTreeMap<String, NodeMeta> = BTreeMap::new();
    for (line, r) in rows {
        let bad = |reason: String| EvalError::BadTable {
            path: path.into(),
            reason: format!("line {line}: {reason}"),
        };
        let id: u32 =
            r[1].trim().parse().map_err(|_| bad(format!("node_id {:?} is not an integer", r[1])))?;
        let m = parse_bool(&r[2]).ok_or_else(|| bad(format!("metastatic {:?} is not a boolean", r[2])))?;
        out.entry(r[0].trim().to_string()).or_default().metastatic.insert(id, m);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_json() {
        let m = NodeMeta::from_json_str(
            r#"[{"id": 1, "metastatic": true, "sad_mm": 7.5}, {"id": 2, "metastatic": 0}, {"id": 3}]"#,
        )
        .unwrap();
        assert_eq!(m.is_metastatic(1), Some(true));
        assert_eq!(m.is_metastatic(2), Some(false));
        assert_eq!(m.is_metastatic(3), None);
        assert!(NodeMeta::from_json_str(r#"{"nodes": [{"id": 4, "metastatic": "yes"}]}"#).is_ok());
        assert!(NodeMeta::from_json_str(r#"[{"metastatic": true}]"#).is_err());
        assert!(NodeMeta::from_json_str(r#"[{"id": 1, "metastatic": 2}]"#).is_err());
    }
}
