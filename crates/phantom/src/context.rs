//! Tissue contexts for randomized placement ([`crate::randomization::Placement`]): where a node
//! centre may be drawn so that the node lies in fat, touches a vessel, a muscle or a gland, or is
//! partly embedded in a muscle or gland — on a phantom's tissue map or on the tissue classes of a
//! real CT (HU thresholds, refined by an organ label map when the background ships one).
use crate::anatomy::Tissue;
use crate::rng::{uni, PRng};
use rand::Rng;

/// Placement-map value of voxels a label map marks as an organ, bowel, brain or cord: no node
/// there, ever (outside the [`Tissue`] values).
pub const ORGAN: u8 = 255;

/// The tissue context of a node centre (same order as
/// [`crate::randomization::ContextWeights::as_array`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Context {
    Anatomical,
    Fat,
    Vessel,
    Muscle,
    Gland,
    Embedded,
}

impl Context {
    /// By index of the weight array.
    pub fn from_index(i: usize) -> Context {
        [
            Context::Anatomical,
            Context::Fat,
            Context::Vessel,
            Context::Muscle,
            Context::Gland,
            Context::Embedded,
        ][i.min(5)]
    }
}

#[inline]
fn is_vessel(t: u8) -> bool {
    matches!(Tissue::from_u8(t), Some(Tissue::Artery | Tissue::Vein | Tissue::SmallVessel))
}
#[inline]
fn is_gland(t: u8) -> bool {
    matches!(Tissue::from_u8(t), Some(Tissue::Gland | Tissue::Thyroid))
}
#[inline]
fn is_muscle(t: u8) -> bool {
    t == Tissue::Muscle as u8
}
#[inline]
fn is_fat(t: u8) -> bool {
    t == Tissue::Fat as u8
}

/// May a node voxel lie on this tissue under randomized placement? Fat, muscle and salivary gland
/// (partly embedded nodes); never bone, air, lung, vessel lumen, thyroid or a labelled organ.
#[inline]
pub fn node_voxel_allowed(t: u8) -> bool {
    matches!(Tissue::from_u8(t), Some(Tissue::Fat | Tissue::Muscle | Tissue::Gland))
}

/// May the 0.8 mm margin around a node touch this tissue? Anything but bone, air and lung: a
/// node may abut a vessel, a gland or the thyroid.
#[inline]
pub fn rim_allowed(t: u8) -> bool {
    match Tissue::from_u8(t) {
        Some(x) => !matches!(
            x,
            Tissue::Air
                | Tissue::AirwayAir
                | Tissue::Lung
                | Tissue::Cortical
                | Tissue::Marrow
                | Tissue::Teeth
                | Tissue::Metal
        ),
        None => false,
    }
}

/// Is the voxel in muscle or gland (counts against the embedded fraction)?
#[inline]
pub fn embedded_tissue(t: u8) -> bool {
    is_muscle(t) || is_gland(t)
}

/// Candidate centre voxels per context on one tissue map `[nk, nj, ni]`.
#[derive(Clone, Debug)]
pub struct ContextPools {
    dims: [usize; 3],
    spacing_mm: [f64; 3],
    /// Fat voxels.
    fat: Vec<usize>,
    /// Fat voxels with a vessel / muscle / gland voxel among their 26 neighbours.
    vessel: Vec<usize>,
    muscle: Vec<usize>,
    gland: Vec<usize>,
    /// Muscle or gland voxels with a fat neighbour.
    border: Vec<usize>,
}

impl ContextPools {
    /// Pools of a tissue map (`[nk, nj, ni]`, i fastest) with voxel spacing (i, j, k), mm.
    pub fn new(tissue: &[u8], dims: [usize; 3], spacing_mm: [f64; 3]) -> ContextPools {
        let [ni, nj, nk] = dims;
        let mut p = ContextPools {
            dims,
            spacing_mm,
            fat: Vec::new(),
            vessel: Vec::new(),
            muscle: Vec::new(),
            gland: Vec::new(),
            border: Vec::new(),
        };
        for k in 1..nk.saturating_sub(1) {
            for j in 1..nj.saturating_sub(1) {
                for i in 1..ni.saturating_sub(1) {
                    let v = (k * nj + j) * ni + i;
                    let t = tissue[v];
                    if !is_fat(t) && !embedded_tissue(t) {
                        continue;
                    }
                    let (mut nv, mut nm, mut ng, mut nf) = (false, false, false, false);
                    for dk in [-1i64, 0, 1] {
                        for dj in [-1i64, 0, 1] {
                            for di in [-1i64, 0, 1] {
                                let w = ((k as i64 + dk) as usize * nj + (j as i64 + dj) as usize) * ni
                                    + (i as i64 + di) as usize;
                                let u = tissue[w];
                                nv |= is_vessel(u);
                                nm |= is_muscle(u);
                                ng |= is_gland(u);
                                nf |= is_fat(u);
                            }
                        }
                    }
                    if is_fat(t) {
                        p.fat.push(v);
                        if nv {
                            p.vessel.push(v);
                        }
                        if nm {
                            p.muscle.push(v);
                        }
                        if ng {
                            p.gland.push(v);
                        }
                    } else if nf {
                        p.border.push(v);
                    }
                }
            }
        }
        p
    }

