//! Node statistics and the HU-threshold baseline over many seeds, and generation time.
//! `cargo run --release -p nodal-phantom --example phantom_stats -- N_SEEDS small|train|full`
use nodal_nodes::components::{label_components, Connectivity};
use nodal_nodes::measure::axial_axes;
use nodal_phantom::{generate_phantom, PhantomConfig, PhantomSize};
use std::collections::HashSet;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(50);
    let size: PhantomSize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(PhantomSize::Small);
    let cfg = PhantomConfig::preset(size);
    let (mut count, mut met_sad, mut ben_sad, mut nec, mut met_n) =
        (Vec::new(), Vec::new(), Vec::new(), 0usize, 0usize);
    let (mut big_scans, mut clusters, mut recall_sum, mut fp_sum, mut secs) = (0, 0, 0.0, 0usize, 0.0);
    for seed in 0..n {
        let t = std::time::Instant::now();
        let p = generate_phantom(&cfg, seed)?;
        secs += t.elapsed().as_secs_f64();
        count.push(p.nodes.len());
        for nd in &p.nodes {
            if nd.metastatic {
                met_sad.push(nd.sad_mm);
                met_n += 1;
                nec += nd.necrotic as usize;
            } else {
                ben_sad.push(nd.sad_mm);
            }
        }
        big_scans += p.nodes.iter().any(|x| x.sad_mm >= 15.0) as usize;
        clusters += p.nodes.iter().filter_map(|x| x.cluster_id).collect::<HashSet<_>>().len();
        // Threshold baseline: 0..100 HU, 26-components, SAD 5..60 mm, localized at >= 40 %.
        let mask = p.ct.map(|v| (0..=100).contains(&v) as u8);
        let (comp, nc) = label_components(&mask, Connectivity::TwentySix);
        let ax = axial_axes(&comp);
        let keep: Vec<bool> = (0..=nc)
            .map(|c| ax.get(c).copied().flatten().is_some_and(|a| (5.0..=60.0).contains(&a.short_axis_mm)))
            .collect();
        let (cs, ls) = (comp.as_slice(), p.labels.as_slice());
        let mut gt = vec![0usize; p.nodes.len() + 1];
        let mut hit = vec![0usize; p.nodes.len() + 1];
        for v in 0..ls.len() {
            if ls[v] != 0 {
                gt[ls[v] as usize] += 1;
                hit[ls[v] as usize] += keep[cs[v] as usize] as usize;
            }
        }
        let loc: Vec<bool> = (0..gt.len()).map(|l| l > 0 && hit[l] as f64 >= 0.4 * gt[l] as f64).collect();
        let tp: HashSet<u32> = (0..ls.len())
            .filter(|&v| ls[v] != 0 && loc[ls[v] as usize] && keep[cs[v] as usize])
            .map(|v| cs[v])
            .collect();
        let kept = keep.iter().filter(|&&k| k).count();
        recall_sum += loc.iter().filter(|&&x| x).count() as f64 / p.nodes.len().max(1) as f64;
        fp_sum += kept - tp.len();
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let max = |v: &[f64]| v.iter().cloned().fold(0.0, f64::max);
    let cf: Vec<f64> = count.iter().map(|&c| c as f64).collect();
    println!("seeds {n} ({size:?}), mean generation {:.2} s", secs / n as f64);
    println!(
        "nodes/scan mean {:.1} (min {}, max {})",
        mean(&cf),
        count.iter().min().unwrap_or(&0),
        count.iter().max().unwrap_or(&0)
    );
    println!(
        "non-metastatic: n {} SAD mean {:.2} max {:.1} mm",
        ben_sad.len(),
        mean(&ben_sad),
        max(&ben_sad)
    );
    println!(
        "metastatic: n {} SAD mean {:.2} max {:.1} mm, necrotic {:.1} %",
        met_n,
        mean(&met_sad),
        max(&met_sad),
        100.0 * nec as f64 / met_n.max(1) as f64
    );
    println!("scans with a node >= 15 mm: {big_scans}/{n}; clusters: {clusters}");
    println!(
        "threshold baseline: mean recall {:.3}, mean FP/scan {:.1}",
        recall_sum / n as f64,
        fp_sum as f64 / n as f64
    );
    Ok(())
}
