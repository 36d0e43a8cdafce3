//! The clinical vocabulary every output uses: one definition of each category and of the
//! evaluation protocol's constants, with one serde spelling, so `nodes.json`, `report.json`, the
//! evaluation tables and the DICOM objects name the same thing the same way.
use serde::{Deserialize, Serialize};

/// Predicted components whose axial short axis is below this are removed before matching, mm
/// (the protocol's size filter; `docs/evaluation-protocol.md`).
pub const MIN_SHORT_AXIS_MM: f64 = 4.5;

/// A ground-truth node is localized when at least this fraction of its voxels is predicted.
pub const LOCALIZED_MIN_SENSITIVITY: f64 = 0.4;

/// Short axis from which a node is "large" (RECIST 1.1 target size; the protocol's largest SAD
/// group, where the reference study's model failed), mm.
pub const LARGE_NODE_SHORT_AXIS_MM: f64 = 15.0;

/// Short axis from which a cervical node counts as enlarged (RECIST pathological; Node-RADS
/// size criterion), mm.
pub const ENLARGED_SHORT_AXIS_MM: f64 = 10.0;

/// Long axis from which a node is bulky (Node-RADS), mm.
pub const BULKY_LONG_AXIS_MM: f64 = 30.0;

/// Which side of the patient's midline a node lies on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// Patient left (LPS +x).
    Left,
    /// Patient right.
    Right,
    /// On the midline (only where a caller decides a node straddles it).
    Midline,
}

impl Side {
    /// The side of a centroid's LPS x relative to the midline's x: left when greater, else right.
    pub fn of_x_mm(x_mm: f64, midline_x_mm: f64) -> Self {
        if x_mm > midline_x_mm {
            Side::Left
        } else {
            Side::Right
        }
    }

    /// "left", "right" or "midline" (the serde spelling).
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Left => "left",
            Side::Right => "right",
            Side::Midline => "midline",
        }
    }
}

/// RECIST 1.1 category of a lymph node by its short axis: < 10 mm non-pathological, 10-15 mm
/// pathological non-target, >= 15 mm pathological and eligible as a target lesion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecistCategory {
    /// Short axis < 10 mm.
    NonPathological,
    /// 10 <= short axis < 15 mm.
    PathologicalNonTarget,
    /// Short axis >= 15 mm.
    PathologicalTarget,
}

impl RecistCategory {
    /// Every category, smallest first.
    pub const ALL: [RecistCategory; 3] = [
        RecistCategory::NonPathological,
        RecistCategory::PathologicalNonTarget,
        RecistCategory::PathologicalTarget,
    ];

    /// The category of a short axis in mm.
    pub fn from_short_axis_mm(short_axis_mm: f64) -> Self {
        if short_axis_mm >= LARGE_NODE_SHORT_AXIS_MM {
            RecistCategory::PathologicalTarget
        } else if short_axis_mm >= ENLARGED_SHORT_AXIS_MM {
            RecistCategory::PathologicalNonTarget
        } else {
            RecistCategory::NonPathological
        }
    }

    /// Human-readable short-axis range, e.g. "10–14.9 mm".
    pub fn label(self) -> &'static str {
        match self {
            RecistCategory::NonPathological => "< 10 mm",
            RecistCategory::PathologicalNonTarget => "10–14.9 mm",
            RecistCategory::PathologicalTarget => "≥ 15 mm",
        }
    }

    /// Display colour (RGB) of this category in every figure and table.
    pub fn rgb(self) -> [u8; 3] {
        match self {
            RecistCategory::NonPathological => [46, 204, 113],
            RecistCategory::PathologicalNonTarget => [255, 165, 0],
            RecistCategory::PathologicalTarget => [235, 59, 90],
        }
    }
}

/// Node-RADS size class: `Bulky` when the long axis is >= 30 mm; otherwise `Enlarged` when the
/// short axis is >= 10 mm (the common size threshold for neck nodes; Node-RADS refines it per
/// station, which needs a station label nodal does not have); otherwise `Normal`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeRadsSize {
    /// Short axis < 10 mm and long axis < 30 mm.
    Normal,
    /// Short axis >= 10 mm, long axis < 30 mm.
    Enlarged,
    /// Long axis >= 30 mm.
    Bulky,
}

