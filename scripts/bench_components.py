#!/usr/bin/env python3
"""Benchmark: nodal's 3D connected components against cc3d (connected-components-3d, PyPI).

Builds one 512 x 512 x 300 random-blob mask (smoothed noise, thresholded), writes it as NIfTI, times
`cc3d.connected_components(connectivity=26)` and the Rust example
`cargo run --release -p nodal-eval --example cc_bench -- mask.nii` on the same mask in this run,
checks that both find the same number of components, and prints the time ratio.

Usage: .cache/venv/bin/python scripts/bench_components.py [--shape 512 512 300] [--repeat 3]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import cc3d
import nibabel as nib
import numpy as np
from scipy import ndimage

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def blob_mask(shape_ijk, seed=0, sigma=3.0, fraction=0.3):
    """Smoothed Gaussian noise thresholded at its (1 - fraction) quantile: random blobs."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(shape_ijk[::-1]).astype(np.float32)  # [k, j, i]
    smooth = ndimage.gaussian_filter(noise, sigma)
    return (smooth > np.quantile(smooth, 1.0 - fraction)).astype(np.uint8)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", type=int, nargs=3, default=[512, 512, 300], help="ni nj nk")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    mask_kji = blob_mask(args.shape)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "mask.nii")
        # NIfTI stores i fastest: nibabel wants the array indexed [i, j, k].
        nib.save(nib.Nifti1Image(np.ascontiguousarray(mask_kji.transpose(2, 1, 0)), np.eye(4)), path)

        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            labels, n_cc3d = cc3d.connected_components(mask_kji, connectivity=26, return_N=True)
            times.append(time.perf_counter() - t)
        cc3d_best = min(times)

        subprocess.run(["cargo", "build", "--release", "-q", "-p", "nodal-eval", "--example", "cc_bench"],
                       cwd=ROOT, check=True)
        out = subprocess.run(["cargo", "run", "--release", "-q", "-p", "nodal-eval", "--example", "cc_bench",
                              "--", path, "--repeat", str(args.repeat)],
                             cwd=ROOT, check=True, capture_output=True, text=True).stdout
        rust = json.loads(out.strip().splitlines()[-1])

    result = {
        "shape_ijk": args.shape,
        "foreground_fraction": float(mask_kji.mean()),
        "components_cc3d": int(n_cc3d),
        "components_nodal": rust["components"],
        "cc3d_seconds_best": round(cc3d_best, 4),
        "nodal_seconds_best": rust["seconds_best"],
        "nodal_threads": rust["threads"],
        "ratio_nodal_over_cc3d": round(rust["seconds_best"] / cc3d_best, 3),
        "cc3d_version": cc3d.__version__ if hasattr(cc3d, "__version__") else "unknown",
        "cpu_count": os.cpu_count(),
    }
    print(json.dumps(result, indent=2))
    if result["components_cc3d"] != result["components_nodal"]:
        print("component counts differ", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
