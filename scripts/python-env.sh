#!/usr/bin/env bash
# Creates .cache/venv with the reference tools the cross-checks compare against (nibabel, pydicom,
# highdicom, SciPy, ...). Idempotent: reinstalls only when scripts/requirements-dev.txt changes.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.cache/venv
stamp=$venv/.requirements.sha
want=$(sha256sum scripts/requirements-dev.txt | cut -d' ' -f1)
if [ -x $venv/bin/python ] && [ "$(cat $stamp 2>/dev/null)" = "$want" ]; then
  exit 0
fi
python3 -m venv $venv
$venv/bin/pip install --quiet --upgrade pip
$venv/bin/pip install --quiet -r scripts/requirements-dev.txt
echo "$want" > $stamp
