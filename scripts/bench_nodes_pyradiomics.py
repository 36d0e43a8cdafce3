#!/usr/bin/env python3
"""Compares nodal's per-node long axis with PyRadiomics' `Maximum2DDiameterSlice`.

The two are different definitions, so they are not expected to be equal:
- nodal (evaluation protocol): per axial slice, the hull of all pixel *corners*;
- PyRadiomics: per axial slice, the largest distance between surface-*mesh* vertices (marching
  cubes on the mask: vertices at the midpoints between inside and outside voxel centres).
The mesh vertices lie inside the corner hull, and every corner is within half a pixel diagonal of
one, so PyRadiomics <= nodal <= PyRadiomics + one pixel diagonal. This script checks that bound on
random ellipsoid nodes and prints the differences.

PyRadiomics 3.x does not build in an isolated pip environment; install it with
`.cache/venv/bin/pip install versioneer setuptools wheel && .cache/venv/bin/pip install
--no-build-isolation pyradiomics`.

Usage: .cache/venv/bin/python scripts/bench_nodes_pyradiomics.py
"""
import json
import logging
import os
import subprocess
import sys
import tempfile

import nibabel as nib
import numpy as np
import SimpleITK as sitk
from radiomics import shape

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
logging.getLogger("radiomics").setLevel(logging.ERROR)


def main():
    subprocess.run(["cargo", "build", "-q", "-p", "nodal-eval", "--example", "measure_nii"], cwd=ROOT, check=True)
    exe = os.path.join(ROOT, "target", "debug", "examples", "measure_nii")
    rng = np.random.default_rng(3)
    spacing = (0.6, 0.8, 1.5)
    rows, ok = [], True
    ii, jj, kk = np.meshgrid(np.arange(48), np.arange(40), np.arange(16), indexing="ij")
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(12):
            ax = rng.uniform(2.0, 9.0, 3)
            rot = rng.uniform(0, np.pi)
            x, y, z = (ii - 24) * spacing[0], (jj - 20) * spacing[1], (kk - 8) * spacing[2]
            u = x * np.cos(rot) + y * np.sin(rot)
            v = -x * np.sin(rot) + y * np.cos(rot)
            mask = ((u / ax[0]) ** 2 + (v / ax[1]) ** 2 + (z / ax[2]) ** 2 <= 1).astype(np.uint8)
            path = os.path.join(tmp, f"m{n}.nii")
            nib.save(nib.Nifti1Image(mask, np.diag([*spacing, 1.0])), path)
            ours = json.loads(subprocess.run([exe, path], check=True, capture_output=True, text=True).stdout)[0]
            img = sitk.GetImageFromArray(mask.transpose(2, 1, 0).astype(np.uint8))
            img.SetSpacing(spacing)
            feats = shape.RadiomicsShape(img, img, label=1)
            theirs = float(feats.getMaximum2DDiameterSliceFeatureValue())
            diag = np.hypot(spacing[0], spacing[1])
            within = bool(theirs - 1e-6 <= ours["long_axis_mm"] <= theirs + diag + 1e-6)
            ok &= within
            rows.append({"node": n, "nodal_lad_mm": round(ours["long_axis_mm"], 4),
                         "pyradiomics_max2d_slice_mm": round(theirs, 4),
                         "difference_mm": round(ours["long_axis_mm"] - theirs, 4), "within_bound": within})
    print(json.dumps(rows, indent=1))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
