//! `generate_phantom`: scanner draw, anatomy, node placement, rendering and measurement.
use crate::anatomy::{Anatomy, Tissue};
use crate::config::{PhantomConfig, Scanner};
use crate::confounders;
use crate::context::{self, Context, ContextPools};
use crate::nodes::{draft_node, draw_level, draw_sad_mm, Level, NodeAttrs, NodeDraft, NodeShape, NodeStyle};
use crate::randomization::{pick, Placement};
use crate::render::{self, fits_grid, rasterize, Grid, PlacedNode};
use crate::rng::{self, chance, stream, uni, PRng};
use crate::scan_rand::ScanDraw;
use crate::style::{randomize_appearance, randomize_shape, with_style};
use crate::{NodeInfo, Phantom, PhantomError};
use ndarray::Array3;
use nodal_core::{Geometry, Side, Volume};
use rand::Rng;
use rayon::prelude::*;

/// Generates one phantom. Deterministic in `(cfg, seed)`: every random draw comes from a seeded
/// stream or a positional hash, so thread scheduling cannot change a single voxel.
pub fn generate_phantom(cfg: &PhantomConfig, seed: u64) -> Result<Phantom, PhantomError> {
    cfg.validate()?;
    let rz = &cfg.randomization;
    let (mut sc, grid, mut anat) = scan_and_anatomy(cfg, seed);
    let geom = grid.geom;
    let ip = grid.geom.spacing_mm[0];
    // Randomization draws come from their own streams ("rand/..."): with every component off, the
    // engine's streams see exactly the draws they always saw.
    let scan_draw =
        rz.background.enabled.then(|| ScanDraw::draw(&mut stream(seed, "rand/background"), &rz.background));
    if let Some(d) = &scan_draw {
        d.apply_to_anatomy(&mut anat);
        sc.artery_hu = d.artery_hu;
        sc.vein_hu = d.vein_hu;
    }
    // Nodes: large ones are sited first and push the anatomy aside.
    let mut nrng = stream(seed, "nodes");
    let fat_hu = anat.structs[crate::anatomy::sid::FAT as usize].hu;
    let mut drafts = draw_scan_nodes(&mut nrng, cfg, fat_hu);
    randomize_drafts(&mut stream(seed, "rand/nodes"), cfg, &mut drafts);
    let planned = plan_mass_effect(&mut stream(seed, "mass"), &mut anat, &grid, &drafts);

    // Pass A: tissue map at the slice centres.
    let sids = render::sid_map(&anat, &grid);
    let tissue = render::tissue_of(&anat, &sids);
    let mut labels = Array3::<u16>::zeros(tissue.raw_dim());
    let tis = tissue.as_slice().expect("standard layout");
    let pools = (rz.placement.enabled || rz.confounders.enabled)
        .then(|| ContextPools::new(tis, grid.dims, grid.geom.spacing_mm));
    let wide = pools.as_ref().filter(|_| rz.placement.enabled).map(|p| (p, &rz.placement));
    let (placed, attrs) = place_nodes(&mut nrng, &anat, &grid, &tissue, &mut labels, drafts, &planned, wide);
    // Confounders (label 0) go where no node is.
    let mut drawn = placed.clone();
    if let (true, Some(pools)) = (rz.confounders.enabled, &pools) {
        let mut crng = stream(seed, "rand/confounders");
        let [lo, hi] = rz.confounders.count;
        let n = crng.random_range(lo..=hi.max(lo));
        let c = confounders::draw_confounders(&mut crng, &rz.confounders, &rz.appearance, n, false);
        let lab = labels.as_slice().expect("standard layout");
        drawn.extend(confounders::place_confounders(&mut crng, c, &grid, tis, lab, None, pools));
    }
    // Pass B: HU with sub-slice integration and the final labels.
    let n_sub = if sc.slice_mm > 1.3 { 3 } else { 1 };
    let tex_seed = rng::stream_seed(seed, "texture");
    let (mut hu, lab) = render::hu_and_labels(&anat, &grid, &drawn, tex_seed, n_sub, Some(&sids));
    drop(sids);
    render::add_artifacts(&anat, &grid, &sc, rng::stream_seed(seed, "artifacts"), &mut hu);
    let sig_xy = sc.psf_sigma_mm / ip;
    let kx = render::gauss_kernel(sig_xy);
    let kz = render::gauss_kernel((0.45 / sc.slice_mm).max(0.0));
    let anat_ref = &anat;
    let noise = move |z: f64| {
        let u = anat_ref.u_of(z);
        // Photon starvation through the shoulders raises the noise in the lowest slices.
        sc.noise_hu * (1.0 + 1.3 * ((0.14 - u) / 0.18).clamp(0.0, 1.0))
    };
    render::noise_and_blur(&grid, &mut hu, [&kx, &kx, &kz], noise, rng::stream_seed(seed, "noise"));
    if let Some(d) = &scan_draw {
        d.post_filter(&mut hu, grid.geom.spacing_mm);
    }
    let ct = ndarray::Zip::from(&hu).par_map_collect(|&v| v.round().clamp(-1024.0, 3071.0) as i16);
    drop(hu);
    let (lab, nodes_attrs) = finalize_labels(lab, &placed, &attrs);
    let labels_vol = Volume::new(lab, geom)?;
    let nodes = measure(&labels_vol, &nodes_attrs);
    Ok(Phantom {
        ct: Volume::new(ct, geom)?,
        labels: labels_vol,
        tissue: Volume::new(tissue, geom)?,
        nodes,
        scanner: Some(sc),
        seed,
    })
}

