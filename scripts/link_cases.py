#!/usr/bin/env python3
"""Builds an nnU-Net raw-layout folder from cases of other such folders, as symbolic links (no copy).

    python3 scripts/link_cases.py OUT SRC [SRC ...] [--min-sad MM]

Each case of each SRC (imagesTr/<id>_0000.nii.gz, labelsTr/<id>.nii.gz, and nodesTr/<id>.json and
negativesTr/<id>.nii.gz when present) is linked into OUT as <src folder name>_<id>. With --min-sad, only cases holding a
node whose short axis (nodesTr/<id>.json, written by `nodal dataset`) is at least MM are kept -- an
enrichment in large nodes. Used to assemble the training and selection sets of the model card.
"""
import argparse
import json
import sys
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("src", type=Path, nargs="+")
    ap.add_argument("--min-sad", type=float, default=None, help="keep cases with a node of at least this SAD, mm")
    a = ap.parse_args()
    if a.out.exists():
        print(f"{a.out}: exists; remove it first", file=sys.stderr)
        return 2
    cases = []
    for src in a.src:
        images = sorted((src / "imagesTr").glob("*_0000.nii.gz"))
        if not images:
            print(f"{src}: no imagesTr/*_0000.nii.gz", file=sys.stderr)
            return 2
        for img in images:
            cid = img.name[: -len("_0000.nii.gz")]
            nodes = src / "nodesTr" / f"{cid}.json"
            if a.min_sad is not None:
                if not nodes.is_file():
                    print(f"{nodes}: missing (needed for --min-sad)", file=sys.stderr)
                    return 2
                sads = [n["sad_mm"] for n in json.loads(nodes.read_text())["nodes"]]
                if not sads or max(sads) < a.min_sad:
                    continue
            cases.append((src, cid, img, src / "labelsTr" / f"{cid}.nii.gz", nodes))
    tmp = a.out.with_name(a.out.name + ".partial")
    for sub in ("imagesTr", "labelsTr", "nodesTr"):
        (tmp / sub).mkdir(parents=True, exist_ok=True)
    for src, cid, img, lab, nodes in cases:
        new = f"{src.resolve().name}_{cid}"
        (tmp / "imagesTr" / f"{new}_0000.nii.gz").symlink_to(img.resolve())
        (tmp / "labelsTr" / f"{new}.nii.gz").symlink_to(lab.resolve())
        if nodes.is_file():
            (tmp / "nodesTr" / f"{new}.json").symlink_to(nodes.resolve())
        for extra in ("negativesTr", "instancesTr"):
            path = src / extra / f"{cid}.nii.gz"
            if path.is_file():
                (tmp / extra).mkdir(exist_ok=True)
                (tmp / extra / f"{new}.nii.gz").symlink_to(path.resolve())
    tmp.rename(a.out)
    print(f"{a.out}: {len(cases)} cases")
    return 0


if __name__ == "__main__":
    sys.exit(main())
