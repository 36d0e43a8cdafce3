#!/usr/bin/env bash
# Records the golden outputs of `nodal segment` that crates/cli/tests/cli/segment_golden.rs compares
# against: two CI-sized phantoms (seeds 3 and 7, the data engine's default preset, which its own
# golden test keeps byte-identical), segmented with the shipped model; nodes.nii.gz, mask.nii.gz
# and nodes.json of each go to tests/fixtures/segment/seed<N>/.
# Re-record only when a change of the outputs is intended, and say why in the commit.
# Usage: bash scripts/record_segment_golden.sh [NODAL_BIN]   (default: target/debug/nodal)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/debug/nodal}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for seed in 3 7; do
  "$BIN" phantom --seed "$seed" -o "$tmp/phantom-$seed" >/dev/null
  "$BIN" segment "$tmp/phantom-$seed/ct.nii.gz" --model models/default -o "$tmp/seg-$seed" >/dev/null
  dest=tests/fixtures/segment/seed$seed
  mkdir -p "$dest"
  for f in nodes.nii.gz mask.nii.gz nodes.json; do
    cp "$tmp/seg-$seed/$f" "$dest/$f"
  done
done
ls -la tests/fixtures/segment/*
