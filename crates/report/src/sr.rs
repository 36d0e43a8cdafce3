//! DICOM Comprehensive 3D SR (SOP class 1.2.840.10008.5.1.4.1.1.88.34) holding a TID 1500
//! "Imaging Measurement Report" with one TID 1411 "Volumetric ROI Measurements" group per node:
//!
//! ```text
//! CONTAINER Imaging Measurement Report (DCM 126000), TID 1500
//!  ├ language en-US, observer type Device (+ device UID, name), procedure reported: CT
//!  └ CONTAINER Imaging Measurements (DCM 126010), or without nodes CONTAINER Qualitative
//!    Evaluations (UMLS C0034375) holding TEXT Finding: "No lymph node ... was found."
//!     └ CONTAINER Measurement Group (DCM 125007), TID 1411 — one per node
//!        ├ TEXT Tracking Identifier / UIDREF Tracking Unique Identifier (same as the SEG segment)
//!        ├ CODE Finding = Lymph node (SCT 59441001); CODE Finding Site = Neck, or Head, Thorax,
//!        │  Abdomen where the scan's body coverage places the node (+ laterality)
//!        ├ IMAGE Referenced Segment (SEG SOP instance + segment number)
//!        ├ UIDREF Source series for segmentation
//!        ├ NUM Short axis (SCT 103340004), Long axis (SCT 103339001) [mm]: the RECIST 1.1 pair, on
//!        │  one axial slice, each INFERRED FROM a SCOORD3D POLYLINE of its two end points (LPS mm)
//!        └ NUM Volume (SCT 118565006) [mm3], Attenuation Coefficient (DCM 112031, derivation Mean)
//!          [Hounsfield unit]
//! ```
use crate::data::{BodyRegion, ReportSummary, Side};
use crate::dcm::{self, code, put_seq, put_str, put_u16, Obj};
use crate::seg::{SegInstance, CT_IMAGE_STORAGE, SEGMENTATION_STORAGE};
use crate::{uid, ReportError};
use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use serde::{Deserialize, Serialize};
use std::path::Path;

pub use crate::dcm::{DicomOptions, DicomSource};

/// Comprehensive 3D SR Storage SOP Class UID.
pub const COMPREHENSIVE_3D_SR_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.88.34";

/// What was written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SrInstance {
    pub sop_instance_uid: String,
    pub series_instance_uid: String,
    /// Number of measurement groups (nodes).
    pub n_groups: usize,
    pub warnings: Vec<String>,
}

fn content_item(rel: &str, value_type: &str, name: Obj) -> Obj {
    let mut o = Obj::new_empty();
    put_str(&mut o, tags::RELATIONSHIP_TYPE, VR::CS, rel);
    put_str(&mut o, tags::VALUE_TYPE, VR::CS, value_type);
    put_seq(&mut o, tags::CONCEPT_NAME_CODE_SEQUENCE, vec![name]);
    o
}

fn code_item(rel: &str, name: Obj, value: Obj) -> Obj {
    let mut o = content_item(rel, "CODE", name);
    put_seq(&mut o, tags::CONCEPT_CODE_SEQUENCE, vec![value]);
    o
}

fn text_item(rel: &str, name: Obj, text: &str) -> Obj {
    let mut o = content_item(rel, "TEXT", name);
    put_str(&mut o, tags::TEXT_VALUE, VR::UT, text);
    o
}

fn uidref_item(rel: &str, name: Obj, uid: &str) -> Obj {
    let mut o = content_item(rel, "UIDREF", name);
    put_str(&mut o, tags::UID, VR::UI, uid);
    o
}

fn num_item(name: Obj, value: f64, unit: Obj) -> Obj {
    let mut o = content_item("CONTAINS", "NUM", name);
    let mut mv = Obj::new_empty();
    put_seq(&mut mv, tags::MEASUREMENT_UNITS_CODE_SEQUENCE, vec![unit]);
    put_str(&mut mv, tags::NUMERIC_VALUE, VR::DS, &dcm::ds(value));
    mv.put(DataElement::new(tags::FLOATING_POINT_VALUE, VR::FD, PrimitiveValue::from(value)));
    put_seq(&mut o, tags::MEASURED_VALUE_SEQUENCE, vec![mv]);
    o
}