/// The scanner, the output grid and the anatomy of a seed (before any node).
pub(crate) fn scan_and_anatomy(cfg: &PhantomConfig, seed: u64) -> (Scanner, Grid, Anatomy) {
    let sc = Scanner::draw(cfg, &mut stream(seed, "scanner"));
    let mut grng = stream(seed, "grid");
    let (m, n) = (sc.matrix, sc.slices);
    let ip = sc.in_plane_mm as f32 as f64;
    let origin = [
        -((m - 1) as f64) / 2.0 * ip + uni(&mut grng, -8.0, 8.0),
        -((m - 1) as f64) / 2.0 * ip + uni(&mut grng, -12.0, 6.0),
        uni(&mut grng, -350.0, -150.0),
    ];
    // Spacing and origin are made f32-exact: NIfTI stores them as f32, and nodes.json must match
    // what the evaluator measures on the file read back.
    let f32x = |v: f64| v as f32 as f64;
    let geom = Geometry::axis_aligned(
        [f32x(ip), f32x(ip), f32x(sc.slice_mm)],
        [f32x(origin[0]), f32x(origin[1]), f32x(origin[2])],
    );
    let grid = Grid { geom, dims: [m, m, n] };
    let z_lo = grid.z(0) - sc.slice_mm / 2.0;
    let z_hi = grid.z(n - 1) + sc.slice_mm / 2.0;
    let anat = Anatomy::draw(&mut stream(seed, "anatomy"), &sc, z_lo, z_hi);
    (sc, grid, anat)
}

/// Per-scan node draw: count, metastatic subset (one primary side), bulky clusters.
pub(crate) fn draw_scan_nodes(
    rng: &mut PRng,
    cfg: &PhantomConfig,
    fat_hu: f64,
) -> Vec<(NodeDraft, Option<u32>)> {
    let [lo, hi] = cfg.node_count;
    let n_total = if hi > lo { rng.random_range(lo..=hi) } else { lo };
    let cancer = chance(rng, 0.85);
    let n_met = if cancer { (1 + rng.random_range(0..=6usize)).min(n_total) } else { 0 };
    let primary_side = if chance(rng, 0.5) { -1.0 } else { 1.0 };
    let bulky = cancer && chance(rng, 0.3);
    let mut out = Vec::with_capacity(n_total);
    let mut next_cluster = 1u32;
    let mut i = 0;
    while out.len() < n_total {
        let met = i < n_met;
        i += 1;
        let side = if met && chance(rng, 0.8) {
            primary_side
        } else if chance(rng, 0.5) {
            -1.0
        } else {
            1.0
        };
        let level = draw_level(rng, met);
        let big = met && bulky && out.is_empty();
        let attrs = |cluster| NodeAttrs {
            level,
            side: if side < 0.0 { Side::Right } else { Side::Left },
            metastatic: met,
            necrotic: false,
            cystic: false,
            calcified: false,
            cluster_id: cluster,
        };
        let sad = draw_sad_mm(rng, met, big);
        if met && chance(rng, 0.18) && out.len() + 2 <= n_total {
            // Bulky disease: 2-4 touching metastases.
            let k = rng.random_range(2..=4usize).min(n_total - out.len());
            let cid = next_cluster;
            next_cluster += 1;
            for _ in 0..k {
                let s = draw_sad_mm(rng, true, false).max(sad * 0.5).min(sad * 1.2);
                out.push((draft_node(rng, attrs(Some(cid)), s, fat_hu), Some(cid)));
            }
        } else {
            out.push((draft_node(rng, attrs(None), sad, fat_hu), None));
        }
    }
    out
}

