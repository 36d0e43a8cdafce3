//! Shared DICOM plumbing for the SEG and SR writers: the description of the source series
//! ([`DicomSource`]), options ([`DicomOptions`]), element helpers and atomic file output in Explicit
//! VR Little Endian.
use crate::ReportError;
use dicom_core::value::{DataSetSequence, PrimitiveValue};
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use serde::{Deserialize, Serialize};
use std::path::Path;

pub(crate) type Obj = InMemDicomObject;

/// CT Image Storage, the usual source SOP class.
pub const CT_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.2";
/// Explicit VR Little Endian.
pub const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
/// Implementation Class UID of nodal's DICOM writer (fixed, under the UUID-derived 2.25 root).
pub const IMPLEMENTATION_CLASS_UID: &str = "2.25.190912843457170373614052624004513574929";

/// What the SEG and SR need from the source DICOM series, in the CT grid's slice order.
///
/// The caller fills it from the DICOM reader's references. Empty strings stand for attributes the
/// source lacks (anonymised series often blank them); type 1 UIDs that are missing are replaced by
/// new ones and reported in the writer's warnings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DicomSource {
    pub study_instance_uid: String,
    pub series_instance_uid: String,
    pub frame_of_reference_uid: String,
    /// SOP Class UID of the source images (usually CT Image Storage).
    pub sop_class_uid: String,
    /// SOP Instance UID of the source image of each slice k of the CT grid (`len() == nk`).
    pub sop_instance_uids: Vec<String>,
    pub patient_name: String,
    pub patient_id: String,
    pub patient_birth_date: String,
    pub patient_sex: String,
    pub study_date: String,
    pub study_time: String,
    pub study_id: String,
    pub accession_number: String,
    pub referring_physician_name: String,
    pub study_description: String,
    /// Nominal slice thickness of the source, mm (spacing between slices when unknown).
    pub slice_thickness_mm: Option<f64>,
}

impl From<&nodal_io::DicomRefs> for DicomSource {
    /// Copies the DICOM reader's references; absent attributes become empty strings.
    fn from(r: &nodal_io::DicomRefs) -> Self {
        let s = |v: &Option<String>| v.clone().unwrap_or_default();
        DicomSource {
            study_instance_uid: s(&r.study_instance_uid),
            series_instance_uid: s(&r.series_instance_uid),
            frame_of_reference_uid: s(&r.frame_of_reference_uid),
            sop_class_uid: s(&r.sop_class_uid),
            sop_instance_uids: r.sop_instance_uids.clone(),
            patient_name: s(&r.patient_name),
            patient_id: s(&r.patient_id),
            patient_birth_date: s(&r.patient_birth_date),
            patient_sex: s(&r.patient_sex),
            study_date: s(&r.study_date),
            study_time: s(&r.study_time),
            study_id: s(&r.study_id),
            accession_number: s(&r.accession_number),
            referring_physician_name: s(&r.referring_physician_name),
            study_description: String::new(),
            slice_thickness_mm: r.slice_thickness_mm,
        }
    }
}

/// Series-level settings of the written instances.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DicomOptions {
    /// Series Number of the SEG; the SR's is one more (see [`DicomOptions::for_run`]).
    pub series_number: i32,
    /// Series Description of the SEG.
    pub series_description: String,
    /// Series Description of the SR.
    pub sr_series_description: String,
    /// Series Description of the RT Structure Set (series number: the SEG's + 2).
    pub rt_series_description: String,
    /// Software version written to Software Versions and the algorithm identification.
    pub software_version: String,
    /// The model that made the segmentation (id and version), written beside the software version
    /// and as the segmentation algorithm's name; `None` for masks from elsewhere (`nodal measure`).
    pub model: Option<(String, String)>,
    /// Device serial number (type 1 in Enhanced General Equipment).
    pub device_serial_number: String,
}

impl Default for DicomOptions {
    fn default() -> Self {
        DicomOptions {
            series_number: 901,
            series_description: "nodal lymph nodes".into(),
            sr_series_description: "nodal lymph nodes measurements".into(),
            rt_series_description: "nodal lymph node contours".into(),
            software_version: env!("CARGO_PKG_VERSION").into(),
            model: None,
            device_serial_number: "0".into(),
        }
    }
}

