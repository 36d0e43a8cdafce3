#!/usr/bin/env bash
# Scores model folders on the validation sets of the model card (never used for training):
#   unseen phantom seeds   nodal dataset --n 4 --seed 2 --split val --size train
#   full-size phantoms     nodal dataset --n 4 --seed 3 --split val --size full (512x512 matrix)
#   thin-slice phantoms    nodal dataset --n 4 --seed 5 --split val --size full --slice-thickness 0.75
#   held-out real CT       nodes inserted into TotalSegmentator's aorta_report CT, seeds 1 and 2
# Usage: bash scripts/validate_models.sh MODEL_DIR [MODEL_DIR ...]   (after cargo build --release)
# Prints one JSON per model and set (recall, FP/scan, Dice, recall SAD >= 15 mm), as the trainer logs.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release/nodal
VALIDATE=target/release/examples/net_validate
OUT=${VALIDATION_DIR:-runs/validation}
AORTA=.cache/testdata/totalsegmentator/tests/reference_files/aorta_report/example_ct.nii.gz
[ -x "$VALIDATE" ] || cargo build --release -p nodal-net --example net_validate
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
pairs() {
  for img in "$1"/imagesTr/*_0000.nii.gz; do
    id=$(basename "$img" _0000.nii.gz)
    echo "$img" "$1/labelsTr/$id.nii.gz"
  done
}
for model in "$@"; do
  echo "== $model: unseen phantom seeds"
  # shellcheck disable=SC2046  # file names from the dataset writer hold no spaces
  "$VALIDATE" "$model" $(pairs "$OUT/phantom")
  echo "== $model: full-size phantoms"
  # shellcheck disable=SC2046
  "$VALIDATE" "$model" $(pairs "$OUT/phantom-full")
  echo "== $model: thin-slice phantoms"
  # shellcheck disable=SC2046
  "$VALIDATE" "$model" $(pairs "$OUT/phantom-thin")
  echo "== $model: held-out aorta background"
  "$VALIDATE" "$model" "$OUT/aorta-1/ct.nii.gz" "$OUT/aorta-1/nodes.nii.gz" "$OUT/aorta-2/ct.nii.gz" "$OUT/aorta-2/nodes.nii.gz"
done
