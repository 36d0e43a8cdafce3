//! `nodal measure`: per-node measurements of an instance label map or a binary mask.
//!
//! Input kind: `--mask` reads the image as a binary mask (only 0 and 1 allowed) whose connected
//! components become the nodes, numbered in raster order of their first voxel; `--labels` keeps the
//! ids of an instance label map (gaps allowed, each id is one node even if it is split in pieces).
//! Without either flag the kind is detected: an image holding only 0 and 1 is a mask, anything
//! else a label map.
//!
//! Writes into `-o DIR`: `nodes.nii.gz` (the instance label map measured, named as `segment` names
//! it: uint16 when the largest id fits, else uint32), `nodes.json` (schema `nodal.nodes/1`) and
//! `nodes.csv`, the folder as one unit (`nodal_core::output`). With `--ct`, also the report
//! (`report.html`, `report.json`) and, for a DICOM CT, `nodes.seg.dcm` and `nodes.sr.dcm` (masks
//! from any model, into a PACS). Ids must be whole numbers in `0..=u32::MAX` (any stored type).
//!
//! A cohort (a folder of label maps, or a list file) gets one such folder per case in `DIR`
//! (`super::cohort`), with `--ct` a folder of CTs matched by case id.
use super::cohort::{record_matches, run_cohort, CaseJob, CohortArgs};
use anyhow::Context;
use nodal_core::output::OutputDir;
use nodal_core::Volume;
use nodal_detect::output::{write_nodes_csv, write_nodes_json, Source};
use nodal_detect::Detection;
use nodal_io::{CaseSource, Inputs};
use nodal_nodes::components::{check_binary, is_binary};
use nodal_nodes::measure::{measure_nodes, MeasureOptions};
use nodal_nodes::{label_components, Connectivity};
use nodal_report::{
    write_outputs, DicomOptions, DicomSource, NodeRecord, ReportData, ScanInfo, REPORT_HTML, REPORT_JSON,
    RTSTRUCT_FILE, SEG_FILE, SR_FILE,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Args {
    /// Instance label map or binary mask (NIfTI); or a cohort: a folder of them, or a text file
    /// listing them one per line (one case folder each in -o).
    input: PathBuf,
    /// CT on the same grid (NIfTI file or DICOM folder): adds HU statistics and the necrosis fraction.
    /// For a cohort: a folder of CTs (NIfTI files or DICOM study folders) matched by case id.
    #[arg(long)]
    ct: Option<PathBuf>,
    #[command(flatten)]
    series: super::SeriesArg,
    /// Read the input as a binary mask (0/1): its connected components are the nodes.
    #[arg(long, conflicts_with = "labels")]
    mask: bool,
    /// Read the input as an instance label map: its ids are kept.
    #[arg(long)]
    labels: bool,
    /// Connectivity of components for a mask: 6, 18 or 26.
    #[arg(long, default_value_t = 26)]
    connectivity: usize,
    /// LPS x of the patient midline in mm (default: the x of the volume centre).
    #[arg(long)]
    midline_x_mm: Option<f64>,
    /// Output folder (created if missing). For a cohort: the folder of the case folders, the
    /// cohort's nodes.csv and the run summary (cohort.json).
    #[arg(short = 'o', long = "out")]
    out: PathBuf,
    #[command(flatten)]
    cohort: CohortArgs,
}

/// What `measure` writes into its folder.
const PRODUCTS: &[&str] =
    &["nodes.nii.gz", "nodes.json", "nodes.csv", REPORT_HTML, REPORT_JSON, SEG_FILE, SR_FILE, RTSTRUCT_FILE];

pub fn run(args: Args) -> anyhow::Result<()> {
    let conn =
        Connectivity::from_neighbours(args.connectivity).ok_or(nodal_nodes::NodesError::InvalidOption {
            name: "connectivity",
            value: args.connectivity.to_string(),
            reason: "must be 6, 18 or 26",
        })?;
    match super::cohort::find_inputs(&args.input, &args.out)? {
        Inputs::One(path) => {
            // Checked and locked before any work; written as one unit.
            let out = OutputDir::open(&args.out)?;
            let job = MeasureJob { args: &args, conn, cts: BTreeMap::new() };
            let found = job.measure(&path, args.ct.as_deref(), out)?;
            println!("{found}");
            Ok(())
        }
        Inputs::Cohort(cases) => {
            let cts = match &args.ct {
                None => BTreeMap::new(),
                Some(dir) => match nodal_io::find_inputs(dir)? {
                    Inputs::Cohort(cts) => cts.into_iter().map(|c| (c.case_id, c.path)).collect(),
                    Inputs::One(_) => {
                        return Err(nodal_io::IoError::Cases {
                            path: dir.clone(),
                            reason: format!(
                                "{} is a cohort of {} label maps: --ct must be a folder of their CTs (NIfTI \
                                 files or DICOM study folders named by case id)",
                                args.input.display(),
                                cases.len()
                            ),
                        }
                        .into())
                    }
                },
            };
            let mut job = MeasureJob { args: &args, conn, cts };
            run_cohort(&mut job, &args.input, &cases, &args.out, &args.cohort)
        }
    }
}

/// `measure`'s work on one label map.
struct MeasureJob<'a> {
    args: &'a Args,
    conn: Connectivity,
    /// A cohort's CTs by case id.
    cts: BTreeMap<String, PathBuf>,
}

