//! Writing a cohort's results: `evaluation.json`, `scans.csv`, `nodes.csv`, `fps.csv`, `froc.csv`
//! (probability maps only), `table1.md` and the figures (SVG). Every file is written atomically: to
//! a temporary file in the same folder, then renamed, so a reader never sees a half-written file.
use crate::cohort::{CohortResult, Status};
use crate::plots;
use crate::table::{field, num};
use crate::EvalError;
use std::path::{Path, PathBuf};

/// File names written by [`write_outputs`].
pub const EVALUATION_JSON: &str = "evaluation.json";
pub const SCANS_CSV: &str = "scans.csv";
pub const NODES_CSV: &str = "nodes.csv";
pub const FPS_CSV: &str = "fps.csv";
pub const FROC_CSV: &str = "froc.csv";
pub const TABLE1_MD: &str = "table1.md";
pub const FIG_SENSITIVITY_BOX: &str = "sensitivity_boxplot.svg";
pub const FIG_SAD_VIOLIN: &str = "sad_violin.svg";
pub const FIG_SAD_VS_SENSITIVITY: &str = "sad_vs_sensitivity.svg";
pub const FIG_FROC: &str = "froc.svg";
/// Every file [`write_outputs`] can write.
pub const OUTPUT_FILES: &[&str] = &[
    EVALUATION_JSON,
    SCANS_CSV,
    NODES_CSV,
    FPS_CSV,
    FROC_CSV,
    TABLE1_MD,
    FIG_SENSITIVITY_BOX,
    FIG_SAD_VIOLIN,
    FIG_SAD_VS_SENSITIVITY,
    FIG_FROC,
];

/// Writes `bytes` to `path` atomically (temporary file in the same folder, then rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), EvalError> {
    nodal_io::write_atomic(path, bytes).map_err(|e| EvalError::io(path, e))
}

fn opt_bool(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "true",
        Some(false) => "false",
        None => "",
    }
}

/// `scans.csv`: one row per scan; undefined values are empty cells.
pub fn scans_csv(r: &CohortResult) -> String {
    let mut s = String::from(
        "case_id,prediction_kind,n_gt_nodes,n_gt_localized,n_pred_components,n_pred_removed_small,n_pred,n_tp,n_fp,\
         n_fp_sad_ge_10mm,recall,n_gt_countable,recall_ceiling,precision,f1,dice,assd,avg_hd,mhd,hd,hd95\n",
    );
    for c in &r.scans {
        let x = &c.result;
        let kind = match c.prediction_kind {
            crate::cohort::PredictionKind::Mask => "mask",
            crate::cohort::PredictionKind::Probability => "probability",
        };
        s += &format!(
            "{},{kind},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            field(&c.case_id),
            x.n_gt_nodes,
            x.n_gt_localized,
            x.n_pred_components,
            x.n_pred_removed_small,
            x.n_pred,
            x.n_tp,
            x.n_fp,
            x.n_fp_sad_ge_10mm,
            num(x.recall),
            x.n_gt_countable,
            num(x.recall_ceiling),
            num(x.precision),
            num(x.f1),
            num(x.dice),
            num(x.assd),
            num(x.avg_hd),
            num(x.mhd),
            num(x.hd),
            num(x.hd95)
        );
    }
    s
}

/// `nodes.csv`: one row per GT node.
pub fn nodes_csv(r: &CohortResult) -> String {
    let mut s = String::from(
        "case_id,node_id,sad_mm,lad_mm,sad_group,n_voxels,volume_mm3,metastatic,sensitivity,localized,countable\n",
    );
    for c in &r.scans {
        for n in &c.result.nodes {
            s += &format!(
                "{},{},{},{},{},{},{},{},{},{},{}\n",
                field(&c.case_id),
                n.id,
                n.sad_mm,
                n.lad_mm,
                n.sad_group.name(),
                n.n_voxels,
                n.volume_mm3,
                opt_bool(n.metastatic),
                n.sensitivity,
                n.localized,
                n.countable
            );
        }
    }
    s
}

