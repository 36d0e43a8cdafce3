//! DICOM SEG and SR on the grid of a real JPEG 2000 CT series (TotalSegmentator's example DICOM),
//! read back with dicom-object: every voxel of every segment, the references and the measurements.
//! highdicom checks the same files in `tests/python/test_report_dicom.py`.
mod support {
    pub mod dicom_series;
}

use dicom_dictionary_std::tags;
use dicom_object::{open_file, InMemDicomObject};
use nodal_core::Volume;
use nodal_nodes::measure::{measure_nodes, MeasureOptions};
use nodal_report::seg::{segments_for, write_seg, SEGMENTATION_STORAGE};
use nodal_report::sr::{write_sr, COMPREHENSIVE_3D_SR_STORAGE};
use nodal_report::{summarize, DicomOptions, ReportData, ReportError, ScanInfo};
use std::path::PathBuf;

fn series_dir() -> PathBuf {
    let p = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../.cache/testdata/totalsegmentator/tests/reference_files/example_ct_dicom"
    ));
    assert!(p.is_dir(), "{} is missing: run `bash scripts/fetch-test-data.sh`", p.display());
    p
}

/// Three balls (label, centre index, radius mm); label order differs from size order and ball 3
/// is cut by the last slice.
fn balls(labels: &mut Volume<u16>) {
    let g = *labels.geometry();
    let [ni, nj, nk] = labels.dims();
    for (label, ci, r) in
        [(1u16, [150.0, 300.0, 10.0], 6.0), (2, [380.0, 260.0, 7.0], 9.5), (3, [260.0, 150.0, 18.5], 7.0)]
    {
        let c = g.index_to_world(ci);
        for k in 0..nk {
            for j in 0..nj {
                for i in 0..ni {
                    let p = g.index_to_world([i as f64, j as f64, k as f64]);
                    if (0..3).map(|a| (p[a] - c[a]).powi(2)).sum::<f64>() <= r * r {
                        labels.data_mut()[[k, j, i]] = label;
                    }
                }
            }
        }
    }
}

fn text(o: &InMemDicomObject, tag: dicom_object::Tag) -> String {
    o.element(tag).unwrap().to_str().unwrap().trim_end_matches(['\0', ' ']).to_string()
}

fn items(o: &InMemDicomObject, tag: dicom_object::Tag) -> Vec<InMemDicomObject> {
    o.element(tag).unwrap().items().unwrap().to_vec()
}

