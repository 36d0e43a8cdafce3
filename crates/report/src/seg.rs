//! DICOM Segmentation (SOP class 1.2.840.10008.5.1.4.1.1.66.4), BINARY, one segment per node.
//!
//! Layout: frames are the source slices that contain a segment, grouped by segment (segment 1's
//! slices in increasing k, then segment 2's, ...); each frame is `rows x columns` = `nj x ni` bits,
//! packed contiguously, least significant bit first (PS3.5 8.1.1), with no padding between frames.
//! The dimension organisation is (Referenced Segment Number, Image Position (Patient)); each frame
//! references its source slice through the Derivation Image Sequence.
use crate::data::ReportSummary;
use crate::dcm::{self, code, put_ds, put_seq, put_str, put_strs, put_tag, put_u16, put_u16s, put_u32s, Obj};
use crate::{uid, ReportError};
use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use nodal_core::{Label, Volume};
use serde::{Deserialize, Serialize};
use std::path::Path;

pub use crate::dcm::{DicomOptions, DicomSource, CT_IMAGE_STORAGE};

/// Segmentation Storage SOP Class UID.
pub const SEGMENTATION_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.66.4";

/// One segment: a node's label in the label map and its identity in DICOM.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SegmentSpec {
    /// Segment Number (1-based, consecutive).
    pub number: u16,
    /// The node's id in the label map.
    pub node_id: u32,
    /// Segment Label, e.g. "Lymph node 1".
    pub segment_label: String,
    /// Tracking ID (human readable, shared by SEG and SR).
    pub tracking_id: String,
    /// Tracking UID (shared by SEG and SR).
    pub tracking_uid: String,
    /// Display colour, sRGB.
    pub rgb: [u8; 3],
}

/// Segments for the nodes of a report, numbered by rank (1 = largest short axis), with new tracking
/// UIDs.
pub fn segments_for(summary: &ReportSummary) -> Vec<SegmentSpec> {
    summary
        .nodes
        .iter()
        .map(|n| SegmentSpec {
            number: n.rank.min(u16::MAX as usize) as u16,
            node_id: n.node.node_id,
            segment_label: format!("Lymph node {}", n.rank),
            tracking_id: format!("Lymph node {}", n.rank),
            tracking_uid: uid::new_uid(),
            rgb: SEGMENT_COLOURS[(n.rank.max(1) - 1) % SEGMENT_COLOURS.len()],
        })
        .collect()
}

/// Display colours of the segments, by rank: twelve well-separated hues (ColorBrewer "Paired", dark
/// and light alternating), so that touching nodes are told apart in a viewer.
pub const SEGMENT_COLOURS: [[u8; 3]; 12] = [
    [31, 120, 180],
    [251, 154, 153],
    [51, 160, 44],
    [253, 191, 111],
    [106, 61, 154],
    [166, 206, 227],
    [227, 26, 28],
    [178, 223, 138],
    [255, 127, 0],
    [202, 178, 214],
    [177, 89, 40],
    [255, 255, 153],
];

/// What was written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SegInstance {
    pub sop_instance_uid: String,
    pub series_instance_uid: String,
    pub study_instance_uid: String,
    /// Series Instance UID of the referenced source series.
    pub source_series_instance_uid: String,
    pub segments: Vec<SegmentSpec>,
    /// Number of frames written.
    pub n_frames: usize,
    /// Attributes the source lacked and that were generated.
    pub warnings: Vec<String>,
}