impl NodeRadsSize {
    /// Size class from the axial short and long axis, mm.
    pub fn from_axes_mm(short_axis_mm: f64, long_axis_mm: f64) -> Self {
        if long_axis_mm >= BULKY_LONG_AXIS_MM {
            NodeRadsSize::Bulky
        } else if short_axis_mm >= ENLARGED_SHORT_AXIS_MM {
            NodeRadsSize::Enlarged
        } else {
            NodeRadsSize::Normal
        }
    }

    /// "normal", "enlarged" or "bulky" (the serde spelling).
    pub fn as_str(self) -> &'static str {
        match self {
            NodeRadsSize::Normal => "normal",
            NodeRadsSize::Enlarged => "enlarged",
            NodeRadsSize::Bulky => "bulky",
        }
    }
}

/// The evaluation protocol's short-axis group of a ground-truth node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SadGroup {
    /// SAD < 5 mm.
    #[serde(rename = "<5")]
    Below5,
    /// 5 <= SAD < 10 mm.
    #[serde(rename = "5-9")]
    From5To9,
    /// 10 <= SAD < 15 mm.
    #[serde(rename = "10-14")]
    From10To14,
    /// SAD >= 15 mm.
    #[serde(rename = ">=15")]
    AtLeast15,
}

impl SadGroup {
    /// All groups in ascending order.
    pub const ALL: [SadGroup; 4] =
        [SadGroup::Below5, SadGroup::From5To9, SadGroup::From10To14, SadGroup::AtLeast15];

    /// The group of a short-axis diameter.
    pub fn of(sad_mm: f64) -> SadGroup {
        if sad_mm < 5.0 {
            SadGroup::Below5
        } else if sad_mm < ENLARGED_SHORT_AXIS_MM {
            SadGroup::From5To9
        } else if sad_mm < LARGE_NODE_SHORT_AXIS_MM {
            SadGroup::From10To14
        } else {
            SadGroup::AtLeast15
        }
    }

    /// The protocol's name: `<5`, `5-9`, `10-14`, `>=15` (the serde spelling).
    pub fn name(self) -> &'static str {
        match self {
            SadGroup::Below5 => "<5",
            SadGroup::From5To9 => "5-9",
            SadGroup::From10To14 => "10-14",
            SadGroup::AtLeast15 => ">=15",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_change_at_their_documented_sizes() {
        assert_eq!(RecistCategory::from_short_axis_mm(9.99), RecistCategory::NonPathological);
        assert_eq!(RecistCategory::from_short_axis_mm(10.0), RecistCategory::PathologicalNonTarget);
        assert_eq!(RecistCategory::from_short_axis_mm(15.0), RecistCategory::PathologicalTarget);
        assert_eq!(NodeRadsSize::from_axes_mm(9.0, 30.0), NodeRadsSize::Bulky);
        assert_eq!(NodeRadsSize::from_axes_mm(10.0, 29.0), NodeRadsSize::Enlarged);
        assert_eq!(NodeRadsSize::from_axes_mm(9.9, 29.0), NodeRadsSize::Normal);
        assert_eq!(SadGroup::of(4.99), SadGroup::Below5);
        assert_eq!(SadGroup::of(5.0), SadGroup::From5To9);
        assert_eq!(SadGroup::of(14.99), SadGroup::From10To14);
        assert_eq!(SadGroup::of(15.0), SadGroup::AtLeast15);
        assert_eq!(Side::of_x_mm(0.1, 0.0), Side::Left);
        assert_eq!(Side::of_x_mm(0.0, 0.0), Side::Right);
    }

    fn json<T: Serialize>(v: T) -> String {
        serde_json::to_string(&v).unwrap()
    }

    #[test]
    fn one_spelling_per_value() {
        assert_eq!(json(Side::Midline), "\"midline\"");
        assert_eq!(json(RecistCategory::PathologicalNonTarget), "\"pathological_non_target\"");
        assert_eq!(json(NodeRadsSize::Bulky), "\"bulky\"");
        for side in [Side::Left, Side::Right, Side::Midline] {
            assert_eq!(json(side), format!("\"{}\"", side.as_str()));
        }
        for size in [NodeRadsSize::Normal, NodeRadsSize::Enlarged, NodeRadsSize::Bulky] {
            assert_eq!(json(size), format!("\"{}\"", size.as_str()));
        }
        for g in SadGroup::ALL {
            assert_eq!(json(g), format!("\"{}\"", g.name()));
            assert_eq!(serde_json::from_str::<SadGroup>(&json(g)).unwrap(), g);
        }
    }
}
