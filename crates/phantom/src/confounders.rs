//! Node-like confounders ([`crate::randomization::Confounders`]): structures of node-like HU and
//! size that are *not* nodes and are labelled background (0) — vessel segments, muscle bellies,
//! gland lobules, oesophagus-like tubes and, on real backgrounds, bowel-loop-like curved tubes.
//!
//! Their intensity is drawn from the same [`Appearance`] ranges as the nodes' (mean HU, texture,
//! edge), so intensity alone never separates the two: a network must use shape (long tubes,
//! spindles, lobules, lumina) and context.
use crate::context::{node_voxel_allowed, rim_allowed, Context, ContextPools};
use crate::nodes::{Family, Lobe, NodeShape, NodeStyle};
use crate::randomization::{draw, pick, Appearance, Confounders};
use crate::render::rasterize;
use crate::render::{Grid, PlacedNode};
use crate::rng::{chance, uni, unit_vec, PRng};
use crate::style::{axial_frame, random_frame, rng_count, with_style};

/// Confounder kinds (same order as [`crate::randomization::ConfounderKinds::as_array`], then
/// bowel).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Vessel,
    MuscleBelly,
    GlandLobule,
    Tube,
    Bowel,
}

/// One drawn confounder (centre unset) and the context it is sited in.
#[derive(Clone, Debug)]
pub struct Confounder {
    pub kind: Kind,
    pub shape: NodeShape,
}

/// Draws the confounders of one scan; `bowel` allows bowel loops (real backgrounds).
pub fn draw_confounders(
    rng: &mut PRng,
    c: &Confounders,
    a: &Appearance,
    n: usize,
    bowel: bool,
) -> Vec<Confounder> {
    (0..n)
        .map(|_| {
            let kind = if bowel && chance(rng, c.bowel_p) {
                Kind::Bowel
            } else {
                [Kind::Vessel, Kind::MuscleBelly, Kind::GlandLobule, Kind::Tube]
                    [pick(rng, &c.kinds.as_array())]
            };
            Confounder { kind, shape: draw_one(rng, kind, c, a) }
        })
        .collect()
}

fn draw_one(rng: &mut PRng, kind: Kind, c: &Confounders, a: &Appearance) -> NodeShape {
    let d = draw(rng, c.size_mm);
    let r = d / 2.0;
    let mut st = NodeStyle::plain();
    // Node appearance ranges (the point of a confounder).
    let hu = draw(rng, a.mean_hu);
    st.texture_hu = draw(rng, a.texture_hu);
    let tm = draw(rng, a.texture_scale_mm);
    st.texture_mm = [tm; 3];
    st.hetero_hu = draw(rng, a.heterogeneity_hu);
    st.hetero_mm = draw(rng, a.heterogeneity_scale_mm);
    st.edge_sigma_mm = draw(rng, a.edge_sigma_mm);
    let mut lobes = Vec::new();
    let (axes, radii) = match kind {
        Kind::Vessel => {
            // A straight segment, mostly cranio-caudal: in axial slices a round blob that
            // persists over many slices.
            st.family = Family::Superquadric { e_xy: 2.0, e_z: uni(rng, 4.0, 8.0) };
            st.extent_factor = 2f64.sqrt();
            st.texture_hu *= 0.3;
            (axial_frame(rng, 0.35), [r.min(7.0), r.min(7.0) * uni(rng, 1.0, 1.3), uni(rng, 15.0, 40.0)])
        }
        Kind::MuscleBelly => {
            // A spindle with fibre-like texture along its length.
            st.texture_mm = [tm * 0.6, tm * 0.6, tm * 4.0];
            (axial_frame(rng, 0.5), [r, r * uni(rng, 1.2, 2.0), uni(rng, 15.0, 35.0).max(r * 2.0)])
        }
        Kind::GlandLobule => {
            // Lobulated, granular.
            st.texture_mm = [uni(rng, 0.6, 1.5); 3];
            st.texture_hu = st.texture_hu.max(8.0);
            for _ in 0..rng_count(rng, 3, 8) {
                lobes.push(Lobe {
                    dir: unit_vec(rng),
                    amp: uni(rng, 0.08, 0.25),
                    sharp: uni(rng, 3.0, 10.0),
                });
            }
            (random_frame(rng), [r, r * uni(rng, 1.0, 1.6), r * uni(rng, 0.8, 1.5)])
        }
        Kind::Tube => {
            // Collapsed oesophagus-like tube: a thick wall around an air or fluid lumen.
            st.family = Family::Superquadric { e_xy: uni(rng, 1.8, 2.4), e_z: 6.0 };
            st.extent_factor = 2f64.sqrt();
            let lumen_hu = if chance(rng, 0.5) { uni(rng, -950.0, -500.0) } else { uni(rng, -10.0, 25.0) };
            st.lumen = Some((uni(rng, 0.2, 0.5), lumen_hu));
            let rr = r.max(5.0);
            (axial_frame(rng, 0.25), [rr * uni(rng, 0.5, 0.9), rr, uni(rng, 20.0, 40.0)])
        }
        Kind::Bowel => {
            // A loop: an arc of a tube with a fluid, gas or contrast-filled lumen.
            let major = uni(rng, 2.0, 4.0);
            st.family = Family::Torus { major, arc: uni(rng, 1.5, 4.0) };
            st.extent_factor = major + 1.0;
            let lumen_hu = match rng_count(rng, 0, 2) {
                0 => uni(rng, -950.0, -400.0),
                1 => uni(rng, -10.0, 30.0),
                _ => uni(rng, 150.0, 400.0),
            };
            st.lumen = Some((uni(rng, 0.3, 0.7), lumen_hu));
            let rr = r.clamp(5.0, 15.0);
            (random_frame(rng), [rr, rr, rr])
        }
    };
    let mut shape = NodeShape {
        centre: [0.0; 3],
        axes,
        radii,
        lobes,
        hilum: None,
        core: None,
        calcs: Vec::new(),
        hu,
        core_hu: 0.0,
        rim_hu: 0.0,
        fat_hu: -100.0,
        tex_seed: rand::Rng::random(rng),
        style: None,
    };
    with_style(&mut shape, st);
    shape
}