/// Applies the node parts of the randomization (shape, appearance, extra clusters) to the drafts
/// of a scan. Draws only from `rng` (a stream of its own); with those components off it does
/// nothing.
pub(crate) fn randomize_drafts(
    rng: &mut PRng,
    cfg: &PhantomConfig,
    drafts: &mut Vec<(NodeDraft, Option<u32>)>,
) {
    let rz = &cfg.randomization;
    if !(rz.shape.enabled || rz.appearance.enabled || rz.placement.enabled) {
        return;
    }
    if rz.placement.enabled {
        // More touching clusters: some single nodes grow mates (up to the configured count).
        let mut next = drafts.iter().filter_map(|(_, c)| *c).max().unwrap_or(0) + 1;
        let cap = cfg.node_count[1].max(drafts.len());
        let mut out = Vec::with_capacity(drafts.len());
        for (d, c) in drafts.drain(..) {
            if c.is_none() && chance(rng, rz.placement.cluster_p) {
                let [lo, hi] = rz.placement.cluster_size;
                let k = (uni(rng, lo, hi + 1.0).floor() as usize).max(2);
                for _ in 0..k {
                    let mut m = d.clone();
                    m.attrs.cluster_id = Some(next);
                    out.push((m, Some(next)));
                }
                next += 1;
            } else {
                out.push((d, c));
            }
        }
        out.truncate(cap);
        *drafts = out;
    }
    for (d, _) in drafts.iter_mut() {
        // Cluster mates are copies until here: each gets its own texture.
        d.shape.tex_seed = rng.random();
        if !(rz.shape.enabled || rz.appearance.enabled) {
            continue;
        }
        let mut st = NodeStyle::plain();
        if rz.shape.enabled {
            let sad = crate::style::draw_short_axis_mm(rng, &rz.shape);
            randomize_shape(rng, &rz.shape, &mut d.shape, &mut st, sad);
            d.sad_mm = sad;
        }
        if rz.appearance.enabled {
            let (necrotic, cystic, calcified) =
                randomize_appearance(rng, &rz.appearance, &mut d.shape, &mut st);
            d.attrs.necrotic = necrotic;
            d.attrs.cystic = cystic;
            d.attrs.calcified = calcified;
        }
        with_style(&mut d.shape, st);
    }
}

/// Nodes with at least this short axis push the anatomy aside ([`crate::mass`]) instead of having
/// to fit between the structures.
pub(crate) const MASS_EFFECT_MIN_SAD_MM: f64 = 12.0;

