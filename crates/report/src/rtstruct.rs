//! DICOM RT Structure Set (SOP class 1.2.840.10008.5.1.4.1.1.481.3): one ROI per node, as
//! radiotherapy planning systems take contours.
//!
//! Each node becomes one ROI of closed planar contours, one contour per 8-connected piece of the
//! node on each axial slice of the source series, referencing that slice's image. A contour runs
//! through the centres of the piece's outer boundary pixels, clockwise on the image (Moore
//! neighbour tracing), with points where the boundary goes straight on left out. Filling such a
//! polygon with its boundary pixels included (as OpenCV-based readers do) gives back the piece;
//! holes inside a piece on a slice are not written — readers disagree on how to read nested
//! contours — so they read as filled (node masks rarely hold any: post-processing fills holes).
//!
//! The contour code is written here rather than taken from an image crate: the boundary tracing is
//! ~60 lines, and the crates that offer it bring a large dependency tree for this one function.
use crate::dcm::{self, code, put_ds, put_seq, put_str, put_strs, Obj};
use crate::seg::SegmentSpec;
use crate::{uid, ReportError};
use dicom_core::VR;
use dicom_dictionary_std::tags;
use nodal_core::{Label, Volume};
use serde::{Deserialize, Serialize};
use std::path::Path;

pub use crate::dcm::{DicomOptions, DicomSource};

/// RT Structure Set Storage SOP Class UID.
pub const RT_STRUCTURE_SET_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.481.3";
/// The SOP class conventionally referenced for the study in RT Referenced Study Sequence
/// (Detached Study Management, retired but what RT systems expect there).
const STUDY_MANAGEMENT_SOP_CLASS: &str = "1.2.840.10008.3.1.2.3.1";

/// What was written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RtStructInstance {
    pub sop_instance_uid: String,
    pub series_instance_uid: String,
    /// ROI number and name per node, in the order of the segments.
    pub rois: Vec<(u32, String)>,
    /// Contours written over all ROIs.
    pub n_contours: usize,
    pub warnings: Vec<String>,
}

/// A closed contour on slice `k`: pixel centres `(i, j)` of the boundary, clockwise on the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceContour {
    pub k: usize,
    pub points: Vec<(usize, usize)>,
}

/// The outer contours of every 8-connected piece of `node_id` on each slice of `labels`, slices in
/// increasing k, pieces in raster order of their first pixel.
pub fn node_contours<L: Label>(labels: &Volume<L>, node_id: u32) -> Vec<SliceContour> {
    let [ni, nj, nk] = labels.dims();
    let data = labels.data();
    let mut out = Vec::new();
    for k in 0..nk {
        let plane = data.index_axis(ndarray::Axis(0), k);
        let fg: Vec<bool> = plane.iter().map(|v| v.as_usize() as u32 == node_id).collect();
        if !fg.contains(&true) {
            continue;
        }
        let mut seen = vec![false; fg.len()];
        for start in 0..fg.len() {
            if !fg[start] || seen[start] {
                continue;
            }
            mark_piece(&fg, &mut seen, start, ni, nj);
            let points = trace_outer(&fg, start, ni, nj);
            out.push(SliceContour { k, points: corners(&points) });
        }
    }
    out
}

/// The eight neighbour offsets `(di, dj)`, clockwise on the image (j runs down): E, SE, S, SW, W,
/// NW, N, NE.
const DIRS: [(i64, i64); 8] = [(1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1)];

/// Marks the 8-connected piece of `fg` holding `start` in `seen`.
fn mark_piece(fg: &[bool], seen: &mut [bool], start: usize, ni: usize, nj: usize) {
    let mut stack = vec![start];
    seen[start] = true;
    while let Some(q) = stack.pop() {
        let (i, j) = ((q % ni) as i64, (q / ni) as i64);
        for (di, dj) in DIRS {
            let (x, y) = (i + di, j + dj);
            if x >= 0 && y >= 0 && (x as usize) < ni && (y as usize) < nj {
                let n = y as usize * ni + x as usize;
                if fg[n] && !seen[n] {
                    seen[n] = true;
                    stack.push(n);
                }
            }
        }
    }
}

