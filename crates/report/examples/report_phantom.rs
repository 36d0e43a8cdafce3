//! Renders a report for a phantom neck CT, with the phantom's ground-truth nodes as the "found"
//! nodes, measured by nodal-nodes: `cargo run -p nodal-report --example report_phantom -- OUT_DIR
//! [SEED] [small|full|train]`. Writes `OUT_DIR/report.html`, `OUT_DIR/report.json` and the PNG
//! images used in the README (`node.png`, `overview.png`).

use nodal_core::{Label, Volume};
use nodal_nodes::measure::{measure_nodes, MeasureOptions};
use nodal_phantom::{PhantomConfig, PhantomSize};
use nodal_report::{summarize, write_report, write_report_json, ReportData, ScanInfo, StageTiming};
use std::path::PathBuf;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let out = PathBuf::from(args.get(1).ok_or("usage: report_phantom OUT_DIR [SEED] [small|full|train]")?);
    let seed: u64 = args.get(2).map_or(Ok(7), |s| s.parse())?;
    let size: PhantomSize = args.get(3).map_or(Ok(PhantomSize::Small), |s| s.parse())?;
    std::fs::create_dir_all(&out)?;

    let t0 = Instant::now();
    let ph = nodal_phantom::generate_phantom(&PhantomConfig::preset(size), seed)?;
    let t_gen = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let measured = measure_nodes(&ph.labels, Some(&ph.ct), &MeasureOptions::default())?;
    let t_measure = t1.elapsed().as_secs_f64();

    let data = ReportData {
        scan: ScanInfo::from_volume(format!("phantom neck CT, seed {seed}"), &ph.ct),
        model: None,
        timings: vec![
            StageTiming { stage: "phantom".into(), seconds: t_gen },
            StageTiming { stage: "measure".into(), seconds: t_measure },
        ],
        nodes: measured
            .into_iter()
            .map(|m| nodal_report::NodeRecord::from(&nodal_detect::Detection::measured(m)))
            .collect(),
        evaluation: None,
        created: "example".into(),
        software_version: env!("CARGO_PKG_VERSION").into(),
    };
    let t2 = Instant::now();
    write_report(&out.join("report.html"), &data, &ph.ct, &ph.labels)?;
    let t_report = t2.elapsed().as_secs_f64();
    write_report_json(&out.join("report.json"), &data)?;
    save_pngs(&out, &data, &ph.ct, &ph.labels)?;
    println!(
        "{} nodes, CT {:?}; phantom {t_gen:.2} s, measure {t_measure:.2} s, report {t_report:.2} s: {}",
        data.nodes.len(),
        ph.ct.dims(),
        out.join("report.html").display()
    );
    Ok(())
}

/// The README images: the overview and the largest node's axial thumbnail next to its coronal one.
fn save_pngs<L: Label>(
    out: &std::path::Path,
    data: &ReportData,
    ct: &Volume<i16>,
    labels: &Volume<L>,
) -> Result<(), Box<dyn std::error::Error>> {
    let s = summarize(data);
    nodal_report::views::overview(ct, labels, &s.nodes).save(out.join("overview.png"))?;
    if let Some(n) = s.nodes.first() {
        let ax = nodal_report::views::axial_thumbnail(ct, labels, n);
        let co = nodal_report::views::coronal_thumbnail(ct, labels, n);
        let gap = 6;
        let mut both =
            image::RgbImage::from_pixel(ax.width() * 2 + gap, ax.height(), image::Rgb([255, 255, 255]));
        image::imageops::replace(&mut both, &ax, 0, 0);
        image::imageops::replace(&mut both, &co, (ax.width() + gap) as i64, 0);
        both.save(out.join("node.png"))?;
    }
    Ok(())
}