/// Sites the large drafts (the first node of a cluster, or a single node, with short axis >=
/// [`MASS_EFFECT_MIN_SAD_MM`]) in fat at their level, apart from each other, and records their
/// pushes in `anat`. Returns each draft's planned shape (placed), if it has one. A node too big
/// for any site is tried again 10% smaller, up to three times.
pub(crate) fn plan_mass_effect(
    rng: &mut PRng,
    anat: &mut Anatomy,
    grid: &Grid,
    drafts: &[(NodeDraft, Option<u32>)],
) -> Vec<Option<NodeShape>> {
    use crate::anatomy::sid;
    let mut planned = vec![None; drafts.len()];
    let mut seen_clusters = std::collections::HashSet::new();
    for (n, (d, cluster)) in drafts.iter().enumerate() {
        let first_of_cluster = cluster.is_none_or(|c| seen_clusters.insert(c));
        if d.sad_mm < MASS_EFFECT_MIN_SAD_MM || !first_of_cluster {
            continue;
        }
        let side = if d.attrs.side == Side::Right { -1.0 } else { 1.0 };
        for attempt in 0..80 {
            let base = d.shape.scaled(0.9f64.powi(attempt / 20));
            let ext = base.extent_mm();
            // Half-height of the node's bounding box (its axes are tilted), with the lobes.
            let amp: f64 = base.lobes.iter().map(|l| l.amp.max(0.0)).sum();
            let half_z =
                (0..3).map(|a| (base.axes[a][2] * base.radii[a]).powi(2)).sum::<f64>().sqrt() * (1.0 + amp);
            // Sited like a node of moderate size: it then grows and pushes its surroundings.
            let (u, q) = site(rng, anat, d.attrs.level, side, ext.min(8.0));
            let w = anat.to_world(u, q);
            let c = [w[0], w[1], anat.z_of(u)];
            let shape = base.placed(c, &d.shape.calcs);
            if !fits_grid(grid, &shape, 2.0) {
                continue;
            }
            let apart = anat.mass.pushes.iter().all(|p| {
                let e = p.shape.centre;
                let dist = ((e[0] - c[0]).powi(2) + (e[1] - c[1]).powi(2) + (e[2] - c[2]).powi(2)).sqrt();
                dist > p.shape.extent_mm() + ext + 3.0
            });
            // The node's inside and rim show the tissue of the column through its centre
            // (structures are painted per axial plane, so the push moves points in-plane): the
            // centre must be fat, and the column, with a little around it, tissue a node may
            // cover over the node's height.
            let ring: Vec<[f64; 2]> = std::iter::once([0.0, 0.0])
                .chain((0..8).map(|a| {
                    let t = a as f64 * std::f64::consts::FRAC_PI_4;
                    [3.0 * t.cos(), 3.0 * t.sin()]
                }))
                .collect();
            let fat = matches!(render::sid_at(anat, anat.mass.source(c)), sid::FAT | sid::DEEP_FAT)
                && grid.range(2, c[2] - half_z, c[2] + half_z).is_some_and(|(k0, k1)| {
                    (k0..=k1).all(|k| {
                        let z = grid.z(k);
                        let prims = anat.slice(z);
                        ring.iter().all(|o| {
                            let src = anat.mass.source([c[0] + o[0], c[1] + o[1], z]);
                            let id = render::sid_in(anat, &prims, [src[0], src[1], z]);
                            render::node_allowed(anat.structs[id as usize].tissue as u8)
                        })
                    })
                });
            if apart && fat {
                anat.mass.pushes.push(crate::mass::Push::new(shape.clone()));
                planned[n] = Some(shape);
                break;
            }
        }
    }
    planned
}

/// Where a node of a level sits at height `u` (neck frame), drawn.
fn site(rng: &mut PRng, anat: &Anatomy, level: Level, side: f64, r: f64) -> (f64, [f64; 2]) {
    let hy = 0.53;
    match level {
        Level::I => {
            let u = uni(rng, hy - 0.03, hy + 0.1);
            if chance(rng, 0.3) {
                (u, [uni(rng, -7.0, 7.0), uni(rng, -52.0, -40.0)])
            } else {
                (u, [side * uni(rng, 18.0, 44.0), uni(rng, -46.0, -20.0)])
            }
        }
        Level::II | Level::III | Level::IV => {
            let u = match level {
                Level::II => uni(rng, hy, 0.86),
                Level::III => uni(rng, 0.3, hy),
                _ => uni(rng, 0.03, 0.3),
            };
            let (vc, vr, _) = anat.ijv(u, side);
            // Large nodes cannot fit lateral to the vein (the skin is there): they sit in front
            // of or behind it, displacing the sternocleidomastoid.
            let th = if r > 8.0 && chance(rng, 0.8) {
                if chance(rng, 0.5) {
                    uni(rng, -120.0f64, -60.0)
                } else {
                    uni(rng, 60.0f64, 120.0)
                }
            } else {
                uni(rng, -110.0f64, 125.0)
            }
            .to_radians();
            let d = vr[0].max(vr[1]) + r + uni(rng, 0.5, 5.0);
            (u, [vc[0] + side * d * th.cos(), vc[1] + d * th.sin()])
        }
        Level::V => (uni(rng, 0.04, 0.75), [side * uni(rng, 38.0, 56.0), uni(rng, 8.0, 38.0)]),
        Level::VI => {
            let u = uni(rng, 0.03, 0.3);
            if chance(rng, 0.6) {
                (u, [side * uni(rng, 9.0, 16.0), uni(rng, -16.0, -5.0)])
            } else {
                (u, [uni(rng, -7.0, 7.0), uni(rng, -40.0, -31.0)])
            }
        }
    }
}

