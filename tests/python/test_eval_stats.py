"""The committed statistics fixture (tests/fixtures/eval/stats_reference.json) is what SciPy and
scikit-posthocs compute today; the Rust tests compare nodal-eval against that fixture."""
import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_generator():
    spec = importlib.util.spec_from_file_location("gen_stats_reference", ROOT / "scripts" / "gen_stats_reference.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_stats_fixture_is_current():
    gen = load_generator()
    fresh = gen.compute()
    committed = json.loads(gen.FIXTURE.read_text())
    assert gen.close(fresh, committed), "stats_reference.json is stale: run scripts/gen_stats_reference.py"


def test_fixture_covers_ties_and_small_samples():
    committed = json.loads((ROOT / "tests/fixtures/eval/stats_reference.json").read_text())
    sizes = [len(c["x"]) for c in committed["shapiro"]]
    assert min(sizes) == 3 and max(sizes) >= 200
    assert any(len(set(c["x"])) < len(c["x"]) for c in committed["shapiro"])
    assert any(len(g) <= 5 for c in committed["kruskal"] for g in c["groups"])
