//! One applied edit as the undo history keeps it: the voxels and node reviews it changed, before
//! and after, so it can be taken back and applied again.
use crate::record::{NodeReview, Status};
use std::collections::{BTreeMap, BTreeSet};

/// One applied edit: enough to take it back and apply it again.
#[derive(Clone, Debug)]
pub struct Change {
    pub(crate) op: &'static str,
    pub(crate) summary: String,
    /// (flat stored index, label before, label after).
    pub(crate) voxels: Vec<(usize, u32, u32)>,
    pub(crate) nodes_before: BTreeMap<u32, NodeReview>,
    pub(crate) nodes_after: BTreeMap<u32, NodeReview>,
}

impl Change {
    /// Which saved label maps the change alters: (kept nodes, rejected nodes). Voxel edits refuse
    /// rejected nodes, so only a status moving to or from rejected alters the rejected map.
    pub(crate) fn maps_changed(&self) -> (bool, bool) {
        let rejected =
            |m: &BTreeMap<u32, NodeReview>, id: &u32| m.get(id).is_some_and(|r| r.status == Status::Rejected);
        let toggled = self
            .nodes_before
            .keys()
            .chain(self.nodes_after.keys())
            .any(|id| rejected(&self.nodes_before, id) != rejected(&self.nodes_after, id));
        (toggled || !self.voxels.is_empty(), toggled)
    }

    pub(crate) fn touched(&self) -> Vec<u32> {
        let mut ids: BTreeSet<u32> = BTreeSet::new();
        for &(_, a, b) in &self.voxels {
            ids.extend([a, b].into_iter().filter(|&v| v != 0));
        }
        for (id, r) in &self.nodes_after {
            if self.nodes_before.get(id) != Some(r) {
                ids.insert(*id);
            }
        }
        ids.extend(self.nodes_before.keys().filter(|id| !self.nodes_after.contains_key(id)));
        ids.into_iter().collect()
    }
}

impl Change {
    /// The edit's `op`.
    pub fn op(&self) -> &'static str {
        self.op
    }
}
