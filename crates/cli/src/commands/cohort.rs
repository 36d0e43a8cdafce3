//! Cohort runs of `segment` and `measure`: one case folder per case under `-o DIR`, resumable,
//! shardable, one bad case reported while the rest go on.
//!
//! * `DIR/<case>/` holds what a single run writes, as one unit (`nodal_core::output`): a case
//!   folder is complete or absent, so a rerun skips the cases whose folder holds the record of a run
//!   with the same input (and model), and redoes the rest (`--redo` redoes all).
//! * `--shard K/N` takes the cases `K, K + N, K + 2N, ...` (1-based, in case-id order): the jobs of
//!   an array (Slurm, Kubernetes indexed jobs) share `DIR`, each case folder being locked by the job
//!   that writes it. `nodal evaluate --pred DIR` reads every case folder, whichever shard wrote it.
//! * `DIR/nodes.csv`: the node tables of every case folder in `DIR`, with a `case_id` column, rebuilt
//!   at the end of every run (the last shard to finish writes the complete one).
//! * `DIR/cohort.json` (`cohort-shard-K-of-N.json` for a shard): this run's cases with their status
//!   (done, skipped, failed with the error), seconds and what they found.
//! * Exit status: 0 when no case failed, [`FAILED_CASES_EXIT`] when some did (the summary says how
//!   many and which).
use anyhow::Context;
use nodal_core::output::OutputDir;
use nodal_io::CaseSource;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Exit status of a cohort run in which at least one case failed.
pub const FAILED_CASES_EXIT: u8 = 3;

/// The cohort's node table in `DIR`.
pub const COHORT_NODES_CSV: &str = "nodes.csv";

/// `--shard K/N`: the K-th of N parts of a cohort (1-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub k: usize,
    pub n: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parsed =
            s.split_once('/').and_then(|(k, n)| Some((k.trim().parse().ok()?, n.trim().parse().ok()?)));
        match parsed {
            Some((k, n)) if n >= 1 && (1..=n).contains(&k) => Ok(Shard { k, n }),
            _ => Err(format!("{s:?}: expected K/N with 1 <= K <= N, e.g. 2/8")),
        }
    }
}

impl Shard {
    /// Whether the `index`-th case (0-based, in case-id order) is this shard's.
    pub fn takes(&self, index: usize) -> bool {
        index % self.n == self.k - 1
    }
}

/// Options of a cohort run, shared by the commands that take one.
#[derive(clap::Args, Debug)]
pub struct CohortArgs {
    /// For a cohort: process only the K-th of N parts of the cases (1-based, e.g. `--shard
    /// $((SLURM_ARRAY_TASK_ID + 1))/$SLURM_ARRAY_TASK_COUNT`); the shards share the output folder.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<Shard>,
    /// For a cohort: redo the cases already done (by default a rerun skips them).
    #[arg(long)]
    pub redo: bool,
}

/// The cohort run failed for some cases (each reported, the others done).
#[derive(Debug, thiserror::Error)]
#[error("{failed} of {total} cases failed: {cases} (details in {summary})")]
pub struct FailedCases {
    pub failed: usize,
    pub total: usize,
    pub cases: String,
    pub summary: PathBuf,
}

#[derive(Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Done,
    Skipped,
    Failed,
}

#[derive(Serialize)]
struct CaseRecord {
    case_id: String,
    input: String,
    status: Status,
    /// What the case's run found, in one line (`7 nodes`).
    result: Option<String>,
    error: Option<String>,
    seconds: f64,
}

#[derive(Serialize)]
struct CohortRecord<'a> {
    schema: &'static str,
    nodal_version: &'static str,
    command: &'a str,
    input: String,
    /// `K/N` for a shard.
    shard: Option<String>,
    n_cases_in_cohort: usize,
    n_done: usize,
    n_skipped: usize,
    n_failed: usize,
    seconds: f64,
    cases: Vec<CaseRecord>,
}

/// One command's work on one case of a cohort.
pub trait CaseJob {
    /// The command's name, for messages and the summary.
    fn command(&self) -> &'static str;
    /// Whether `folder` already holds this job's complete output for `case`.
    fn is_done(&self, case: &CaseSource, folder: &Path) -> bool;
    /// Does the case into `out` (staged, committed by the job); returns what it found in one line.
    fn run(&mut self, case: &CaseSource, out: OutputDir) -> anyhow::Result<String>;
}

/// What `input` holds ([`nodal_io::find_inputs`]). When it cannot be read, an output folder that
/// could not be written either is reported instead: output problems come first, as in every run.
pub fn find_inputs(input: &Path, out: &Path) -> anyhow::Result<nodal_io::Inputs> {
    match nodal_io::find_inputs(input) {
        Ok(inputs) => Ok(inputs),
        Err(e) => {
            drop(OutputDir::open(out)?);
            Err(e.into())
        }
    }
}

