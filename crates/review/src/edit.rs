//! The edits a reviewer makes, each checked against the state before anything changes, applied as
//! one [`Change`] (voxels and node reviews before and after), remeasured, saved, and undoable.
use crate::case::Case;
use crate::change::Change;
use crate::frame::{Index3, View};
use crate::record::{HistoryEntry, NodeClass, NodeReview, Origin, Status, LEVELS, MAX_NOTE_CHARS};
use crate::ReviewError;
use nodal_nodes::{label_components, Connectivity};
use serde::{Deserialize, Deserializer};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Largest brush radius, mm.
pub const MAX_BRUSH_RADIUS_MM: f64 = 30.0;
/// Largest region-growing radius, mm.
pub const MAX_GROW_RADIUS_MM: f64 = 50.0;
/// Most points in one stroke.
pub const MAX_STROKE_POINTS: usize = 20_000;
/// Most voxels one stroke may visit (points x brush box): bounds the work of a request.
const MAX_STROKE_WORK: usize = 200_000_000;
/// Most seeds of a split.
pub const MAX_SPLIT_SEEDS: usize = 64;

/// A brush's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    /// A disc in the plane of the view the stroke was drawn in.
    Disc,
    /// A ball.
    Sphere,
}

/// Takes a present field, `null` included, as `Some(value)`: an absent field stays `None`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// One edit, as the page sends it (`{"op": "paint", ...}`; see docs/review.md). Points are display
/// indices, checked against the volume.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
pub enum Edit {
    /// Background voxels within `radius_mm` of any point join `node_id` (a new node when null).
    Paint { points: Vec<[i64; 3]>, radius_mm: f64, shape: Shape, view: View, node_id: Option<u32> },
    /// Voxels within `radius_mm` of any point (of `node_id` only, when given) become background.
    Erase { points: Vec<[i64; 3]>, radius_mm: f64, shape: Shape, view: View, node_id: Option<u32> },
    /// A new node: the 6-connected background voxels within the HU window and radius of the seed.
    Grow { seed: [i64; 3], hu_min: f64, hu_max: f64, max_radius_mm: f64 },
    /// Splits a node by nearest seed, or into its connected pieces when no seed is given.
    Split {
        node_id: u32,
        #[serde(default)]
        seeds: Vec<[i64; 3]>,
    },
    /// Merges nodes into the smallest id.
    Merge { node_ids: Vec<u32> },
    /// Sets a node's review; absent fields stay, `null` clears `class` or `level`.
    Annotate {
        node_id: u32,
        #[serde(default)]
        status: Option<Status>,
        #[serde(default, deserialize_with = "present")]
        class: Option<Option<NodeClass>>,
        #[serde(default, deserialize_with = "present")]
        level: Option<Option<String>>,
        #[serde(default)]
        note: Option<String>,
    },
    /// Takes the last edit back.
    Undo,
    /// Applies the last edit taken back again.
    Redo,
}

impl Edit {
    /// The edit's `op`.
    pub fn op(&self) -> &'static str {
        match self {
            Edit::Paint { .. } => "paint",
            Edit::Erase { .. } => "erase",
            Edit::Grow { .. } => "grow",
            Edit::Split { .. } => "split",
            Edit::Merge { .. } => "merge",
            Edit::Annotate { .. } => "annotate",
            Edit::Undo => "undo",
            Edit::Redo => "redo",
        }
    }
}

fn bad(msg: impl Into<String>) -> ReviewError {
    ReviewError::BadEdit(msg.into())
}

