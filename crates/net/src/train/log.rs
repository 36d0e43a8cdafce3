//! The run's log: `log.csv` and `log.jsonl`, one record per `log_every` steps and per validation.
use std::io::Write;
use std::path::Path;

use nodal_eval::ValMetrics;
use serde::Serialize;

use crate::NetError;

/// One log record (a training average or a validation).
#[derive(Clone, Debug, Serialize)]
pub(crate) struct LogRecord {
    pub(crate) step: usize,
    pub(crate) kind: &'static str,
    /// Where the step ran (`cpu`, `gpu`): a resumed run may change device.
    pub(crate) device: &'static str,
    pub(crate) lr: f64,
    pub(crate) loss: Option<f64>,
    pub(crate) ce: Option<f64>,
    pub(crate) soft_dice_loss: Option<f64>,
    pub(crate) seconds_per_step: Option<f64>,
    pub(crate) elapsed_s: f64,
    pub(crate) val: Option<ValMetrics>,
}

pub(crate) struct Logger {
    csv: std::fs::File,
    jsonl: std::fs::File,
}

impl Logger {
    pub(crate) fn open(run: &Path) -> Result<Self, NetError> {
        let csv_path = run.join("log.csv");
        let new = !csv_path.exists();
        let open = |p: &Path| {
            std::fs::OpenOptions::new().create(true).append(true).open(p).map_err(|e| NetError::io(p, e))
        };
        let mut csv = open(&csv_path)?;
        if new {
            writeln!(
                csv,
                "step,kind,lr,loss,ce,soft_dice_loss,seconds_per_step,elapsed_s,recall,fp_per_scan,dice,recall_sad_ge_15mm,score"
            )
            .map_err(|e| NetError::io(&csv_path, e))?;
        }
        Ok(Logger { csv, jsonl: open(&run.join("log.jsonl"))? })
    }

    pub(crate) fn write(&mut self, r: &LogRecord) -> Result<(), NetError> {
        let f = |v: Option<f64>| v.map(|x| format!("{x:.6}")).unwrap_or_default();
        let v = r.val.as_ref();
        let line = format!(
            "{},{},{:.3e},{},{},{},{},{:.1},{},{},{},{},{}",
            r.step,
            r.kind,
            r.lr,
            f(r.loss),
            f(r.ce),
            f(r.soft_dice_loss),
            f(r.seconds_per_step),
            r.elapsed_s,
            f(v.map(|m| m.recall)),
            f(v.map(|m| m.fp_per_scan)),
            f(v.and_then(|m| m.dice)),
            f(v.and_then(|m| m.recall_sad_ge_15mm)),
            f(v.map(|m| m.score)),
        );
        let json = serde_json::to_string(r).expect("log record serialises");
        writeln!(self.csv, "{line}")
            .and_then(|_| writeln!(self.jsonl, "{json}"))
            .map_err(|e| NetError::Io { path: "log".into(), source: e })
    }
}
