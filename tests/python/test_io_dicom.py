"""Cross-check of nodal's DICOM CT reading against pydicom (+ pylibjpeg for JPEG 2000).

nodal reads a series and writes it as NIfTI (int16 HU, RAS affine). For every DICOM slice, pydicom's
`pixel_array * RescaleSlope + RescaleIntercept` must equal nodal's voxels at the world position given
by ImagePositionPatient/ImageOrientationPatient/PixelSpacing.
"""
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from test_io_nifti import TESTDATA, TS_REF, nodal_to_nifti, require_testdata

PYDICOM_FILES = TESTDATA / "pydicom" / "pydicom" / "data" / "test_files"

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def frame_affine_ras(ipp, iop, spacing):
    """Index (i, j) -> RAS affine of one DICOM frame (k column unused)."""
    row, col = np.asarray(iop[:3], float), np.asarray(iop[3:], float)
    m = np.eye(4)
    m[:3, 0] = row * float(spacing[1])
    m[:3, 1] = col * float(spacing[0])
    m[:3, 3] = np.asarray(ipp, float)
    return LPS_TO_RAS @ m


def check_frame(vol, inv_affine, hu, ipp, iop, spacing):
    """The frame's 4 corners land on one k plane of nodal's volume, which holds exactly `hu`."""
    aff = frame_affine_ras(ipp, iop, spacing)
    rows, cols = hu.shape
    corners = np.array([[0, 0, 0, 1], [cols - 1, 0, 0, 1], [0, rows - 1, 0, 1], [cols - 1, rows - 1, 0, 1]]).T
    idx = (inv_affine @ aff @ corners)[:3]
    np.testing.assert_allclose(idx, np.round(idx), atol=1e-3)
    idx = np.round(idx).astype(int)
    # Map every pixel by the same integer transform the corners define.
    i0, j0, k0 = idx[:, 0]
    di = (idx[:, 1] - idx[:, 0]) // (cols - 1) if cols > 1 else np.array([1, 0, 0])
    dj = (idx[:, 2] - idx[:, 0]) // (rows - 1) if rows > 1 else np.array([0, 1, 0])
    jj, ii = np.mgrid[0:rows, 0:cols]
    vi = i0 + di[0] * ii + dj[0] * jj
    vj = j0 + di[1] * ii + dj[1] * jj
    vk = k0 + di[2] * ii + dj[2] * jj
    np.testing.assert_array_equal(vol[vi, vj, vk], hu)


def hu_of(ds, frame=None):
    arr = ds.pixel_array if frame is None else ds.pixel_array[frame]
    slope = float(getattr(ds, "RescaleSlope", 1.0))
    inter = float(getattr(ds, "RescaleIntercept", 0.0))
    return np.clip(np.round(arr.astype(np.float64) * slope + inter), -32768, 32767).astype(np.int16)


@pytest.mark.parametrize(
    "folder",
    [
        TS_REF / "example_ct_dicom",
        PYDICOM_FILES / "dicomdirtests" / "98892001" / "CT5N",
        PYDICOM_FILES / "CT_small.dcm",
        PYDICOM_FILES / "693_J2KI.dcm",
    ],
    ids=["jpeg2000-lossless-512x512x20", "ct5n", "ct_small", "jpeg2000-lossy"],
)
def test_series_hu_equal_pydicom(tmp_path, folder):
    require_testdata()
    img = nodal_to_nifti(folder, tmp_path / "ct.nii.gz")
    vol = np.asarray(img.dataobj)
    inv = np.linalg.inv(img.affine)
    files = sorted(folder.iterdir()) if folder.is_dir() else [folder]
    assert vol.shape[2] == len(files)
    for f in files:
        ds = pydicom.dcmread(f)
        check_frame(vol, inv, hu_of(ds), ds.ImagePositionPatient, ds.ImageOrientationPatient, ds.PixelSpacing)


def test_jpeg2000_series_is_really_jpeg2000():
    require_testdata()
    f = sorted((TS_REF / "example_ct_dicom").iterdir())[0]
    assert pydicom.dcmread(f).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.90"


def test_enhanced_ct_frames_equal_pydicom(tmp_path):
    require_testdata()
    path = TESTDATA / "pydicom-data" / "eCT_Supplemental.dcm"
    img = nodal_to_nifti(path, tmp_path / "ect.nii.gz")
    vol = np.asarray(img.dataobj)
    inv = np.linalg.inv(img.affine)
    ds = pydicom.dcmread(path)
    shared = ds.SharedFunctionalGroupsSequence[0]
    iop = shared.PlaneOrientationSequence[0].ImageOrientationPatient
    spacing = shared.PixelMeasuresSequence[0].PixelSpacing
    pvt = shared.PixelValueTransformationSequence[0]
    assert vol.shape[2] == int(ds.NumberOfFrames)
    for f, item in enumerate(ds.PerFrameFunctionalGroupsSequence):
        arr = ds.pixel_array[f].astype(np.float64) * float(pvt.RescaleSlope) + float(pvt.RescaleIntercept)
        hu = np.round(arr).astype(np.int16)
        check_frame(vol, inv, hu, item.PlanePositionSequence[0].ImagePositionPatient, iop, spacing)


def test_dicom_grid_matches_totalsegmentator_segmentation_grid(tmp_path):
    """nibabel sees nodal's volume of the series on the same world grid as TotalSegmentator's seg."""
    require_testdata()
    img = nodal_to_nifti(TS_REF / "example_ct_dicom", tmp_path / "ct.nii.gz")
    seg = nib.load(str(TS_REF / "example_seg_dicom.nii.gz"))
    assert img.shape == seg.shape
    # Same voxel centres: the seg's index (i, j, k) is nodal's (i, 511 - j, k).
    flip = np.eye(4)
    flip[1, 1], flip[1, 3] = -1, seg.shape[1] - 1
    np.testing.assert_allclose(img.affine @ flip, seg.affine, atol=1e-4)
