#!/usr/bin/env bash
# Runs the fuzz targets named (default: all) for RUNS executions (default 1,000,000) with a 2 GiB memory limit and a
# 10 s per-input timeout, JOBS targets at a time (default 1); logs to fuzz/logs/<target>.log and
# prints each target's last status line. Needs a nightly toolchain and cargo-fuzz (see README.md).
set -euo pipefail
cd "$(dirname "$0")"
RUNS=${RUNS:-1000000}
JOBS=${JOBS:-1}
mkdir -p logs
[ -n "$(ls corpus/dicom 2>/dev/null)" ] || bash seed-corpus.sh
cargo +nightly fuzz build -O
run() {
  cargo +nightly fuzz run "$1" -O -- -runs="$RUNS" -rss_limit_mb=2048 -malloc_limit_mb=2048 \
    -timeout=10 -max_len=65536 -print_final_stats=1 > "logs/$1.log" 2>&1
  echo "$1: exit $? $(grep -E '^stat::number_of_executed_units' "logs/$1.log" || true)"
}
export -f run
export RUNS
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(nifti dicom series meta)
printf '%s\n' "${TARGETS[@]}" | xargs -P "$JOBS" -I{} bash -c 'run {}'
