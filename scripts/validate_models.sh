#!/usr/bin/env bash
# Scores model folders on the validation sets of the model card (never used for training,
# selection or tuning) with `nodal validate`:
#   unseen phantom seeds   nodal dataset --n 4 --seed 2 --split val --size train
#   full-size phantoms     nodal dataset --n 4 --seed 3 --split val --size full (512x512 matrix)
#   thin-slice phantoms    nodal dataset --n 4 --seed 5 --split val --size full --slice-thickness 0.75
#   held-out real CT       nodes inserted into TotalSegmentator's aorta_report CT, seeds 1 and 2
#   external validation    ../shared/data/external-validation (imagesTs/, labelsTs/): another
#                          simulator's nodes, read in place and never copied (override the folder
#                          with EXTERNAL_VALIDATION=DIR; skipped when it is absent)
# Usage: bash scripts/validate_models.sh MODEL_DIR [MODEL_DIR ...]   (NODAL_BIN: the nodal to run,
# default target/release/nodal, built when missing)
# Prints the metrics of every model and set (recall, recall of nodes >= 5 mm, recall_ceiling,
# recall_countable, FP/scan, Dice, recall of nodes >= 15 mm) and writes each as JSON to
# $VALIDATION_DIR/scores/<model>/<set>.json (default runs/validation).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: bash scripts/validate_models.sh MODEL_DIR [MODEL_DIR ...]" >&2; exit 2; }
BIN=${NODAL_BIN:-target/release/nodal}
OUT=${VALIDATION_DIR:-runs/validation}
AORTA=.cache/testdata/totalsegmentator/tests/reference_files/aorta_report/example_ct.nii.gz
EXTERNAL=${EXTERNAL_VALIDATION:-../shared/data/external-validation}
[ -x "$BIN" ] || cargo build --release -p nodal
[ -f "$AORTA" ] || bash scripts/fetch-test-data.sh

if [ ! -d "$OUT/phantom" ]; then
  "$BIN" dataset --n 4 --seed 2 --split val --size train -o "$OUT/phantom"
fi
if [ ! -d "$OUT/phantom-full" ]; then
  "$BIN" dataset --n 4 --seed 3 --split val --size full -o "$OUT/phantom-full"
fi
if [ ! -d "$OUT/phantom-thin" ]; then
  "$BIN" dataset --n 4 --seed 5 --split val --size full --slice-thickness 0.75 -o "$OUT/phantom-thin"
fi
for s in 1 2; do
  [ -f "$OUT/aorta-$s/ct.nii.gz" ] || "$BIN" phantom --background "$AORTA" --seed "$s" -o "$OUT/aorta-$s"
done
if [ ! -d "$EXTERNAL/imagesTs" ] || [ ! -d "$EXTERNAL/labelsTs" ]; then
  echo "note: no external validation set at $EXTERNAL (imagesTs/, labelsTs/); it is skipped" >&2
  EXTERNAL=
fi

# validate MODEL SET_NAME TITLE ARGS...: one `nodal validate` run, its JSON kept under scores/.
validate() {
  local model=$1 set=$2 title=$3
  shift 3
  local dir
  dir="$OUT/scores/$(printf '%s' "$model" | tr -c 'A-Za-z0-9._-' '_')"
  mkdir -p "$dir"
  echo "== $model: $title"
  "$BIN" validate --model "$model" "$@" --json "$dir/$set.json"
}

for model in "$@"; do
  validate "$model" phantom "unseen phantom seeds" --dataset "$OUT/phantom"
  validate "$model" phantom-full "full-size phantoms" --dataset "$OUT/phantom-full"
  validate "$model" phantom-thin "thin-slice phantoms" --dataset "$OUT/phantom-thin"
  validate "$model" aorta "held-out aorta background" \
    --case "$OUT/aorta-1/ct.nii.gz" "$OUT/aorta-1/nodes.nii.gz" \
    --case "$OUT/aorta-2/ct.nii.gz" "$OUT/aorta-2/nodes.nii.gz"
  if [ -n "$EXTERNAL" ]; then
    validate "$model" external "external validation (another simulator)" --dataset "$EXTERNAL"
  fi
done