/// Moore neighbour tracing of the outer boundary from `start`, the piece's first pixel in raster
/// order (so its west, north-west, north and north-east neighbours are background). Stops when
/// the first step is about to be taken again.
fn trace_outer(fg: &[bool], start: usize, ni: usize, nj: usize) -> Vec<(usize, usize)> {
    let at = |i: i64, j: i64| {
        i >= 0 && j >= 0 && (i as usize) < ni && (j as usize) < nj && fg[j as usize * ni + i as usize]
    };
    let s = ((start % ni) as i64, (start / ni) as i64);
    let mut contour = vec![(s.0 as usize, s.1 as usize)];
    // `back`: the direction, seen from the current pixel, of the background pixel it was entered
    // beside; the search goes clockwise from the one after it.
    let (mut p, mut back) = (s, 4usize);
    let mut first_step = None;
    // Each boundary pixel is entered at most once per side: a bound that a bug cannot outrun.
    for _ in 0..8 * fg.len() + 8 {
        let Some(t) = (1..=8).find(|&t| {
            let (di, dj) = DIRS[(back + t) % 8];
            at(p.0 + di, p.1 + dj)
        }) else {
            break; // a single pixel
        };
        let d = (back + t) % 8;
        let q = (p.0 + DIRS[d].0, p.1 + DIRS[d].1);
        if first_step == Some((p, q)) {
            break;
        }
        first_step.get_or_insert((p, q));
        // The last background neighbour checked, as seen from q.
        let b = DIRS[(back + t - 1) % 8];
        let rel = (p.0 + b.0 - q.0, p.1 + b.1 - q.1);
        back = DIRS.iter().position(|&o| o == rel).expect("consecutive neighbours of p are neighbours of q");
        p = q;
        // The start pixel too: a piece whose first pixel joins two parts passes it twice.
        contour.push((p.0 as usize, p.1 as usize));
    }
    // The walk ends back on the start pixel, already first in the list.
    if contour.len() > 1 && contour.last() == contour.first() {
        contour.pop();
    }
    contour
}

/// Drops points where the boundary goes straight on (the polygon is unchanged).
fn corners(points: &[(usize, usize)]) -> Vec<(usize, usize)> {
    let n = points.len();
    if n < 3 {
        return points.to_vec();
    }
    let d = |a: (usize, usize), b: (usize, usize)| (b.0 as i64 - a.0 as i64, b.1 as i64 - a.1 as i64);
    (0..n)
        .filter(|&m| d(points[(m + n - 1) % n], points[m]) != d(points[m], points[(m + 1) % n]))
        .map(|m| points[m])
        .collect()
}

