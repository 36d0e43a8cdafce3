//! Which part of the body a CT shows, so that a scan that does not show the neck — or cuts part of
//! it off — is said so before anyone reads its nodes as cervical nodes.
//!
//! Every axial slice (sampled every ~2 mm in-plane) is given one of five classes from the body's
//! cross-section (the largest 4-connected component above -300 HU):
//!
//! * *cranium* — a closed bone ring (>= 300 HU) around >= 30 cm² of soft tissue (the skull vault);
//! * *jaw* — a narrow slice (body < 230 mm from side to side) with dense bone (>= 600 HU) spread
//!   over at least half the body's width in its front 45 %: mandible, teeth, maxilla;
//! * *lung* — air enclosed by the body that reads as parenchyma (pockets averaging above -950 HU:
//!   not the airway's, sinuses' or bowel's gas): >= 1 cm² on each side away from the midline (the
//!   apices), or >= 20 cm² in a wide slice;
//! * *neck* — any other narrow slice;
//! * *wide* — any other wide slice: shoulders, or the trunk below the lungs.
//!
//! Classes are smoothed by a majority vote over ±7.5 mm. Regions follow from them along z:
//! cranium -> head; jaw and neck -> neck; lung -> chest; wide slices above the highest lung slice
//! (or, in a scan without lung, within 60 mm below the neck) -> neck, the others -> abdomen.
//! The neck counts as shown when >= 30 mm of *neck* and *jaw* slices run together, >= 10 mm of
//! them neck (face slices alone are a head); it is covered below when the scan goes on below that
//! run into lung or wide slices (the thoracic inlet), and above when the run reaches the jaw or a
//! cranium slice lies above it.
//!
//! These are coarse landmarks on HU alone, meant to catch the wrong scan (a chest or abdomen
//! series, a head CT) and a neck cut short; they do not place neck levels.
use nodal_core::Volume;
use nodal_core::{axis_codes, AxisCode};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Body: the largest component above this, HU.
const BODY_MIN_HU: i16 = -300;
/// Air enclosed by the body: below this, HU.
const AIR_MAX_HU: i16 = -400;
/// Bone for the skull ring, HU.
const BONE_MIN_HU: i16 = 300;
/// Dense bone (cortex, teeth) for the jaw, HU: above contrast-filled arteries.
const DENSE_BONE_MIN_HU: i16 = 600;
/// Narrow (head, neck) below this side-to-side width, mm.
const NARROW_MAX_MM: f64 = 230.0;
/// Lung: at least this much parenchyma in a wide slice, cm².
const LUNG_MIN_CM2: f64 = 20.0;
/// Lung apices: at least this much parenchyma on each side, away from the midline, cm².
const APEX_MIN_CM2: f64 = 1.0;
/// Lateral: a pocket's centre this fraction of the body's width from its centre or more.
const LUNG_MIN_OFFSET: f64 = 0.15;
/// Air pockets whose mean is at or below this are gas (airway, sinuses, bowel), not lung, HU.
const GAS_MAX_MEAN_HU: f64 = -950.0;
/// Skull vault: a hole of at least this area in the bone ring, cm².
const CRANIUM_MIN_CM2: f64 = 30.0;
/// Jaw: dense bone over at least this fraction of the body's width, in the front `JAW_FRONT`.
const JAW_MIN_SPREAD: f64 = 0.5;
const JAW_FRONT: f64 = 0.45;
const JAW_MIN_CM2: f64 = 1.5;
/// A slice with less body than this is empty, cm².
const BODY_MIN_CM2: f64 = 20.0;
/// Majority vote over ± this, mm.
const SMOOTH_MM: f64 = 7.5;
/// The neck is shown when at least this length of neck and jaw slices runs together, mm ...
pub const MIN_NECK_MM: f64 = 30.0;
/// ... of which at least this much below the jaw, mm.
const MIN_BELOW_JAW_MM: f64 = 10.0;
/// Wide slices this close below the neck are its base (shoulders) in a scan without lung, mm.
const NECK_BASE_MM: f64 = 60.0;
/// In-plane sampling step, mm.
const STEP_MM: f64 = 2.0;

