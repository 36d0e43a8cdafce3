#!/usr/bin/env python3
"""Benchmark: `nodal evaluate` (release) vs panoptica on the same synthetic cohort.

Builds 20 scans of 512 x 512 x 200 voxels (0.7 x 0.7 x 1.5 mm): ground truth = 30 balls (radius
2.5-9 mm) per scan as an instance label map; prediction = the balls shifted by up to one voxel with
radii scaled by 0.92-1.08. Odd-numbered scans also miss 3 nodes and hold 3 false-positive balls;
even-numbered scans are "clean" (every node predicted, no false positive). Everything is written as
.nii.gz; then both tools evaluate the same files in the same run and we report per-scan agreement
and the wall-clock ratio.

Closest equivalent panoptica settings: semantic prediction, reference as unmatched instances
(InputType.UNMATCHED_INSTANCE after 26-connected labelling of the prediction with cc3d), naive
threshold matching on IoU >= 0.4 with many-to-one allowed, global binary Dice. nodal's localization is
sensitivity >= 0.4 and its Dice is computed on masks without FPs/FNs, so:
  * recall = TP / GT nodes and precision = TP / predicted components are compared on every scan
    (the perturbation keeps IoU and sensitivity of matched nodes far above 0.4, so both rules agree);
  * Dice is compared on the clean scans, where nodal's filtered masks equal the full masks.

Not part of CI. Usage (after `cargo build --release -p nodal` and `pip install panoptica==2.1.7`
into .cache/venv):
    .cache/venv/bin/python scripts/bench_eval.py [--dir .cache/bench-eval] [--scans 20]
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHAPE = (512, 512, 200)  # i, j, k
SPACING = (0.7, 0.7, 1.5)


def ball(lab, centre_vox, radius_mm, value):
    """Paints a ball (radius in mm, centre in voxels) into `lab` (i, j, k order) inside its box."""
    r_vox = [radius_mm / s for s in SPACING]
    lo = [max(0, int(np.floor(c - r))) for c, r in zip(centre_vox, r_vox)]
    hi = [min(n, int(np.ceil(c + r)) + 1) for c, r, n in zip(centre_vox, r_vox, SHAPE)]
    g = np.meshgrid(*[(np.arange(a, b) - c) * s for a, b, c, s in zip(lo, hi, centre_vox, SPACING)], indexing="ij")
    inside = (g[0] ** 2 + g[1] ** 2 + g[2] ** 2) <= radius_mm**2
    view = lab[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    view[inside] = value


def make_case(rng, odd):
    gt = np.zeros(SHAPE, np.uint16)
    pred = np.zeros(SHAPE, np.uint8)
    centres = []
    while len(centres) < 33:
        c = rng.uniform([40, 40, 20], [472, 472, 180])
        # keep balls well apart (no touching nodes)
        if all(np.linalg.norm((c - d) * SPACING) > 25.0 for d in centres):
            centres.append(c)
    for n, c in enumerate(centres[:30], start=1):
        r = rng.uniform(2.5, 9.0)
        ball(gt, c, r, n)
        if odd and n <= 3:
            continue  # missed node
        ball(pred, c + rng.uniform(-1, 1, 3), r * rng.uniform(0.92, 1.08), 1)
    if odd:
        for c in centres[30:]:
            ball(pred, c, rng.uniform(3.5, 8.0), 1)  # false positives
    return gt, pred


def write(arr, path):
    aff = np.diag([-SPACING[0], -SPACING[1], SPACING[2], 1.0])
    nib.save(nib.Nifti1Image(arr, aff), str(path))


def build(d, n_scans):
    (d / "gt").mkdir(parents=True, exist_ok=True)
    (d / "pred").mkdir(parents=True, exist_ok=True)
    stamp = d / f".built-{n_scans}"
    if stamp.exists():
        return
    rng = np.random.default_rng(2024)
    for s in range(n_scans):
        gt, pred = make_case(rng, s % 2 == 1)
        write(gt, d / "gt" / f"scan_{s:03d}.nii.gz")
        write(pred, d / "pred" / f"scan_{s:03d}.nii.gz")
        print(f"  built scan {s + 1}/{n_scans}", flush=True)
    stamp.touch()


def run_panoptica(d, n_scans):
    import cc3d
    from panoptica import InputType, NaiveThresholdMatching, Panoptica_Evaluator
    from panoptica.metrics import Metric

    evaluator = Panoptica_Evaluator(
        expected_input=InputType.UNMATCHED_INSTANCE,
        instance_matcher=NaiveThresholdMatching(
            matching_metric=Metric.IOU, matching_threshold=0.4, allow_many_to_one=True
        ),
        instance_metrics=[Metric.DSC],
        global_metrics=[Metric.DSC],
        decision_metric=None,
    )
    out = {}
    for s in range(n_scans):
        name = f"scan_{s:03d}"
        gt = np.asarray(nib.load(str(d / "gt" / f"{name}.nii.gz")).dataobj).astype(np.uint32)
        pred = np.asarray(nib.load(str(d / "pred" / f"{name}.nii.gz")).dataobj)
        pred_inst = cc3d.connected_components(pred > 0, connectivity=26).astype(np.uint32)
        res = evaluator.evaluate(pred_inst, gt, verbose=False)
        r = res["ungrouped"] if isinstance(res, dict) else res
        r = r[0] if isinstance(r, tuple) else r
        out[name] = {
            "tp": r.tp,
            "n_ref": r.n_ref_instances,
            "n_pred": r.n_pred_instances,
            "global_dice": r.global_bin_dsc,
        }
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default=str(ROOT / ".cache" / "bench-eval"))
    ap.add_argument("--scans", type=int, default=20)
    ap.add_argument("--nodal", default=str(ROOT / "target" / "release" / "nodal"))
    a = ap.parse_args()
    d = Path(a.dir)
    print(f"building {a.scans} scans of {SHAPE} in {d} ...", flush=True)
    build(d, a.scans)

    t0 = time.perf_counter()
    subprocess.run([a.nodal, "evaluate", "--pred", str(d / "pred"), "--gt", str(d / "gt"), "-o", str(d / "out")],
                   check=True)
    t_nodal = time.perf_counter() - t0
    ev = json.loads((d / "out" / "evaluation.json").read_text())

    t0 = time.perf_counter()
    pan = run_panoptica(d, a.scans)
    t_pan = time.perf_counter() - t0

    agree_recall = agree_precision = 0
    dice_err = []
    for s in ev["scans"]:
        p = pan[s["case_id"]]
        rec_p = p["tp"] / p["n_ref"] if p["n_ref"] else None
        prec_p = p["tp"] / p["n_pred"] if p["n_pred"] else None
        agree_recall += int(rec_p is not None and abs(s["recall"] - rec_p) < 1e-12)
        agree_precision += int(prec_p is not None and abs(s["precision"] - prec_p) < 1e-12)
        if s["n_fp"] == 0 and s["n_gt_localized"] == s["n_gt_nodes"]:
            dice_err.append(abs(s["dice"] - p["global_dice"]))
    n = len(ev["scans"])
    print(json.dumps({
        "scans": n,
        "voxels_per_scan": int(np.prod(SHAPE)),
        "cpu_cores": os.cpu_count(),
        "nodal_seconds": round(t_nodal, 2),
        "panoptica_seconds": round(t_pan, 2),
        "speedup": round(t_pan / t_nodal, 1),
        "recall_agreement": f"{agree_recall}/{n}",
        "precision_agreement": f"{agree_precision}/{n}",
        "dice_clean_scans_compared": len(dice_err),
        "dice_max_abs_diff": max(dice_err) if dice_err else None,
    }, indent=1))
    return 0 if agree_recall == n and agree_precision == n else 1


if __name__ == "__main__":
    sys.exit(main())
