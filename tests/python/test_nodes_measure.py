"""Cross-check of nodal's axial short/long axes (the protocol's definition) against an independent
SciPy computation, and of `nodal measure`'s outputs.

For every node and every axial slice, SciPy's ConvexHull of all pixel corners (in mm, from the
NIfTI affine) gives the long axis (largest vertex distance) and the short axis (hull width
perpendicular to it; among equally long diameters the widest perpendicular width). The node values
are the maxima over slices; nodal (crates/eval/examples/measure_nii.rs) must agree to 1e-6 mm.

PyRadiomics' `Maximum2DDiameterSlice` measures surface-*mesh* vertices (marching cubes: edge
midpoints between voxel centres), not pixel corners, so it is not expected to be equal; it is
compared in scripts/bench_nodes_pyradiomics.py.
"""
import csv
import json
import os
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy.spatial import ConvexHull

from cargo_example import example

ROOT = Path(__file__).resolve().parents[2]
NODAL = os.environ.get("NODAL_BIN", str(ROOT / "target" / "debug" / "nodal"))


def slice_axes(xy):
    """(long, short) of a 2D point set by the protocol's definition, via SciPy's hull."""
    xy = np.unique(xy, axis=0)
    if len(xy) < 3:
        d = np.sqrt(((xy[:, None] - xy[None]) ** 2).sum(-1)).max() if len(xy) > 1 else 0.0
        return d, 0.0
    h = xy[ConvexHull(xy).vertices]
    d = np.sqrt(((h[:, None] - h[None]) ** 2).sum(-1))
    long = d.max()
    best_w = 0.0
    for a, b in zip(*np.nonzero(d >= long - 1e-9 * long)):
        u = (h[b] - h[a]) / d[a, b]
        n = np.array([-u[1], u[0]])
        t = h @ n
        best_w = max(best_w, t.max() - t.min())
    return long, best_w


def reference_axes(labels_ijk, affine):
    """{label: (sad, lad)} for a volume whose k axis is along S-I."""
    out = {}
    for lab in np.unique(labels_ijk):
        if lab == 0:
            continue
        sad = lad = 0.0
        for k in range(labels_ijk.shape[2]):
            ii, jj = np.nonzero(labels_ijk[:, :, k] == lab)
            if len(ii) == 0:
                continue
            corners = []
            for di in (-0.5, 0.5):
                for dj in (-0.5, 0.5):
                    corners.append(np.stack([ii + di, jj + dj, np.full(len(ii), k), np.ones(len(ii))]))
            pts = (affine @ np.concatenate(corners, axis=1))[:2].T
            long, short = slice_axes(pts)
            lad, sad = max(lad, long), max(sad, short)
        out[int(lab)] = (sad, lad)
    return out


def random_label_map(rng, shape, n_nodes, semi_axes=(2, 7)):
    lab = np.zeros(shape, np.uint16)
    ii, jj, kk = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    for n in range(1, n_nodes + 1):
        c = rng.uniform(0.25, 0.75, 3) * shape
        ax = rng.uniform(*semi_axes, 3)
        rot = rng.uniform(0, np.pi)
        u = (ii - c[0]) * np.cos(rot) + (jj - c[1]) * np.sin(rot)
        v = -(ii - c[0]) * np.sin(rot) + (jj - c[1]) * np.cos(rot)
        lab[(u / ax[0]) ** 2 + (v / ax[1]) ** 2 + ((kk - c[2]) / (ax[2] / 2)) ** 2 <= 1] = n
    return lab


AFFINES = {
    # RAS storage, anisotropic.
    "ras": np.diag([0.6, 0.8, 1.5, 1.0]),
    # LPS storage (x and y flipped), and an in-plane rotation with a flipped slice axis.
    "lps": np.diag([-0.7, -0.7, 2.0, 1.0]),
    "rotated": np.array([[0.5 * np.cos(0.3), -0.9 * np.sin(0.3), 0, 10],
                         [0.5 * np.sin(0.3), 0.9 * np.cos(0.3), 0, -20],
                         [0, 0, -1.2, 30], [0, 0, 0, 1]]),
}


@pytest.mark.parametrize("name", sorted(AFFINES))
def test_axes_match_scipy_hull(tmp_path, name):
    exe = example("measure_nii")
    rng = np.random.default_rng(sorted(AFFINES).index(name) + 11)
    lab = random_label_map(rng, (40, 36, 14), 5)
    affine = AFFINES[name]
    path = tmp_path / "labels.nii"
    nib.save(nib.Nifti1Image(lab, affine), path)
    got = json.loads(subprocess.run([exe, str(path)], check=True, capture_output=True, text=True).stdout)
    want = reference_axes(lab, affine)
    assert sorted(want) == [m["node_id"] for m in got]
    for m in got:
        sad, lad = want[m["node_id"]]
        # NIfTI stores the affine as float32: allow for that rounding.
        assert m["long_axis_mm"] == pytest.approx(lad, abs=1e-4), m["node_id"]
        assert m["short_axis_mm"] == pytest.approx(sad, abs=1e-4), m["node_id"]
        assert m["voxel_count"] == int((lab == m["node_id"]).sum())