/// A body region, as a slice or a node is placed in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyRegion {
    Head,
    Neck,
    Chest,
    Abdomen,
}

impl BodyRegion {
    /// Lower-case name, e.g. "neck".
    pub fn name(self) -> &'static str {
        match self {
            BodyRegion::Head => "head",
            BodyRegion::Neck => "neck",
            BodyRegion::Chest => "chest",
            BodyRegion::Abdomen => "abdomen",
        }
    }
}

/// What a slice shows (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SliceClass {
    Empty,
    Cranium,
    Jaw,
    Neck,
    Lung,
    Wide,
}

/// How much of the neck the scan shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NeckCoverage {
    /// From below the thoracic inlet to the jaw or above.
    Full,
    /// The scan ends in the neck above the thoracic inlet.
    LowerCut,
    /// The scan ends in the neck below the jaw.
    UpperCut,
    /// Both ends in the neck.
    BothCut,
    /// No neck (less than [`MIN_NECK_MM`] of it).
    Absent,
}

/// A run of slices in one region, inferior to superior.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegionExtent {
    pub region: BodyRegion,
    /// Patient z (LPS, + superior) of the run's lowest and highest slice, mm.
    pub z_min_mm: f64,
    pub z_max_mm: f64,
}

/// The body regions a CT shows and how much of the neck.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BodyCoverage {
    /// Runs of slices by region, inferior to superior.
    pub regions: Vec<RegionExtent>,
    /// Length of the longest run of neck and jaw slices, mm.
    pub neck_length_mm: f64,
    pub neck: NeckCoverage,
    /// Plain-language warnings for the reader; empty when the neck is fully covered.
    pub warnings: Vec<String>,
}

impl BodyCoverage {
    /// The region at patient z (LPS mm): the run that holds it, else the nearest run; `None` for a
    /// scan without body.
    pub fn region_at(&self, z_mm: f64) -> Option<BodyRegion> {
        let dist = |r: &RegionExtent| (r.z_min_mm - z_mm).max(z_mm - r.z_max_mm).max(0.0);
        self.regions.iter().min_by(|a, b| dist(a).total_cmp(&dist(b))).map(|r| r.region)
    }

    /// One line: what the scan shows, e.g. "neck 120 mm (full), chest 40 mm".
    pub fn summary(&self) -> String {
        let mut parts: Vec<(BodyRegion, f64)> = Vec::new();
        for r in &self.regions {
            let len = r.z_max_mm - r.z_min_mm;
            match parts.iter_mut().find(|(g, _)| *g == r.region) {
                Some((_, l)) => *l += len,
                None => parts.push((r.region, len)),
            }
        }
        if parts.is_empty() {
            return "no body found".into();
        }
        parts.iter().rev().map(|(g, l)| format!("{} {:.0} mm", g.name(), l)).collect::<Vec<_>>().join(", ")
    }
}

/// Measured cross-section of one slice.
#[derive(Clone, Copy, Debug)]
struct SliceFeatures {
    z_mm: f64,
    class: SliceClass,
}

