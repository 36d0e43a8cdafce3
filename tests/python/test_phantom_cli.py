"""Cross-checks of `nodal phantom` outputs with nibabel and SciPy (tools we did not write).

* Same seed -> byte-identical files; a different seed -> different CT.
* The NIfTI files: int16 CT and uint16 labels on one LPS-stored grid (nibabel axis codes L, P, S).
* nodes.json agrees with the label map: ids 1..n, volumes (voxel count x nibabel voxel size),
  centroids (nibabel affine), 26-connected single instances (scipy.ndimage.label), and each node's
  SAD/LAD recomputed independently with SciPy's ConvexHull of all pixel corners per axial slice
  (the protocol's definition).
"""
import json
import os
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial import ConvexHull

ROOT = Path(__file__).resolve().parents[2]
NODAL = os.environ.get("NODAL_BIN", str(ROOT / "target" / "debug" / "nodal"))


def _phantom(out, seed):
    subprocess.run([NODAL, "phantom", "--seed", str(seed), "--size", "small", "-o", str(out)], check=True)
    return out


@pytest.fixture(scope="module")
def ph(tmp_path_factory):
    return _phantom(tmp_path_factory.mktemp("p") / "a", 9)


def _axes(points_mm):
    """Long axis and short axis (width perpendicular to the long axis) of a 2D point set."""
    pts = np.unique(points_mm, axis=0)
    hull = pts[ConvexHull(pts).vertices] if len(pts) >= 3 else pts
    best = (-1.0, 0.0)
    for a in range(len(hull)):
        for b in range(a + 1, len(hull)):
            d = hull[b] - hull[a]
            lad = float(np.hypot(*d))
            if lad < best[0] - 1e-9:
                continue
            n = np.array([-d[1], d[0]]) / lad
            proj = hull @ n
            sad = float(proj.max() - proj.min())
            if lad > best[0] + 1e-9 or sad > best[1]:
                best = (lad, sad)
    return best


def test_same_seed_same_bytes(ph, tmp_path):
    other = _phantom(tmp_path / "b", 9)
    for f in ["ct.nii.gz", "nodes.nii.gz", "nodes.json"]:
        assert (ph / f).read_bytes() == (other / f).read_bytes(), f
    third = _phantom(tmp_path / "c", 10)
    assert (ph / "ct.nii.gz").read_bytes() != (third / "ct.nii.gz").read_bytes()


def test_files_and_grid(ph):
    ct = nib.load(ph / "ct.nii.gz")
    lab = nib.load(ph / "nodes.nii.gz")
    assert ct.get_data_dtype() == np.int16
    assert lab.get_data_dtype() == np.uint16
    assert np.allclose(ct.affine, lab.affine)
    assert nib.aff2axcodes(ct.affine) == ("L", "P", "S")
    hu = np.asarray(ct.dataobj)
    assert hu.min() >= -1024 and hu.max() <= 3071
    # Air outside the patient, soft tissue inside.
    assert np.median(hu[:5, :5, :]) < -900


def test_nodes_json_matches_label_map(ph):
    lab_img = nib.load(ph / "nodes.nii.gz")
    lab = np.asarray(lab_img.dataobj)
    meta = json.loads((ph / "nodes.json").read_text())
    nodes = meta["nodes"]
    assert 10 <= len(nodes) <= 40
    assert sorted(np.unique(lab)[1:].tolist()) == [n["id"] for n in nodes]
    zooms = np.array(lab_img.header.get_zooms()[:3], dtype=np.float64)
    aff = lab_img.affine
    for n in nodes:
        m = lab == n["id"]
        _, pieces = ndimage.label(m, structure=np.ones((3, 3, 3)))
        assert pieces == 1, f"node {n['id']} has {pieces} 26-connected pieces"
        assert n["volume_mm3"] == pytest.approx(m.sum() * zooms.prod(), rel=1e-6)
        ijk = np.argwhere(m).mean(axis=0)
        ras = aff[:3, :3] @ ijk + aff[:3, 3]
        lps = ras * np.array([-1, -1, 1])
        assert np.allclose(lps, n["centroid_mm"], atol=1e-3)
        # Independent SAD/LAD: pixel corners of each axial slice (axis 2 is S-I here).
        best_sad, best_lad = 0.0, 0.0
        for k in np.unique(np.argwhere(m)[:, 2]):
            ij = np.argwhere(m[:, :, k]).astype(np.float64)
            corners = np.concatenate([ij + [dx, dy] for dx in (-0.5, 0.5) for dy in (-0.5, 0.5)])
            lad, sad = _axes(corners * zooms[:2])
            best_sad, best_lad = max(best_sad, sad), max(best_lad, lad)
        assert n["sad_mm"] == pytest.approx(best_sad, abs=1e-6)
        assert n["lad_mm"] == pytest.approx(best_lad, abs=1e-6)
        assert n["level"] in ["I", "II", "III", "IV", "V", "VI"]
        assert n["side"] in ["right", "left"]
