"""`nodal evaluate` against MedPy (assd, hd) and a scipy reference (directed distances with a
KD-tree: hd95 as the max of the directed 95th percentiles, avg_hd, mhd) on NIfTI masks with
anisotropic spacing, plus Dice and recall from numpy."""
import json
import os
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from medpy.metric import binary as mb
from scipy import ndimage
from scipy.spatial import cKDTree

ROOT = Path(__file__).resolve().parents[2]
NODAL = os.environ.get("NODAL_BIN", str(ROOT / "target" / "debug" / "nodal"))
# exactly representable in float32, the precision of NIfTI pixdim
SPACING = (0.75, 0.875, 2.0)


def ellipsoids(shape, specs):
    """Instance label map (i, j, k order) of ellipsoids: (centre_mm, radii_mm) per node."""
    grid = np.stack(np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, SPACING)], indexing="ij"), -1)
    lab = np.zeros(shape, np.uint16)
    for n, (c, r) in enumerate(specs, start=1):
        inside = (((grid - np.asarray(c)) / np.asarray(r)) ** 2).sum(-1) <= 1.0
        lab[inside] = n
    return lab


def write(arr, path):
    aff = np.diag([-SPACING[0], -SPACING[1], SPACING[2], 1.0])  # RAS affine of an LPS-stored grid
    nib.save(nib.Nifti1Image(arr, aff), str(path))


def surface(m):
    return m & ~ndimage.binary_erosion(m, structure=ndimage.generate_binary_structure(3, 1), border_value=0)


def directed(a, b):
    pa = np.argwhere(surface(a)) * np.asarray(SPACING)
    pb = np.argwhere(surface(b)) * np.asarray(SPACING)
    d, _ = cKDTree(pb).query(pa)
    return d


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    rng = np.random.default_rng(3)
    tmp = tmp_path_factory.mktemp("eval")
    (tmp / "pred").mkdir()
    (tmp / "gt").mkdir()
    cases = {}
    shape = (64, 56, 24)
    for case in ["c1", "c2", "c3"]:
        specs, pspecs = [], []
        for x in range(3):
            c = np.array([8.0 + 14.0 * x, 12.0 + 6.0 * rng.uniform(), 20.0 + 6.0 * rng.uniform()])
            r = rng.uniform(3.5, 5.5, 3)
            specs.append((c, r))
            pspecs.append((c + rng.normal(0, 0.8, 3), r * rng.uniform(0.8, 1.2, 3)))
        gt = ellipsoids(shape, specs)
        pred = (ellipsoids(shape, pspecs) > 0).astype(np.uint8)
        write(gt, tmp / "gt" / f"{case}.nii.gz")
        write(pred, tmp / "pred" / f"{case}_0000.nii.gz")
        cases[case] = (gt, pred)
    out = tmp / "out"
    subprocess.run([NODAL, "evaluate", "--pred", str(tmp / "pred"), "--gt", str(tmp / "gt"), "-o", str(out)],
                   check=True)
    return cases, json.loads((out / "evaluation.json").read_text()), tmp


def test_all_nodes_found(cohort):
    cases, ev, _ = cohort
    for s in ev["scans"]:
        gt, pred = cases[s["case_id"]]
        assert s["n_gt_nodes"] == 3 and s["n_gt_localized"] == 3, "precondition: filtered masks = full masks"
        assert s["n_fp"] == 0 and s["n_pred_removed_small"] == 0
        for node in s["nodes"]:
            m = gt == node["id"]
            assert node["sensitivity"] == pytest.approx((m & (pred > 0)).sum() / m.sum(), rel=1e-12)


def test_dice_and_distances_match_medpy(cohort):
    cases, ev, _ = cohort
    for s in ev["scans"]:
        gt, pred = cases[s["case_id"]]
        a, b = pred > 0, gt > 0
        assert s["dice"] == pytest.approx(mb.dc(a, b), rel=1e-12)
        assert s["assd"] == pytest.approx(mb.assd(a, b, voxelspacing=SPACING), rel=1e-9)
        assert s["hd"] == pytest.approx(mb.hd(a, b, voxelspacing=SPACING), rel=1e-9)
        dab, dba = directed(a, b), directed(b, a)
        assert s["avg_hd"] == pytest.approx((dab.mean() + dba.mean()) / 2, rel=1e-9)
        assert s["mhd"] == pytest.approx(max(dab.mean(), dba.mean()), rel=1e-9)
        assert s["hd95"] == pytest.approx(max(np.percentile(dab, 95), np.percentile(dba, 95)), rel=1e-9)


def test_grid_mismatch_exit_code(cohort, tmp_path):
    _, _, tmp = cohort
    (tmp_path / "p").mkdir()
    (tmp_path / "g").mkdir()
    write(np.zeros((8, 8, 8), np.uint8), tmp_path / "p" / "x.nii.gz")
    write(np.zeros((8, 8, 9), np.uint16), tmp_path / "g" / "x.nii.gz")
    r = subprocess.run([NODAL, "evaluate", "--pred", str(tmp_path / "p"), "--gt", str(tmp_path / "g"),
                        "-o", str(tmp_path / "o")], capture_output=True, text=True)
    assert r.returncode == 2
    assert "p/x.nii.gz" in r.stderr and "g/x.nii.gz" in r.stderr