impl Case {
    /// Applies `edit` by `reviewer`, remeasures, and saves the case folder. A refused edit changes
    /// nothing ([`ReviewError::BadEdit`]).
    pub fn apply(&mut self, edit: &Edit, reviewer: &str) -> Result<(), ReviewError> {
        let change = match edit {
            Edit::Undo => return self.step_history(true, reviewer),
            Edit::Redo => return self.step_history(false, reviewer),
            Edit::Paint { points, radius_mm, shape, view, node_id } => {
                self.plan_paint(points, *radius_mm, *shape, *view, *node_id)?
            }
            Edit::Erase { points, radius_mm, shape, view, node_id } => {
                self.plan_erase(points, *radius_mm, *shape, *view, *node_id)?
            }
            Edit::Grow { seed, hu_min, hu_max, max_radius_mm } => {
                self.plan_grow(*seed, *hu_min, *hu_max, *max_radius_mm)?
            }
            Edit::Split { node_id, seeds } => self.plan_split(*node_id, seeds)?,
            Edit::Merge { node_ids } => self.plan_merge(node_ids)?,
            Edit::Annotate { node_id, status, class, level, note } => {
                self.plan_annotate(*node_id, *status, *class, level.clone(), note.clone())?
            }
        };
        let t = std::time::Instant::now();
        self.replay(&change, false)?;
        tracing::debug!("applied and measured in {:.3} s", t.elapsed().as_secs_f64());
        let (summary, ids, n, maps) =
            (change.summary.clone(), change.touched(), change.voxels.len(), change.maps_changed());
        self.undo.push(change);
        self.redo.clear();
        self.finish(edit.op(), summary, ids, n, maps, reviewer)
    }

    /// Undo (`back`) or redo: the change moves from one stack to the other.
    fn step_history(&mut self, back: bool, reviewer: &str) -> Result<(), ReviewError> {
        let (word, from) = if back { ("undo", &mut self.undo) } else { ("redo", &mut self.redo) };
        let c = from.pop().ok_or_else(|| bad(format!("nothing to {word}")))?;
        self.replay(&c, back)?;
        let summary = format!("{word}: {}", c.summary);
        let (ids, n, maps) = (c.touched(), c.voxels.len(), c.maps_changed());
        if back { &mut self.redo } else { &mut self.undo }.push(c);
        self.finish(word, summary, ids, n, maps, reviewer)
    }

    /// Sets the voxels and reviews of `c` (its before state when `back`) and remeasures.
    fn replay(&mut self, c: &Change, back: bool) -> Result<(), ReviewError> {
        let data = self.labels.as_slice_mut();
        for &(f, before, after) in &c.voxels {
            data[f] = if back { before } else { after };
        }
        let (from, to) =
            if back { (&c.nodes_after, &c.nodes_before) } else { (&c.nodes_before, &c.nodes_after) };
        for id in from.keys() {
            self.record.nodes.remove(id);
        }
        for (id, r) in to {
            self.record.nodes.insert(*id, r.clone());
        }
        if let Some(&max) = to.keys().max() {
            self.record.next_node_id = self.record.next_node_id.max(max + 1);
        }
        self.measure_all()
    }

    fn finish(
        &mut self,
        op: &str,
        summary: String,
        node_ids: Vec<u32>,
        voxels_changed: usize,
        (kept_changed, rejected_changed): (bool, bool),
        reviewer: &str,
    ) -> Result<(), ReviewError> {
        self.record.generation += 1;
        self.record.history.push(HistoryEntry {
            generation: self.record.generation,
            time: nodal_core::time::UtcTime::now().rfc3339(),
            reviewer: reviewer.to_string(),
            op: op.to_string(),
            summary,
            node_ids,
            voxels_changed,
        });
        let t = std::time::Instant::now();
        let saved = self.save_maps(kept_changed, rejected_changed);
        tracing::debug!("saved in {:.3} s", t.elapsed().as_secs_f64());
        saved
    }

    /// The reviews of `ids` as they are now (for a change's before state).
    fn reviews(&self, ids: impl IntoIterator<Item = u32>) -> BTreeMap<u32, NodeReview> {
        ids.into_iter().filter_map(|id| self.record.nodes.get(&id).map(|r| (id, r.clone()))).collect()
    }

