"""`nodal measure LABELS --ct DICOM`: masks from any model into a PACS.

Label maps are drawn here with nibabel on the grid nodal reads from TotalSegmentator's real JPEG 2000
series (via the `to_nifti` example); the DICOM SEG and SR that `measure` writes are read back with
highdicom and checked with dciodvfy. A map without nodes still gets an SR that says so.
"""
import json
import os
import shutil
import subprocess
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest

from cargo_example import example

ROOT = Path(__file__).resolve().parents[2]
SERIES = ROOT / ".cache/testdata/totalsegmentator/tests/reference_files/example_ct_dicom"
NODAL = os.environ.get("NODAL_BIN", str(ROOT / "target/debug/nodal"))


def ct_grid(tmp_path, series=SERIES):
    ct = tmp_path / "ct.nii.gz"
    subprocess.run([example("to_nifti"), str(series), str(ct)], check=True, cwd=ROOT)
    return nib.load(ct)


def measure(labels, tmp_path, name, series=SERIES):
    path = tmp_path / f"{name}.nii.gz"
    nib.save(labels, path)
    out = tmp_path / name
    subprocess.run([NODAL, "measure", str(path), "--ct", str(series), "-o", str(out)], check=True, cwd=ROOT)
    return out


def dciodvfy_errors(path):
    exe = shutil.which("dciodvfy")
    assert exe, "dciodvfy is missing: apt-get install dicom3tools"
    r = subprocess.run([exe, str(path)], capture_output=True, text=True)
    return [m for m in (r.stdout + r.stderr).splitlines() if m.startswith("Error")]


def test_measured_masks_become_seg_and_sr(tmp_path):
    assert SERIES.is_dir(), f"{SERIES} is missing: run `bash scripts/fetch-test-data.sh`"
    ct = ct_grid(tmp_path)
    shape = ct.shape
    i, j, k = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    labels = np.zeros(shape, np.uint16)
    # Two balls of different size (voxels ~0.98 x 0.98 x 2 mm).
    labels[((i - 200) ** 2 + (j - 260) ** 2 + ((k - 10) * 2.05) ** 2) < 12**2] = 1
    labels[((i - 330) ** 2 + (j - 250) ** 2 + ((k - 9) * 2.05) ** 2) < 8**2] = 2
    out = measure(nib.Nifti1Image(labels, ct.affine), tmp_path, "two")
    for name in ("nodes.seg.dcm", "nodes.sr.dcm", "report.html"):
        assert (out / name).is_file(), name
    seg = hd.seg.segread(out / "nodes.seg.dcm")
    assert seg.number_of_segments == 2
    # The source's nominal slice thickness (3 mm), not the 2 mm spacing between slices.
    src = pydicom.dcmread(next(SERIES.iterdir()), stop_before_pixels=True)
    pm = seg.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
    assert float(pm.SliceThickness) == float(src.SliceThickness) == 3.0
    # Distinct display colours; the algorithm is named.
    colours = {tuple(s.RecommendedDisplayCIELabValue) for s in seg.SegmentSequence}
    assert len(colours) == 2
    assert all(s.SegmentAlgorithmName.startswith("nodal") for s in seg.SegmentSequence)
    sr = hd.sr.srread(out / "nodes.sr.dcm")
    assert len(sr.content.get_volumetric_roi_measurement_groups()) == 2
    # Each axis carries its end points (SCOORD3D, LPS mm), equal to nodes.json's RECIST pair.
    nodes = json.loads((out / "nodes.json").read_text())["nodes"]
    ds = pydicom.dcmread(out / "nodes.sr.dcm")
    groups = ds.ContentSequence[-1].ContentSequence
    assert len(groups) == 2
    for g in groups:
        # The finding site follows the scan: this series is a crop of the abdomen, not a neck.
        (site,) = [it for it in g.ContentSequence if it.ConceptNameCodeSequence[0].CodeValue == "363698007"]
        assert site.ConceptCodeSequence[0].CodeValue == "113345001", site.ConceptCodeSequence[0].CodeMeaning
        nums = {it.ConceptNameCodeSequence[0].CodeValue: it for it in g.ContentSequence if it.ValueType == "NUM"}
        sad = float(nums["103340004"].MeasuredValueSequence[0].NumericValue)
        node = min(nodes, key=lambda n: abs(n["short_axis_mm"] - sad))
        for code, key in (("103340004", "short_axis"), ("103339001", "recist_long_axis")):
            num = nums[code]
            assert float(num.MeasuredValueSequence[0].NumericValue) == pytest.approx(node[f"{key}_mm"], rel=1e-9)
            (scoord,) = num.ContentSequence
            assert scoord.RelationshipType == "INFERRED FROM" and scoord.ValueType == "SCOORD3D"
            assert scoord.GraphicType == "POLYLINE"
            assert scoord.ReferencedFrameOfReferenceUID == src.FrameOfReferenceUID
            ends = np.array(scoord.GraphicData, dtype=float).reshape(2, 3)
            np.testing.assert_allclose(ends, np.array(node[f"{key}_endpoints_mm"]), atol=1e-4)
            # Both axes lie on one axial slice.
            assert ends[0, 2] == pytest.approx(ends[1, 2])
            assert np.linalg.norm(ends[1] - ends[0]) == pytest.approx(node[f"{key}_mm"], abs=1e-4)
    # The report places each node by slice, z (mm) and the image number a PACS shows.
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in SERIES.iterdir()]
    headers.sort(key=lambda d: float(d.ImagePositionPatient[2]))
    report = json.loads((out / "report.json").read_text())
    assert report["data"]["scan"]["slice_instance_numbers"] == [int(d.InstanceNumber) for d in headers]
    html = (out / "report.html").read_text()
    for n in nodes:
        k = n["short_axis_slice"]
        assert f"image {int(headers[k].InstanceNumber)})" in html
    # Two runs: series of their own.
    again = measure(nib.Nifti1Image(labels, ct.affine), tmp_path, "again")
    names = ("nodes.seg.dcm", "nodes.sr.dcm", "nodes.rtstruct.dcm")
    numbers = {pydicom.dcmread(d / n).SeriesNumber for d in (out, again) for n in names}
    assert len(numbers) == 6
    # The report says the scan is not a neck.
    assert "does not seem to show the neck" in html
    for name in names:
        assert not dciodvfy_errors(out / name), name


def test_no_node_gives_an_sr_that_says_so(tmp_path):
    assert SERIES.is_dir(), f"{SERIES} is missing: run `bash scripts/fetch-test-data.sh`"
    ct = ct_grid(tmp_path)
    out = measure(nib.Nifti1Image(np.zeros(ct.shape, np.uint8), ct.affine), tmp_path, "none")
    assert not (out / "nodes.seg.dcm").exists()
    sr = pydicom.dcmread(out / "nodes.sr.dcm")
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"
    last = sr.ContentSequence[-1]
    assert last.ConceptNameCodeSequence[0].CodeMeaning == "Qualitative Evaluations"
    assert last.ContentSequence[0].TextValue.startswith("No lymph node")
    refs = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence
    sources = {
        str(d.SOPInstanceUID or d.file_meta.MediaStorageSOPInstanceUID)
        for d in (pydicom.dcmread(p, stop_before_pixels=True) for p in SERIES.iterdir())
    }
    assert {r.ReferencedSOPInstanceUID for r in refs} == sources
    assert isinstance(hd.sr.srread(out / "nodes.sr.dcm"), hd.sr.Comprehensive3DSR)
    assert not dciodvfy_errors(out / "nodes.sr.dcm")
