"""The HTML report renders in headless Chromium (Debian package `chromium`) without network access:
the screenshot of a phantom report must be the full window, not blank, and show the category
colours of the overview and table."""
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
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "chromium is missing: apt-get install chromium"
    shot = tmp_path / "shot.png"
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", f"--screenshot={shot}", f"--window-size={WIDTH},{HEIGHT}",
             report.as_uri()],
            check=True, capture_output=True, timeout=120,
        )
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