/// Places the drafts one by one; a node that does not fit is moved, then shrunk, then dropped.
/// Paints accepted nodes into `labels` (1-based ids in placement order).
fn place_nodes(
    rng: &mut PRng,
    anat: &Anatomy,
    grid: &Grid,
    tissue: &Array3<u8>,
    labels: &mut Array3<u16>,
    drafts: Vec<(NodeDraft, Option<u32>)>,
    planned: &[Option<NodeShape>],
    wide: Option<(&ContextPools, &Placement)>,
) -> (Vec<PlacedNode>, Vec<NodeAttrs>) {
    let tis = tissue.as_slice().expect("standard layout");
    let mut placed: Vec<PlacedNode> = Vec::new();
    let mut attrs: Vec<NodeAttrs> = Vec::new();
    let margin = 0.8;
    // Nodes with a planned site go first: their room is made for them, not for a small node
    // that would land there by chance.
    let mut order: Vec<(usize, (NodeDraft, Option<u32>))> = drafts.into_iter().enumerate().collect();
    order.sort_by_key(|(n, _)| planned.get(*n).is_none_or(|p| p.is_none()));
    for (n, (d, cluster)) in order {
        let side = if d.attrs.side == Side::Right { -1.0 } else { 1.0 };
        let calcs_frac = d.shape.calcs.clone();
        // Cluster mates grow from the previous member of the same cluster.
        let anchor = cluster.and_then(|c| placed.iter().rev().find(|p| p.cluster == Some(c)).cloned());
        let mut done = false;
        let mut scale = 1.0;
        let mut level = d.attrs.level;
        for attempt in 0..80 {
            if attempt > 0 && attempt % 16 == 0 {
                // Does not fit here: try smaller, and (unless clustered) at another level.
                scale *= 0.85;
                if anchor.is_none() {
                    level = draw_level(rng, d.attrs.metastatic);
                }
            }
            let base = d.shape.scaled(scale);
            let r = base.radii[0].max(base.radii[1]);
            // A large node's planned site and size, where its mass effect made room.
            let plan = planned.get(n).and_then(|p| p.as_ref()).filter(|_| attempt == 0);
            let centre = match &anchor {
                _ if plan.is_some() => [0.0; 3],
                Some(a) => {
                    let dir = rng::unit_vec(rng);
                    let dir = crate::nodes::norm3([dir[0], dir[1], dir[2] * 0.6]);
                    let ra = a.shape.radii[0].max(a.shape.radii[1]);
                    let dist = (ra + base.radii[0]) * uni(rng, 0.7, 0.95);
                    [
                        a.shape.centre[0] + dir[0] * dist,
                        a.shape.centre[1] + dir[1] * dist,
                        a.shape.centre[2] + dir[2] * dist,
                    ]
                }
                None => {
                    // Randomized placement: a tissue context, or the anatomical site.
                    let pooled = wide.and_then(|(pools, pl)| {
                        let ctx = Context::from_index(pick(rng, &pl.contexts.as_array()));
                        let ix = pools.draw(rng, ctx, tis, r)?;
                        let (o, sp) = (grid.geom.origin_mm, grid.geom.spacing_mm);
                        Some([o[0] + ix[0] * sp[0], o[1] + ix[1] * sp[1], o[2] + ix[2] * sp[2]])
                    });
                    match pooled {
                        Some(c) => c,
                        None => {
                            let (u, q) = site(rng, anat, level, side, r);
                            let w = anat.to_world(u, q);
                            [w[0], w[1], anat.z_of(u)]
                        }
                    }
                }
            };
            let shape = plan.cloned().unwrap_or_else(|| base.placed(centre, &calcs_frac));
            let Some((inside, near)) = rasterize(grid, &shape, margin) else { continue };
            if inside.len() < 3 {
                continue;
            }
            let lab = labels.as_slice().expect("standard layout");
            let mates: Vec<u16> = match cluster {
                Some(c) => placed.iter().filter(|p| p.cluster == Some(c)).map(|p| p.id).collect(),
                None => Vec::new(),
            };
            let mut ok = true;
            let mut muscle = 0usize;
            let mut touches_mate = anchor.is_none();
            // A node at its planned site owns the room its push made: only its inside must be
            // on allowed tissue (the rim may abut whatever it pushed aside).
            let rim = if plan.is_some() { &near[..0] } else { &near[..] };
            if let Some((_, pl)) = wide {
                // Randomized placement: the inside on fat, muscle or gland (partly embedded, up
                // to a fraction), the margin anywhere but bone and air (nodes abut vessels,
                // glands and muscles).
                let mut embedded = 0usize;
                for (n_v, &v) in inside.iter().chain(rim).enumerate() {
                    let t = tis[v];
                    let is_inside = n_v < inside.len();
                    if (is_inside && !context::node_voxel_allowed(t))
                        || (!is_inside && !context::rim_allowed(t))
                    {
                        ok = false;
                        break;
                    }
                    embedded += usize::from(is_inside && context::embedded_tissue(t));
                    let l = lab[v];
                    if l != 0 {
                        if mates.contains(&l) {
                            touches_mate = true;
                        } else {
                            ok = false;
                            break;
                        }
                    }
                }
                if !ok || !touches_mate || embedded as f64 > pl.embedded_max_fraction * inside.len() as f64 {
                    continue;
                }
            }
            for &v in inside.iter().chain(rim).filter(|_| wide.is_none()) {
                let t = tis[v];
                if !render::node_allowed(t) {
                    ok = false;
                    break;
                }
                if t == Tissue::Muscle as u8 {
                    muscle += 1;
                }
                let l = lab[v];
                if l != 0 {
                    if mates.contains(&l) {
                        touches_mate = true;
                    } else {
                        ok = false;
                        break;
                    }
                }
            }
            let muscle_max = if d.sad_mm > 15.0 { 0.7 } else { 0.35 };
            let too_much_muscle =
                wide.is_none() && muscle as f64 > muscle_max * (inside.len() + near.len()) as f64;
            if !ok || !touches_mate || too_much_muscle {
                continue;
            }
            let id = (placed.len() + 1) as u16;
            let node = PlacedNode { id, shape, cluster };
            // Paint: a voxel shared with a mate goes to the node with the smaller level.
            let labm = labels.as_slice_mut().expect("standard layout");
            let [ni, nj, _] = grid.dims;
            for &v in &inside {
                let cur = labm[v];
                if cur == 0 {
                    labm[v] = id;
                } else {
                    let (i, j, k) = (v % ni, (v / ni) % nj, v / (ni * nj));
                    let p = [grid.x(i), grid.y(j), grid.z(k)];
                    let other = &placed[cur as usize - 1].shape;
                    if node.shape.level_of(p) < other.level_of(p) {
                        labm[v] = id;
                    }
                }
            }
            placed.push(node);
            attrs.push(NodeAttrs { level, ..d.attrs.clone() });
            done = true;
            break;
        }
        let _ = done;
    }
    (placed, attrs)
}