    fn existing(&self, id: u32) -> Result<&NodeReview, ReviewError> {
        self.record.nodes.get(&id).ok_or_else(|| bad(format!("there is no node {id}")))
    }

    fn editable(&self, id: u32) -> Result<&NodeReview, ReviewError> {
        let r = self.existing(id)?;
        if r.status == Status::Rejected {
            return Err(bad(format!("node {id} is rejected: accept it before editing its voxels")));
        }
        Ok(r)
    }

    /// Flat stored indices within the brush around each point, sorted and unique.
    fn brush(
        &self,
        points: &[[i64; 3]],
        radius_mm: f64,
        shape: Shape,
        view: View,
    ) -> Result<Vec<usize>, ReviewError> {
        if points.is_empty() || points.len() > MAX_STROKE_POINTS {
            return Err(bad(format!("a stroke needs 1 to {MAX_STROKE_POINTS} points, not {}", points.len())));
        }
        if !(radius_mm > 0.0 && radius_mm <= MAX_BRUSH_RADIUS_MM) {
            return Err(bad(format!("brush radius {radius_mm} mm: must be in (0, {MAX_BRUSH_RADIUS_MM}]")));
        }
        let sp = self.frame.spacing_mm();
        let mut reach = sp.map(|s| (radius_mm / s).floor() as i64);
        if shape == Shape::Disc {
            reach[view.normal_axis()] = 0;
        }
        let work = points.len() * reach.iter().map(|r| (2 * r + 1) as usize).product::<usize>();
        if work > MAX_STROKE_WORK {
            return Err(bad(format!("the stroke is too large ({} points at {radius_mm} mm)", points.len())));
        }
        let centres: Vec<Index3> =
            points.iter().map(|&p| self.frame.check(p, "brush point")).collect::<Result<_, _>>()?;
        let mut out = Vec::new();
        for p in centres {
            for dz in -reach[2]..=reach[2] {
                for dy in -reach[1]..=reach[1] {
                    for dx in -reach[0]..=reach[0] {
                        let d = [dx, dy, dz];
                        let r2: f64 = (0..3).map(|c| (d[c] as f64 * sp[c]).powi(2)).sum();
                        let q = [p[0] as i64 + dx, p[1] as i64 + dy, p[2] as i64 + dz];
                        if r2 <= radius_mm * radius_mm && self.frame.contains(q) {
                            out.push(self.frame.flat([q[0] as usize, q[1] as usize, q[2] as usize]));
                        }
                    }
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    fn plan_paint(
        &self,
        points: &[[i64; 3]],
        radius_mm: f64,
        shape: Shape,
        view: View,
        node_id: Option<u32>,
    ) -> Result<Change, ReviewError> {
        let (id, before, mut review) = match node_id {
            Some(id) => (id, self.reviews([id]), self.editable(id)?.clone()),
            None => {
                let id = self.record.next_node_id;
                (id, BTreeMap::new(), NodeReview::made(id, Origin::Added))
            }
        };
        let brush = self.brush(points, radius_mm, shape, view)?;
        let data = self.labels.as_slice();
        // Only background joins: painting never takes another node's voxels.
        let voxels: Vec<(usize, u32, u32)> =
            brush.into_iter().filter(|&f| data[f] == 0).map(|f| (f, 0, id)).collect();
        if voxels.is_empty() {
            return Err(bad("nothing to paint: every voxel under the brush belongs to a node already"));
        }
        review.edited = true;
        let summary = format!("painted {} voxels into node {id}", voxels.len());
        Ok(Change {
            op: "paint",
            summary,
            voxels,
            nodes_before: before,
            nodes_after: BTreeMap::from([(id, review)]),
        })
    }

    fn plan_erase(
        &self,
        points: &[[i64; 3]],
        radius_mm: f64,
        shape: Shape,
        view: View,
        node_id: Option<u32>,
    ) -> Result<Change, ReviewError> {
        if let Some(id) = node_id {
            self.editable(id)?;
        }
        let brush = self.brush(points, radius_mm, shape, view)?;
        let data = self.labels.as_slice();
        let voxels: Vec<(usize, u32, u32)> = brush
            .into_iter()
            .filter(|&f| data[f] != 0 && node_id.is_none_or(|id| data[f] == id) && !self.is_rejected(data[f]))
            .map(|f| (f, data[f], 0))
            .collect();
        if voxels.is_empty() {
            return Err(bad("nothing to erase under the brush"));
        }
        let mut lost: BTreeMap<u32, usize> = BTreeMap::new();
        for &(_, id, _) in &voxels {
            *lost.entry(id).or_default() += 1;
        }
        let before = self.reviews(lost.keys().copied());
        let mut after = BTreeMap::new();
        for (&id, &n) in &lost {
            // A node erased whole is gone.
            if n < self.measurements.get(&id).map_or(0, |m| m.voxel_count) {
                let mut r = before[&id].clone();
                r.edited = true;
                after.insert(id, r);
            }
        }
        let summary =
            format!("erased {} voxels of nodes {:?}", voxels.len(), lost.keys().collect::<Vec<_>>());
        Ok(Change { op: "erase", summary, voxels, nodes_before: before, nodes_after: after })
    }

    fn plan_grow(
        &self,
        seed: [i64; 3],
        hu_min: f64,
        hu_max: f64,
        max_radius_mm: f64,
    ) -> Result<Change, ReviewError> {
        let seed = self.frame.check(seed, "seed")?;
        if !(hu_min.is_finite() && hu_max.is_finite() && hu_min <= hu_max) {
            return Err(bad(format!("HU window [{hu_min}, {hu_max}]: needs finite bounds, low <= high")));
        }
        if !(max_radius_mm > 0.0 && max_radius_mm <= MAX_GROW_RADIUS_MM) {
            return Err(bad(format!("radius {max_radius_mm} mm: must be in (0, {MAX_GROW_RADIUS_MM}]")));
        }
        let labels = self.labels.as_slice();
        let hu = self.ct.as_slice();
        let f0 = self.frame.flat(seed);
        if labels[f0] != 0 {
            return Err(bad(format!("the seed is inside node {}", labels[f0])));
        }
        let inside = |f: usize| (hu_min..=hu_max).contains(&(hu[f] as f64));
        if !inside(f0) {
            return Err(bad(format!("the seed's {} HU is outside the window [{hu_min}, {hu_max}]", hu[f0])));
        }
        let sp = self.frame.spacing_mm();
        let mut seen: BTreeSet<usize> = BTreeSet::from([f0]);
        let mut queue = VecDeque::from([seed]);
        while let Some(p) = queue.pop_front() {
            for (c, s) in [(0, -1i64), (0, 1), (1, -1), (1, 1), (2, -1), (2, 1)] {
                let mut q = p.map(|v| v as i64);
                q[c] += s;
                if !self.frame.contains(q) {
                    continue;
                }
                let r2: f64 = (0..3).map(|a| ((q[a] - seed[a] as i64) as f64 * sp[a]).powi(2)).sum();
                let qi = [q[0] as usize, q[1] as usize, q[2] as usize];
                let f = self.frame.flat(qi);
                if r2 <= max_radius_mm * max_radius_mm && labels[f] == 0 && inside(f) && seen.insert(f) {
                    queue.push_back(qi);
                }
            }
        }
        let id = self.record.next_node_id;
        let voxels: Vec<(usize, u32, u32)> = seen.into_iter().map(|f| (f, 0, id)).collect();
        let summary =
            format!("grew node {id} from {seed:?}: {} voxels in [{hu_min}, {hu_max}] HU", voxels.len());
        Ok(Change {
            op: "grow",
            summary,
            voxels,
            nodes_before: BTreeMap::new(),
            nodes_after: BTreeMap::from([(id, NodeReview::made(id, Origin::Added))]),
        })
    }

    fn plan_split(&self, node_id: u32, seeds: &[[i64; 3]]) -> Result<Change, ReviewError> {
        let parent = self.editable(node_id)?.clone();
        let voxels = self.node_voxels(node_id);
        // piece[v] = which piece voxel v goes to (0 keeps the id).
        let piece: Vec<usize> = match seeds.len() {
            0 => self.pieces(&voxels),
            1 => return Err(bad("a split needs two or more seeds (or none: one node per connected piece)")),
            n if n > MAX_SPLIT_SEEDS => return Err(bad(format!("at most {MAX_SPLIT_SEEDS} seeds"))),
            _ => {
                let seeds: Vec<Index3> = seeds
                    .iter()
                    .map(|&s| {
                        let d = self.frame.check(s, "seed")?;
                        if self.labels.as_slice()[self.frame.flat(d)] != node_id {
                            return Err(bad(format!("seed {s:?} is not inside node {node_id}")));
                        }
                        Ok(d)
                    })
                    .collect::<Result<_, ReviewError>>()?;
                let sp = self.frame.spacing_mm();
                voxels
                    .iter()
                    .map(|&f| {
                        let d = self.frame.display_of_flat(f);
                        let dist = |s: &Index3| -> f64 {
                            (0..3).map(|c| ((d[c] as f64 - s[c] as f64) * sp[c]).powi(2)).sum()
                        };
                        (0..seeds.len())
                            .min_by(|&a, &b| dist(&seeds[a]).total_cmp(&dist(&seeds[b])))
                            .unwrap_or(0)
                    })
                    .collect()
            }
        };
        let n_pieces = piece.iter().max().map_or(0, |m| m + 1);
        if n_pieces < 2 {
            return Err(bad(format!(
                "node {node_id} is one piece: click two or more seeds in it to split it"
            )));
        }
        let ids: Vec<u32> = std::iter::once(node_id)
            .chain((0..n_pieces as u32 - 1).map(|i| self.record.next_node_id + i))
            .collect();
        let changed: Vec<(usize, u32, u32)> =
            voxels.iter().zip(&piece).filter(|(_, &p)| p > 0).map(|(&f, &p)| (f, node_id, ids[p])).collect();
        let mut after = BTreeMap::new();
        for (p, &id) in ids.iter().enumerate() {
            let mut r = NodeReview { node_id: id, edited: true, ..parent.clone() };
            if p > 0 {
                r.origin = Origin::Split;
            }
            after.insert(id, r);
        }
        let summary = format!("split node {node_id} into {ids:?}");
        Ok(Change {
            op: "split",
            summary,
            voxels: changed,
            nodes_before: self.reviews([node_id]),
            nodes_after: after,
        })
    }

    /// The 26-connected pieces of a node's voxels: piece index per voxel, the largest piece 0.
    fn pieces(&self, voxels: &[usize]) -> Vec<usize> {
        let [ni, nj, _] = self.labels.dims();
        let stored = |f: usize| [f % ni, (f / ni) % nj, f / (ni * nj)];
        let (mut lo, mut hi) = ([usize::MAX; 3], [0; 3]);
        for &f in voxels {
            let s = stored(f);
            for a in 0..3 {
                lo[a] = lo[a].min(s[a]);
                hi[a] = hi[a].max(s[a]);
            }
        }
        if voxels.is_empty() {
            return vec![];
        }
        let n: [usize; 3] = std::array::from_fn(|a| hi[a] - lo[a] + 1);
        let mut mask = ndarray::Array3::<u8>::zeros([n[2], n[1], n[0]]);
        for &f in voxels {
            let s = stored(f);
            mask[[s[2] - lo[2], s[1] - lo[1], s[0] - lo[0]]] = 1;
        }
        let g = nodal_core::Geometry::axis_aligned([1.0; 3], [0.0; 3]);
        let (comp, count) = match nodal_core::Volume::new(mask, g) {
            Ok(v) => label_components(&v, Connectivity::TwentySix),
            Err(_) => return vec![0; voxels.len()],
        };
        let ids: Vec<usize> = voxels
            .iter()
            .map(|&f| {
                let s = stored(f);
                comp.get(s[0] - lo[0], s[1] - lo[1], s[2] - lo[2]) as usize
            })
            .collect();
        // Order pieces by size, largest first, so the largest keeps the node's id.
        let mut size = vec![0usize; count + 1];
        for &c in &ids {
            size[c] += 1;
        }
        let mut order: Vec<usize> = (1..=count).collect();
        order.sort_by_key(|&c| (std::cmp::Reverse(size[c]), c));
        let mut rank = vec![0usize; count + 1];
        for (r, &c) in order.iter().enumerate() {
            rank[c] = r;
        }
        ids.into_iter().map(|c| rank[c]).collect()
    }

    fn plan_merge(&self, node_ids: &[u32]) -> Result<Change, ReviewError> {
        let ids: BTreeSet<u32> = node_ids.iter().copied().collect();
        if ids.len() < 2 {
            return Err(bad("a merge needs two or more different nodes"));
        }
        for &id in &ids {
            self.editable(id)?;
        }
        let target = *ids.first().unwrap_or(&0);
        let before = self.reviews(ids.iter().copied());
        let mut merged = NodeReview { origin: Origin::Merged, edited: true, ..before[&target].clone() };
        merged.class = before.values().find_map(|r| r.class);
        merged.level = before.values().find_map(|r| r.level.clone());
        if before.values().all(|r| r.status == Status::Accepted) {
            merged.status = Status::Accepted;
        }
        let notes: Vec<&str> = before.values().map(|r| r.note.as_str()).filter(|n| !n.is_empty()).collect();
        merged.note = notes.join("; ");
        let voxels: Vec<(usize, u32, u32)> = ids
            .iter()
            .skip(1)
            .flat_map(|&id| self.node_voxels(id).into_iter().map(move |f| (f, id, target)))
            .collect();
        let summary = format!("merged nodes {ids:?} into node {target}");
        Ok(Change {
            op: "merge",
            summary,
            voxels,
            nodes_before: before,
            nodes_after: BTreeMap::from([(target, merged)]),
        })
    }

    fn plan_annotate(
        &self,
        node_id: u32,
        status: Option<Status>,
        class: Option<Option<NodeClass>>,
        level: Option<Option<String>>,
        note: Option<String>,
    ) -> Result<Change, ReviewError> {
        let mut r = self.existing(node_id)?.clone();
        let mut said = Vec::new();
        if let Some(s) = status {
            r.status = s;
            said.push(format!("{s:?}").to_lowercase());
        }
        if let Some(c) = class {
            r.class = c;
            said.push(c.map_or("class cleared".into(), |c| format!("{c:?}").to_lowercase()));
        }
        if let Some(level) = level {
            if let Some(l) = &level {
                if !LEVELS.contains(&l.as_str()) {
                    return Err(bad(format!("level {l:?}: one of {LEVELS:?}, or null")));
                }
            }
            said.push(format!("level {}", level.as_deref().unwrap_or("cleared")));
            r.level = level;
        }
        if let Some(note) = note {
            if note.chars().count() > MAX_NOTE_CHARS {
                return Err(bad(format!("a note has at most {MAX_NOTE_CHARS} characters")));
            }
            r.note = note;
            said.push("note".into());
        }
        if said.is_empty() {
            return Err(bad("annotate: nothing to set (status, class, level or note)"));
        }
        let summary = format!("node {node_id}: {}", said.join(", "));
        Ok(Change {
            op: "annotate",
            summary,
            voxels: vec![],
            nodes_before: self.reviews([node_id]),
            nodes_after: BTreeMap::from([(node_id, r)]),
        })
    }
}
