#!/usr/bin/env bash
# Fills fuzz/corpus/<target>/ with seed inputs from the registry test data that
# scripts/fetch-test-data.sh fetched (pydicom's test files up to 64 KiB) and small NIfTI files written
# by nibabel (from the Python environment of scripts/python-env.sh).
set -euo pipefail
cd "$(dirname "$0")"
ROOT=..
PYDICOM=$ROOT/.cache/testdata/pydicom/pydicom/data/test_files
[ -d "$PYDICOM" ] || bash "$ROOT/scripts/fetch-test-data.sh"
mkdir -p corpus/nifti corpus/dicom corpus/series corpus/meta
find "$PYDICOM" -name '*.dcm' -size -64k -exec cp {} corpus/dicom/ \;
# A series: several small CT-like slices joined by the target's separator.
python_bin=$ROOT/.cache/venv/bin/python
"$python_bin" - <<'PY'
import glob, os
import numpy as np
import nibabel as nib

rng = np.random.default_rng(0)
for name, dtype, scl in [("i16", np.int16, None), ("u8", np.uint8, None), ("f32", np.float32, None),
                         ("scaled", np.int16, (0.5, -1024.0))]:
    data = (rng.integers(0, 200, size=(9, 7, 5))).astype(dtype)
    img = nib.Nifti1Image(data, np.diag([0.8, 0.9, 2.0, 1.0]))
    if scl:
        img.header.set_slope_inter(*scl)
    for ext in (".nii", ".nii.gz"):
        nib.save(img, f"corpus/nifti/{name}{ext}")
small = sorted(p for p in glob.glob("corpus/dicom/*.dcm") if os.path.getsize(p) < 12_000)
for n in range(0, len(small), 3):
    parts = [open(p, "rb").read() for p in small[n:n + 3]]
    open(f"corpus/series/s{n}", "wb").write(b"NEXT".join(parts))
open("corpus/meta/nodes.json", "w").write(
    '{"schema": "nodal.nodes/1", "nodes": [{"id": 1, "metastatic": true, "sad_mm": 7.5}, {"id": 2}]}')
open("corpus/meta/meta.csv", "w").write("case_id,node_id,metastatic\na,1,true\nb,7,0\n")
open("corpus/meta/manifest.csv", "w").write("case_id,pred,gt,meta\na,p/a.nii.gz,g/a.nii.gz,\n")
PY
for t in nifti dicom series meta; do echo "$t: $(ls corpus/$t | wc -l) seeds"; done
