"""The RT Structure Set that `nodal measure LABELS --ct DICOM` writes, read back by rt-utils (an
independent reader that rasterises the contours with OpenCV) on TotalSegmentator's real JPEG 2000
series: every ROI gives back its node's voxels (in-slice holes filled, as documented), every contour
point lies on the centre of one of the node's voxels, and dciodvfy finds no error."""
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from rt_utils import RTStructBuilder
from scipy import ndimage as ndi

import test_measure_dicom
from test_measure_dicom import ct_grid, dciodvfy_errors, measure

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    """The registry series with its SOP Instance UIDs in the data set too: the files carry them only
    in their file meta (anonymised), and rt-utils matches images by the data set's."""
    src = test_measure_dicom.SERIES
    assert src.is_dir(), f"{src} is missing: run `bash scripts/fetch-test-data.sh`"
    out = tmp_path_factory.mktemp("series")
    for p in src.iterdir():
        ds = pydicom.dcmread(p)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
        ds.save_as(out / p.name)
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory, series):
    tmp = tmp_path_factory.mktemp("rt")
    ct = ct_grid(tmp, series)
    shape = ct.shape
    i, j, k = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    labels = np.zeros(shape, np.uint16)
    # A ball, an ellipsoid cut by the last slice, a ring (an in-slice hole) and a node in two pieces.
    labels[((i - 200) ** 2 + (j - 260) ** 2 + ((k - 10) * 2.05) ** 2) < 12**2] = 1
    labels[((i - 330) / 14.0) ** 2 + ((j - 250) / 8.0) ** 2 + ((k - shape[2] + 2) / 3.0) ** 2 < 1] = 2
    r2 = (i - 260) ** 2 + (j - 330) ** 2
    labels[(r2 < 9**2) & (r2 >= 4**2) & (abs(k - 14) <= 2)] = 3
    labels[(((i - 150) ** 2 + (j - 200) ** 2) < 5**2) & (abs(k - 20) <= 1)] = 4
    labels[(((i - 150) ** 2 + (j - 220) ** 2) < 4**2) & (abs(k - 20) <= 1)] = 4
    out = measure(nib.Nifti1Image(labels, ct.affine), tmp, "rt", series)
    return ct, labels, out, series


def test_rtstruct_is_valid_dicom(run):
    _, _, out, SERIES = run
    ds = pydicom.dcmread(out / "nodes.rtstruct.dcm")
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.481.3" and ds.Modality == "RTSTRUCT"
    src = pydicom.dcmread(next(SERIES.iterdir()), stop_before_pixels=True)
    seg = pydicom.dcmread(out / "nodes.seg.dcm", stop_before_pixels=True)
    # The source is anonymised without a Study Instance UID: the SEG's generated one is shared.
    assert ds.StudyInstanceUID == seg.StudyInstanceUID
    assert ds.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID == src.FrameOfReferenceUID
    # Its own series, numbered after the SEG's and SR's of the same run.
    assert int(ds.SeriesNumber) == int(seg.SeriesNumber) + 2
    assert ds.SeriesInstanceUID != seg.SeriesInstanceUID
    # ROI names and colours as the SEG's segments.
    names = [r.ROIName for r in ds.StructureSetROISequence]
    assert names == [s.SegmentLabel for s in seg.SegmentSequence]
    colours = {tuple(int(c) for c in r.ROIDisplayColor) for r in ds.ROIContourSequence}
    assert len(colours) == len(names)
    assert not dciodvfy_errors(out / "nodes.rtstruct.dcm")


def test_rt_utils_reads_back_every_node(run):
    ct, labels, out, SERIES = run
    rt = RTStructBuilder.create_from(dicom_series_path=str(SERIES), rt_struct_path=str(out / "nodes.rtstruct.dcm"))
    # rt-utils' masks are [row, column, slice], slices by position; nodal's grid (the NIfTI of the
    # same series) is [column, row, slice] in that same order.
    z = sorted(float(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[2]) for p in SERIES.iterdir())
    assert np.allclose(z, [(ct.affine @ [0, 0, s, 1])[2] for s in range(ct.shape[2])])
    names = rt.get_roi_names()
    assert sorted(names) == sorted(f"Lymph node {r}" for r in range(1, 5))
    for name in names:
        mask = rt.get_roi_mask_by_name(name).transpose(1, 0, 2)
        want = labels == node_of(out, name)
        # In-slice holes read as filled (the ring).
        want = np.stack([ndi.binary_fill_holes(want[:, :, s]) for s in range(want.shape[2])], axis=2)
        differ = int((mask != want).sum())
        assert differ == 0, f"{name}: {differ} voxels differ of {int(want.sum())}"


def node_of(out, name):
    """The label-map id of the node a ROI names, through the report's ranking."""
    report = json.loads((out / "report.json").read_text())
    rank = int(name.rsplit(" ", 1)[1])
    return next(n["node_id"] for n in report["summary"]["nodes"] if n["rank"] == rank)


def test_contour_points_are_voxel_centres_of_their_node(run):
    ct, labels, out, SERIES = run
    ds = pydicom.dcmread(out / "nodes.rtstruct.dcm")
    to_index = np.linalg.inv(ct.affine)
    uids = {}
    for p in SERIES.iterdir():
        h = pydicom.dcmread(p, stop_before_pixels=True)
        uids[str(h.SOPInstanceUID or h.file_meta.MediaStorageSOPInstanceUID)] = float(h.ImagePositionPatient[2])
    n_points = 0
    for roi, rc in zip(ds.StructureSetROISequence, ds.ROIContourSequence):
        assert rc.ReferencedROINumber == roi.ROINumber
        node = node_of(out, roi.ROIName)
        pieces_per_slice = {}
        for c in rc.ContourSequence:
            assert c.ContourGeometricType == "CLOSED_PLANAR"
            lps = np.array(c.ContourData, dtype=float).reshape(-1, 3)
            assert len(lps) == int(c.NumberOfContourPoints)
            # Each contour lies on the image it references.
            (img,) = c.ContourImageSequence
            assert np.allclose(lps[:, 2], uids[img.ReferencedSOPInstanceUID], atol=1e-3)
            ras = np.c_[-lps[:, 0], -lps[:, 1], lps[:, 2], np.ones(len(lps))]
            idx = (to_index @ ras.T).T[:, :3]
            assert np.abs(idx - np.round(idx)).max() < 1e-3  # on voxel centres (well within half a voxel)
            ii = np.round(idx).astype(int)
            assert (labels[ii[:, 0], ii[:, 1], ii[:, 2]] == node).all()
            pieces_per_slice[ii[0, 2]] = pieces_per_slice.get(ii[0, 2], 0) + 1
            n_points += len(lps)
        # One contour per 8-connected piece on each slice.
        for s, n in pieces_per_slice.items():
            _, want = ndi.label(labels[:, :, s] == node, structure=np.ones((3, 3)))
            assert n == want, (roi.ROIName, s)
    assert n_points > 100
