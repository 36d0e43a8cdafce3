"""The HTML report renders in headless Chromium (Debian package `chromium`) without network access:
the screenshot of a phantom report must be the full window, not blank, and show the category
colours of the overview and table. At 1024 and 1400 px wide, the reports of `nodal demo` (a model's
nodes, filter scores, evaluation figures) and of `nodal measure --ct` on a 20-slice DICOM series
(image numbers, a coverage warning) fit the window: nothing sticks out, no table is wider than
its box, the overview of the short scan is not a strip. Screenshots go to target/report-screenshots/.
"""
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cargo_example import example

ROOT = Path(__file__).resolve().parents[2]
WIDTH, HEIGHT = 1280, 2000
NODAL = os.environ.get("NODAL_BIN", str(ROOT / "target/debug/nodal"))
SHOTS = ROOT / "target/report-screenshots"

# Appended to a copy of the page: measures the layout once it is drawn and leaves the result in an
# attribute that --dump-dom prints.
MEASURE = """<script>
window.addEventListener('load', () => {
  const vw = document.documentElement.clientWidth, out = [], small = [];
  for (const el of document.querySelectorAll('body *')) {
    const r = el.getBoundingClientRect();
    if (r.width > 0 && r.right > vw + 1) out.push(`${el.tagName}.${el.className} right ${Math.round(r.right)}`);
    if (el.tagName === 'TABLE' && el.scrollWidth > el.parentElement.clientWidth + 1)
      out.push(`table ${el.className} ${el.scrollWidth} in ${el.parentElement.clientWidth}`);
    if (el.childNodes.length && [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim()) &&
        parseFloat(getComputedStyle(el).fontSize) < 11) small.push(el.tagName);
  }
  const ov = document.querySelector('.overview img');
  document.body.setAttribute('data-layout', JSON.stringify({
    vw, scroll: document.documentElement.scrollWidth, out: out.slice(0, 10), small: small.slice(0, 10),
    overview: ov ? [ov.getBoundingClientRect().width, ov.getBoundingClientRect().height] : null}));
});
</script>"""


def chromium(*args, timeout=120):
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "chromium is missing: apt-get install chromium"
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--hide-scrollbars", f"--user-data-dir={profile}", *args],
            check=True, capture_output=True, text=True, timeout=timeout,
        )


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    d = tmp_path_factory.mktemp("report")
    subprocess.run([example("report_phantom"), str(d), "7"], cwd=ROOT, check=True)
    return d / "report.html"


def test_report_is_self_contained(report):
    html = report.read_text()
    assert html.startswith("<!DOCTYPE html>")
    for pattern in [r"<script", r"<link", r"https?://", r"@import", r"url\("]:
        assert not re.search(pattern, html), pattern
    srcs = re.findall(r'src="([^"]*)"', html)
    assert srcs and all(s.startswith("data:image/") for s in srcs)


def test_report_renders_in_headless_chromium(report, tmp_path):
    shot = tmp_path / "shot.png"
    chromium(f"--screenshot={shot}", f"--window-size={WIDTH},{HEIGHT}", report.as_uri())
    img = np.asarray(Image.open(shot).convert("RGB"))
    assert img.shape == (HEIGHT, WIDTH, 3)
    colours = np.unique(img.reshape(-1, 3), axis=0)
    assert len(colours) > 1000, f"only {len(colours)} colours: blank or unstyled page"
    # Not mostly one colour.
    _, counts = np.unique(img.reshape(-1, 3), axis=0, return_counts=True)
    assert counts.max() / counts.sum() < 0.8
    # The "< 10 mm" category green (46, 204, 113) appears (chips, overview fill).
    green = np.all(np.abs(img.astype(int) - [46, 204, 113]) <= 2, axis=-1).sum()
    assert green > 50, green
    # The CT images are grey: many pixels with r == g == b that are neither white nor page grey.
    grey = (img[..., 0] == img[..., 1]) & (img[..., 1] == img[..., 2]) & (img[..., 0] < 200)
    assert grey.sum() > 50_000


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """The report of `nodal demo` on a small phantom and of `nodal measure --ct` on a 20-slice DICOM
    series (two drawn nodes)."""
    from test_measure_dicom import SERIES, ct_grid, measure
    import nibabel as nib

    d = tmp_path_factory.mktemp("reports")
    subprocess.run([NODAL, "demo", "--size", "small", "-o", str(d / "demo")], check=True, cwd=ROOT,
                   capture_output=True)
    ct = ct_grid(d)
    i, j, k = np.meshgrid(*[np.arange(n) for n in ct.shape], indexing="ij")
    labels = np.zeros(ct.shape, np.uint16)
    labels[((i - 200) ** 2 + (j - 260) ** 2 + ((k - 10) * 2.05) ** 2) < 12**2] = 1
    labels[((i - 330) ** 2 + (j - 250) ** 2 + ((k - 9) * 2.05) ** 2) < 8**2] = 2
    dicom = measure(nib.Nifti1Image(labels, ct.affine), d, "dicom")
    return {"demo": d / "demo/report.html", "dicom": dicom / "report.html"}


@pytest.mark.parametrize("name", ["demo", "dicom"])
@pytest.mark.parametrize("width", [1024, 1400])
def test_report_fits_the_window(reports, name, width, tmp_path):
    page = tmp_path / "page.html"
    page.write_text(reports[name].read_text().replace("</body>", MEASURE + "</body>"))
    dom = chromium("--dump-dom", "--virtual-time-budget=5000", f"--window-size={width},1200", page.as_uri()).stdout
    m = re.search(r"data-layout=\"([^\"]*)\"", dom)
    assert m, "the measuring script did not run"
    layout = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert layout["vw"] == width, layout
    assert layout["scroll"] <= width, f"the page scrolls sideways: {layout}"
    assert not layout["out"], f"wider than the window: {layout['out']}"
    assert not layout["small"], f"text below 11 px: {layout['small']}"
    w, h = layout["overview"]
    assert h >= 150 and w <= width, f"overview {w} x {h} px"
    SHOTS.mkdir(parents=True, exist_ok=True)
    chromium(f"--screenshot={SHOTS / f'{name}-{width}.png'}", f"--window-size={width},2400", reports[name].as_uri())