impl DicomOptions {
    /// Options for one run at `time`: series numbers and a description of their own, so that the
    /// series of two runs on one study stay apart in a PACS. The SEG's number is `DDHHMMSS0` + 1
    /// (day of month and UTC time of the run), the SR's + 2, the RT Structure Set's + 3; the description names the model
    /// (or "measured" without one) and the time, each within the 64 characters of an LO.
    pub fn for_run(model: Option<(String, String)>, time: nodal_core::time::UtcTime) -> Self {
        let stamp = ((time.day * 100 + time.hour) * 100 + time.minute) * 100 + time.second;
        let source = match &model {
            Some((id, version)) => format!("{id} {version}"),
            None => "measured".to_string(),
        };
        let run = format!(
            "({source}, {:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC)",
            time.year, time.month, time.day, time.hour, time.minute, time.second
        );
        // LO holds 64 characters.
        let lo = |s: String| s.chars().take(64).collect();
        DicomOptions {
            series_number: stamp as i32 * 10 + 1,
            series_description: lo(format!("nodal lymph nodes {run}")),
            sr_series_description: lo(format!("nodal measurements {run}")),
            rt_series_description: lo(format!("nodal contours {run}")),
            model,
            ..DicomOptions::default()
        }
    }

    /// The segmentation algorithm's name: nodal and the model, when known (LO: 64 characters).
    pub(crate) fn algorithm_name(&self) -> String {
        let name = match &self.model {
            Some((id, version)) => format!("nodal {id} {version}"),
            None => "nodal".to_string(),
        };
        name.chars().take(64).collect()
    }
}

/// Manufacturer and model written to the equipment modules.
pub const MANUFACTURER: &str = "nodal";
pub const MODEL_NAME: &str = "nodal";

pub(crate) fn put_str(o: &mut Obj, tag: Tag, vr: VR, s: &str) {
    // DICOM pads odd-length text; dicom-rs does it on write.
    o.put(DataElement::new(tag, vr, PrimitiveValue::from(s)));
}

pub(crate) fn put_strs(o: &mut Obj, tag: Tag, vr: VR, v: &[String]) {
    o.put(DataElement::new(tag, vr, PrimitiveValue::Strs(v.iter().cloned().collect())));
}

pub(crate) fn put_u16(o: &mut Obj, tag: Tag, v: u16) {
    o.put(DataElement::new(tag, VR::US, PrimitiveValue::from(v)));
}

pub(crate) fn put_u16s(o: &mut Obj, tag: Tag, v: &[u16]) {
    o.put(DataElement::new(tag, VR::US, PrimitiveValue::U16(v.iter().copied().collect())));
}

pub(crate) fn put_u32s(o: &mut Obj, tag: Tag, v: &[u32]) {
    o.put(DataElement::new(tag, VR::UL, PrimitiveValue::U32(v.iter().copied().collect())));
}

pub(crate) fn put_ds(o: &mut Obj, tag: Tag, v: &[f64]) {
    let s: Vec<String> = v.iter().map(|&x| ds(x)).collect();
    put_strs(o, tag, VR::DS, &s);
}

pub(crate) fn put_tag(o: &mut Obj, tag: Tag, value: Tag) {
    o.put(DataElement::new(tag, VR::AT, PrimitiveValue::from(value)));
}

pub(crate) fn put_seq(o: &mut Obj, tag: Tag, items: Vec<Obj>) {
    o.put(DataElement::new(tag, VR::SQ, DataSetSequence::from(items)));
}

/// A code sequence item (Code Value, Coding Scheme Designator, Code Meaning).
pub(crate) fn code(value: &str, scheme: &str, meaning: &str) -> Obj {
    let mut o = Obj::new_empty();
    put_str(&mut o, tags::CODE_VALUE, VR::SH, value);
    put_str(&mut o, tags::CODING_SCHEME_DESIGNATOR, VR::SH, scheme);
    put_str(&mut o, tags::CODE_MEANING, VR::LO, meaning);
    o
}

