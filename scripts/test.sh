#!/usr/bin/env bash
# The test suite: fetches the registry test data (cached), sets up the Python cross-check
# environment (cached), then runs the Rust tests and the Python cross-checks against the built binary.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/fetch-test-data.sh
bash scripts/python-env.sh
bash scripts/system-deps.sh

python3 scripts/check_module_cycles.py
# Node geometry stays free of file formats and of the network.
if cargo tree -p nodal-nodes --prefix none | grep -qE '^(nodal-io|nodal-net|burn) '; then
  echo "nodal-nodes must not depend on nodal-io, nodal-net or burn" >&2
  exit 1
fi
cargo build --workspace --bins --examples
# The mutation sweeps (docs/reliability.md): 2,000 mutants per test.
export NODAL_FUZZ_CASES=${NODAL_FUZZ_CASES:-2000}
cargo test --workspace --no-fail-fast

export NODAL_BIN="$PWD/target/debug/nodal"
.cache/venv/bin/python -m pytest -q tests/python
