"""DICOM SEG and SR written by nodal-report, checked with highdicom (and dciodvfy when installed).

The SEG is written for synthetic balls on the grid of TotalSegmentator's real JPEG 2000 CT series
(example `seg_roundtrip`). highdicom's masks are compared voxel by voxel with the label map the
example wrote *and* with balls recomputed here from pydicom's reading of the source headers, so the
SEG's geometry is checked independently of nodal's own DICOM geometry code.
"""
import json
import os
import shutil
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from cargo_example import example

ROOT = Path(__file__).resolve().parents[2]
SERIES = ROOT / ".cache/testdata/totalsegmentator/tests/reference_files/example_ct_dicom"


def run_example(name, *args):
    subprocess.run([example(name), *map(str, args)], cwd=ROOT, check=True)


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    assert SERIES.is_dir(), f"{SERIES} is missing: run `bash scripts/fetch-test-data.sh`"
    d = tmp_path_factory.mktemp("seg")
    run_example("seg_roundtrip", SERIES, d)
    return d


def source_slices():
    """Source headers sorted along the slice normal, with their SOP Instance UIDs (from the file
    meta group when the anonymised dataset blanks them)."""
    ds = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(SERIES.iterdir())]
    iop = np.array(ds[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    ds.sort(key=lambda d: float(np.dot(normal, np.array(d.ImagePositionPatient, dtype=float))))
    uids = [str(d.SOPInstanceUID or d.file_meta.MediaStorageSOPInstanceUID) for d in ds]
    return ds, uids


def test_seg_masks_equal_label_map_voxel_by_voxel(out):
    meta = json.loads((out / "roundtrip.json").read_text())
    labels = np.load(out / "labels.npy")
    ds, uids = source_slices()
    assert meta["sop_instance_uids"] == uids, "slice order differs from pydicom's"
    seg = hd.seg.segread(out / "nodes.seg.dcm")
    assert seg.SegmentationType == "BINARY"
    assert seg.number_of_segments == len(meta["seg"]["segments"]) == 4
    assert seg.FrameOfReferenceUID == ds[0].FrameOfReferenceUID
    for s in seg.SegmentSequence:
        assert s.SegmentedPropertyTypeCodeSequence[0].CodeValue == "59441001"
        assert s.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "91723000"
        assert s.SegmentAlgorithmType == "AUTOMATIC"
        assert s.SegmentLabel == f"Lymph node {s.SegmentNumber}"
    px = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=uids,
        combine_segments=True,
        relabel=False,
        assert_missing_frames_are_empty=True,
    )
    expected = np.zeros(labels.shape, dtype=np.int64)
    for s in meta["seg"]["segments"]:
        expected[labels == s["node_id"]] = s["number"]
    assert px.shape == labels.shape
    assert (expected > 0).sum() > 1000
    np.testing.assert_array_equal(px, expected)
    # Tracking identifiers are those the SR uses.
    by_number = {s["number"]: s for s in meta["seg"]["segments"]}
    for s in seg.SegmentSequence:
        assert s.TrackingUID == by_number[s.SegmentNumber]["tracking_uid"]


def test_seg_places_balls_where_pydicom_geometry_says(out):
    """Balls recomputed from the source headers (IPP, IOP, PixelSpacing) with NumPy."""
    meta = json.loads((out / "roundtrip.json").read_text())
    ds, uids = source_slices()
    seg = hd.seg.segread(out / "nodes.seg.dcm")
    px = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=uids, combine_segments=True, relabel=False,
        assert_missing_frames_are_empty=True,
    )
    iop = np.array(ds[0].ImageOrientationPatient, dtype=float)
    dr, dc = np.array(ds[0].PixelSpacing, dtype=float)  # between rows, between columns
    rows, cols = ds[0].Rows, ds[0].Columns
    jj, ii = np.mgrid[0:rows, 0:cols]
    seg_of_label = {s["node_id"]: s["number"] for s in meta["seg"]["segments"]}
    for k, d in enumerate(ds):
        ipp = np.array(d.ImagePositionPatient, dtype=float)
        world = ipp + ii[..., None] * dc * iop[:3] + jj[..., None] * dr * iop[3:]
        want = np.zeros((rows, cols), dtype=np.int64)
        for b in meta["balls"]:
            inside = ((world - np.array(b["centre_mm"])) ** 2).sum(-1) <= b["radius_mm"] ** 2
            want[inside] = seg_of_label[b["node_id"]]
        np.testing.assert_array_equal(px[k], want, err_msg=f"slice {k}")


def test_sr_reads_back_with_highdicom(out):
    meta = json.loads((out / "roundtrip.json").read_text())
    sr = hd.sr.srread(out / "nodes.sr.dcm")
    assert isinstance(sr, hd.sr.Comprehensive3DSR)
    groups = sr.content.get_volumetric_roi_measurement_groups()
    nodes = meta["summary"]["nodes"]
    segs = {s["number"]: s for s in meta["seg"]["segments"]}
    assert len(groups) == len(nodes) == 4
    for g, n in zip(groups, nodes):
        seg = segs[n["rank"]]
        assert g.tracking_identifier == seg["tracking_id"]
        assert g.tracking_uid == seg["tracking_uid"]
        assert g.finding_type.value == "59441001"
        ref = g.referenced_segment
        assert ref.referenced_sop_instance_uid == meta["seg"]["sop_instance_uid"]
        assert list(ref.referenced_segment_numbers) == [n["rank"]]
        got = {m.name.value: (m.value, m.unit.value) for m in g.get_measurements()}
        assert got["103340004"] == (pytest.approx(n["short_axis_mm"], rel=1e-12), "mm")
        # The RECIST pair: the long axis on the short axis's slice.
        assert got["103339001"] == (pytest.approx(n["recist_long_axis_mm"], rel=1e-12), "mm")
        assert got["118565006"] == (pytest.approx(n["volume_mm3"], rel=1e-12), "mm3")
        site = g.finding_sites[0]
        assert site.value.value == "45048000"
        assert site.laterality.value == {"left": "7771000", "right": "24028007"}[n["side"]]


def test_dciodvfy_reports_no_errors(out):
    exe = shutil.which("dciodvfy")
    assert exe, "dciodvfy is missing: apt-get install dicom3tools"
    for name in ("nodes.seg.dcm", "nodes.sr.dcm"):
        r = subprocess.run([exe, str(out / name)], capture_output=True, text=True)
        msgs = (r.stdout + r.stderr).splitlines()
        errors = [m for m in msgs if m.startswith("Error")]
        assert not errors, "\n".join(msgs)
        # Only the anonymised source's empty Patient ID / Study ID are noted (DICOMDIR keys).
        warnings = [m for m in msgs if m.startswith("Warning") and "DICOMDIR" not in m]
        assert not warnings, "\n".join(msgs)


def test_rerun_into_the_same_folder_replaces_outputs(out):
    before = sorted(os.listdir(out))
    old_uid = pydicom.dcmread(out / "nodes.seg.dcm", stop_before_pixels=True).SOPInstanceUID
    run_example("seg_roundtrip", SERIES, out)
    assert sorted(os.listdir(out)) == before, "no temporary or extra files"
    new = pydicom.dcmread(out / "nodes.seg.dcm", stop_before_pixels=True)
    assert new.SOPInstanceUID != old_uid
    meta = json.loads((out / "roundtrip.json").read_text())
    assert meta["seg"]["sop_instance_uid"] == new.SOPInstanceUID
