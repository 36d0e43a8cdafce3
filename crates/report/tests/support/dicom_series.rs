//! Test support: reads the headers of a single-series DICOM folder (no pixel data) into the CT grid
//! and the [`DicomSource`] references, sorting slices along the slice normal (ascending), as a DICOM
//! reader does. Used by the SEG/SR round-trip test and example.
use dicom_dictionary_std::tags;
use dicom_object::{OpenFileOptions, Tag};
use nodal_core::Geometry;
use nodal_report::DicomSource;
use std::path::Path;

fn text(o: &dicom_object::DefaultDicomObject, tag: Tag) -> String {
    o.element_opt(tag)
        .ok()
        .flatten()
        .and_then(|e| e.to_str().ok().map(|s| s.trim_end_matches(['\0', ' ']).trim().to_string()))
        .unwrap_or_default()
}

fn floats(o: &dicom_object::DefaultDicomObject, tag: Tag) -> Vec<f64> {
    o.element(tag).ok().and_then(|e| e.to_multi_float64().ok()).unwrap_or_default()
}

/// Grid dims, geometry and references of the series in `dir`.
pub fn read_series(dir: &Path) -> ([usize; 3], Geometry, DicomSource) {
    let mut slices = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e} (run `bash scripts/fetch-test-data.sh`)", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    for p in paths {
        let o = OpenFileOptions::new().read_until(tags::PIXEL_DATA).open_file(&p).expect("DICOM file");
        slices.push(o);
    }
    assert!(!slices.is_empty(), "no DICOM files in {}", dir.display());
    let iop = floats(&slices[0], tags::IMAGE_ORIENTATION_PATIENT);
    let row = [iop[0], iop[1], iop[2]];
    let col = [iop[3], iop[4], iop[5]];
    let normal = [
        row[1] * col[2] - row[2] * col[1],
        row[2] * col[0] - row[0] * col[2],
        row[0] * col[1] - row[1] * col[0],
    ];
    let pos = |o: &dicom_object::DefaultDicomObject| {
        let p = floats(o, tags::IMAGE_POSITION_PATIENT);
        [p[0], p[1], p[2]]
    };
    let along = |p: [f64; 3]| p[0] * normal[0] + p[1] * normal[1] + p[2] * normal[2];
    slices.sort_by(|a, b| along(pos(a)).total_cmp(&along(pos(b))));
    let n = slices.len();
    let first = pos(&slices[0]);
    let dz = if n > 1 { (along(pos(&slices[n - 1])) - along(first)) / (n - 1) as f64 } else { 1.0 };
    let ps = floats(&slices[0], tags::PIXEL_SPACING);
    let rows = slices[0].element(tags::ROWS).unwrap().to_int::<usize>().unwrap();
    let cols = slices[0].element(tags::COLUMNS).unwrap().to_int::<usize>().unwrap();
    let geom = Geometry { spacing_mm: [ps[1], ps[0], dz], origin_mm: first, direction: [row, col, normal] };
    let s0 = &slices[0];
    // Anonymised files may blank the dataset's SOP UIDs; the file meta group still names them.
    let sop_uid = |o: &dicom_object::DefaultDicomObject| {
        let u = text(o, tags::SOP_INSTANCE_UID);
        if u.is_empty() {
            o.meta().media_storage_sop_instance_uid().trim_end_matches('\0').to_string()
        } else {
            u
        }
    };
    let mut sop_class = text(s0, tags::SOP_CLASS_UID);
    if sop_class.is_empty() {
        sop_class = s0.meta().media_storage_sop_class_uid().trim_end_matches('\0').to_string();
    }
    let src = DicomSource {
        study_instance_uid: text(s0, tags::STUDY_INSTANCE_UID),
        series_instance_uid: text(s0, tags::SERIES_INSTANCE_UID),
        frame_of_reference_uid: text(s0, tags::FRAME_OF_REFERENCE_UID),
        sop_class_uid: sop_class,
        sop_instance_uids: slices.iter().map(sop_uid).collect(),
        patient_name: text(s0, tags::PATIENT_NAME),
        patient_id: text(s0, tags::PATIENT_ID),
        patient_birth_date: text(s0, tags::PATIENT_BIRTH_DATE),
        patient_sex: text(s0, tags::PATIENT_SEX),
        study_date: text(s0, tags::STUDY_DATE),
        study_time: text(s0, tags::STUDY_TIME),
        study_id: text(s0, tags::STUDY_ID),
        accession_number: text(s0, tags::ACCESSION_NUMBER),
        referring_physician_name: text(s0, tags::REFERRING_PHYSICIAN_NAME),
        study_description: text(s0, tags::STUDY_DESCRIPTION),
        slice_thickness_mm: text(s0, tags::SLICE_THICKNESS).parse().ok(),
    };
    ([cols, rows, n], geom, src)
}
