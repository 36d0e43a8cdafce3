//! A resumable record of per-case work (`negativesTr/negatives.json`, `filter_samples.json`):
//! `{"schema", <header fields>, "cases": [...]}`, rewritten atomically after every case, so an
//! interrupted run started again continues where it stopped — when the earlier record was made by
//! the same work ([`LedgerHeader::same_work`], e.g. the same weights); otherwise everything is done
//! again.
use crate::DetectError;
use nodal_net::LoadedModel;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What a record's cases were made by.
pub trait LedgerHeader: Serialize + DeserializeOwned {
    /// Whether cases recorded under `earlier` are what this run would make.
    fn same_work(&self, earlier: &Self) -> bool;
}

/// One case's result.
pub trait LedgerEntry: Serialize + DeserializeOwned {
    /// The case's key (unique in a record).
    fn key(&self) -> String;
}

#[derive(Serialize, Deserialize)]
struct LedgerFile<H, C> {
    schema: String,
    #[serde(flatten)]
    header: H,
    cases: Vec<C>,
}

/// What [`Ledger::open`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resume {
    /// No earlier record.
    Fresh,
    /// An earlier record of the same work with this many cases.
    Resumed(usize),
    /// An earlier record that cannot be used, and why: every case is done again.
    Restarted(String),
}

/// A record being written.
pub struct Ledger<H, C> {
    path: PathBuf,
    file: LedgerFile<H, C>,
    earlier: HashMap<String, C>,
}

impl<H: LedgerHeader, C: LedgerEntry> Ledger<H, C> {
    /// Starts the record at `path` for `header`, with the cases of an earlier record of the same
    /// schema and work available to [`Self::take_earlier`].
    pub fn open(path: &Path, schema: &str, header: H) -> (Self, Resume) {
        let (earlier, resume) = match std::fs::read_to_string(path) {
            Err(_) => (HashMap::new(), Resume::Fresh),
            Ok(text) => match serde_json::from_str::<LedgerFile<H, C>>(&text) {
                Ok(f) if f.schema == schema && header.same_work(&f.header) => {
                    let n = f.cases.len();
                    (f.cases.into_iter().map(|c| (c.key(), c)).collect(), Resume::Resumed(n))
                }
                Ok(f) if f.schema != schema => {
                    (HashMap::new(), Resume::Restarted(format!("has schema {} (not {schema})", f.schema)))
                }
                Ok(_) => (
                    HashMap::new(),
                    Resume::Restarted("was made by another model or with other settings".into()),
                ),
                Err(e) => (HashMap::new(), Resume::Restarted(format!("cannot be read: {e}"))),
            },
        };
        let file = LedgerFile { schema: schema.to_string(), header, cases: Vec::new() };
        (Ledger { path: path.to_path_buf(), file, earlier }, resume)
    }

    /// The earlier record's result for `key`, if it has one (each is handed out once).
    pub fn take_earlier(&mut self, key: &str) -> Option<C> {
        self.earlier.remove(key)
    }

    /// Appends a case without writing (a result taken from the earlier record).
    pub fn keep(&mut self, case: C) {
        self.file.cases.push(case);
    }

    /// Appends a new case's result and rewrites the record.
    ///
    /// # Errors
    /// [`DetectError::Write`] naming the record.
    pub fn record(&mut self, case: C) -> Result<(), DetectError> {
        self.file.cases.push(case);
        self.save()
    }

    /// Rewrites the record atomically.
    ///
    /// # Errors
    /// [`DetectError::Write`] naming the record.
    pub fn save(&self) -> Result<(), DetectError> {
        let mut bytes =
            serde_json::to_vec_pretty(&self.file).map_err(|e| DetectError::write(&self.path, e.into()))?;
        bytes.push(b'\n');
        nodal_core::fs::write_atomic(&self.path, &bytes).map_err(|e| DetectError::write(&self.path, e))
    }

    /// The cases recorded so far, in order.
    pub fn cases(&self) -> &[C] {
        &self.file.cases
    }

    /// The header.
    pub fn header(&self) -> &H {
        &self.file.header
    }
}

/// The network behind a record: work recorded by another network is done again.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ModelIdentity {
    pub model_id: String,
    pub model_version: String,
    /// SHA-256 of the weights file, lower-case hex.
    pub model_sha256: String,
    /// Voxel threshold of the model's mask.
    pub threshold: f32,
}

impl ModelIdentity {
    /// The identity of `net` (reads its weights file to hash it).
    ///
    /// # Errors
    /// [`DetectError::Net`] when the weights file cannot be read.
    pub fn of(net: &LoadedModel) -> Result<Self, DetectError> {
        use sha2::{Digest, Sha256};
        let path = net.folder.join(nodal_net::config::WEIGHTS_FILE);
        let bytes =
            std::fs::read(&path).map_err(|e| nodal_net::NetError::Io { path: path.clone(), source: e })?;
        Ok(ModelIdentity {
            model_id: net.config.model_id.clone(),
            model_version: net.config.version.clone(),
            model_sha256: Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect(),
            threshold: net.config.threshold,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Header {
        producer: String,
        note: String,
    }
    impl LedgerHeader for Header {
        fn same_work(&self, earlier: &Self) -> bool {
            self.producer == earlier.producer
        }
    }
    #[derive(Serialize, Deserialize, PartialEq, Debug, Clone)]
    struct Case {
        case: String,
        n: usize,
    }
    impl LedgerEntry for Case {
        fn key(&self) -> String {
            self.case.clone()
        }
    }

    fn header(p: &str) -> Header {
        Header { producer: p.into(), note: "x".into() }
    }

    #[test]
    fn resumes_the_same_work_and_restarts_other_work() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("record.json");
        let (mut l, r) = Ledger::<Header, Case>::open(&path, "s/1", header("a"));
        assert_eq!(r, Resume::Fresh);
        l.record(Case { case: "c1".into(), n: 3 }).unwrap();
        l.record(Case { case: "c2".into(), n: 5 }).unwrap();
        // Interrupted here; the same producer resumes with both cases.
        let (mut l, r) = Ledger::<Header, Case>::open(&path, "s/1", header("a"));
        assert_eq!(r, Resume::Resumed(2));
        assert_eq!(l.take_earlier("c2"), Some(Case { case: "c2".into(), n: 5 }));
        assert_eq!(l.take_earlier("c2"), None);
        l.keep(Case { case: "c2".into(), n: 5 });
        l.save().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["schema"], "s/1");
        assert_eq!(v["producer"], "a");
        assert_eq!(v["cases"].as_array().unwrap().len(), 1);
        // Another producer, another schema, or garbage: start over.
        let (mut l, r) = Ledger::<Header, Case>::open(&path, "s/1", header("b"));
        assert!(matches!(r, Resume::Restarted(_)));
        assert_eq!(l.take_earlier("c2"), None);
        assert!(matches!(Ledger::<Header, Case>::open(&path, "s/2", header("a")).1, Resume::Restarted(_)));
        std::fs::write(&path, "{").unwrap();
        assert!(matches!(Ledger::<Header, Case>::open(&path, "s/1", header("a")).1, Resume::Restarted(_)));
        // No temporary files are left beside the record.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
