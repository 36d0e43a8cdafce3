//! Prints the body box of generated phantoms at a given model spacing (dev tool for sizing).
//! `cargo run -p nodal-net --example phantom_box -- full 1.25`
use nodal_net::preprocess::{prepare, Preprocessing};
use nodal_phantom::{generate_phantom, PhantomConfig};

fn main() {
    let size: nodal_phantom::PhantomSize =
        std::env::args().nth(1).unwrap_or("full".into()).parse().expect("size");
    let sp: f64 = std::env::args().nth(2).unwrap_or("1.25".into()).parse().expect("spacing");
    for seed in 0..1 {
        let t = std::time::Instant::now();
        let p = generate_phantom(&PhantomConfig::preset(size), seed).expect("phantom");
        let gen_s = t.elapsed().as_secs_f64();
        let pre = Preprocessing { spacing_mm: [sp; 3], ..Default::default() };
        let t = std::time::Instant::now();
        let prep = prepare(&p.ct, &pre).expect("prepare");
        let d = prep.image.dims();
        println!(
            "seed {seed}: ct {:?} spacing {:?}, gen {gen_s:.1}s, prepare {:.2}s -> box {:?} = {:.2} M voxels, {} nodes",
            p.ct.dims(),
            p.ct.geometry().spacing_mm,
            t.elapsed().as_secs_f64(),
            d,
            (d[0] * d[1] * d[2]) as f64 / 1e6,
            p.nodes.len()
        );
        let body = prep.body.as_slice().iter().filter(|&&v| v != 0).count() as f64 / prep.body.len() as f64;
        println!("body fraction of the box: {body:.2}");
    }
}