/// Decimal String of at most 16 characters (PS3.5 6.2), as precise as fits.
pub fn ds(v: f64) -> String {
    let v = if v == 0.0 { 0.0 } else { v }; // no "-0"
    let s = format!("{v}");
    if s.len() <= 16 {
        return s;
    }
    for prec in (0..=15).rev() {
        let s = format!("{v:.prec$}");
        let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s };
        if s.len() <= 16 {
            return s;
        }
    }
    format!("{v:.6e}")
}

/// Current UTC date (YYYYMMDD) and time (HHMMSS).
pub(crate) fn now_utc() -> (String, String) {
    nodal_core::time::UtcTime::now().dicom_date_time()
}

/// Patient, general study and SOP common attributes shared by SEG and SR.
pub(crate) fn put_patient_study(o: &mut Obj, src: &DicomSource, study_uid: &str) {
    put_str(o, tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192");
    put_str(o, tags::PATIENT_NAME, VR::PN, &src.patient_name);
    put_str(o, tags::PATIENT_ID, VR::LO, &src.patient_id);
    put_str(o, tags::PATIENT_BIRTH_DATE, VR::DA, &src.patient_birth_date);
    put_str(o, tags::PATIENT_SEX, VR::CS, &src.patient_sex);
    put_str(o, tags::STUDY_INSTANCE_UID, VR::UI, study_uid);
    put_str(o, tags::STUDY_DATE, VR::DA, &src.study_date);
    put_str(o, tags::STUDY_TIME, VR::TM, &src.study_time);
    put_str(o, tags::STUDY_ID, VR::SH, &src.study_id);
    put_str(o, tags::ACCESSION_NUMBER, VR::SH, &src.accession_number);
    put_str(o, tags::REFERRING_PHYSICIAN_NAME, VR::PN, &src.referring_physician_name);
    if !src.study_description.is_empty() {
        put_str(o, tags::STUDY_DESCRIPTION, VR::LO, &src.study_description);
    }
}

/// General (and Enhanced General) Equipment: nodal as manufacturer and model, with the serial
/// number and software version of `opts`.
pub(crate) fn put_equipment(o: &mut Obj, opts: &DicomOptions) {
    put_str(o, tags::MANUFACTURER, VR::LO, MANUFACTURER);
    put_str(o, tags::MANUFACTURER_MODEL_NAME, VR::LO, MODEL_NAME);
    put_str(o, tags::DEVICE_SERIAL_NUMBER, VR::LO, &opts.device_serial_number);
    let mut versions = vec![opts.software_version.clone()];
    if let Some((id, version)) = &opts.model {
        versions.push(format!("{id} {version}").chars().take(64).collect());
    }
    put_strs(o, tags::SOFTWARE_VERSIONS, VR::LO, &versions);
}

/// The SOP Common and General Series attributes of a new instance, as SEG, SR and RT Structure
/// Set write them.
pub(crate) struct NewInstance<'a> {
    pub sop_class_uid: &'a str,
    pub sop_instance_uid: &'a str,
    pub modality: &'a str,
    pub series_instance_uid: &'a str,
    pub series_number: i32,
    pub series_description: &'a str,
    /// Creation date (YYYYMMDD) and time (HHMMSS), also the series'.
    pub date: &'a str,
    pub time: &'a str,
}

impl NewInstance<'_> {
    pub(crate) fn put(&self, o: &mut Obj) {
        put_str(o, tags::SOP_CLASS_UID, VR::UI, self.sop_class_uid);
        put_str(o, tags::SOP_INSTANCE_UID, VR::UI, self.sop_instance_uid);
        put_str(o, tags::INSTANCE_CREATION_DATE, VR::DA, self.date);
        put_str(o, tags::INSTANCE_CREATION_TIME, VR::TM, self.time);
        put_str(o, tags::MODALITY, VR::CS, self.modality);
        put_str(o, tags::SERIES_INSTANCE_UID, VR::UI, self.series_instance_uid);
        put_str(o, tags::SERIES_NUMBER, VR::IS, &self.series_number.to_string());
        put_str(o, tags::SERIES_DESCRIPTION, VR::LO, self.series_description);
        put_str(o, tags::SERIES_DATE, VR::DA, self.date);
        put_str(o, tags::SERIES_TIME, VR::TM, self.time);
    }
}

