//! Generates one phantom, writes it with previews and prints timing and node statistics.
//! `cargo run --release -p nodal-phantom --example phantom_preview -- SEED small|full|train OUTDIR`
use nodal_phantom::{generate_phantom, output, preview, PhantomConfig, PhantomSize};
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let seed: u64 = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(1);
    let size: PhantomSize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(PhantomSize::Small);
    let out = PathBuf::from(args.get(3).cloned().unwrap_or_else(|| "/tmp/phantom".into()));
    let mut cfg = PhantomConfig::preset(size);
    // Optional fixed slice thickness and slice count (the 512 x 512 x 250 benchmark: `0.8 250`).
    cfg.slice_mm = args.get(4).map(|s| s.parse()).transpose()?;
    cfg.slices = args.get(5).map(|s| s.parse()).transpose()?;
    let t = std::time::Instant::now();
    let c0 = cpu_seconds();
    let p = generate_phantom(&cfg, seed)?;
    eprintln!(
        "generated {:?} in {:.2} s wall, {:.2} s CPU",
        p.ct.dims(),
        t.elapsed().as_secs_f64(),
        cpu_seconds() - c0
    );
    eprintln!("scanner {:?}", p.scanner);
    tissue_counts(&p);
    nodal_io::write_nifti(&p.tissue, out.join("tissue.nii.gz"))?;
    output::write_phantom(&p, &out, None)?;
    preview::write_previews(&p.ct, &p.labels, &p.nodes, &out)?;
    for n in &p.nodes {
        eprintln!(
            "node {:2} {:>3} {} met={} nec={} cys={} cal={} cl={:?} sad={:.1} lad={:.1} vol={:.0}",
            n.id,
            n.level.name(),
            n.side.as_str(),
            n.metastatic,
            n.necrotic,
            n.cystic,
            n.calcified,
            n.cluster_id,
            n.sad_mm,
            n.lad_mm,
            n.volume_mm3
        );
    }
    Ok(())
}

#[allow(dead_code)]
fn tissue_counts(p: &nodal_phantom::Phantom) {
    let mut c = [0usize; 20];
    for &t in p.tissue.as_slice() {
        c[t as usize] += 1;
    }
    for (i, n) in c.iter().enumerate() {
        eprintln!("{:?}: {n}", nodal_phantom::Tissue::from_u8(i as u8).unwrap());
    }
}

/// User + system CPU time of this process (Linux /proc), seconds.
fn cpu_seconds() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let f: Vec<&str> = s.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / 100.0
}
