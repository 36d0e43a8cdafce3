//! Test support: the measurement stage's per-node record converted into the report's.
use nodal_nodes::measure::{NodeMeasurement, NodeRadsSize, Side as NSide};
use nodal_report::{NodeRecord, Side};

/// Converts a `NodeMeasurement` into a `NodeRecord`.
pub fn record(m: &NodeMeasurement) -> NodeRecord {
    NodeRecord {
        label: m.label,
        short_axis_mm: m.axes.short_axis_mm,
        long_axis_mm: m.axes.long_axis_mm,
        short_axis_slice: m.axes.short_axis_slice,
        long_axis_slice: m.axes.long_axis_slice,
        short_axis_endpoints_mm: m.axes.short_axis_endpoints_mm,
        long_axis_endpoints_mm: m.axes.long_axis_endpoints_mm,
        volume_mm3: m.volume_mm3,
        centroid_mm: m.centroid_mm,
        hu_mean: m.hu.as_ref().map(|h| h.mean_hu),
        necrosis_fraction: m.necrosis_fraction,
        side: match m.side {
            NSide::Left => Side::Left,
            NSide::Right => Side::Right,
        },
        node_rads_size: Some(
            match m.node_rads_size {
                NodeRadsSize::Normal => "normal",
                NodeRadsSize::Enlarged => "enlarged",
                NodeRadsSize::Bulky => "bulky",
            }
            .to_string(),
        ),
    }
}
