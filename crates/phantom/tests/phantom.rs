//! Properties of generated phantoms: determinism, measurements, anatomy constraints, HU ranges,
//! instance topology, and that a naive HU threshold cannot solve them.
use nodal_core::Volume;
use nodal_phantom::{generate_phantom, output, PhantomConfig, Tissue};
use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

fn small(seed: u64) -> nodal_phantom::Phantom {
    generate_phantom(&PhantomConfig::default(), seed).expect("phantom")
}

fn seed7() -> &'static nodal_phantom::Phantom {
    static P: OnceLock<nodal_phantom::Phantom> = OnceLock::new();
    P.get_or_init(|| small(7))
}

fn ijk(v: usize, dims: [usize; 3]) -> [usize; 3] {
    [v % dims[0], (v / dims[0]) % dims[1], v / (dims[0] * dims[1])]
}

/// 26-neighbours of a flat index.
fn neighbours(v: usize, dims: [usize; 3]) -> impl Iterator<Item = usize> {
    let [i, j, k] = ijk(v, dims);
    let mut out = Vec::with_capacity(26);
    for dk in -1i64..=1 {
        for dj in -1i64..=1 {
            for di in -1i64..=1 {
                if di == 0 && dj == 0 && dk == 0 {
                    continue;
                }
                let (x, y, z) = (i as i64 + di, j as i64 + dj, k as i64 + dk);
                if x < 0
                    || y < 0
                    || z < 0
                    || x >= dims[0] as i64
                    || y >= dims[1] as i64
                    || z >= dims[2] as i64
                {
                    continue;
                }
                out.push((z as usize * dims[1] + y as usize) * dims[0] + x as usize);
            }
        }
    }
    out.into_iter()
}

/// Number of 26-connected pieces of the voxels with label `l` (naive flood fill).
fn pieces(labels: &Volume<u16>, l: u16) -> usize {
    let dims = labels.dims();
    let s = labels.as_slice();
    let mut seen = HashSet::new();
    let mut n = 0;
    for (v, &x) in s.iter().enumerate() {
        if x != l || seen.contains(&v) {
            continue;
        }
        n += 1;
        let mut stack = vec![v];
        seen.insert(v);
        while let Some(a) = stack.pop() {
            for b in neighbours(a, dims) {
                if s[b] == l && seen.insert(b) {
                    stack.push(b);
                }
            }
        }
    }
    n
}

#[test]
fn same_seed_gives_identical_bytes() {
    let a = seed7();
    let b = small(7);
    assert_eq!(a.ct, b.ct);
    assert_eq!(a.labels, b.labels);
    assert_eq!(a.nodes, b.nodes);
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    output::write_phantom(a, d1.path(), None).unwrap();
    output::write_phantom(&b, d2.path(), None).unwrap();
    for f in ["ct.nii.gz", "nodes.nii.gz", "nodes.json"] {
        let x = std::fs::read(d1.path().join(f)).unwrap();
        let y = std::fs::read(d2.path().join(f)).unwrap();
        assert!(x == y, "{f} differs between two runs of the same seed");
    }
    let c = small(8);
    assert_ne!(a.ct, c.ct, "different seeds must differ");
}

#[test]
fn node_json_matches_the_written_label_map() {
    let p = seed7();
    let d = tempfile::tempdir().unwrap();
    output::write_phantom(p, d.path(), None).unwrap();
    let labels: Volume<u16> = nodal_io::read_nifti(d.path().join("nodes.nii.gz")).unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.path().join("nodes.json")).unwrap()).unwrap();
    let nodes = json["nodes"].as_array().unwrap();
    assert!(nodes.len() >= 10, "only {} nodes", nodes.len());
    let axes = nodal_nodes::measure::axial_axes(&labels);
    let vv = labels.geometry().voxel_volume_mm3();
    let mut count: HashMap<u16, usize> = HashMap::new();
    for &l in labels.as_slice() {
        *count.entry(l).or_default() += 1;
    }
    let max = labels.as_slice().iter().copied().max().unwrap() as usize;
    assert_eq!(max, nodes.len(), "label ids must be 1..=n");
    for (i, n) in nodes.iter().enumerate() {
        let id = n["id"].as_u64().unwrap() as usize;
        assert_eq!(id, i + 1);
        let ax = axes[id].expect("every listed node has voxels");
        assert!((n["sad_mm"].as_f64().unwrap() - ax.short_axis_mm).abs() < 1e-9);
        assert!((n["lad_mm"].as_f64().unwrap() - ax.long_axis_mm).abs() < 1e-9);
        let vol = count[&(id as u16)] as f64 * vv;
        assert!((n["volume_mm3"].as_f64().unwrap() - vol).abs() < 1e-6);
        for key in
            ["level", "side", "metastatic", "necrotic", "cystic", "calcified", "cluster_id", "centroid_mm"]
        {
            assert!(n.get(key).is_some(), "nodes.json lacks {key}");
        }
    }
}

#[test]
fn nodes_never_sit_in_bone_air_lung_or_vessels() {
    for p in [seed7(), &small(11)] {
        let t = p.tissue.as_slice();
        for (v, &l) in p.labels.as_slice().iter().enumerate() {
            if l != 0 {
                let tissue = Tissue::from_u8(t[v]).unwrap();
                assert!(matches!(tissue, Tissue::Fat | Tissue::Muscle), "node {l} voxel {v} in {tissue:?}");
            }
        }
    }
}