#[test]
fn seg_and_sr_round_trip_on_a_real_series() {
    let (dims, geom, src) = support::dicom_series::read_series(&series_dir());
    assert_eq!(dims, [512, 512, 20]);
    let mut labels = Volume::<u16>::zeros(dims, geom);
    balls(&mut labels);
    let measured = measure_nodes(&labels, None, &MeasureOptions::default()).unwrap();
    let data = ReportData {
        scan: ScanInfo::from_volume("series", &labels),
        model: None,
        timings: vec![],
        nodes: measured
            .into_iter()
            .map(|m| nodal_report::NodeRecord::from(&nodal_detect::Detection::measured(m)))
            .collect(),
        evaluation: None,
        created: String::new(),
        software_version: "test".into(),
    };
    let summary = summarize(&data);
    let segments = segments_for(&summary);
    // Segment 1 is the largest ball (label 2).
    assert_eq!(segments.iter().map(|s| s.node_id).collect::<Vec<_>>(), [2, 3, 1]);
    let dir = tempfile::tempdir().unwrap();
    let seg_path = dir.path().join("nodes.seg.dcm");
    let opts = DicomOptions::default();
    // Written twice into the same folder: the second file replaces the first, nothing else remains.
    write_seg(&seg_path, &labels, &segments, &src, &opts).unwrap();
    let seg = write_seg(&seg_path, &labels, &segments, &src, &opts).unwrap();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    // The anonymised source blanks its study and series UIDs.
    assert_eq!(seg.warnings.len(), 2, "{:?}", seg.warnings);

    let obj = open_file(&seg_path).unwrap();
    assert_eq!(obj.meta().transfer_syntax().trim_end_matches('\0'), "1.2.840.10008.1.2.1");
    assert_eq!(text(&obj, tags::SOP_CLASS_UID), SEGMENTATION_STORAGE);
    assert_eq!(text(&obj, tags::SOP_INSTANCE_UID), seg.sop_instance_uid);
    assert_eq!(text(&obj, tags::FRAME_OF_REFERENCE_UID), src.frame_of_reference_uid);
    assert_eq!(text(&obj, tags::SEGMENTATION_TYPE), "BINARY");
    let segs = items(&obj, tags::SEGMENT_SEQUENCE);
    assert_eq!(segs.len(), 3);
    assert_eq!(text(&segs[0], tags::SEGMENT_LABEL), "Lymph node 1");
    assert_eq!(text(&segs[0], tags::TRACKING_UID), segments[0].tracking_uid);
    let prop = &items(&segs[0], tags::SEGMENTED_PROPERTY_TYPE_CODE_SEQUENCE)[0];
    assert_eq!(text(prop, tags::CODE_VALUE), "59441001");

    // Decode every frame back into a label volume (segment number -> label).
    let rows = obj.element(tags::ROWS).unwrap().to_int::<usize>().unwrap();
    let cols = obj.element(tags::COLUMNS).unwrap().to_int::<usize>().unwrap();
    assert_eq!((cols, rows), (512, 512));
    let n_frames = text(&obj, tags::NUMBER_OF_FRAMES).parse::<usize>().unwrap();
    assert_eq!(n_frames, seg.n_frames);
    let bits = obj.element(tags::PIXEL_DATA).unwrap().to_bytes().unwrap().to_vec();
    assert!(bits.len() >= (n_frames * rows * cols).div_ceil(8));
    let frames = items(&obj, tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE);
    assert_eq!(frames.len(), n_frames);
    let mut back = Volume::<u16>::zeros(dims, geom);
    for (f, fg) in frames.iter().enumerate() {
        let seg_no = items(fg, tags::SEGMENT_IDENTIFICATION_SEQUENCE)[0]
            .element(tags::REFERENCED_SEGMENT_NUMBER)
            .unwrap()
            .to_int::<u16>()
            .unwrap();
        let deriv = &items(fg, tags::DERIVATION_IMAGE_SEQUENCE)[0];
        let src_uid = text(&items(deriv, tags::SOURCE_IMAGE_SEQUENCE)[0], tags::REFERENCED_SOP_INSTANCE_UID);
        let k = src
            .sop_instance_uids
            .iter()
            .position(|u| *u == src_uid)
            .expect("frame references a source slice");
        // The frame's position is the source slice's.
        let ipp = items(fg, tags::PLANE_POSITION_SEQUENCE)[0]
            .element(tags::IMAGE_POSITION_PATIENT)
            .unwrap()
            .to_multi_float64()
            .unwrap();
        let want = geom.index_to_world([0.0, 0.0, k as f64]);
        assert!((0..3).all(|a| (ipp[a] - want[a]).abs() < 1e-6), "{ipp:?} vs {want:?}");
        let label = segments[seg_no as usize - 1].node_id as u16;
        for j in 0..rows {
            for i in 0..cols {
                let bit = f * rows * cols + j * cols + i;
                if bits[bit / 8] >> (bit % 8) & 1 == 1 {
                    assert_eq!(back.get(i, j, k), 0, "segments overlap at ({i}, {j}, {k})");
                    back.data_mut()[[k, j, i]] = label;
                }
            }
        }
    }
    assert_eq!(back, labels, "decoded SEG differs from the label map");
    // Only slices containing a segment are frames: ball 3 is cut by the last slice.
    let per_label =
        |l: u16| (0..20).filter(|&k| (0..512 * 512).any(|x| labels.get(x % 512, x / 512, k) == l)).count();
    assert_eq!(n_frames, per_label(1) + per_label(2) + per_label(3));
    let refs = items(&items(&obj, tags::REFERENCED_SERIES_SEQUENCE)[0], tags::REFERENCED_INSTANCE_SEQUENCE);
    assert!(!refs.is_empty() && refs.len() <= 20);

    // SR.
    let sr_path = dir.path().join("nodes.sr.dcm");
    let sr = write_sr(&sr_path, &summary, Some(&seg), &src, &opts).unwrap();
    assert_eq!(sr.n_groups, 3);
    let o = open_file(&sr_path).unwrap();
    assert_eq!(text(&o, tags::SOP_CLASS_UID), COMPREHENSIVE_3D_SR_STORAGE);
    assert_eq!(text(&o, tags::STUDY_INSTANCE_UID), seg.study_instance_uid);
    let root_name = &items(&o, tags::CONCEPT_NAME_CODE_SEQUENCE)[0];
    assert_eq!(text(root_name, tags::CODE_VALUE), "126000");
    let content = items(&o, tags::CONTENT_SEQUENCE);
    let meas = content.last().unwrap();
    let groups = items(meas, tags::CONTENT_SEQUENCE);
    assert_eq!(groups.len(), 3);
    for (g, n) in groups.iter().zip(&summary.nodes) {
        let mut sad = None;
        let mut seg_no = None;
        for it in items(g, tags::CONTENT_SEQUENCE) {
            let name = text(&items(&it, tags::CONCEPT_NAME_CODE_SEQUENCE)[0], tags::CODE_VALUE);
            if name == "103340004" {
                let mv = &items(&it, tags::MEASURED_VALUE_SEQUENCE)[0];
                sad = Some(mv.element(tags::FLOATING_POINT_VALUE).unwrap().to_float64().unwrap());
            }
            if name == "121191" {
                let r = &items(&it, tags::REFERENCED_SOP_SEQUENCE)[0];
                assert_eq!(text(r, tags::REFERENCED_SOP_INSTANCE_UID), seg.sop_instance_uid);
                seg_no = Some(r.element(tags::REFERENCED_SEGMENT_NUMBER).unwrap().to_int::<usize>().unwrap());
            }
        }
        assert_eq!(sad, Some(n.node.short_axis_mm));
        assert_eq!(seg_no, Some(n.rank));
    }
    // Every segment has a colour of its own.
    let lab: Vec<String> = segs
        .iter()
        .map(|s| format!("{:?}", s.element(tags::RECOMMENDED_DISPLAY_CIE_LAB_VALUE).unwrap()))
        .collect();
    assert!(lab[0] != lab[1] && lab[1] != lab[2] && lab[0] != lab[2], "{lab:?}");
}