/// `fps.csv`: one row per false-positive component; centroid in LPS mm.
pub fn fps_csv(r: &CohortResult) -> String {
    let mut s = String::from(
        "case_id,component,sad_mm,lad_mm,n_voxels,volume_mm3,centroid_lps_x_mm,centroid_lps_y_mm,centroid_lps_z_mm\n",
    );
    for c in &r.scans {
        for f in &c.result.fps {
            s += &format!(
                "{},{},{},{},{},{},{},{},{}\n",
                field(&c.case_id),
                f.component,
                f.sad_mm,
                f.lad_mm,
                f.n_voxels,
                f.volume_mm3,
                f.centroid_mm[0],
                f.centroid_mm[1],
                f.centroid_mm[2]
            );
        }
    }
    s
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |x| format!("{x:.2}"))
}

/// `table1.md`: Table 1 of the paper (n, recall, mean sensitivity of localized nodes by SAD group
/// and nodal status).
pub fn table1_md(r: &CohortResult) -> String {
    let mut s = String::from(
        "# Table 1: GT nodes, recall and mean sensitivity (localized nodes) by SAD group\n\n\
         | SAD (mm) | n non-mets | recall non-mets | sensitivity non-mets | n mets | recall mets | sensitivity mets | n all | recall all | sensitivity all |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let groups: Vec<&str> = {
        let mut g: Vec<&str> = Vec::new();
        for row in &r.table1 {
            if !g.contains(&row.sad_group.as_str()) {
                g.push(&row.sad_group);
            }
        }
        g
    };
    for g in groups {
        let cell = |st: Status| r.table1.iter().find(|x| x.sad_group == g && x.status == st);
        let mut line = format!("| {g} |");
        for st in [Status::NonMetastatic, Status::Metastatic, Status::All] {
            match cell(st) {
                Some(c) => {
                    line += &format!(
                        " {} | {} | {} |",
                        c.n,
                        fmt_opt(c.recall),
                        fmt_opt(c.mean_sensitivity_localized)
                    )
                }
                None => line += " | | |",
            }
        }
        s += &line;
        s.push('\n');
    }
    s += "\nrecall = localized / GT nodes (sensitivity >= 0.4); sensitivity = mean over localized nodes; \
          nodes of unknown status count only under \"all\"; n/a = undefined (no nodes).\n";
    s
}

/// `froc.csv`.
pub fn froc_csv(points: &[crate::cohort::FrocPoint]) -> String {
    let mut s = String::from("threshold,recall,fp_per_scan,n_scans\n");
    for p in points {
        s += &format!("{},{},{},{}\n", p.threshold, num(p.recall), p.fp_per_scan, p.n_scans);
    }
    s
}

/// Writes every output into `dir` (created if needed) and returns the paths written.
pub fn write_outputs(r: &CohortResult, dir: &Path) -> Result<Vec<PathBuf>, EvalError> {
    std::fs::create_dir_all(dir).map_err(|e| EvalError::io(dir, e))?;
    let json = serde_json::to_string_pretty(r).map_err(|e| EvalError::Plot {
        path: dir.join(EVALUATION_JSON),
        reason: format!("serialising: {e}"),
    })?;
    let mut files: Vec<(&str, String)> = vec![
        (EVALUATION_JSON, json + "\n"),
        (SCANS_CSV, scans_csv(r)),
        (NODES_CSV, nodes_csv(r)),
        (FPS_CSV, fps_csv(r)),
        (TABLE1_MD, table1_md(r)),
        (FIG_SENSITIVITY_BOX, plots::sensitivity_boxplot(r)),
        (FIG_SAD_VIOLIN, plots::sad_violin(r)),
        (FIG_SAD_VS_SENSITIVITY, plots::sad_vs_sensitivity(r)),
    ];
    if let Some(f) = &r.froc {
        files.push((FROC_CSV, froc_csv(f)));
        files.push((FIG_FROC, plots::froc_curve(f)));
    } else {
        // A FROC curve left by an earlier run on probability maps would pass for this run's.
        for name in [FROC_CSV, FIG_FROC] {
            let p = dir.join(name);
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(EvalError::io(&p, e)),
            }
        }
    }
    let mut written = Vec::new();
    for (name, text) in files {
        let p = dir.join(name);
        write_atomic(&p, text.as_bytes())?;
        written.push(p);
    }
    Ok(written)
}
