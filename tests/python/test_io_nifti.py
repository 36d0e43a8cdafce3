"""Cross-check of nodal's NIfTI reading and writing against nibabel.

nodal reads each input and writes it back (crates/io/examples/to_nifti.rs); nibabel must then see the
same affine (to float32 header precision) and the same voxel values as in the original.
"""
import os
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from cargo_example import example

ROOT = Path(__file__).resolve().parents[2]
TESTDATA = ROOT / ".cache" / "testdata"
TS_REF = TESTDATA / "totalsegmentator" / "tests" / "reference_files"


def _to_nifti_bin():
    return os.environ.get("NODAL_IO_TO_NIFTI") or example("to_nifti")


def nodal_to_nifti(src, dst, *extra):
    subprocess.run([_to_nifti_bin(), str(src), str(dst), *map(str, extra)], check=True, capture_output=True)
    return nib.load(str(dst))


def require_testdata():
    assert TS_REF.is_dir(), "registry test data missing: run `bash scripts/fetch-test-data.sh`"


def oblique_affine():
    """RAS affine with rotation about two axes, anisotropic spacing and a left-handed (flipped) axis."""
    a, b = 0.3, -0.2
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    m = np.eye(4)
    m[:3, :3] = rz @ rx @ np.diag([0.7, 0.9, -2.5])
    m[:3, 3] = [12.5, -40.25, 101.0]
    return m


DTYPES = {"u8": np.uint8, "i16": np.int16, "u16": np.uint16, "i32": np.int32, "f32": np.float32, "f64": np.float64}


@pytest.mark.parametrize("code", sorted(DTYPES))
@pytest.mark.parametrize("ext", [".nii", ".nii.gz"])
def test_nibabel_written_volume_round_trips_through_nodal(tmp_path, code, ext):
    rng = np.random.default_rng(7)
    dt = DTYPES[code]
    if np.issubdtype(dt, np.integer):
        info = np.iinfo(dt)
        data = rng.integers(info.min, info.max, size=(9, 7, 5), dtype=dt, endpoint=True)
    else:
        data = (rng.standard_normal((9, 7, 5)) * 1000).astype(dt)
    src = tmp_path / f"src{ext}"
    img = nib.Nifti1Image(data, oblique_affine())
    img.set_qform(oblique_affine(), code=1)
    img.to_filename(src)
    out = nodal_to_nifti(src, tmp_path / f"out{ext}", "--dtype", code)
    assert out.get_data_dtype() == np.dtype(dt)
    np.testing.assert_array_equal(np.asarray(out.dataobj), data)
    np.testing.assert_allclose(out.affine, nib.load(str(src)).affine, atol=1e-4)
    # Both forms are written, code 1 (scanner), units mm, and the qform agrees with the sform.
    h = out.header
    assert int(h["sform_code"]) == 1 and int(h["qform_code"]) == 1
    assert h.get_xyzt_units()[0] == "mm"
    np.testing.assert_allclose(h.get_qform(), h.get_sform(), atol=1e-4)


def test_qform_only_and_scaled_files_read_like_nibabel(tmp_path):
    data = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6) - 50
    img = nib.Nifti1Image(data, oblique_affine())
    img.set_sform(None, code=0)
    img.set_qform(oblique_affine(), code=1)
    img.header.set_slope_inter(0.5, -1024.0)
    src = tmp_path / "q.nii"
    img.to_filename(src)
    ref = nib.load(str(src))
    assert int(ref.header["sform_code"]) == 0
    out = nodal_to_nifti(src, tmp_path / "q_out.nii", "--dtype", "f32")
    np.testing.assert_allclose(out.affine, ref.affine, atol=1e-4)
    np.testing.assert_array_equal(np.asarray(out.dataobj), ref.get_fdata().astype(np.float32))


@pytest.mark.parametrize(
    "name,code",
    [("example_ct.nii.gz", "i32"), ("example_seg_dicom.nii.gz", "u8"), ("example_ct_sm.nii.gz", "i16"),
     ("example_mr_sm.nii.gz", "f64")],
)
def test_registry_nifti_reads_like_nibabel(tmp_path, name, code):
    require_testdata()
    ref = nib.load(str(TS_REF / name))
    out = nodal_to_nifti(TS_REF / name, tmp_path / "out.nii.gz", "--dtype", code)
    np.testing.assert_allclose(out.affine, ref.affine, atol=1e-4)
    np.testing.assert_array_equal(np.asarray(out.dataobj), ref.get_fdata().astype(DTYPES[code]))
    assert nib.aff2axcodes(out.affine) == nib.aff2axcodes(ref.affine)