#[test]
fn tissue_hu_statistics_are_in_range() {
    let p = seed7();
    let dims = p.ct.dims();
    let (t, ct, lab) = (p.tissue.as_slice(), p.ct.as_slice(), p.labels.as_slice());
    let mut acc: HashMap<u8, (f64, usize)> = HashMap::new();
    for v in 0..t.len() {
        let [i, j, k] = ijk(v, dims);
        if i < 1 || j < 1 || i + 1 >= dims[0] || j + 1 >= dims[1] || k == 0 || k + 1 >= dims[2] || lab[v] != 0
        {
            continue;
        }
        // Interior voxels only (no partial volume): the in-plane 3x3 neighbourhood shares the class.
        let interior = (-1i64..=1)
            .all(|dj| (-1i64..=1).all(|di| t[(v as i64 + dj * dims[0] as i64 + di) as usize] == t[v]));
        if interior {
            let e = acc.entry(t[v]).or_default();
            e.0 += ct[v] as f64;
            e.1 += 1;
        }
    }
    let ranges: [(Tissue, f64, f64); 6] = [
        (Tissue::Fat, -130.0, -55.0),
        (Tissue::Muscle, 30.0, 80.0),
        (Tissue::Artery, 140.0, 420.0),
        (Tissue::Air, -1024.0, -950.0),
        (Tissue::Thyroid, 80.0, 170.0),
        (Tissue::Marrow, 120.0, 500.0),
    ];
    for (tis, lo, hi) in ranges {
        let (s, n) = acc.get(&(tis as u8)).copied().unwrap_or_default();
        assert!(n > 20, "{tis:?}: only {n} interior voxels");
        let m = s / n as f64;
        assert!((lo..=hi).contains(&m), "{tis:?} mean {m:.1} HU outside {lo}..{hi}");
    }
}

#[test]
fn nodes_are_single_26_connected_instances_and_clusters_touch() {
    for p in [seed7(), &small(3), &small(21)] {
        let dims = p.labels.dims();
        for n in &p.nodes {
            assert_eq!(pieces(&p.labels, n.id), 1, "node {} is not one 26-connected piece", n.id);
        }
        let s = p.labels.as_slice();
        let mut clusters: HashMap<u32, Vec<u16>> = HashMap::new();
        for n in &p.nodes {
            if let Some(c) = n.cluster_id {
                clusters.entry(c).or_default().push(n.id);
            }
        }
        for (c, ids) in clusters {
            if ids.len() < 2 {
                continue;
            }
            let touch = s.iter().enumerate().any(|(v, &l)| {
                ids.contains(&l) && neighbours(v, dims).any(|w| s[w] != l && ids.contains(&s[w]))
            });
            assert!(touch, "cluster {c} ({ids:?}) members do not touch");
        }
    }
}

#[test]
fn some_seed_has_a_touching_cluster_and_a_large_node() {
    let ps: Vec<_> = (30..38).map(small).collect();
    assert!(ps.iter().any(|p| p.nodes.iter().filter(|n| n.cluster_id.is_some()).count() >= 2));
    assert!(ps.iter().any(|p| p.nodes.iter().any(|n| n.sad_mm >= 15.0)));
    assert!(ps.iter().any(|p| p.nodes.iter().any(|n| n.necrotic)));
}

/// The honesty baseline: a 0..100 HU threshold, 26-components with SAD 5..60 mm. It must not find
/// the nodes well, or the phantom is too easy.
#[test]
fn hu_threshold_baseline_stays_poor() {
    for seed in [7u64, 12, 13, 14] {
        let p = if seed == 7 { seed7().clone() } else { small(seed) };
        let mask = p.ct.map(|v| (0..=100).contains(&v) as u8);
        let (comp, n) = nodal_nodes::components::label_components(
            &mask,
            nodal_nodes::components::Connectivity::TwentySix,
        );
        let axes = nodal_nodes::measure::axial_axes(&comp);
        let keep: Vec<bool> = (0..=n)
            .map(|c| axes.get(c).copied().flatten().is_some_and(|a| (5.0..=60.0).contains(&a.short_axis_mm)))
            .collect();
        let (cs, ls) = (comp.as_slice(), p.labels.as_slice());
        let mut gt = vec![0usize; p.nodes.len() + 1];
        let mut hit = vec![0usize; p.nodes.len() + 1];
        for v in 0..ls.len() {
            if ls[v] != 0 {
                gt[ls[v] as usize] += 1;
                if keep[cs[v] as usize] {
                    hit[ls[v] as usize] += 1;
                }
            }
        }
        let localized: Vec<bool> =
            (0..gt.len()).map(|l| l > 0 && hit[l] as f64 >= 0.4 * gt[l] as f64).collect();
        let recall = localized.iter().filter(|&&x| x).count() as f64 / p.nodes.len() as f64;
        let mut tp = HashSet::new();
        for v in 0..ls.len() {
            if ls[v] != 0 && localized[ls[v] as usize] && keep[cs[v] as usize] {
                tp.insert(cs[v]);
            }
        }
        let kept = keep.iter().filter(|&&k| k).count();
        let fp = kept - tp.len();
        eprintln!("seed {seed}: threshold recall {recall:.2}, FP {fp}, kept {kept}");
        assert!(
            recall < 0.6 || fp > 20,
            "seed {seed}: threshold finds nodes too well (recall {recall}, FP {fp})"
        );
    }
}