/// Keeps each label's largest 26-connected piece (a cluster split can leave crumbs; they go to
/// the touching mate, or to background), drops empty labels and renumbers 1..n.
pub(crate) fn finalize_labels(
    mut lab: Array3<u16>,
    placed: &[PlacedNode],
    attrs: &[NodeAttrs],
) -> (Array3<u16>, Vec<NodeAttrs>) {
    let shape = lab.raw_dim();
    let (nk, nj, ni) = (shape[0], shape[1], shape[2]);
    let n = placed.len();
    let data = lab.as_slice_mut().expect("standard layout");
    // Bounding boxes per label (per slice in parallel, then merged).
    let empty = vec![[usize::MAX, usize::MAX, usize::MAX, 0, 0, 0]; n + 1];
    let bb = data
        .par_chunks((ni * nj).max(1))
        .enumerate()
        .fold(
            || empty.clone(),
            |mut bb, (k, sl)| {
                for (idx, &l) in sl.iter().enumerate() {
                    if l == 0 {
                        continue;
                    }
                    let (i, j) = (idx % ni, idx / ni);
                    let b = &mut bb[l as usize];
                    b[0] = b[0].min(i);
                    b[1] = b[1].min(j);
                    b[2] = b[2].min(k);
                    b[3] = b[3].max(i);
                    b[4] = b[4].max(j);
                    b[5] = b[5].max(k);
                }
                bb
            },
        )
        .reduce(
            || empty.clone(),
            |mut a, b| {
                for (x, y) in a.iter_mut().zip(&b) {
                    for c in 0..3 {
                        x[c] = x[c].min(y[c]);
                        x[c + 3] = x[c + 3].max(y[c + 3]);
                    }
                }
                a
            },
        );
    for l in 1..=n {
        let b = bb[l];
        if b[0] == usize::MAX {
            continue;
        }
        // Components of label l inside its box (BFS, 26-connectivity).
        let mut comp: Vec<Vec<usize>> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for k in b[2]..=b[5] {
            for j in b[1]..=b[4] {
                for i in b[0]..=b[3] {
                    let idx = (k * nj + j) * ni + i;
                    if data[idx] as usize != l || seen.contains(&idx) {
                        continue;
                    }
                    let mut stack = vec![idx];
                    seen.insert(idx);
                    let mut c = Vec::new();
                    while let Some(v) = stack.pop() {
                        c.push(v);
                        let (vi, vj, vk) = (v % ni, (v / ni) % nj, v / (ni * nj));
                        for dk in -1i64..=1 {
                            for dj in -1i64..=1 {
                                for di in -1i64..=1 {
                                    let (x, y, z) = (vi as i64 + di, vj as i64 + dj, vk as i64 + dk);
                                    if x < 0
                                        || y < 0
                                        || z < 0
                                        || x >= ni as i64
                                        || y >= nj as i64
                                        || z >= nk as i64
                                    {
                                        continue;
                                    }
                                    let w = ((z as usize * nj) + y as usize) * ni + x as usize;
                                    if data[w] as usize == l && seen.insert(w) {
                                        stack.push(w);
                                    }
                                }
                            }
                        }
                    }
                    comp.push(c);
                }
            }
        }
        if comp.len() <= 1 {
            continue;
        }
        comp.sort_by_key(|c| std::cmp::Reverse(c.len()));
        for c in comp.iter().skip(1) {
            // Give the crumb to a touching other label, else background.
            let mut to = 0u16;
            'find: for &v in c {
                let (vi, vj, vk) = (v % ni, (v / ni) % nj, v / (ni * nj));
                for dk in -1i64..=1 {
                    for dj in -1i64..=1 {
                        for di in -1i64..=1 {
                            let (x, y, z) = (vi as i64 + di, vj as i64 + dj, vk as i64 + dk);
                            if x < 0 || y < 0 || z < 0 || x >= ni as i64 || y >= nj as i64 || z >= nk as i64 {
                                continue;
                            }
                            let w = ((z as usize * nj) + y as usize) * ni + x as usize;
                            if data[w] != 0 && data[w] as usize != l {
                                to = data[w];
                                break 'find;
                            }
                        }
                    }
                }
            }
            for &v in c {
                data[v] = to;
            }
        }
    }
    // Renumber: drop empty labels.
    let count = data
        .par_chunks((ni * nj).max(1))
        .fold(
            || vec![0usize; n + 1],
            |mut c, sl| {
                for &l in sl {
                    c[l as usize] += 1;
                }
                c
            },
        )
        .reduce(
            || vec![0usize; n + 1],
            |mut a, b| {
                for (x, y) in a.iter_mut().zip(&b) {
                    *x += y;
                }
                a
            },
        );
    let mut map = vec![0u16; n + 1];
    let mut out_attrs = Vec::new();
    for l in 1..=n {
        if count[l] > 0 {
            out_attrs.push(attrs[l - 1].clone());
            map[l] = out_attrs.len() as u16;
        }
    }
    // Nothing to do when no label was dropped.
    if map.iter().enumerate().any(|(l, &m)| m as usize != l) {
        data.par_chunks_mut((ni * nj).max(1)).for_each(|sl| {
            for v in sl {
                *v = map[*v as usize];
            }
        });
    }
    (lab, out_attrs)
}

