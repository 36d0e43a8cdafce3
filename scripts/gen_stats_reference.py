#!/usr/bin/env python3
"""Writes tests/fixtures/eval/stats_reference.json: SciPy / scikit-posthocs results on fixed sample
vectors (ties, small and larger samples), against which nodal-eval's statistics are tested.

    .cache/venv/bin/python scripts/gen_stats_reference.py          # rewrite the fixture
    .cache/venv/bin/python scripts/gen_stats_reference.py --check  # exit 1 if it is not current

References: scipy.stats.shapiro, kruskal, pearsonr; Dunn's test from scikit_posthocs.posthoc_dunn
(p_adjust='bonferroni'), cross-checked here against the textbook formula written with numpy/scipy.
"""
import json
import math
import sys
from pathlib import Path

import numpy as np
import scipy
import scipy.stats as st
import scikit_posthocs as sp

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "eval" / "stats_reference.json"


def samples():
    rng = np.random.default_rng(20241127)
    s = {
        "n3": [0.93, 0.41, 0.77],
        "n3_tie": [0.5, 0.5, 0.9],
        "n4": [0.2, 0.95, 0.61, 0.88],
        "n5_ties": [1.0, 0.8, 0.8, 0.35, 1.0],
        "n6": [3.1, 4.7, 2.2, 9.8, 5.5, 4.9],
        "n7": [0.12, 0.5, 0.51, 0.52, 0.9, 0.33, 0.71],
        "n11": list(np.round(rng.normal(0.8, 0.1, 11), 3)),
        "n12": list(np.round(rng.normal(5.0, 2.0, 12), 2)),
        "n20_ties": list(np.round(rng.uniform(0.3, 1.0, 20), 1)),
        "n50_skewed": list(np.round(1.0 - rng.exponential(0.1, 50).clip(0, 1), 4)),
        "n200": list(np.round(rng.normal(0.0, 1.0, 200), 5)),
        "n400_sens": list(np.round(rng.beta(8, 2, 400), 3)),
    }
    return {k: [float(x) for x in v] for k, v in s.items()}


def group_sets():
    rng = np.random.default_rng(7)
    return {
        "two_small": [[0.9, 0.8, 0.7], [0.6, 0.85, 0.5, 0.4]],
        "two_flags": [[1, 1, 0, 1, 0, 1, 1, 0], [1, 0, 0, 0, 1, 0]],
        "three_ties": [[1.0, 2.0, 2.0, 3.0], [2.0, 3.0, 3.0, 4.0, 5.0], [1.0, 1.0, 2.0]],
        "four_sad_groups": [
            [float(x) for x in np.round(rng.beta(6, 2, 30), 2)],
            [float(x) for x in np.round(rng.beta(7, 2, 25), 2)],
            [float(x) for x in np.round(rng.beta(5, 3, 12), 2)],
            [float(x) for x in np.round(rng.beta(3, 3, 5), 2)],
        ],
        "four_flags": [
            [float(x) for x in (rng.uniform(size=40) < 0.5)],
            [float(x) for x in (rng.uniform(size=30) < 0.75)],
            [float(x) for x in (rng.uniform(size=15) < 0.7)],
            [float(x) for x in (rng.uniform(size=6) < 0.35)],
        ],
    }


def pairs():
    rng = np.random.default_rng(11)
    x100 = rng.uniform(3, 30, 100)
    out = {
        "n3": ([1.0, 2.0, 4.0], [0.9, 0.7, 0.75]),
        "n4": ([5.0, 7.5, 12.0, 20.0], [0.95, 0.9, 0.8, 0.5]),
        "n5_ties": ([4.5, 4.5, 6.0, 6.0, 11.0], [1.0, 0.8, 0.8, 0.9, 0.6]),
        "n10": (list(np.round(rng.uniform(3, 20, 10), 2)), list(np.round(rng.uniform(0, 1, 10), 3))),
        "n100_negative": (list(np.round(x100, 2)), list(np.round(1.0 - 0.02 * x100 + rng.normal(0, 0.1, 100), 4))),
        "n30_strong": (list(range(30)), list(np.round(np.arange(30) * 2.0 + rng.normal(0, 0.5, 30), 3))),
    }
    return {k: ([float(a) for a in v[0]], [float(b) for b in v[1]]) for k, v in out.items()}


def dunn_textbook(groups):
    """Dunn (1964) with tie correction, two-sided normal p, Bonferroni over k(k-1)/2 pairs."""
    allv = np.concatenate([np.asarray(g, float) for g in groups])
    n = len(allv)
    ranks = st.rankdata(allv)
    _, counts = np.unique(allv, return_counts=True)
    tie = float(np.sum(counts**3 - counts)) / (12.0 * (n - 1))
    bounds = np.cumsum([0] + [len(g) for g in groups])
    mean_rank = [ranks[bounds[i]:bounds[i + 1]].mean() for i in range(len(groups))]
    m = len(groups) * (len(groups) - 1) // 2
    out = []
    for a in range(len(groups)):
        for b in range(a + 1, len(groups)):
            var = (n * (n + 1) / 12.0 - tie) * (1.0 / len(groups[a]) + 1.0 / len(groups[b]))
            z = abs(mean_rank[a] - mean_rank[b]) / math.sqrt(var)
            p = 2.0 * st.norm.sf(z)
            out.append({"a": a, "b": b, "z": z, "p": p, "p_bonferroni": min(1.0, p * m)})
    return out


def compute():
    out = {"scipy": scipy.__version__, "scikit_posthocs": sp.__version__ if hasattr(sp, "__version__") else "",
           "shapiro": [], "kruskal": [], "dunn": [], "pearson": []}
    for name, x in samples().items():
        r = st.shapiro(x)
        out["shapiro"].append({"name": name, "x": x, "w": float(r.statistic), "p": float(r.pvalue)})
    for name, groups in group_sets().items():
        r = st.kruskal(*groups)
        out["kruskal"].append({"name": name, "groups": groups, "h": float(r.statistic), "p": float(r.pvalue)})
        ref = dunn_textbook(groups)
        table = sp.posthoc_dunn([list(g) for g in groups], p_adjust="bonferroni")
        for row in ref:
            p_sp = float(table.iloc[row["a"], row["b"]])
            assert math.isclose(p_sp, row["p_bonferroni"], rel_tol=1e-9, abs_tol=1e-300), (name, row, p_sp)
        out["dunn"].append({"name": name, "groups": groups, "pairs": ref})
    for name, (x, y) in pairs().items():
        r = st.pearsonr(x, y)
        out["pearson"].append({"name": name, "x": x, "y": y, "r": float(r.statistic), "p": float(r.pvalue)})
    return out


def close(a, b, rel=1e-9):
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k], rel) for k in a if k not in ("scipy", "scikit_posthocs"))
    if isinstance(a, list):
        return len(a) == len(b) and all(close(x, y, rel) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=rel, abs_tol=1e-300)
    return a == b


def main():
    data = compute()
    if "--check" in sys.argv:
        old = json.loads(FIXTURE.read_text())
        if not close(data, old):
            print(f"{FIXTURE} is not current; re-run scripts/gen_stats_reference.py")
            return 1
        print("fixture current")
        return 0
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {FIXTURE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