    /// Number of candidates of a context (0: the context is unavailable in this scan).
    pub fn len(&self, c: Context) -> usize {
        match c {
            Context::Anatomical => 0,
            Context::Fat => self.fat.len(),
            Context::Vessel => self.vessel.len(),
            Context::Muscle => self.muscle.len(),
            Context::Gland => self.gland.len(),
            Context::Embedded => self.border.len(),
        }
    }

    /// True when no context has a candidate.
    pub fn is_empty(&self) -> bool {
        self.fat.is_empty()
    }

    /// A node centre (index-space position, fractional) for context `c` and a node of in-plane
    /// radius `r_mm`: touching contexts step the centre away from the structure by about the
    /// radius (so the node's surface meets it), embedded ones a fraction of it (so the node is
    /// partly inside). `tissue` is the map the pools were made from.
    pub fn draw(&self, rng: &mut PRng, c: Context, tissue: &[u8], r_mm: f64) -> Option<[f64; 3]> {
        let pool = match c {
            Context::Anatomical => return None,
            Context::Fat => &self.fat,
            Context::Vessel => &self.vessel,
            Context::Muscle => &self.muscle,
            Context::Gland => &self.gland,
            Context::Embedded => &self.border,
        };
        if pool.is_empty() {
            return None;
        }
        let v = pool[rng.random_range(0..pool.len())];
        let [ni, nj, _] = self.dims;
        let (i, j, k) = (v % ni, (v / ni) % nj, v / (ni * nj));
        let p = [i as f64, j as f64, k as f64];
        let target: fn(u8) -> bool = match c {
            Context::Vessel => is_vessel,
            Context::Muscle => is_muscle,
            Context::Gland => is_gland,
            Context::Embedded => is_fat,
            _ => return Some(p),
        };
        // Direction away from the target structure (for Embedded: away from the fat, into the
        // muscle or gland), from the target voxels in a 5x5x5 neighbourhood, in mm.
        let mut d = [0.0f64; 3];
        let [_, _, nk] = self.dims;
        for dk in -2i64..=2 {
            for dj in -2i64..=2 {
                for di in -2i64..=2 {
                    let (x, y, z) = (i as i64 + di, j as i64 + dj, k as i64 + dk);
                    if x < 0 || y < 0 || z < 0 || x >= ni as i64 || y >= nj as i64 || z >= nk as i64 {
                        continue;
                    }
                    let w = (z as usize * nj + y as usize) * ni + x as usize;
                    if target(tissue[w]) {
                        d[0] -= di as f64 * self.spacing_mm[0];
                        d[1] -= dj as f64 * self.spacing_mm[1];
                        d[2] -= dk as f64 * self.spacing_mm[2];
                    }
                }
            }
        }
        let n = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
        if n < 1e-9 {
            return Some(p);
        }
        let step_mm = match c {
            Context::Embedded => -r_mm * uni(rng, 0.0, 0.6),
            _ => r_mm + uni(rng, 0.3, 1.2),
        };
        Some([
            p[0] + d[0] / n * step_mm / self.spacing_mm[0],
            p[1] + d[1] / n * step_mm / self.spacing_mm[1],
            p[2] + d[2] / n * step_mm / self.spacing_mm[2],
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A slab of fat with a vessel column: a vessel-context centre lands in fat about a radius
    /// away from the vessel.
    #[test]
    fn vessel_context_steps_away_from_the_vessel() {
        let dims = [20, 20, 10];
        let mut t = vec![Tissue::Fat as u8; 20 * 20 * 10];
        for k in 0..10 {
            for j in 8..12 {
                for i in 8..12 {
                    t[(k * 20 + j) * 20 + i] = Tissue::Artery as u8;
                }
            }
        }
        let pools = ContextPools::new(&t, dims, [1.0; 3]);
        assert!(pools.len(Context::Vessel) > 0 && pools.len(Context::Gland) == 0);
        let mut rng = crate::rng::stream(1, "t");
        for _ in 0..50 {
            let c = pools.draw(&mut rng, Context::Vessel, &t, 3.0).unwrap();
            // Distance from the vessel's axis (9.5, 9.5) exceeds its half-width plus most of r.
            let d = ((c[0] - 9.5).powi(2) + (c[1] - 9.5).powi(2)).sqrt();
            assert!(d > 2.0 + 2.5, "{c:?}");
        }
        assert!(pools.draw(&mut rng, Context::Gland, &t, 3.0).is_none());
    }
}
