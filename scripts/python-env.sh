#!/usr/bin/env bash
# Creates .cache/venv with the reference tools the cross-checks compare against (nibabel, pydicom,
# highdicom, SciPy, rt-utils, ...). Idempotent: reinstalls only when the requirements files change.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.cache/venv
stamp=$venv/.requirements.sha
want=$(cat scripts/requirements-dev.txt scripts/requirements-dev-nodeps.txt | sha256sum | cut -d' ' -f1)
if [ -x $venv/bin/python ] && [ "$(cat $stamp 2>/dev/null)" = "$want" ]; then
  exit 0
fi
python3 -m venv $venv
$venv/bin/pip install --quiet --upgrade pip
$venv/bin/pip install --quiet -r scripts/requirements-dev.txt
$venv/bin/pip install --quiet --no-deps -r scripts/requirements-dev-nodeps.txt
echo "$want" > $stamp