def test_golden_ball_through_cli(tmp_path):
    """The protocol's example through `nodal measure`: r = 5 mm at 0.5 x 0.5 x 1 mm -> 10.70 mm."""
    ii, jj, kk = np.meshgrid(np.arange(31), np.arange(31), np.arange(17), indexing="ij")
    ball = (((ii - 15) * 0.5) ** 2 + ((jj - 15) * 0.5) ** 2 + ((kk - 8) * 1.0) ** 2 <= 25).astype(np.uint8)
    src = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image(ball, np.diag([0.5, 0.5, 1.0, 1.0])), src)
    ct = tmp_path / "ct.nii.gz"
    hu = np.where(ball > 0, 40, -100).astype(np.int16)
    hu[15, 15, 8] = -5  # one necrotic voxel in the interior
    nib.save(nib.Nifti1Image(hu, np.diag([0.5, 0.5, 1.0, 1.0])), ct)
    out = tmp_path / "out"
    subprocess.run([NODAL, "measure", str(src), "--mask", "--ct", str(ct), "-o", str(out)], check=True)
    doc = json.loads((out / "nodes.json").read_text())
    assert doc["schema"] == "nodal.nodes/1"
    assert doc["source"]["input_kind"] == "mask"
    (node,) = doc["nodes"]
    assert node["short_axis_mm"] == pytest.approx(10.70, abs=0.005)
    assert node["long_axis_mm"] == pytest.approx(10.70, abs=0.005)
    assert node["voxel_count"] == int(ball.sum())
    assert node["volume_mm3"] == pytest.approx(ball.sum() * 0.25)
    assert node["recist_category"] == "pathological_non_target"
    assert node["node_rads_size"] == "enlarged"
    interior = int(np.sum(ball & np.all([np.roll(ball, s, a) for a in range(3) for s in (1, -1)], axis=0)))
    assert node["interior_voxel_count"] == interior
    assert node["necrosis_fraction"] == pytest.approx(1 / interior)
    assert node["hu"]["mean_hu"] == pytest.approx(hu[ball > 0].mean())
    assert node["hu"]["p10_hu"] == pytest.approx(np.percentile(hu[ball > 0], 10))
    labels = nib.load(out / "nodes.nii.gz")
    assert labels.get_data_dtype() == np.uint16
    assert np.array_equal(np.asarray(labels.dataobj) > 0, ball > 0)
    np.testing.assert_allclose(labels.affine, np.diag([0.5, 0.5, 1.0, 1.0]), atol=1e-6)
    rows = list(csv.DictReader((out / "nodes.csv").open()))
    assert len(rows) == 1 and float(rows[0]["short_axis_mm"]) == pytest.approx(node["short_axis_mm"])


def test_recall_ceiling_matches_scipy(tmp_path):
    """`nodal evaluate`'s `countable` flags against SciPy: with the ground truth itself as the
    prediction, a node counts when the 26-connected components of the GT mask whose hull short axis
    is >= 4.5 mm cover >= 40% of it. Nodes of about 2-6 mm at 0.7 mm pixels, some touching."""
    from scipy import ndimage

    rng = np.random.default_rng(5)
    affine = np.diag([-0.7, -0.7, 1.5, 1.0])
    lab = random_label_map(rng, (96, 96, 20), 16, semi_axes=(1.5, 4.5))
    gt_dir, out = tmp_path / "gt", tmp_path / "out"
    gt_dir.mkdir()
    nib.save(nib.Nifti1Image(lab, affine), gt_dir / "case.nii.gz")
    subprocess.run([NODAL, "evaluate", "--pred", str(gt_dir), "--gt", str(gt_dir), "-o", str(out)],
                   check=True, capture_output=True)
    scan = json.loads((out / "evaluation.json").read_text())["scans"][0]
    comps, _ = ndimage.label(lab > 0, structure=np.ones((3, 3, 3)))
    kept = {c for c, (sad, _) in reference_axes(comps, affine).items() if sad >= 4.5}
    want = {}
    for node in np.unique(lab[lab > 0]):
        inside = comps[lab == node]
        want[int(node)] = np.isin(inside, list(kept)).mean() >= 0.4
    got = {n["id"]: n["countable"] for n in scan["nodes"]}
    assert got == want
    assert 0 < sum(want.values()) < len(want), "precondition: nodes on both sides of the filter"
    assert scan["n_gt_countable"] == sum(want.values())
    assert scan["recall_ceiling"] == pytest.approx(sum(want.values()) / len(want))
    assert scan["recall"] == scan["recall_ceiling"], "the ground truth reaches its own ceiling"


def test_cli_rejects_non_binary_mask_and_grid_mismatch(tmp_path):
    lab = np.zeros((8, 8, 8), np.uint8)
    lab[2:4, 2:4, 2:4] = 1
    lab[5:7, 5:7, 5:7] = 3
    src = tmp_path / "lab.nii"
    nib.save(nib.Nifti1Image(lab, np.eye(4)), src)
    r = subprocess.run([NODAL, "measure", str(src), "--mask", "-o", str(tmp_path / "o")], capture_output=True, text=True)
    assert r.returncode == 2 and "not binary" in r.stderr
    # Detected as a label map: ids 1 and 3 kept.
    subprocess.run([NODAL, "measure", str(src), "-o", str(tmp_path / "o2")], check=True)
    doc = json.loads((tmp_path / "o2" / "nodes.json").read_text())
    assert [n["node_id"] for n in doc["nodes"]] == [1, 3] and doc["source"]["input_kind"] == "label_map"
    ct = tmp_path / "ct.nii"
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 9), np.int16), np.eye(4)), ct)
    r = subprocess.run([NODAL, "measure", str(src), "--ct", str(ct), "-o", str(tmp_path / "o3")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "grid" in r.stderr