/// Estimates what `ct` (HU) shows. The slice axis is the index axis closest to patient z; an
/// oblique grid is read along its own axes.
pub fn body_coverage(ct: &Volume<i16>) -> BodyCoverage {
    let g = ct.geometry();
    let codes = axis_codes(g);
    let kz = codes.iter().position(|c| matches!(c, AxisCode::S | AxisCode::I)).unwrap_or(2);
    let dims = ct.dims();
    let (a, b) = match kz {
        0 => (1, 2),
        1 => (0, 2),
        _ => (0, 1),
    };
    let step = |ax: usize| ((STEP_MM / g.spacing_mm[ax]).floor() as usize).max(1);
    let (sa, sb) = (step(a), step(b));
    let mut slices: Vec<SliceFeatures> = (0..dims[kz])
        .into_par_iter()
        .map(|s| {
            let (na, nb) = (dims[a].div_ceil(sa), dims[b].div_ceil(sb));
            let mut hu = vec![0i16; na * nb];
            let mut xy = vec![[0.0f64; 2]; na * nb];
            for (q, xyq) in xy.iter_mut().enumerate() {
                let (pa, pb) = ((q % na) * sa, (q / na) * sb);
                let mut idx = [0usize; 3];
                idx[kz] = s;
                idx[a] = pa;
                idx[b] = pb;
                hu[q] = ct.get(idx[0], idx[1], idx[2]);
                let w = g.index_to_world(idx.map(|v| v as f64));
                *xyq = [w[0], w[1]];
            }
            // The slice's height at its centre (a tilted gantry's slices are not level).
            let mut centre = [0.0; 3];
            centre[kz] = s as f64;
            centre[a] = (dims[a] - 1) as f64 / 2.0;
            centre[b] = (dims[b] - 1) as f64 / 2.0;
            let z_mm = g.index_to_world(centre)[2];
            // Pixel area of the sampled grid, cm².
            let px_cm2 = g.spacing_mm[a] * sa as f64 * g.spacing_mm[b] * sb as f64 / 100.0;
            let class = classify(&Plane { hu: &hu, xy: &xy, na, nb, px_cm2 });
            SliceFeatures { z_mm, class }
        })
        .collect();
    slices.sort_by(|p, q| p.z_mm.total_cmp(&q.z_mm));
    let dz = if slices.len() > 1 {
        (slices[slices.len() - 1].z_mm - slices[0].z_mm).abs() / (slices.len() - 1) as f64
    } else {
        g.spacing_mm[kz]
    };
    let classes = smooth(&slices.iter().map(|s| s.class).collect::<Vec<_>>(), dz);
    let z: Vec<f64> = slices.iter().map(|s| s.z_mm).collect();
    coverage_from_classes(&z, &classes, dz)
}

/// One sampled slice: HU and patient (x, y) per pixel, `na` fastest.
struct Plane<'a> {
    hu: &'a [i16],
    xy: &'a [[f64; 2]],
    na: usize,
    nb: usize,
    px_cm2: f64,
}

impl Plane<'_> {
    /// 4-neighbours of pixel `q`.
    fn neighbours(&self, q: usize) -> impl Iterator<Item = usize> {
        let (na, nb) = (self.na, self.nb);
        let (i, j) = (q % na, q / na);
        [
            (i > 0).then(|| q - 1),
            (i + 1 < na).then(|| q + 1),
            (j > 0).then(|| q - na),
            (j + 1 < nb).then(|| q + na),
        ]
        .into_iter()
        .flatten()
    }

    /// 4-connected components of `fg`: component id per pixel (0 = not in `fg`), and each
    /// component's size and whether it touches the border.
    fn components(&self, fg: &[bool]) -> (Vec<u32>, Vec<(usize, bool)>) {
        let mut id = vec![0u32; fg.len()];
        let mut comps = Vec::new();
        let mut stack = Vec::new();
        for start in 0..fg.len() {
            if !fg[start] || id[start] != 0 {
                continue;
            }
            comps.push((0usize, false));
            let c = comps.len() as u32;
            id[start] = c;
            stack.push(start);
            while let Some(q) = stack.pop() {
                let (i, j) = (q % self.na, q / self.na);
                let entry = &mut comps[c as usize - 1];
                entry.0 += 1;
                entry.1 |= i == 0 || j == 0 || i + 1 == self.na || j + 1 == self.nb;
                for n in self.neighbours(q) {
                    if fg[n] && id[n] == 0 {
                        id[n] = c;
                        stack.push(n);
                    }
                }
            }
        }
        (id, comps)
    }

    /// `region` with its holes filled (pixels outside it that the border cannot reach).
    fn filled(&self, region: &[bool]) -> Vec<bool> {
        let outside: Vec<bool> = region.iter().map(|&r| !r).collect();
        let (id, comps) = self.components(&outside);
        region.iter().zip(&id).map(|(&r, &c)| r || (c > 0 && !comps[c as usize - 1].1)).collect()
    }
}

