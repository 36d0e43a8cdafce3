#!/usr/bin/env bash
# Writes crates/phantom/src/holdout_hashes.txt: content hashes of the scans that must never be
# used as training backgrounds (see crates/phantom/src/holdout.rs). Reads only hashes out of the
# held-out files; no image data enters the repository.
#   - the external validation set: ../shared/data/external-validation/{imagesTs,labelsTs}/*.nii.gz
#   - the held-out validation patient: TotalSegmentator 2.18.0's aorta_report CT and the
#     pulmonary_report crop of the same patient (fetched by scripts/fetch-test-data.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
ext=${EXTERNAL_VALIDATION:-../shared/data/external-validation}
ref=${TOTALSEG_REFERENCE:-.cache/testdata/totalsegmentator/tests/reference_files}
out=crates/phantom/src/holdout_hashes.txt
run() { cargo run --quiet -p nodal-phantom --example holdout_hashes -- "$@"; }
{
  echo "# group kind name value — written by scripts/holdout_hashes.sh; do not edit by hand."
  echo "# file: SHA-256 of the file bytes; voxels: SHA-256 of the decoded LPS int16 voxels with"
  echo "# their dims; fingerprint: sorted dims, sum and sum of squares of the HU values."
  run external "$ext"/imagesTs/*.nii.gz "$ext"/labelsTs/*.nii.gz
  run patient "$ref/aorta_report/example_ct.nii.gz" "$ref/pulmonary_report/models/ct_cropped.nii.gz"
} > "$out.tmp"
mv "$out.tmp" "$out"
echo "wrote $out ($(grep -vc '^#' "$out") entries)"