impl MeasureJob<'_> {
    /// Measures the nodes of `input` (with the CT at `ct`) into `out`; returns what it found.
    fn measure(&self, input_path: &Path, ct_path: Option<&Path>, out: OutputDir) -> anyhow::Result<String> {
        let args = self.args;
        // Whole, non-negative ids only: a cast would merge 0.5 with 0 or 1, or drop negative ids.
        let input: Volume<u32> =
            nodal_io::read_labels(input_path).with_context(|| format!("reading {}", input_path.display()))?;
        let as_mask = if args.mask {
            check_binary(&input).with_context(|| format!("{} given as --mask", input_path.display()))?;
            true
        } else {
            !args.labels && is_binary(&input)
        };
        let labels: Volume<u32> = if as_mask { label_components(&input, self.conn).0 } else { input };
        let ct = match ct_path {
            Some(p) => Some(args.series.read_ct(p)?),
            None => None,
        };
        let opts = MeasureOptions { midline_x_mm: args.midline_x_mm, ..Default::default() };
        let nodes: Vec<Detection> = measure_nodes(&labels, ct.as_ref().map(|c| &c.hu), &opts)
            .with_context(|| format!("measuring {}", input_path.display()))?
            .into_iter()
            .map(Detection::measured)
            .collect();

        let label_path = out.staging().join("nodes.nii.gz");
        let max_id = nodes.iter().map(|n| n.measurement.node_id).max().unwrap_or(0);
        if max_id <= u16::MAX as u32 {
            nodal_io::write_nifti(&labels.map(|v| v as u16), &label_path)?;
        } else {
            nodal_io::write_nifti(&labels, &label_path)?;
        }
        let source = Source {
            labels: Some(input_path.display().to_string()),
            ct: ct_path.map(|p| p.display().to_string()),
            input_kind: if as_mask { "mask".into() } else { "label_map".into() },
        };
        write_nodes_json(&out.staging().join("nodes.json"), &nodes, &source, None)?;
        write_nodes_csv(&out.staging().join("nodes.csv"), &nodes)?;
        if let (Some(ct), Some(ct_path)) = (&ct, ct_path) {
            // With the CT: the report, and for DICOM the SEG and SR a PACS takes.
            let data = ReportData {
                scan: ScanInfo::from_volume(ct_path.display().to_string(), &ct.hu)
                    .with_instance_numbers(ct.dicom.as_ref().map_or(&[][..], |r| &r.instance_numbers[..]))
                    .with_coverage(coverage(&ct.hu, ct_path)),
                model: None,
                timings: vec![],
                nodes: nodes.iter().map(NodeRecord::from).collect(),
                evaluation: None,
                created: nodal_core::time::UtcTime::now().rfc3339(),
                software_version: env!("CARGO_PKG_VERSION").to_string(),
            };
            let dicom = ct.dicom.as_ref().map(DicomSource::from);
            let dicom_opts = DicomOptions::for_run(None, nodal_core::time::UtcTime::now());
            write_outputs(out.staging(), &data, &ct.hu, &labels, dicom.as_ref(), &dicom_opts)?;
        }
        let out_path = out.out().to_path_buf();
        out.commit(PRODUCTS)?;
        Ok(format!(
            "{} nodes ({}) -> {}",
            nodes.len(),
            source.input_kind.replace('_', " "),
            out_path.display()
        ))
    }

    fn ct_of(&self, case: &CaseSource) -> anyhow::Result<Option<&Path>> {
        match &self.args.ct {
            None => Ok(None),
            Some(dir) => match self.cts.get(&case.case_id) {
                Some(p) => Ok(Some(p)),
                None => Err(nodal_io::IoError::Cases {
                    path: dir.clone(),
                    reason: format!("no CT for case {:?}", case.case_id),
                }
                .into()),
            },
        }
    }
}

/// The body regions `ct` shows, its warnings logged.
fn coverage(ct: &Volume<i16>, path: &Path) -> nodal_nodes::coverage::BodyCoverage {
    let c = nodal_nodes::coverage::body_coverage(ct);
    for w in &c.warnings {
        tracing::warn!("{}: {w}", path.display());
    }
    c
}

impl CaseJob for MeasureJob<'_> {
    fn command(&self) -> &'static str {
        "measure"
    }

    /// Done when the case folder's nodes.json was measured from this input and CT.
    fn is_done(&self, case: &CaseSource, folder: &Path) -> bool {
        let input = case.path.display().to_string();
        let ct = self.cts.get(&case.case_id).map(|p| p.display().to_string());
        let mut expected = vec![("/source/labels", input.as_str())];
        if let Some(ct) = &ct {
            expected.push(("/source/ct", ct.as_str()));
        }
        record_matches(folder, "nodes.json", &expected)
    }

    fn run(&mut self, case: &CaseSource, out: OutputDir) -> anyhow::Result<String> {
        let ct = self.ct_of(case)?;
        self.measure(&case.path, ct, out)
    }
}