/// No node: no SEG (it cannot be empty), but an SR that says so, with the source CT as evidence.
#[test]
fn an_sr_is_written_when_no_node_is_found() {
    let (dims, geom, src) = support::dicom_series::read_series(&series_dir());
    let labels = Volume::<u16>::zeros(dims, geom);
    let data = ReportData {
        scan: ScanInfo::from_volume("series", &labels),
        model: None,
        timings: vec![],
        nodes: vec![],
        evaluation: None,
        created: String::new(),
        software_version: "test".into(),
    };
    let summary = summarize(&data);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nodes.sr.dcm");
    let opts = DicomOptions::for_run(Some(("m".into(), "1".into())), nodal_core::time::UtcTime::now());
    let sr = write_sr(&path, &summary, None, &src, &opts).unwrap();
    assert_eq!(sr.n_groups, 0);
    let o = open_file(&path).unwrap();
    let content = items(&o, tags::CONTENT_SEQUENCE);
    let last = content.last().unwrap();
    assert_eq!(text(&items(last, tags::CONCEPT_NAME_CODE_SEQUENCE)[0], tags::CODE_VALUE), "C0034375");
    let finding = &items(last, tags::CONTENT_SEQUENCE)[0];
    assert!(text(finding, tags::TEXT_VALUE).starts_with("No lymph node"));
    let evidence = items(&o, tags::CURRENT_REQUESTED_PROCEDURE_EVIDENCE_SEQUENCE);
    let series = items(&evidence[0], tags::REFERENCED_SERIES_SEQUENCE);
    let refs = items(&series[0], tags::REFERENCED_SOP_SEQUENCE);
    assert_eq!(refs.len(), src.sop_instance_uids.len());
    assert_eq!(text(&refs[0], tags::REFERENCED_SOP_INSTANCE_UID), src.sop_instance_uids[0]);
    // A summary with nodes needs the SEG they are in.
    let (dims, geom, _) = support::dicom_series::read_series(&series_dir());
    let mut with_nodes = Volume::<u16>::zeros(dims, geom);
    balls(&mut with_nodes);
    let measured = measure_nodes(&with_nodes, None, &MeasureOptions::default()).unwrap();
    let data = ReportData {
        nodes: measured
            .into_iter()
            .map(|m| nodal_report::NodeRecord::from(&nodal_detect::Detection::measured(m)))
            .collect(),
        ..data
    };
    assert!(matches!(
        write_sr(&path, &summarize(&data), None, &src, &opts),
        Err(ReportError::InvalidInput(_))
    ));
}

#[test]
fn seg_rejects_references_that_do_not_fit_the_grid() {
    let (dims, geom, mut src) = support::dicom_series::read_series(&series_dir());
    let mut labels = Volume::<u16>::zeros(dims, geom);
    balls(&mut labels);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.seg.dcm");
    let segs = vec![nodal_report::seg::SegmentSpec {
        number: 1,
        node_id: 1,
        segment_label: "Lymph node 1".into(),
        tracking_id: "1".into(),
        tracking_uid: "2.25.1".into(),
        rgb: [255, 0, 0],
    }];
    let mut short = src.clone();
    short.sop_instance_uids.pop();
    let e = write_seg(&p, &labels, &segs, &short, &DicomOptions::default()).unwrap_err();
    assert!(
        matches!(e, ReportError::DicomSource(ref m) if m.contains("19 source SOP Instance UIDs for 20")),
        "{e}"
    );
    // A segment whose label is absent.
    let mut absent = segs.clone();
    absent[0].node_id = 7;
    let e = write_seg(&p, &labels, &absent, &src, &DicomOptions::default()).unwrap_err();
    assert!(matches!(e, ReportError::InvalidInput(_)), "{e}");
    src.frame_of_reference_uid.clear();
    assert!(write_seg(&p, &labels, &segs, &src, &DicomOptions::default()).is_err());
    assert!(!p.exists(), "no file is written on error");
}