/// Study and series UIDs to write: the source's, or new ones (with a warning) when blank.
pub(crate) fn source_uids(src: &DicomSource, warnings: &mut Vec<String>) -> (String, String) {
    let study = if src.study_instance_uid.trim().is_empty() {
        warnings.push("source has no Study Instance UID; a new one was generated".into());
        crate::uid::new_uid()
    } else {
        src.study_instance_uid.trim().to_string()
    };
    let series = if src.series_instance_uid.trim().is_empty() {
        warnings.push("source has no Series Instance UID; the reference uses a generated one".into());
        crate::uid::new_uid()
    } else {
        src.series_instance_uid.trim().to_string()
    };
    (study, series)
}

/// SOP Class UID of the source images: the source's, or CT Image Storage (with a warning) when
/// blank.
pub(crate) fn source_sop_class(src: &DicomSource, warnings: &mut Vec<String>) -> String {
    if src.sop_class_uid.trim().is_empty() {
        warnings.push("source has no SOP Class UID; CT Image Storage assumed".into());
        CT_IMAGE_STORAGE.to_string()
    } else {
        src.sop_class_uid.trim().to_string()
    }
}

/// Writes `obj` as a DICOM Part 10 file (Explicit VR Little Endian), atomically.
pub(crate) fn write_file(path: &Path, obj: Obj) -> Result<(), ReportError> {
    let derr = |message: String| ReportError::DicomWrite { path: path.to_path_buf(), message };
    let file = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(EXPLICIT_VR_LE)
                .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
                .implementation_version_name(format!("NODAL_{}", env!("CARGO_PKG_VERSION"))),
        )
        .map_err(|e| derr(e.to_string()))?;
    let mut bytes = Vec::new();
    file.write_all(&mut bytes).map_err(|e| derr(e.to_string()))?;
    crate::atomic::write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_run_gets_its_own_series_numbers_and_description() {
        let at = |s| nodal_core::time::UtcTime::from_unix_seconds(s);
        let model = Some(("foveal".to_string(), "v3".to_string()));
        // 2026-12-07 12:30:45 UTC.
        let a = DicomOptions::for_run(model.clone(), at(1_796_646_645));
        assert_eq!(a.series_number, 71_230_451);
        assert_eq!(a.series_description, "nodal lymph nodes (foveal v3, 2026-12-07 12:30:45 UTC)");
        assert_eq!(a.sr_series_description, "nodal measurements (foveal v3, 2026-12-07 12:30:45 UTC)");
        let long = DicomOptions::for_run(Some(("m".repeat(80), "v".into())), at(0));
        assert!(long.series_description.len() <= 64 && long.sr_series_description.len() <= 64);
        assert!(long.rt_series_description.len() <= 64);
        assert_eq!(a.algorithm_name(), "nodal foveal v3");
        let b = DicomOptions::for_run(model, at(1_796_646_646));
        assert_ne!(a.series_number, b.series_number);
        assert_ne!(a.series_description, b.series_description);
        // The latest stamp of a month fits an IS.
        let last = DicomOptions::for_run(None, at(1_798_761_599));
        assert_eq!(last.series_number, 312_359_591);
        assert!(last.series_description.contains("measured"));
        assert_eq!(last.algorithm_name(), "nodal");
    }

    #[test]
    fn ds_fits_sixteen_chars() {
        assert_eq!(ds(-249.51171875), "-249.51171875");
        assert_eq!(ds(0.9765625), "0.9765625");
        assert_eq!(ds(-0.0), "0");
        // Shortest round-trip forms of 17 and 18 characters must be shortened.
        let x = 1.0 / 3.0;
        let s = ds(x);
        assert!(s.len() <= 16 && (s.parse::<f64>().unwrap() - x).abs() < 1e-13, "{s}");
        let y = -1234.0 - 1.0 / 7.0;
        let s = ds(y);
        assert!(s.len() <= 16 && (s.parse::<f64>().unwrap() - y).abs() < 1e-9, "{s}");
    }
}