/// Measures every node on the final label map with the evaluator's own code.
pub(crate) fn measure(labels: &Volume<u16>, attrs: &[NodeAttrs]) -> Vec<NodeInfo> {
    let axes = nodal_nodes::measure::axial_axes(labels);
    let g = labels.geometry();
    let n = attrs.len();
    let mut sum = vec![[0.0f64; 3]; n + 1];
    let mut cnt = vec![0usize; n + 1];
    let [ni, nj, _] = labels.dims();
    for (idx, &l) in labels.as_slice().iter().enumerate() {
        if l == 0 {
            continue;
        }
        let (i, j, k) = (idx % ni, (idx / ni) % nj, idx / (ni * nj));
        let s = &mut sum[l as usize];
        s[0] += i as f64;
        s[1] += j as f64;
        s[2] += k as f64;
        cnt[l as usize] += 1;
    }
    let vv = g.voxel_volume_mm3();
    (1..=n)
        .map(|l| {
            let c = cnt[l].max(1) as f64;
            let centroid_mm = g.index_to_world([sum[l][0] / c, sum[l][1] / c, sum[l][2] / c]);
            let ax = axes.get(l).copied().flatten();
            let a = &attrs[l - 1];
            NodeInfo {
                id: l as u16,
                level: a.level,
                side: a.side,
                metastatic: a.metastatic,
                necrotic: a.necrotic,
                cystic: a.cystic,
                calcified: a.calcified,
                cluster_id: a.cluster_id,
                centroid_mm,
                sad_mm: ax.map_or(0.0, |x| x.short_axis_mm),
                lad_mm: ax.map_or(0.0, |x| x.long_axis_mm),
                volume_mm3: cnt[l] as f64 * vv,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PhantomSize;

    /// A 40 mm metastasis planned into a small phantom: the anatomy is pushed aside, not erased.
    #[test]
    fn a_bulky_node_displaces_the_anatomy_and_keeps_its_size() {
        let cfg = PhantomConfig::preset(PhantomSize::Small);
        let mut planned_any = false;
        for seed in 0..6 {
            let (_, grid, mut anat) = scan_and_anatomy(&cfg, seed);
            let before = render::tissue_map(&anat, &grid);
            let fat_hu = anat.structs[crate::anatomy::sid::FAT as usize].hu;
            let attrs = NodeAttrs {
                level: Level::III,
                side: Side::Left,
                metastatic: true,
                necrotic: false,
                cystic: false,
                calcified: false,
                cluster_id: None,
            };
            let draft = draft_node(&mut stream(seed, "t"), attrs, 40.0, fat_hu);
            let plan = plan_mass_effect(&mut stream(seed, "m"), &mut anat, &grid, &[(draft, None)]);
            let Some(shape) = plan[0].clone() else { continue };
            planned_any = true;
            // Full size or at most three 10% reductions.
            assert!(shape.radii[0] * 2.0 >= 40.0 * 0.729 - 1e-9, "{:?}", shape.radii);
            let after = render::tissue_map(&anat, &grid);
            let (inside, _) = rasterize(&grid, &shape, 0.0).expect("planned inside the grid");
            let tis = after.as_slice().unwrap();
            assert!(
                inside.iter().all(|&v| render::node_allowed(tis[v])),
                "seed {seed}: node on forbidden tissue"
            );
            // Structures are moved, not destroyed: every tissue class keeps most of its voxels
            // (some leave the field of view or are thinned where they are stretched), and the
            // tissue map did change.
            let count = |m: &Array3<u8>, t: u8| m.iter().filter(|&&x| x == t).count();
            let mut changed = 0;
            for t in [Tissue::Muscle, Tissue::Cortical, Tissue::Gland, Tissue::Thyroid] {
                let (b, a) = (count(&before, t as u8), count(&after, t as u8));
                assert!(a as f64 >= 0.8 * b as f64, "seed {seed}: {} {b} -> {a}", t.name());
            }
            for (x, y) in before.iter().zip(after.iter()) {
                changed += usize::from(x != y);
            }
            assert!(changed > inside.len() / 2, "seed {seed}: only {changed} voxels changed");
        }
        assert!(planned_any, "no seed could site a 40 mm node");
    }
}