fn classify(p: &Plane<'_>) -> SliceClass {
    let above: Vec<bool> = p.hu.iter().map(|&h| h > BODY_MIN_HU).collect();
    let (id, comps) = p.components(&above);
    let Some((largest, &(size, _))) = comps.iter().enumerate().max_by_key(|(_, c)| c.0) else {
        return SliceClass::Empty;
    };
    if size as f64 * p.px_cm2 < BODY_MIN_CM2 {
        return SliceClass::Empty;
    }
    let body: Vec<bool> = id.iter().map(|&c| c as usize == largest + 1).collect();
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (q, _) in body.iter().enumerate().filter(|(_, &b)| b) {
        let [x, y] = p.xy[q];
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    let width_mm = x1 - x0;
    let centre_x = (x0 + x1) / 2.0;
    let inside = p.filled(&body);

    // Skull vault: a bone ring around a large hole.
    let bone: Vec<bool> = p.hu.iter().zip(&inside).map(|(&h, &i)| i && h >= BONE_MIN_HU).collect();
    let bone_filled = p.filled(&bone);
    let holes: Vec<bool> = bone_filled.iter().zip(&bone).map(|(&f, &b)| f && !b).collect();
    let (_, hole_comps) = p.components(&holes);
    if hole_comps.iter().any(|c| c.0 as f64 * p.px_cm2 >= CRANIUM_MIN_CM2) {
        return SliceClass::Cranium;
    }
    // Lung: air pockets inside the body that read as parenchyma (not the pure air of the airway,
    // sinuses or bowel), on both sides of the body, or plenty of it in a wide slice.
    let air: Vec<bool> = p.hu.iter().zip(&inside).map(|(&h, &i)| i && h < AIR_MAX_HU).collect();
    let (air_id, air_comps) = p.components(&air);
    let mut sums = vec![(0.0f64, 0.0f64); air_comps.len()]; // (sum of HU, sum of x)
    for (q, &c) in air_id.iter().enumerate().filter(|(_, &c)| c > 0) {
        sums[c as usize - 1].0 += p.hu[q] as f64;
        sums[c as usize - 1].1 += p.xy[q][0];
    }
    let (mut left_cm2, mut right_cm2, mut lung_cm2) = (0.0, 0.0, 0.0);
    for (&(n, _), &(hu, x)) in air_comps.iter().zip(&sums) {
        let (area, mean_hu, offset) = (n as f64 * p.px_cm2, hu / n as f64, x / n as f64 - centre_x);
        if mean_hu <= GAS_MAX_MEAN_HU {
            continue;
        }
        lung_cm2 += area;
        if offset.abs() >= LUNG_MIN_OFFSET * width_mm {
            // LPS: +x is the patient's left.
            if offset > 0.0 {
                left_cm2 += area;
            } else {
                right_cm2 += area;
            }
        }
    }
    let narrow = width_mm < NARROW_MAX_MM;
    if left_cm2.min(right_cm2) >= APEX_MIN_CM2 || (!narrow && lung_cm2 >= LUNG_MIN_CM2) {
        return SliceClass::Lung;
    }
    if narrow {
        // Jaw: dense bone spread across the front of the slice.
        let front = y0 + JAW_FRONT * (y1 - y0);
        let (mut n, mut xa, mut xb) = (0usize, f64::MAX, f64::MIN);
        for q in 0..p.hu.len() {
            if inside[q] && p.hu[q] >= DENSE_BONE_MIN_HU && p.xy[q][1] <= front {
                n += 1;
                xa = xa.min(p.xy[q][0]);
                xb = xb.max(p.xy[q][0]);
            }
        }
        if n as f64 * p.px_cm2 >= JAW_MIN_CM2 && xb - xa >= JAW_MIN_SPREAD * width_mm {
            return SliceClass::Jaw;
        }
        return SliceClass::Neck;
    }
    SliceClass::Wide
}

/// Majority vote over ±[`SMOOTH_MM`] (ties keep the slice's own class).
fn smooth(classes: &[SliceClass], dz: f64) -> Vec<SliceClass> {
    let r = if dz > 0.0 { (SMOOTH_MM / dz).floor() as usize } else { 0 };
    (0..classes.len())
        .map(|s| {
            let win = &classes[s.saturating_sub(r)..(s + r + 1).min(classes.len())];
            let count = |c: SliceClass| win.iter().filter(|&&w| w == c).count();
            let own = count(classes[s]);
            win.iter().copied().filter(|&c| count(c) > own).max_by_key(|&c| count(c)).unwrap_or(classes[s])
        })
        .collect()
}

/// Regions, neck coverage and warnings from smoothed slice classes sorted by `z` (inferior
/// first), `dz` apart.
fn coverage_from_classes(z: &[f64], classes: &[SliceClass], dz: f64) -> BodyCoverage {
    use SliceClass as C;
    let n = classes.len();
    // The longest run of neck and jaw slices.
    let (mut best, mut run_start) = ((0usize, 0usize), None);
    for s in 0..=n {
        let in_neck = s < n && matches!(classes[s], C::Neck | C::Jaw);
        match (in_neck, run_start) {
            (true, None) => run_start = Some(s),
            (false, Some(a)) => {
                if s - a > best.1 - best.0 {
                    best = (a, s);
                }
                run_start = None;
            }
            _ => {}
        }
    }
    let run = &classes[best.0..best.1];
    let neck_length_mm = run.len() as f64 * dz;
    let below_jaw_mm = run.iter().filter(|&&c| c == C::Neck).count() as f64 * dz;
    let top_lung = classes.iter().rposition(|&c| c == C::Lung);
    let bottom_lung = classes.iter().position(|&c| c == C::Lung);
    // Face and jaw slices alone (a head CT) are not a neck.
    let has_neck = neck_length_mm >= MIN_NECK_MM && below_jaw_mm >= MIN_BELOW_JAW_MM;
    let region = |s: usize| -> Option<BodyRegion> {
        Some(match classes[s] {
            C::Empty => return None,
            C::Cranium => BodyRegion::Head,
            C::Jaw | C::Neck => BodyRegion::Neck,
            C::Lung => BodyRegion::Chest,
            C::Wide => match (top_lung, bottom_lung) {
                (Some(t), _) if s > t => BodyRegion::Neck,
                (_, Some(b)) if s < b => BodyRegion::Abdomen,
                (Some(_), Some(_)) => BodyRegion::Chest,
                _ if has_neck && s < best.0 && (z[best.0] - z[s]).abs() <= NECK_BASE_MM => BodyRegion::Neck,
                _ => BodyRegion::Abdomen,
            },
        })
    };
    let mut regions: Vec<RegionExtent> = Vec::new();
    for s in 0..n {
        let Some(r) = region(s) else { continue };
        match regions.last_mut() {
            Some(last) if last.region == r => last.z_max_mm = z[s],
            _ => regions.push(RegionExtent { region: r, z_min_mm: z[s], z_max_mm: z[s] }),
        }
    }
    let (below, above) = (&classes[..best.0], &classes[best.1.min(n)..]);
    let lower_ok =
        below.iter().rev().find(|&&c| c != C::Empty).is_some_and(|&c| matches!(c, C::Lung | C::Wide));
    let upper_ok = run.contains(&C::Jaw) || above.iter().any(|&c| matches!(c, C::Jaw | C::Cranium));
    let neck = match (has_neck, lower_ok, upper_ok) {
        (false, ..) => NeckCoverage::Absent,
        (true, true, true) => NeckCoverage::Full,
        (true, false, true) => NeckCoverage::LowerCut,
        (true, true, false) => NeckCoverage::UpperCut,
        (true, false, false) => NeckCoverage::BothCut,
    };
    let mut cov = BodyCoverage { regions, neck_length_mm, neck, warnings: Vec::new() };
    let shows = cov.summary();
    if neck == NeckCoverage::Absent {
        cov.warnings.push(format!(
            "The scan does not seem to show the neck beyond its base (it shows: {shows}). The model \
             is made for head-and-neck CT: what it finds outside the neck is not a cervical node."
        ));
    }
    if matches!(neck, NeckCoverage::LowerCut | NeckCoverage::BothCut) {
        cov.warnings.push(
            "The scan ends in the neck above the thoracic inlet (no lung apex or shoulder below it): \
             the lower neck (levels IV, V-B, VI) may not be covered."
                .into(),
        );
    }
    if matches!(neck, NeckCoverage::UpperCut | NeckCoverage::BothCut) {
        cov.warnings.push(
            "The scan ends in the neck below the jaw: the upper neck (levels I-II) may not be covered."
                .into(),
        );
    }
    cov
}

#[cfg(test)]
mod tests {
    use super::*;
    use SliceClass as C;

    fn classes(spec: &[(SliceClass, usize)]) -> Vec<SliceClass> {
        spec.iter().flat_map(|&(c, n)| std::iter::repeat_n(c, n)).collect()
    }

    fn cover(spec: &[(SliceClass, usize)]) -> BodyCoverage {
        let c = classes(spec);
        let z: Vec<f64> = (0..c.len()).map(|s| s as f64 * 2.0).collect();
        coverage_from_classes(&z, &c, 2.0)
    }

    #[test]
    fn a_neck_from_the_lungs_to_the_jaw_is_full() {
        let c = cover(&[(C::Lung, 10), (C::Wide, 5), (C::Neck, 40), (C::Jaw, 10)]);
        assert_eq!(c.neck, NeckCoverage::Full);
        assert!(c.warnings.is_empty());
        assert_eq!(c.neck_length_mm, 100.0);
        let r: Vec<_> = c.regions.iter().map(|r| r.region).collect();
        assert_eq!(r, [BodyRegion::Chest, BodyRegion::Neck]);
        assert_eq!(c.region_at(5.0), Some(BodyRegion::Chest));
        assert_eq!(c.region_at(100.0), Some(BodyRegion::Neck));
        assert_eq!(c.region_at(-50.0), Some(BodyRegion::Chest));
    }

    #[test]
    fn cut_ends_are_named() {
        assert_eq!(cover(&[(C::Neck, 40), (C::Jaw, 10)]).neck, NeckCoverage::LowerCut);
        assert_eq!(cover(&[(C::Lung, 10), (C::Neck, 40)]).neck, NeckCoverage::UpperCut);
        let both = cover(&[(C::Empty, 3), (C::Neck, 40), (C::Empty, 2)]);
        assert_eq!(both.neck, NeckCoverage::BothCut);
        assert_eq!(both.warnings.len(), 2);
    }

    #[test]
    fn a_chest_and_abdomen_scan_has_no_neck() {
        let c = cover(&[(C::Wide, 60), (C::Lung, 80), (C::Wide, 5), (C::Neck, 10)]);
        assert_eq!(c.neck, NeckCoverage::Absent);
        let r: Vec<_> = c.regions.iter().map(|r| r.region).collect();
        assert_eq!(r, [BodyRegion::Abdomen, BodyRegion::Chest, BodyRegion::Neck]);
        assert!(c.warnings[0].contains("does not seem to show the neck"), "{:?}", c.warnings);
        assert!(c.warnings[0].contains("chest 158 mm"), "{:?}", c.warnings);
    }

    #[test]
    fn a_head_is_not_a_neck() {
        let c = cover(&[(C::Jaw, 20), (C::Cranium, 60)]);
        assert_eq!(c.neck, NeckCoverage::Absent);
        assert_eq!(
            c.regions.iter().map(|r| r.region).collect::<Vec<_>>(),
            [BodyRegion::Neck, BodyRegion::Head]
        );
        // From the middle of the neck up: the lower end is cut.
        assert_eq!(cover(&[(C::Neck, 6), (C::Jaw, 20), (C::Cranium, 5)]).neck, NeckCoverage::LowerCut);
    }

    #[test]
    fn the_vote_removes_single_slices() {
        let c = classes(&[(C::Neck, 10), (C::Jaw, 1), (C::Neck, 10)]);
        assert!(smooth(&c, 2.0).iter().all(|&s| s == C::Neck));
        // A slice keeps its class on a tie.
        let c = classes(&[(C::Neck, 2), (C::Jaw, 2)]);
        assert_eq!(smooth(&c, 2.0), c);
    }
}