/// Runs `job` over `cases` into `out` (module docs). `input` is the path the cases came from.
pub fn run_cohort(
    job: &mut dyn CaseJob,
    input: &Path,
    cases: &[CaseSource],
    out: &Path,
    args: &CohortArgs,
) -> anyhow::Result<()> {
    let t0 = Instant::now();
    if out.is_file() {
        return Err(nodal_core::output::OutputError::NotAFolder { path: out.to_path_buf() }.into());
    }
    std::fs::create_dir_all(out)
        .map_err(|source| nodal_core::output::OutputError::NotWritable { path: out.to_path_buf(), source })?;
    let mine: Vec<&CaseSource> = cases
        .iter()
        .enumerate()
        .filter(|(i, _)| args.shard.is_none_or(|s| s.takes(*i)))
        .map(|(_, c)| c)
        .collect();
    let shard = args.shard.map(|s| format!(" (shard {}/{})", s.k, s.n)).unwrap_or_default();
    tracing::info!("{}: {} cases{shard}", input.display(), mine.len());
    let bar = super::progress_bar(
        mine.len() as u64,
        "{elapsed_precise} [{bar:40}] {pos}/{len} cases {msg} (eta {eta})",
    );
    let mut records = Vec::new();
    for case in mine {
        bar.set_message(case.case_id.clone());
        let folder = out.join(&case.case_id);
        let t = Instant::now();
        let id = &case.case_id;
        let (status, result, error) = if !args.redo && job.is_done(case, &folder) {
            bar.suspend(|| tracing::info!("{id}: already done, skipped"));
            (Status::Skipped, None, None)
        } else {
            match OutputDir::open(&folder).map_err(anyhow::Error::from).and_then(|o| job.run(case, o)) {
                Ok(found) => {
                    bar.suspend(|| tracing::info!("{id}: {found}"));
                    (Status::Done, Some(found), None)
                }
                Err(e) => {
                    bar.suspend(|| tracing::error!("{id}: failed: {e:#}"));
                    (Status::Failed, None, Some(format!("{e:#}")))
                }
            }
        };
        records.push(CaseRecord {
            case_id: case.case_id.clone(),
            input: case.path.display().to_string(),
            status,
            result,
            error,
            seconds: t.elapsed().as_secs_f64(),
        });
        bar.inc(1);
    }
    bar.finish_and_clear();

    let count = |status: Status| records.iter().filter(|r| r.status == status).count();
    let (n_done, n_skipped, n_failed) = (count(Status::Done), count(Status::Skipped), count(Status::Failed));
    let n_nodes_rows = merge_node_tables(out)?;
    let summary = out.join(match args.shard {
        Some(s) => format!("cohort-shard-{}-of-{}.json", s.k, s.n),
        None => "cohort.json".into(),
    });
    let failed: Vec<String> =
        records.iter().filter(|r| r.status == Status::Failed).map(|r| r.case_id.clone()).collect();
    let record = CohortRecord {
        schema: "nodal.cohort/1",
        nodal_version: env!("CARGO_PKG_VERSION"),
        command: job.command(),
        input: input.display().to_string(),
        shard: args.shard.map(|s| format!("{}/{}", s.k, s.n)),
        n_cases_in_cohort: cases.len(),
        n_done,
        n_skipped,
        n_failed,
        seconds: t0.elapsed().as_secs_f64(),
        cases: records,
    };
    nodal_io::write_atomic(&summary, serde_json::to_string_pretty(&record)?.as_bytes())
        .with_context(|| format!("writing {}", summary.display()))?;
    println!(
        "{} cases{shard}: {n_done} done, {n_skipped} already done, {n_failed} failed in {:.1} s -> {} \
         ({n_nodes_rows} node rows in {}, summary {})",
        record.cases.len(),
        t0.elapsed().as_secs_f64(),
        out.display(),
        out.join(COHORT_NODES_CSV).display(),
        summary.display()
    );
    if n_failed > 0 {
        return Err(FailedCases {
            failed: n_failed,
            total: record.cases.len(),
            cases: failed.join(", "),
            summary,
        }
        .into());
    }
    Ok(())
}

/// Rebuilds `out/nodes.csv` from the `nodes.csv` of every case folder in `out`, a `case_id` column
/// first; returns the number of node rows.
fn merge_node_tables(out: &Path) -> anyhow::Result<usize> {
    let mut folders: Vec<PathBuf> = std::fs::read_dir(out)
        .with_context(|| format!("listing {}", out.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join(COHORT_NODES_CSV).is_file())
        .collect();
    folders.sort();
    let (mut text, mut rows) = (String::new(), 0);
    for folder in &folders {
        let case_id = folder.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let path = folder.join(COHORT_NODES_CSV);
        let csv = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let mut lines = csv.lines();
        let header = lines.next().unwrap_or_default();
        if text.is_empty() {
            text = format!("case_id,{header}\n");
        }
        for line in lines.filter(|l| !l.is_empty()) {
            text.push_str(&csv_field(&case_id));
            text.push(',');
            text.push_str(line);
            text.push('\n');
            rows += 1;
        }
    }
    if !text.is_empty() {
        let path = out.join(COHORT_NODES_CSV);
        nodal_io::write_atomic(&path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(rows)
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Whether `folder/record` is a JSON record holding every `(pointer, value)` of `expected` (JSON
/// pointers such as `/input` or `/source/labels`): the case was done by an equivalent run.
pub fn record_matches(folder: &Path, record: &str, expected: &[(&str, &str)]) -> bool {
    let Ok(text) = std::fs::read_to_string(folder.join(record)) else { return false };
    let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else { return false };
    expected.iter().all(|(pointer, v)| json.pointer(pointer).and_then(|x| x.as_str()) == Some(*v))
}

#[cfg(test)]
mod tests {
    use super::Shard;

    #[test]
    fn shards_split_a_cohort_into_disjoint_parts() {
        assert_eq!("2/3".parse::<Shard>(), Ok(Shard { k: 2, n: 3 }));
        for bad in ["0/3", "4/3", "1/0", "x", "1/", "/2", "1-2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        let n = 3;
        for i in 0..10 {
            let owners: Vec<usize> = (1..=n).filter(|&k| Shard { k, n }.takes(i)).collect();
            assert_eq!(owners.len(), 1, "case {i}");
        }
    }
}