/// The end points of a linear measurement as a SCOORD3D polyline in the source's frame of
/// reference (LPS mm), so that a viewer can draw and check it.
fn endpoints_item(points: [[f64; 3]; 2], frame_of_reference_uid: &str) -> Obj {
    let mut o = content_item("INFERRED FROM", "SCOORD3D", code("121055", "DCM", "Path"));
    put_str(&mut o, tags::GRAPHIC_TYPE, VR::CS, "POLYLINE");
    let data: Vec<f32> = points.iter().flatten().map(|&v| v as f32).collect();
    o.put(DataElement::new(tags::GRAPHIC_DATA, VR::FL, PrimitiveValue::F32(data.into_iter().collect())));
    put_str(&mut o, tags::REFERENCED_FRAME_OF_REFERENCE_UID, VR::UI, frame_of_reference_uid);
    o
}

fn container(rel: Option<&str>, name: Obj, template: Option<&str>, children: Vec<Obj>) -> Obj {
    let mut o = Obj::new_empty();
    if let Some(rel) = rel {
        put_str(&mut o, tags::RELATIONSHIP_TYPE, VR::CS, rel);
    }
    put_str(&mut o, tags::VALUE_TYPE, VR::CS, "CONTAINER");
    put_seq(&mut o, tags::CONCEPT_NAME_CODE_SEQUENCE, vec![name]);
    put_str(&mut o, tags::CONTINUITY_OF_CONTENT, VR::CS, "SEPARATE");
    if let Some(t) = template {
        let mut ts = Obj::new_empty();
        put_str(&mut ts, tags::MAPPING_RESOURCE, VR::CS, "DCMR");
        put_str(&mut ts, tags::TEMPLATE_IDENTIFIER, VR::CS, t);
        put_seq(&mut o, tags::CONTENT_TEMPLATE_SEQUENCE, vec![ts]);
    }
    put_seq(&mut o, tags::CONTENT_SEQUENCE, children);
    o
}

