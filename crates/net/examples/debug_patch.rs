//! Dev check: the same node seen through a training patch and through sliding-window inference.
use burn::prelude::*;
use burn::tensor::activation::softmax;
use nodal_net::patch::{sample_training_patch, Augmentation};
use nodal_net::rng::Rng;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let model = nodal_net::load_model(a[1].as_ref()).unwrap();
    let ct = nodal_io::read_nifti::<i16>(&a[2]).unwrap();
    let lab = nodal_io::read_nifti::<u16>(&a[3]).unwrap();
    let cfg = &model.config;
    let case = nodal_net::train::prepare_training_case("x", &ct, &lab, cfg).unwrap();
    let node = &case.nodes[0];
    let v = node[node.len() / 2];
    let centre = [v[0] as i64 / 4 * 4, v[1] as i64 / 4 * 4, v[2] as i64 / 4 * 4];
    let out = cfg.train_patch_out;
    let sizes = cfg.arch.input_sizes(out);
    let p = &cfg.preprocessing;
    let (inputs, labels) = sample_training_patch(
        &case.pyramid,
        &case.label,
        centre,
        &sizes,
        out,
        &Augmentation::identity(),
        &mut Rng::new(0),
        [p.normalise(p.hu_clip[0]), p.normalise(p.hu_clip[1])],
    );
    let dev = nodal_net::device();
    let xs = inputs
        .iter()
        .zip(&sizes)
        .map(|(x, &s)| {
            Tensor::<5>::from_data(
                TensorData::new(x.iter().copied().collect::<Vec<f32>>(), [1, 1, s, s, s]),
                &dev,
            )
        })
        .collect();
    let prob = softmax(model.net.forward(xs), 1).narrow(1, 1, 1).into_data().to_vec::<f32>().unwrap();
    let lab: Vec<u8> = labels.iter().copied().collect();
    let fg: Vec<f32> = prob.iter().zip(&lab).filter(|(_, &l)| l > 0).map(|(p, _)| *p).collect();
    println!(
        "patch: {} fg voxels, mean p fg {:.4}, max p {:.4}",
        fg.len(),
        fg.iter().sum::<f32>() / fg.len().max(1) as f32,
        prob.iter().cloned().fold(0.0, f32::max)
    );
    println!("input level0 mean {:.3}", inputs[0].mean().unwrap());
    let m0 = (sizes[0] - out) / 2;
    let (mut sf, mut nf, mut sb, mut nb) = (0.0f32, 0, 0.0f32, 0);
    for ((z, y, x), &l) in labels.indexed_iter() {
        let v = inputs[0][[z + m0, y + m0, x + m0]];
        if l > 0 {
            sf += v;
            nf += 1
        } else {
            sb += v;
            nb += 1
        }
    }
    println!("input under fg {:.3} (n {nf}), under bg {:.3}", sf / nf.max(1) as f32, sb / nb.max(1) as f32);
    let hu_fg: Vec<f64> = lab_hu(&ct, &nodal_io::read_nifti::<u16>(&a[3]).unwrap());
    println!("raw CT HU under GT labels: mean {:.1}", hu_fg.iter().sum::<f64>() / hu_fg.len() as f64);
}

fn lab_hu(ct: &nodal_core::Volume<i16>, lab: &nodal_core::Volume<u16>) -> Vec<f64> {
    ct.as_slice().iter().zip(lab.as_slice()).filter(|(_, &l)| l > 0).map(|(&v, _)| v as f64).collect()
}