/// Writes an RT Structure Set with one ROI per segment (its voxels in `labels`) to `path`,
/// atomically. `labels` must be on the source series' grid, as for the SEG.
pub fn write_rtstruct<L: Label>(
    path: &Path,
    labels: &Volume<L>,
    segments: &[SegmentSpec],
    src: &DicomSource,
    opts: &DicomOptions,
) -> Result<RtStructInstance, ReportError> {
    crate::seg::check_source(labels, src)?;
    let mut warnings = Vec::new();
    let (study_uid, source_series_uid) = dcm::source_uids(src, &mut warnings);
    let image_class = dcm::source_sop_class(src, &mut warnings);
    let frame_uid = src.frame_of_reference_uid.trim();
    let image_ref = |k: usize| {
        let mut it = Obj::new_empty();
        put_str(&mut it, tags::REFERENCED_SOP_CLASS_UID, VR::UI, &image_class);
        put_str(&mut it, tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, src.sop_instance_uids[k].trim());
        it
    };
    let sop_uid = uid::new_uid();
    let series_uid = uid::new_uid();
    let (date, time) = dcm::now_utc();

    let mut o = Obj::new_empty();
    dcm::put_patient_study(&mut o, src, &study_uid);
    dcm::NewInstance {
        sop_class_uid: RT_STRUCTURE_SET_STORAGE,
        sop_instance_uid: &sop_uid,
        modality: "RTSTRUCT",
        series_instance_uid: &series_uid,
        series_number: opts.series_number + 2,
        series_description: &opts.rt_series_description,
        date: &date,
        time: &time,
    }
    .put(&mut o);
    put_str(&mut o, tags::OPERATORS_NAME, VR::PN, "");
    put_str(&mut o, tags::FRAME_OF_REFERENCE_UID, VR::UI, frame_uid);
    put_str(&mut o, tags::POSITION_REFERENCE_INDICATOR, VR::LO, "");
    dcm::put_equipment(&mut o, opts);
    // Structure set.
    put_str(&mut o, tags::INSTANCE_NUMBER, VR::IS, "1");
    put_str(&mut o, tags::STRUCTURE_SET_LABEL, VR::SH, "Lymph nodes");
    put_str(&mut o, tags::STRUCTURE_SET_NAME, VR::LO, &opts.algorithm_name());
    put_str(&mut o, tags::STRUCTURE_SET_DATE, VR::DA, &date);
    put_str(&mut o, tags::STRUCTURE_SET_TIME, VR::TM, &time);
    let mut series = Obj::new_empty();
    put_str(&mut series, tags::SERIES_INSTANCE_UID, VR::UI, &source_series_uid);
    put_seq(&mut series, tags::CONTOUR_IMAGE_SEQUENCE, (0..labels.dims()[2]).map(image_ref).collect());
    let mut study = Obj::new_empty();
    put_str(&mut study, tags::REFERENCED_SOP_CLASS_UID, VR::UI, STUDY_MANAGEMENT_SOP_CLASS);
    put_str(&mut study, tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, &study_uid);
    put_seq(&mut study, tags::RT_REFERENCED_SERIES_SEQUENCE, vec![series]);
    let mut frame = Obj::new_empty();
    put_str(&mut frame, tags::FRAME_OF_REFERENCE_UID, VR::UI, frame_uid);
    put_seq(&mut frame, tags::RT_REFERENCED_STUDY_SEQUENCE, vec![study]);
    put_seq(&mut o, tags::REFERENCED_FRAME_OF_REFERENCE_SEQUENCE, vec![frame]);

    let algorithm = if opts.model.is_some() { "AUTOMATIC" } else { "" };
    let (mut roi_items, mut contour_items, mut observations, mut rois) = (vec![], vec![], vec![], vec![]);
    let mut n_contours = 0;
    let g = labels.geometry();
    for s in segments {
        let number = u32::from(s.number);
        let mut roi = Obj::new_empty();
        put_str(&mut roi, tags::ROI_NUMBER, VR::IS, &number.to_string());
        put_str(&mut roi, tags::REFERENCED_FRAME_OF_REFERENCE_UID, VR::UI, frame_uid);
        put_str(&mut roi, tags::ROI_NAME, VR::LO, &s.segment_label);
        put_str(&mut roi, tags::ROI_GENERATION_ALGORITHM, VR::CS, algorithm);
        put_str(&mut roi, tags::ROI_GENERATION_DESCRIPTION, VR::LO, &opts.algorithm_name());
        roi_items.push(roi);

        let contours = node_contours(labels, s.node_id);
        if contours.is_empty() {
            return Err(ReportError::InvalidInput(format!(
                "ROI {} (node id {}) has no voxels in the label map",
                s.number, s.node_id
            )));
        }
        let items: Vec<Obj> = contours
            .iter()
            .enumerate()
            .map(|(c, sc)| {
                let mut it = Obj::new_empty();
                put_seq(&mut it, tags::CONTOUR_IMAGE_SEQUENCE, vec![image_ref(sc.k)]);
                put_str(&mut it, tags::CONTOUR_GEOMETRIC_TYPE, VR::CS, "CLOSED_PLANAR");
                put_str(&mut it, tags::NUMBER_OF_CONTOUR_POINTS, VR::IS, &sc.points.len().to_string());
                put_str(&mut it, tags::CONTOUR_NUMBER, VR::IS, &(c + 1).to_string());
                let xyz: Vec<f64> = sc
                    .points
                    .iter()
                    .flat_map(|&(i, j)| g.index_to_world([i as f64, j as f64, sc.k as f64]))
                    .collect();
                put_ds(&mut it, tags::CONTOUR_DATA, &xyz);
                it
            })
            .collect();
        n_contours += items.len();
        let mut rc = Obj::new_empty();
        put_strs(&mut rc, tags::ROI_DISPLAY_COLOR, VR::IS, &s.rgb.map(|c| c.to_string()));
        put_seq(&mut rc, tags::CONTOUR_SEQUENCE, items);
        put_str(&mut rc, tags::REFERENCED_ROI_NUMBER, VR::IS, &number.to_string());
        contour_items.push(rc);

        let mut obs = Obj::new_empty();
        put_str(&mut obs, tags::OBSERVATION_NUMBER, VR::IS, &number.to_string());
        put_str(&mut obs, tags::REFERENCED_ROI_NUMBER, VR::IS, &number.to_string());
        put_seq(
            &mut obs,
            tags::RTROI_IDENTIFICATION_CODE_SEQUENCE,
            vec![code("59441001", "SCT", "Lymph node")],
        );
        // Type 2, empty: a detected node is neither a target nor an organ at risk until a
        // planner says so.
        put_str(&mut obs, tags::RTROI_INTERPRETED_TYPE, VR::CS, "");
        put_str(&mut obs, tags::ROI_INTERPRETER, VR::PN, "");
        observations.push(obs);
        rois.push((number, s.segment_label.clone()));
    }
    put_seq(&mut o, tags::STRUCTURE_SET_ROI_SEQUENCE, roi_items);
    put_seq(&mut o, tags::ROI_CONTOUR_SEQUENCE, contour_items);
    put_seq(&mut o, tags::RTROI_OBSERVATIONS_SEQUENCE, observations);
    dcm::write_file(path, o)?;
    Ok(RtStructInstance {
        sop_instance_uid: sop_uid,
        series_instance_uid: series_uid,
        rois,
        n_contours,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nodal_core::Geometry;
    use proptest::prelude::*;

    /// Even-odd point-in-polygon, with points on an edge counted as inside (the boundary pixels
    /// are the polygon's vertices and edges).
    fn inside(poly: &[(usize, usize)], p: (usize, usize)) -> bool {
        let (px, py) = (p.0 as f64, p.1 as f64);
        let n = poly.len();
        let mut c = false;
        for m in 0..n {
            let (a, b) = (poly[m], poly[(m + 1) % n]);
            let (ax, ay, bx, by) = (a.0 as f64, a.1 as f64, b.0 as f64, b.1 as f64);
            // On the segment?
            let cross = (bx - ax) * (py - ay) - (by - ay) * (px - ax);
            if cross == 0.0 && px >= ax.min(bx) && px <= ax.max(bx) && py >= ay.min(by) && py <= ay.max(by) {
                return true;
            }
            if (ay > py) != (by > py) && px < ax + (py - ay) * (bx - ax) / (by - ay) {
                c = !c;
            }
        }
        c
    }

    fn one_slice(ni: usize, nj: usize, px: &[(usize, usize)]) -> Volume<u16> {
        let mut v = Volume::<u16>::zeros([ni, nj, 1], Geometry::axis_aligned([0.5, 0.5, 2.0], [0.0; 3]));
        for &(i, j) in px {
            v.data_mut()[[0, j, i]] = 1;
        }
        v
    }

    #[test]
    fn a_square_has_four_corners_clockwise() {
        let px: Vec<_> = (2..5).flat_map(|j| (1..4).map(move |i| (i, j))).collect();
        let c = node_contours(&one_slice(6, 7, &px), 1);
        assert_eq!(c, [SliceContour { k: 0, points: vec![(1, 2), (3, 2), (3, 4), (1, 4)] }]);
    }

    #[test]
    fn single_pixels_and_lines_are_contours() {
        let c = node_contours(&one_slice(5, 5, &[(2, 2), (4, 4)]), 1);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].points, [(2, 2)]);
        let c = node_contours(&one_slice(5, 5, &[(1, 1), (2, 1), (3, 1)]), 1);
        assert_eq!(c[0].points, [(1, 1), (3, 1)]);
    }

    proptest! {
        /// Filling each contour (boundary included) gives back the slice's mask with in-slice holes
        /// filled: checked against a flood fill from the border.
        #[test]
        fn contours_fill_back_to_the_mask(seed in 0u64..5000, ni in 1usize..12, nj in 1usize..12, density in 2u64..8) {
            let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let mut px = Vec::new();
            for j in 0..nj {
                for i in 0..ni {
                    s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    if (s >> 33) % 10 < density {
                        px.push((i, j));
                    }
                }
            }
            let vol = one_slice(ni, nj, &px);
            let contours = node_contours(&vol, 1);
            // The mask with holes filled: background not 4-connected to the border.
            let fg = |i: usize, j: usize| vol.data()[[0, j, i]] == 1;
            let mut outside = vec![false; ni * nj];
            let mut stack: Vec<(usize, usize)> = (0..nj)
                .flat_map(|j| (0..ni).map(move |i| (i, j)))
                .filter(|&(i, j)| (i == 0 || j == 0 || i + 1 == ni || j + 1 == nj) && !fg(i, j))
                .collect();
            for &(i, j) in &stack { outside[j * ni + i] = true; }
            while let Some((i, j)) = stack.pop() {
                for (di, dj) in [(1i64, 0i64), (-1, 0), (0, 1), (0, -1)] {
                    let (x, y) = (i as i64 + di, j as i64 + dj);
                    if x >= 0 && y >= 0 && (x as usize) < ni && (y as usize) < nj {
                        let (x, y) = (x as usize, y as usize);
                        if !fg(x, y) && !outside[y * ni + x] {
                            outside[y * ni + x] = true;
                            stack.push((x, y));
                        }
                    }
                }
            }
            for j in 0..nj {
                for i in 0..ni {
                    let got = contours.iter().any(|c| inside(&c.points, (i, j)));
                    // A background pixel enclosed by a diagonal-only ring is a hole of the 8-connected
                    // piece, so it fills too.
                    let want = fg(i, j) || !outside[j * ni + i];
                    prop_assert_eq!(got, want, "pixel ({}, {}) of {:?}", i, j, px);
                }
            }
        }
    }
}
