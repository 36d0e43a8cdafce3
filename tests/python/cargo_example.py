"""Paths of the workspace's example programs, for the cross-checks that drive them.

`scripts/test.sh` builds every example with the whole workspace first. Building one package alone
(`cargo build -p nodal-io ...`) would resolve the dependencies' features for that package only and
compile many of them again; with `--workspace` the build below is a no-op after `scripts/test.sh`
and still builds the example when a test runs on its own.
"""

import functools
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@functools.cache
def example(name):
    """Builds the example `name` (with the whole workspace's features) once per test run and returns
    its path."""
    subprocess.run(["cargo", "build", "-q", "--workspace", "--example", name], cwd=ROOT, check=True)
    return str(ROOT / "target" / "debug" / "examples" / name)