/// Writes the measurement report for the nodes of `summary`, each referencing its segment in the
/// SEG instance `seg` (matched by label id), to `path`, atomically. Without nodes there is no SEG
/// (`seg = None`): the report then states that none was found, with the source CT as evidence, so
/// that a PACS tells "none found" from "not run".
pub fn write_sr(
    path: &Path,
    summary: &ReportSummary,
    seg: Option<&SegInstance>,
    src: &DicomSource,
    opts: &DicomOptions,
) -> Result<SrInstance, ReportError> {
    let mut warnings = Vec::new();
    if seg.is_none() && !summary.nodes.is_empty() {
        return Err(ReportError::InvalidInput(format!(
            "{} nodes to report but no SEG instance to reference",
            summary.nodes.len()
        )));
    }
    let (source_study, source_series) = dcm::source_uids(src, &mut warnings);
    let study_uid = seg.map_or(source_study, |s| s.study_instance_uid.clone());
    let sop_uid = uid::new_uid();
    let series_uid = uid::new_uid();
    let (date, time) = dcm::now_utc();
    let mm = || code("mm", "UCUM", "millimeter");

    let mut groups = Vec::new();
    // Without a SEG there are no nodes (checked above).
    for (n, seg) in summary.nodes.iter().filter_map(|n| seg.map(|s| (n, s))) {
        let Some(s) = seg.segments.iter().find(|s| s.node_id == n.node.node_id) else {
            return Err(ReportError::InvalidInput(format!(
                "node {} (node id {}) has no segment in the SEG instance",
                n.rank, n.node.node_id
            )));
        };
        let m = &n.node;
        let mut items = vec![
            text_item("HAS OBS CONTEXT", code("112039", "DCM", "Tracking Identifier"), &s.tracking_id),
            uidref_item(
                "HAS OBS CONTEXT",
                code("112040", "DCM", "Tracking Unique Identifier"),
                &s.tracking_uid,
            ),
            code_item("CONTAINS", code("121071", "DCM", "Finding"), code("59441001", "SCT", "Lymph node")),
        ];
        // Where the node lies, by the scan's body coverage; the neck when it was not estimated.
        let region = match n.region {
            Some(BodyRegion::Head) => code("69536005", "SCT", "Head"),
            Some(BodyRegion::Chest) => code("51185008", "SCT", "Thorax"),
            Some(BodyRegion::Abdomen) => code("113345001", "SCT", "Abdomen"),
            Some(BodyRegion::Neck) | None => code("45048000", "SCT", "Neck"),
        };
        let mut site = code_item("HAS CONCEPT MOD", code("363698007", "SCT", "Finding Site"), region);
        let lat = match m.side {
            Side::Left => Some(code("7771000", "SCT", "Left")),
            Side::Right => Some(code("24028007", "SCT", "Right")),
            Side::Midline => None,
        };
        if let Some(lat) = lat {
            put_seq(
                &mut site,
                tags::CONTENT_SEQUENCE,
                vec![code_item("HAS CONCEPT MOD", code("272741003", "SCT", "Laterality"), lat)],
            );
        }
        items.push(site);
        let mut img = content_item("CONTAINS", "IMAGE", code("121191", "DCM", "Referenced Segment"));
        let mut rs = Obj::new_empty();
        put_str(&mut rs, tags::REFERENCED_SOP_CLASS_UID, VR::UI, SEGMENTATION_STORAGE);
        put_str(&mut rs, tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, &seg.sop_instance_uid);
        put_u16(&mut rs, tags::REFERENCED_SEGMENT_NUMBER, s.number);
        put_seq(&mut img, tags::REFERENCED_SOP_SEQUENCE, vec![rs]);
        items.push(img);
        items.push(uidref_item(
            "CONTAINS",
            code("121232", "DCM", "Source series for segmentation"),
            &seg.source_series_instance_uid,
        ));
        // RECIST 1.1: both axes on one axial slice, each with its end points.
        let frame = src.frame_of_reference_uid.trim();
        for (name, value, ends) in [
            (code("103340004", "SCT", "Short axis"), m.short_axis_mm, m.short_axis_endpoints_mm),
            (code("103339001", "SCT", "Long axis"), m.recist_long_axis_mm, m.recist_long_axis_endpoints_mm),
        ] {
            let mut num = num_item(name, value, mm());
            put_seq(&mut num, tags::CONTENT_SEQUENCE, vec![endpoints_item(ends, frame)]);
            items.push(num);
        }
        items.push(num_item(
            code("118565006", "SCT", "Volume"),
            m.volume_mm3,
            code("mm3", "UCUM", "cubic millimeter"),
        ));
        if let Some(hu_mean) = m.hu_mean.filter(|v| v.is_finite()) {
            let mut hu = num_item(
                code("112031", "DCM", "Attenuation Coefficient"),
                hu_mean,
                code("[hnsf'U]", "UCUM", "Hounsfield unit"),
            );
            put_seq(
                &mut hu,
                tags::CONTENT_SEQUENCE,
                vec![code_item(
                    "HAS CONCEPT MOD",
                    code("121401", "DCM", "Derivation"),
                    code("373098007", "SCT", "Mean"),
                )],
            );
            items.push(hu);
        }
        groups.push(container(
            Some("CONTAINS"),
            code("125007", "DCM", "Measurement Group"),
            Some("1411"),
            items,
        ));
    }
    let n_groups = groups.len();

    let root_children = vec![
        code_item(
            "HAS CONCEPT MOD",
            code("121049", "DCM", "Language of Content Item and Descendants"),
            code("en-US", "RFC5646", "English (United States)"),
        ),
        code_item("HAS OBS CONTEXT", code("121005", "DCM", "Observer Type"), code("121007", "DCM", "Device")),
        uidref_item(
            "HAS OBS CONTEXT",
            code("121012", "DCM", "Device Observer UID"),
            dcm::IMPLEMENTATION_CLASS_UID,
        ),
        text_item("HAS OBS CONTEXT", code("121013", "DCM", "Device Observer Name"), "nodal"),
        code_item(
            "HAS CONCEPT MOD",
            code("121058", "DCM", "Procedure reported"),
            code("77477000", "SCT", "Computed tomography"),
        ),
    ];
    let mut root_children = root_children;
    root_children.push(if groups.is_empty() {
        container(
            Some("CONTAINS"),
            code("C0034375", "UMLS", "Qualitative Evaluations"),
            None,
            vec![text_item(
                "CONTAINS",
                code("121071", "DCM", "Finding"),
                "No lymph node with a short axis of 4.5 mm or more was found.",
            )],
        )
    } else {
        container(Some("CONTAINS"), code("126010", "DCM", "Imaging Measurements"), None, groups)
    });
    let mut o =
        container(None, code("126000", "DCM", "Imaging Measurement Report"), Some("1500"), root_children);

    dcm::put_patient_study(&mut o, src, &study_uid);
    dcm::NewInstance {
        sop_class_uid: COMPREHENSIVE_3D_SR_STORAGE,
        sop_instance_uid: &sop_uid,
        modality: "SR",
        series_instance_uid: &series_uid,
        series_number: opts.series_number + 1,
        series_description: &opts.sr_series_description,
        date: &date,
        time: &time,
    }
    .put(&mut o);
    put_seq(&mut o, tags::REFERENCED_PERFORMED_PROCEDURE_STEP_SEQUENCE, vec![]);
    dcm::put_equipment(&mut o, opts);
    put_str(&mut o, tags::INSTANCE_NUMBER, VR::IS, "1");
    put_str(&mut o, tags::CONTENT_DATE, VR::DA, &date);
    put_str(&mut o, tags::CONTENT_TIME, VR::TM, &time);
    // Automated results: complete but not verified by a person.
    put_str(&mut o, tags::COMPLETION_FLAG, VR::CS, "COMPLETE");
    put_str(&mut o, tags::VERIFICATION_FLAG, VR::CS, "UNVERIFIED");
    put_str(&mut o, tags::PRELIMINARY_FLAG, VR::CS, "PRELIMINARY");
    put_seq(&mut o, tags::PERFORMED_PROCEDURE_CODE_SEQUENCE, vec![]);
    // Evidence: the SEG instance, or without one the source CT images.
    let reference = |class: &str, instance: &str| {
        let mut sop = Obj::new_empty();
        put_str(&mut sop, tags::REFERENCED_SOP_CLASS_UID, VR::UI, class);
        put_str(&mut sop, tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, instance);
        sop
    };
    let (instances, evidence_series) = match seg {
        Some(seg) => {
            (vec![reference(SEGMENTATION_STORAGE, &seg.sop_instance_uid)], seg.series_instance_uid.clone())
        }
        None => {
            let class =
                if src.sop_class_uid.trim().is_empty() { CT_IMAGE_STORAGE } else { src.sop_class_uid.trim() };
            let mut uids: Vec<&str> =
                src.sop_instance_uids.iter().map(|u| u.trim()).filter(|u| !u.is_empty()).collect();
            // An enhanced multi-frame CT names its one instance for every slice.
            uids.dedup();
            (uids.into_iter().map(|u| reference(class, u)).collect(), source_series)
        }
    };
    let mut ser = Obj::new_empty();
    put_seq(&mut ser, tags::REFERENCED_SOP_SEQUENCE, instances);
    put_str(&mut ser, tags::SERIES_INSTANCE_UID, VR::UI, &evidence_series);
    let mut study = Obj::new_empty();
    put_seq(&mut study, tags::REFERENCED_SERIES_SEQUENCE, vec![ser]);
    put_str(&mut study, tags::STUDY_INSTANCE_UID, VR::UI, &study_uid);
    put_seq(&mut o, tags::CURRENT_REQUESTED_PROCEDURE_EVIDENCE_SEQUENCE, vec![study]);

    dcm::write_file(path, o)?;
    Ok(SrInstance { sop_instance_uid: sop_uid, series_instance_uid: series_uid, n_groups, warnings })
}