/// sRGB -> CIELab (D65), scaled to DICOM's 16-bit encoding (PS3.3 C.10.7.1.1).
pub fn rgb_to_dicom_lab(rgb: [u8; 3]) -> [u16; 3] {
    let lin = |c: u8| {
        let c = c as f64 / 255.0;
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    let (r, g, b) = (lin(rgb[0]), lin(rgb[1]), lin(rgb[2]));
    let x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047;
    let y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
    let z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883;
    let f = |t: f64| if t > 216.0 / 24389.0 { t.cbrt() } else { (24389.0 / 27.0 * t + 16.0) / 116.0 };
    let (fx, fy, fz) = (f(x), f(y), f(z));
    let l = 116.0 * fy - 16.0;
    let a = 500.0 * (fx - fy);
    let bb = 200.0 * (fy - fz);
    let scale_l = |v: f64| (v.clamp(0.0, 100.0) * 65535.0 / 100.0).round() as u16;
    let scale_ab = |v: f64| ((v.clamp(-128.0, 127.0) + 128.0) * 65535.0 / 255.0).round() as u16;
    [scale_l(l), scale_ab(a), scale_ab(bb)]
}

/// Checks the source references against the label map's grid.
pub(crate) fn check_source<L: Label>(labels: &Volume<L>, src: &DicomSource) -> Result<(), ReportError> {
    let [ni, nj, nk] = labels.dims();
    if src.sop_instance_uids.len() != nk {
        return Err(ReportError::DicomSource(format!(
            "{} source SOP Instance UIDs for {nk} slices",
            src.sop_instance_uids.len()
        )));
    }
    if let Some(k) = src.sop_instance_uids.iter().position(|u| u.trim().is_empty()) {
        return Err(ReportError::DicomSource(format!("slice {k} has no SOP Instance UID")));
    }
    if src.frame_of_reference_uid.trim().is_empty() {
        return Err(ReportError::DicomSource("no Frame of Reference UID".into()));
    }
    if ni > u16::MAX as usize || nj > u16::MAX as usize {
        return Err(ReportError::DicomSource(format!("slices of {ni} x {nj} exceed DICOM's 65535 limit")));
    }
    Ok(())
}

/// Writes a BINARY DICOM SEG of `segments` (voxels of `labels` equal to each segment's label) to
/// `path`, atomically. `labels` must be on the source series' grid: index `k` is the slice whose
/// SOP Instance UID is `src.sop_instance_uids[k]`, `i` runs along the image rows (columns) and `j`
/// down the columns (rows), as the DICOM reader stores it.
pub fn write_seg<L: Label>(
    path: &Path,
    labels: &Volume<L>,
    segments: &[SegmentSpec],
    src: &DicomSource,
    opts: &DicomOptions,
) -> Result<SegInstance, ReportError> {
    check_source(labels, src)?;
    for (n, s) in segments.iter().enumerate() {
        if s.number as usize != n + 1 {
            return Err(ReportError::InvalidInput(format!(
                "segment numbers must be 1, 2, ... in order; found {} at position {}",
                s.number,
                n + 1
            )));
        }
    }
    let mut warnings = Vec::new();
    let (study_uid, source_series_uid) = dcm::source_uids(src, &mut warnings);
    let sop_class_src = dcm::source_sop_class(src, &mut warnings);
    let [ni, nj, nk] = labels.dims();
    let g = *labels.geometry();
    let sop_uid = uid::new_uid();
    let series_uid = uid::new_uid();
    let (date, time) = dcm::now_utc();

    let mut o = Obj::new_empty();
    dcm::put_patient_study(&mut o, src, &study_uid);
    dcm::NewInstance {
        sop_class_uid: SEGMENTATION_STORAGE,
        sop_instance_uid: &sop_uid,
        modality: "SEG",
        series_instance_uid: &series_uid,
        series_number: opts.series_number,
        series_description: &opts.series_description,
        date: &date,
        time: &time,
    }
    .put(&mut o);
    // Frame of reference.
    put_str(&mut o, tags::FRAME_OF_REFERENCE_UID, VR::UI, src.frame_of_reference_uid.trim());
    put_str(&mut o, tags::POSITION_REFERENCE_INDICATOR, VR::LO, "");
    // General / Enhanced General Equipment.
    dcm::put_equipment(&mut o, opts);
    // General image / Segmentation image.
    put_str(&mut o, tags::INSTANCE_NUMBER, VR::IS, "1");
    put_str(&mut o, tags::CONTENT_DATE, VR::DA, &date);
    put_str(&mut o, tags::CONTENT_TIME, VR::TM, &time);
    put_strs(&mut o, tags::IMAGE_TYPE, VR::CS, &["DERIVED".into(), "PRIMARY".into()]);
    put_str(&mut o, tags::CONTENT_LABEL, VR::CS, "LYMPH_NODES");
    put_str(&mut o, tags::CONTENT_DESCRIPTION, VR::LO, "Lymph nodes segmented by nodal");
    put_str(&mut o, tags::CONTENT_CREATOR_NAME, VR::PN, "");
    put_str(&mut o, tags::SEGMENTATION_TYPE, VR::CS, "BINARY");
    put_str(&mut o, tags::SEGMENTS_OVERLAP, VR::CS, "NO");
    put_str(&mut o, tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00");
    // Image pixel.
    put_u16(&mut o, tags::SAMPLES_PER_PIXEL, 1);
    put_str(&mut o, tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2");
    put_u16(&mut o, tags::ROWS, nj as u16);
    put_u16(&mut o, tags::COLUMNS, ni as u16);
    put_u16(&mut o, tags::BITS_ALLOCATED, 1);
    put_u16(&mut o, tags::BITS_STORED, 1);
    put_u16(&mut o, tags::HIGH_BIT, 0);
    put_u16(&mut o, tags::PIXEL_REPRESENTATION, 0);

    // Segment sequence.
    let items: Vec<Obj> = segments
        .iter()
        .map(|s| {
            let mut it = Obj::new_empty();
            put_u16(&mut it, tags::SEGMENT_NUMBER, s.number);
            put_str(&mut it, tags::SEGMENT_LABEL, VR::LO, &s.segment_label);
            put_seq(
                &mut it,
                tags::SEGMENTED_PROPERTY_CATEGORY_CODE_SEQUENCE,
                vec![code("91723000", "SCT", "Anatomical Structure")],
            );
            put_seq(
                &mut it,
                tags::SEGMENTED_PROPERTY_TYPE_CODE_SEQUENCE,
                vec![code("59441001", "SCT", "Lymph node")],
            );
            put_str(&mut it, tags::SEGMENT_ALGORITHM_TYPE, VR::CS, "AUTOMATIC");
            put_str(&mut it, tags::SEGMENT_ALGORITHM_NAME, VR::LO, &opts.algorithm_name());
            let mut alg = Obj::new_empty();
            put_seq(
                &mut alg,
                tags::ALGORITHM_FAMILY_CODE_SEQUENCE,
                vec![code("123110", "DCM", "Artificial Intelligence")],
            );
            put_str(&mut alg, tags::ALGORITHM_NAME, VR::LO, &opts.algorithm_name());
            put_str(&mut alg, tags::ALGORITHM_VERSION, VR::LO, &opts.software_version);
            put_seq(&mut it, tags::SEGMENTATION_ALGORITHM_IDENTIFICATION_SEQUENCE, vec![alg]);
            put_u16s(&mut it, tags::RECOMMENDED_DISPLAY_CIE_LAB_VALUE, &rgb_to_dicom_lab(s.rgb));
            put_str(&mut it, tags::TRACKING_ID, VR::UT, &s.tracking_id);
            put_str(&mut it, tags::TRACKING_UID, VR::UI, &s.tracking_uid);
            it
        })
        .collect();
    put_seq(&mut o, tags::SEGMENT_SEQUENCE, items);

    // Dimension organisation: segment number, then position.
    let dim_uid = uid::new_uid();
    let mut dorg = Obj::new_empty();
    put_str(&mut dorg, tags::DIMENSION_ORGANIZATION_UID, VR::UI, &dim_uid);
    put_seq(&mut o, tags::DIMENSION_ORGANIZATION_SEQUENCE, vec![dorg]);
    let dim = |ptr, fg, label: &str| {
        let mut d = Obj::new_empty();
        put_str(&mut d, tags::DIMENSION_ORGANIZATION_UID, VR::UI, &dim_uid);
        put_tag(&mut d, tags::DIMENSION_INDEX_POINTER, ptr);
        put_tag(&mut d, tags::FUNCTIONAL_GROUP_POINTER, fg);
        put_str(&mut d, tags::DIMENSION_DESCRIPTION_LABEL, VR::LO, label);
        d
    };
    put_seq(
        &mut o,
        tags::DIMENSION_INDEX_SEQUENCE,
        vec![
            dim(
                tags::REFERENCED_SEGMENT_NUMBER,
                tags::SEGMENT_IDENTIFICATION_SEQUENCE,
                "Referenced Segment Number",
            ),
            dim(tags::IMAGE_POSITION_PATIENT, tags::PLANE_POSITION_SEQUENCE, "Image Position Patient"),
        ],
    );

    // Shared functional groups: pixel measures and plane orientation.
    let mut shared = Obj::new_empty();
    let mut pm = Obj::new_empty();
    put_ds(&mut pm, tags::PIXEL_SPACING, &[g.spacing_mm[1], g.spacing_mm[0]]);
    put_ds(&mut pm, tags::SLICE_THICKNESS, &[src.slice_thickness_mm.unwrap_or(g.spacing_mm[2])]);
    put_ds(&mut pm, tags::SPACING_BETWEEN_SLICES, &[g.spacing_mm[2]]);
    put_seq(&mut shared, tags::PIXEL_MEASURES_SEQUENCE, vec![pm]);
    let mut po = Obj::new_empty();
    let d = g.direction;
    put_ds(&mut po, tags::IMAGE_ORIENTATION_PATIENT, &[d[0][0], d[0][1], d[0][2], d[1][0], d[1][1], d[1][2]]);
    put_seq(&mut shared, tags::PLANE_ORIENTATION_SEQUENCE, vec![po]);
    put_seq(&mut o, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE, vec![shared]);

    // Frames: per segment, the slices that contain it.
    let data = labels.data(); // [nk, nj, ni]
    let frame_px = ni * nj;
    let mut frames: Vec<(usize, usize)> = Vec::new(); // (segment index, k)
    for (si, s) in segments.iter().enumerate() {
        let before = frames.len();
        for k in 0..nk {
            if data.index_axis(ndarray::Axis(0), k).iter().any(|v| v.as_usize() as u32 == s.node_id) {
                frames.push((si, k));
            }
        }
        if frames.len() == before {
            return Err(ReportError::InvalidInput(format!(
                "segment {} (node id {}) has no voxels in the label map",
                s.number, s.node_id
            )));
        }
    }
    if frames.is_empty() {
        return Err(ReportError::InvalidInput("a DICOM SEG needs at least one segment".into()));
    }
    // An enhanced multi-frame source is one instance for all slices: frames then reference the
    // source frame k + 1 of that instance.
    let multi_frame_source =
        nk > 1 && src.sop_instance_uids.iter().all(|u| u.trim() == src.sop_instance_uids[0].trim());
    let n_bits = frames.len() * frame_px;
    let mut pixels = vec![0u8; n_bits.div_ceil(8).next_multiple_of(2)];
    let mut per_frame = Vec::with_capacity(frames.len());
    let mut used_slices = std::collections::BTreeSet::new();
    for (f, &(si, k)) in frames.iter().enumerate() {
        let s = &segments[si];
        let slice = data.index_axis(ndarray::Axis(0), k);
        for ((j, i), v) in slice.indexed_iter() {
            if v.as_usize() as u32 == s.node_id {
                let bit = f * frame_px + j * ni + i;
                pixels[bit / 8] |= 1 << (bit % 8);
            }
        }
        used_slices.insert(k);
        let mut fg = Obj::new_empty();
        let mut src_img = Obj::new_empty();
        put_str(&mut src_img, tags::REFERENCED_SOP_CLASS_UID, VR::UI, &sop_class_src);
        put_str(&mut src_img, tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, src.sop_instance_uids[k].trim());
        if multi_frame_source {
            put_str(&mut src_img, tags::REFERENCED_FRAME_NUMBER, VR::IS, &(k + 1).to_string());
        }
        put_str(&mut src_img, tags::SPATIAL_LOCATIONS_PRESERVED, VR::CS, "YES");
        put_seq(
            &mut src_img,
            tags::PURPOSE_OF_REFERENCE_CODE_SEQUENCE,
            vec![code("121322", "DCM", "Source image for image processing operation")],
        );
        let mut deriv = Obj::new_empty();
        put_seq(&mut deriv, tags::SOURCE_IMAGE_SEQUENCE, vec![src_img]);
        put_seq(&mut deriv, tags::DERIVATION_CODE_SEQUENCE, vec![code("113076", "DCM", "Segmentation")]);
        put_seq(&mut fg, tags::DERIVATION_IMAGE_SEQUENCE, vec![deriv]);
        let mut fc = Obj::new_empty();
        // Position index: slices are ordered along the k axis, so k + 1 orders them in space.
        put_u32s(&mut fc, tags::DIMENSION_INDEX_VALUES, &[s.number as u32, k as u32 + 1]);
        put_seq(&mut fg, tags::FRAME_CONTENT_SEQUENCE, vec![fc]);
        let mut pp = Obj::new_empty();
        put_ds(&mut pp, tags::IMAGE_POSITION_PATIENT, &g.index_to_world([0.0, 0.0, k as f64]));
        put_seq(&mut fg, tags::PLANE_POSITION_SEQUENCE, vec![pp]);
        let mut sid = Obj::new_empty();
        put_u16(&mut sid, tags::REFERENCED_SEGMENT_NUMBER, s.number);
        put_seq(&mut fg, tags::SEGMENT_IDENTIFICATION_SEQUENCE, vec![sid]);
        per_frame.push(fg);
    }
    put_str(&mut o, tags::NUMBER_OF_FRAMES, VR::IS, &frames.len().to_string());
    put_seq(&mut o, tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, per_frame);

    // Common instance reference: every source slice that a frame derives from.
    let mut seen = std::collections::HashSet::new();
    let refs: Vec<Obj> = used_slices
        .iter()
        .filter(|&&k| seen.insert(src.sop_instance_uids[k].trim()))
        .map(|&k| {
            let mut r = Obj::new_empty();
            put_str(&mut r, tags::REFERENCED_SOP_CLASS_UID, VR::UI, &sop_class_src);
            put_str(&mut r, tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, src.sop_instance_uids[k].trim());
            r
        })
        .collect();
    let mut rs = Obj::new_empty();
    put_str(&mut rs, tags::SERIES_INSTANCE_UID, VR::UI, &source_series_uid);
    put_seq(&mut rs, tags::REFERENCED_INSTANCE_SEQUENCE, refs);
    put_seq(&mut o, tags::REFERENCED_SERIES_SEQUENCE, vec![rs]);

    o.put(DataElement::new(tags::PIXEL_DATA, VR::OB, PrimitiveValue::from(pixels)));
    dcm::write_file(path, o)?;
    Ok(SegInstance {
        sop_instance_uid: sop_uid,
        series_instance_uid: series_uid,
        study_instance_uid: study_uid,
        source_series_instance_uid: source_series_uid,
        segments: segments.to_vec(),
        n_frames: frames.len(),
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_frame_source_is_referenced_by_frame_number() {
        use nodal_core::Geometry;
        let g = Geometry::axis_aligned([1.0, 1.0, 2.0], [0.0; 3]);
        let mut labels = Volume::<u16>::zeros([4, 3, 5], g);
        labels.data_mut()[[1, 0, 0]] = 1;
        labels.data_mut()[[3, 2, 3]] = 1;
        let src = DicomSource {
            frame_of_reference_uid: "2.25.9".into(),
            sop_instance_uids: vec!["2.25.77".into(); 5],
            ..Default::default()
        };
        let seg = SegmentSpec {
            number: 1,
            node_id: 1,
            segment_label: "Lymph node 1".into(),
            tracking_id: "Lymph node 1".into(),
            tracking_uid: "2.25.5".into(),
            rgb: [0, 0, 0],
        };
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mf.seg.dcm");
        let out = write_seg(&p, &labels, &[seg], &src, &DicomOptions::default()).unwrap();
        assert_eq!(out.n_frames, 2);
        let o = dicom_object::open_file(&p).unwrap();
        let items = |o: &dicom_object::InMemDicomObject, t| o.element(t).unwrap().items().unwrap().to_vec();
        let frames = items(&o, tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE);
        let numbers: Vec<i32> = frames
            .iter()
            .map(|f| {
                let d = &items(f, tags::DERIVATION_IMAGE_SEQUENCE)[0];
                let s = &items(d, tags::SOURCE_IMAGE_SEQUENCE)[0];
                s.element(tags::REFERENCED_FRAME_NUMBER).unwrap().to_int::<i32>().unwrap()
            })
            .collect();
        assert_eq!(numbers, [2, 4]);
        let series = &items(&o, tags::REFERENCED_SERIES_SEQUENCE)[0];
        assert_eq!(items(series, tags::REFERENCED_INSTANCE_SEQUENCE).len(), 1);
    }

    #[test]
    fn lab_of_white_and_black() {
        // White: L* = 100, a* = b* = 0 (encoded as 128/255 of full scale).
        let w = rgb_to_dicom_lab([255, 255, 255]);
        assert_eq!(w[0], 65535);
        assert!((w[1] as i32 - 32896).abs() <= 40 && (w[2] as i32 - 32896).abs() <= 40, "{w:?}");
        assert_eq!(rgb_to_dicom_lab([0, 0, 0])[0], 0);
    }
}