/// The context a kind is sited in.
fn context_of(kind: Kind, rng: &mut PRng) -> Context {
    match kind {
        Kind::Vessel => {
            if chance(rng, 0.5) {
                Context::Vessel
            } else {
                Context::Fat
            }
        }
        Kind::MuscleBelly => Context::Muscle,
        Kind::GlandLobule => {
            if chance(rng, 0.6) {
                Context::Gland
            } else {
                Context::Fat
            }
        }
        Kind::Tube | Kind::Bowel => Context::Fat,
    }
}

/// Sites confounders on `grid`: inside on fat, muscle or gland of `placement` (tissue map or a
/// real CT's placement map), the 0.8 mm margin clear of bone, air and of every node (`labels`)
/// and earlier confounder, and of `forbidden` voxels (real CT: bone, air, vessel lumen).
/// Returns them as placed shapes with label id 0.
pub fn place_confounders(
    rng: &mut PRng,
    drafts: Vec<Confounder>,
    grid: &Grid,
    placement: &[u8],
    labels: &[u16],
    forbidden: Option<&[u8]>,
    pools: &ContextPools,
) -> Vec<PlacedNode> {
    let mut taken = vec![false; placement.len()];
    let mut out = Vec::new();
    for c in drafts {
        let mut scale = 1.0;
        for attempt in 0..40 {
            if attempt > 0 && attempt % 10 == 0 {
                scale *= 0.8;
            }
            let base = c.shape.scaled(scale);
            let ctx = context_of(c.kind, rng);
            let r = base.radii[0].max(base.radii[1]);
            let Some(ix) =
                pools.draw(rng, ctx, placement, r).or_else(|| pools.draw(rng, Context::Fat, placement, r))
            else {
                break;
            };
            let o = grid.geom.origin_mm;
            let sp = grid.geom.spacing_mm;
            let centre = [o[0] + ix[0] * sp[0], o[1] + ix[1] * sp[1], o[2] + ix[2] * sp[2]];
            let shape = base.placed(centre, &[]);
            let Some((inside, near)) = rasterize(grid, &shape, 0.8) else { continue };
            if inside.len() < 3 {
                continue;
            }
            let clear = |v: usize| labels[v] == 0 && !taken[v] && forbidden.is_none_or(|f| f[v] == 0);
            let ok = inside.iter().all(|&v| node_voxel_allowed(placement[v]) && clear(v))
                && near.iter().all(|&v| rim_allowed(placement[v]) && labels[v] == 0 && !taken[v]);
            if !ok {
                continue;
            }
            for &v in inside.iter().chain(&near) {
                taken[v] = true;
            }
            out.push(PlacedNode { id: 0, shape, cluster: None });
            break;
        }
    }
    out
}
