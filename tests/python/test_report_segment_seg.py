"""`nodal segment` on a real DICOM series -> DICOM SEG -> highdicom -> the same masks as nodes.nii.gz.

The series is TotalSegmentator's 20-slice JPEG 2000 CT; the labels come from the shipped model, so
this checks the whole chain a user runs (reader grid, segmentation, SEG frame references), not a
fixture written for the test.
"""
import os
import subprocess
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom

ROOT = Path(__file__).resolve().parents[2]
SERIES = ROOT / ".cache/testdata/totalsegmentator/tests/reference_files/example_ct_dicom"
NODAL = os.environ.get("NODAL_BIN", str(ROOT / "target/debug/nodal"))


def sorted_source_uids():
    ds = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(SERIES.iterdir())]
    iop = np.array(ds[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    ds.sort(key=lambda d: float(np.dot(normal, np.array(d.ImagePositionPatient, dtype=float))))
    return [str(d.SOPInstanceUID or d.file_meta.MediaStorageSOPInstanceUID) for d in ds]


def test_segment_seg_equals_label_map(tmp_path):
    assert SERIES.is_dir(), f"{SERIES} is missing: run `bash scripts/fetch-test-data.sh`"
    out = tmp_path / "seg"
    subprocess.run([NODAL, "segment", str(SERIES), "-o", str(out)], check=True, cwd=ROOT)
    labels = np.asarray(nib.load(out / "nodes.nii.gz").dataobj).astype(np.int64)  # [i, j, k]
    n_nodes = int(labels.max())
    assert n_nodes > 0, "the model found no node on this series; the SEG check needs at least one"
    seg = hd.seg.segread(out / "nodes.seg.dcm")
    assert seg.number_of_segments == n_nodes
    px = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=sorted_source_uids(),
        combine_segments=True,
        relabel=False,
        assert_missing_frames_are_empty=True,
    )  # [k, j, i]: frames follow the sorted source slices, rows = j, columns = i
    np.testing.assert_array_equal(px, labels.transpose(2, 1, 0))
    sr = hd.sr.srread(out / "nodes.sr.dcm")
    groups = sr.content.get_volumetric_roi_measurement_groups()
    assert len(groups) == n_nodes
