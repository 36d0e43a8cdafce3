"""`nodal review`: a radiologist's session in real headless Chromium (Debian `chromium`, driven by
Playwright, no network, no browser download).

On the output of `nodal demo --size small` (CT, the model's nodes, the phantom's ground truth) the
test rejects a false positive, marks a true positive metastatic and paints a missed ground-truth
node with real mouse events, then checks the case folder on disk: the untouched model output, the
corrected label map and `rejected.nii.gz` voxel for voxel, `review.json`, and the measurements
against `nodal measure`. A reload shows the same review. The HTTP side is checked with urllib: the
access token, paths that try to leave the case folder, an out-of-volume edit, the binary slices
against nibabel, and the slice latency. Screenshots go to target/review-screenshots/.

Display indices. The server speaks in display indices [x, y, z] of the volume reoriented to LPS
(x to the patient's left, y posterior, z superior), by axis order and flips only. nibabel's affine
maps voxel indices to RAS+ world coordinates, and `nib.aff2axcodes` names, per array axis, the
direction it increases toward: an axis coded 'L', 'P' or 'S' is display axis 0, 1 or 2 as it is;
one coded 'R', 'A' or 'I' is that display axis flipped (index n - 1 - i). `to_display` applies this
with nibabel's orientation tools; a demo phantom is stored ('L', 'P', 'S'), so there the mapping is
the identity, and the test checks the server's answers (node centres, bounding boxes, slices)
against it either way.
"""
import contextlib
import csv
import hashlib
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import threading
import time
import urllib.parse
from io import BytesIO
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
NODAL = os.environ.get("NODAL_BIN", str(ROOT / "target/debug/nodal"))
SHOTS = ROOT / "target/review-screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is missing: apt-get install chromium")

LPS = ("L", "P", "S")


# ------------------------------------------------------------------------------------------------
# Display indices
# ------------------------------------------------------------------------------------------------
def display_transform(img):
    """nibabel orientation transform from the stored array to display order (LPS)."""
    return nib.orientations.ornt_transform(
        nib.orientations.io_orientation(img.affine), nib.orientations.axcodes2ornt(LPS))


def to_display(img, data=None):
    """The image's voxels as a display-index array: a[x, y, z]."""
    arr = np.asarray(img.dataobj) if data is None else data
    return nib.orientations.apply_orientation(arr, display_transform(img))


def display_spacing(img):
    """Voxel size in mm along display x, y, z."""
    zooms = img.header.get_zooms()[:3]
    axis = display_transform(img)[:, 0].astype(int)  # stored axis a becomes display axis axis[a]
    out = [0.0, 0.0, 0.0]
    for a, d in enumerate(axis):
        out[d] = float(zooms[a])
    return np.array(out)


def nearest_to_centroid(mask, spacing):
    """Display index of the voxel of `mask` nearest its centroid (in mm), as the server picks a
    node's centre."""
    idx = np.argwhere(mask)
    c = idx.mean(axis=0)
    d = (((idx - c) * spacing) ** 2).sum(axis=1)
    return [int(v) for v in idx[np.argmin(d)]]


def distances_mm(shape, centre, spacing):
    """Distance in mm of every voxel centre from the centre voxel's."""
    grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    return np.sqrt(sum(((g - c) * s) ** 2 for g, c, s in zip(grids, centre, spacing)))


# ------------------------------------------------------------------------------------------------
# Fixtures: a demo case folder and the server on it
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """`nodal demo --size small`: CT, model nodes, ground truth; the picks for the session."""
    d = tmp_path_factory.mktemp("review") / "demo-case"
    subprocess.run([NODAL, "demo", "--size", "small", "-o", str(d)], check=True, cwd=ROOT,
                   capture_output=True)
    orig = d.parent / "original"
    orig.mkdir()
    for name in ("nodes.nii.gz", "nodes.json", "nodes.csv"):
        shutil.copy2(d / name, orig / name)

    ct_img = nib.load(d / "ct.nii.gz")
    pred_img = nib.load(d / "nodes.nii.gz")
    gt_img = nib.load(d / "gt_nodes.nii.gz")
    for img in (pred_img, gt_img):
        assert np.allclose(img.affine, ct_img.affine) and img.shape == ct_img.shape
    ct = to_display(ct_img)
    pred = to_display(pred_img).astype(np.int64)
    gt = to_display(gt_img).astype(np.int64)
    spacing = display_spacing(ct_img)

    pred_ids = [int(i) for i in np.unique(pred) if i]
    gt_ids = [int(i) for i in np.unique(gt) if i]
    overlap = {i: float((gt[pred == i] > 0).mean()) for i in pred_ids}
    # True positive: the predicted node most inside the ground truth (the largest among ties).
    tp = max(pred_ids, key=lambda i: (overlap[i], (pred == i).sum()))
    # False positive: a predicted node touching no ground-truth voxel. A demo phantom may have
    # none; then the predicted node least inside the ground truth stands in for one (rejecting it
    # exercises the same path).
    fps = [i for i in pred_ids if overlap[i] == 0 and i != tp]
    fp = fps[0] if fps else min((i for i in pred_ids if i != tp), key=lambda i: (overlap[i], i))
    # Missed: ground-truth nodes with no predicted voxel; the largest, preferring one whose brush
    # sphere touches no predicted node (so every voxel of the sphere is free to paint).
    gt_meta = {n["id"]: n for n in json.loads((d / "gt_nodes.json").read_text())["nodes"]}
    missed = [j for j in gt_ids if not (pred[gt == j] > 0).any()]
    assert len(missed) >= 2, f"the demo phantom has too few missed nodes to paint and grow: {missed}"

    def brush(j):
        centre = nearest_to_centroid(gt == j, spacing)
        r = round(gt_meta[j]["sad_mm"] / 2, 1)
        dist = distances_mm(gt.shape, centre, spacing)
        # No voxel centre right on the sphere, so <= and < agree.
        while np.any(np.abs(dist - r) < 0.02):
            r = round(r + 0.1, 1)
        ball = dist <= r
        return centre, r, ball

    def clean(j):
        return not (pred[brush(j)[2]] > 0).any()

    missed.sort(key=lambda j: (not clean(j), -(gt == j).sum()))
    miss = missed[0]
    miss_centre, miss_r, miss_ball = brush(miss)
    # Add node: region growing from the centre of another missed node, away from the painted one.
    from_miss = distances_mm(gt.shape, miss_centre, spacing)
    seeds = [nearest_to_centroid(gt == j, spacing) for j in missed[1:]]
    grow_seed = next((p for p in seeds if from_miss[tuple(p)] > miss_r + 15), None)
    assert grow_seed, "no second missed node far enough from the first to grow from"
    # Merge: the two smallest other model nodes; split: the largest other one.
    others = sorted((i for i in pred_ids if i not in (tp, fp)), key=lambda i: (pred == i).sum())
    assert len(others) >= 3, f"the demo found too few nodes: {pred_ids}"
    merge_pair = others[:2]
    return dict(
        dir=d, orig=orig, ct_img=ct_img, ct=ct, pred=pred, gt=gt, spacing=spacing,
        dims=list(ct.shape), tp=tp, fp=fp, fp_is_true_fp=bool(fps), miss=miss,
        miss_centre=miss_centre, miss_r=miss_r, miss_ball=miss_ball,
        grow_seed=grow_seed, merge_pair=merge_pair, split=others[-1],
    )


@contextlib.contextmanager
def review_server(folder, log):
    """Runs `nodal review FOLDER --no-open --bind 127.0.0.1:0` and yields the URL it prints."""
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [NODAL, "review", str(folder), "--no-open", "--bind", "127.0.0.1:0", "--reviewer", "pytest"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True)
    found, lines = {}, []

    def read():
        for line in proc.stdout:
            lines.append(line)
            u = urllib.parse.urlsplit(line.strip())
            token = urllib.parse.parse_qs(u.query).get("token", [None])[0]
            if u.hostname == "127.0.0.1" and token and not found:
                found.update(base=f"{u.scheme}://{u.netloc}", port=u.port, token=token, url=line.strip())

    threading.Thread(target=read, daemon=True).start()
    deadline = time.time() + 60
    while not found and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    try:
        if not found:
            pytest.fail(f"`nodal review` printed no URL within 60 s (exit {proc.poll()}):\n"
                        f"stdout: {''.join(lines)}\nstderr: {Path(log).read_text()}")
        yield found
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def server(case, tmp_path_factory):
    """`nodal review CASE --no-open --bind 127.0.0.1:0`, and the URL it prints."""
    with review_server(case["dir"], tmp_path_factory.mktemp("review-log") / "stderr.txt") as found:
        yield found


# ------------------------------------------------------------------------------------------------
# HTTP helpers
# ------------------------------------------------------------------------------------------------
def request(server, method, path, body=None, token=True, headers=None):
    """(status, headers, body bytes) of one request; the token goes in X-Nodal-Token."""
    conn = http.client.HTTPConnection("127.0.0.1", server["port"], timeout=30)
    h = dict(headers or {})
    if token is True:
        h["X-Nodal-Token"] = server["token"]
    elif token:
        h["X-Nodal-Token"] = token
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    if data is not None:
        h.setdefault("Content-Type", "application/json")
    try:
        # http.client sends the path as given: no normalisation of `..` or percent escapes.
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
    finally:
        conn.close()


def api_json(server, method, path, body=None):
    status, _, data = request(server, method, path, body)
    assert status == 200, f"{method} {path}: {status} {data[:300]!r}"
    return json.loads(data)


def parse_slice(data):
    w, h = np.frombuffer(data[:8], "<u4")
    n = int(w) * int(h)
    assert len(data) == 8 + 6 * n, f"{len(data)} bytes for {w} x {h}"
    hu = np.frombuffer(data[8:8 + 2 * n], "<i2").reshape(h, w)
    lab = np.frombuffer(data[8 + 2 * n:], "<u4").reshape(h, w)
    return hu, lab


def expected_slice(vol, view, index):
    """A display-index volume's slice as the page shows it (rows top to bottom)."""
    if view == "axial":      # slice z: column x, row y
        return vol[:, :, index].T
    if view == "coronal":    # slice y: column x, row nz - 1 - z
        return vol[:, index, ::-1].T
    return vol[index, :, ::-1].T  # sagittal slice x: column y, row nz - 1 - z


def find_key(obj, key):
    """Every value of `key` anywhere in a JSON document."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == key:
                yield v
            yield from find_key(v, key)
    elif isinstance(obj, list):
        for v in obj:
            yield from find_key(v, key)


def current_labels(case):
    """Display labels of the case folder as it is on disk: nodes, and rejected voxels with bit 31."""
    d = case["dir"]
    lab = to_display(nib.load(d / "nodes.nii.gz")).astype(np.uint32)
    if (d / "rejected.nii.gz").exists():
        rej = to_display(nib.load(d / "rejected.nii.gz")).astype(np.uint32)
        lab = np.where(rej > 0, rej | np.uint32(0x80000000), lab)
    return lab


# ------------------------------------------------------------------------------------------------
# Browser helpers
# ------------------------------------------------------------------------------------------------
def launch(playwright):
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync"])


def open_page(browser, url, width=1400, height=900):
    page = browser.new_page(viewport={"width": width, "height": height})
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(url)
    page.wait_for_function("() => window.nodalReview && window.nodalReview.state && window.nodalReview.volume",
                           timeout=30_000)
    assert_no_error(page)
    page.evaluate("() => window.nodalReview.slicesReady()")
    return page


def assert_no_error(page):
    err = page.get_attribute("#status", "data-error")
    assert err is None, f"the page shows an error: {err}"
    assert not page.errors, f"script errors: {page.errors}"


def generation(page):
    return int(page.get_attribute("body", "data-generation"))


def wait_generation(page, gen):
    """Waits until the page holds a saved state of generation >= gen (or shows an error)."""
    page.wait_for_function(
        "g => +document.body.dataset.generation >= g || document.getElementById('status').hasAttribute('data-error')",
        arg=gen, timeout=30_000)
    assert_no_error(page)
    assert generation(page) >= gen
    page.evaluate("() => window.nodalReview.slicesReady()")


def state(page):
    return page.evaluate("() => window.nodalReview.state")


def node(st, node_id):
    found = [n for n in st["nodes"] if n["node_id"] == node_id]
    assert found, f"node {node_id} is not in the state: {[n['node_id'] for n in st['nodes']]}"
    return found[0]


def assert_fits(page, width):
    layout = page.evaluate("""() => {
        const vw = document.documentElement.clientWidth, out = [];
        for (const el of document.querySelectorAll('body *')) {
            const r = el.getBoundingClientRect();
            if (r.width > 0 && r.right > vw + 1) out.push(`${el.tagName}#${el.id} right ${Math.round(r.right)}`);
        }
        return {vw, scroll: document.documentElement.scrollWidth, out: out.slice(0, 10)};
    }""")
    assert layout["vw"] == width, layout
    assert layout["scroll"] <= width, f"the page scrolls sideways at {width} px: {layout}"
    assert not layout["out"], f"wider than the {width} px window: {layout['out']}"


def frames(page):
    """Waits for two animation frames: the views are drawn."""
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def is_edit(request):
    return request.method == "POST" and request.url.endswith("/edit")


def click_voxel(page, view, p):
    pos = page.evaluate("([v, p]) => window.nodalReview.toClient(v, p)", [view, p])
    page.mouse.click(pos["x"], pos["y"])


def check_tool(page, case, tool, saved):
    """Uses one of the add node, merge and split tools like a reviewer, checks the edit sent and
    its effect (on the state and on disk), and undoes it with ctrl+z."""
    before = state(page)
    ids = {n["node_id"] for n in before["nodes"]}
    page.click(f'label[for="tool-{tool}"]')
    assert page.evaluate("() => window.nodalReview.tool") == tool
    page.keyboard.press("Escape")
    assert page.evaluate("() => window.nodalReview.selected") is None
    if tool == "add":
        seed = case["grow_seed"]
        page.evaluate("p => window.nodalReview.setCursor(p)", seed)
        page.evaluate("() => window.nodalReview.slicesReady()")
        hu = int(case["ct"][tuple(seed)])
        with page.expect_request(is_edit) as req:
            click_voxel(page, "axial", seed)
        sent = req.value.post_data_json
        assert sent == {"op": "grow", "seed": seed, "hu_min": hu - 50, "hu_max": hu + 50, "max_radius_mm": 15}, sent
        st = saved()
        made = sorted({n["node_id"] for n in st["nodes"]} - ids)
        assert len(made) == 1, made
        grown = node(st, made[0])
        assert grown["origin"] == "added" and page.evaluate("() => window.nodalReview.selected") == made[0]
        reach = np.array(case["spacing"]) * np.maximum(np.abs(np.array(grown["bbox_min"]) - seed),
                                                       np.abs(np.array(grown["bbox_max"]) - seed))
        assert (reach <= 15 + 1e-6).all(), f"grown node {grown} reaches beyond 15 mm of {seed}"
        labels = to_display(nib.load(case["dir"] / "nodes.nii.gz"))
        assert labels[tuple(seed)] == made[0]
        grown_hu = case["ct"][labels == made[0]]
        assert grown_hu.min() >= hu - 50 and grown_hu.max() <= hu + 50
    elif tool == "merge":
        a, b = case["merge_pair"]
        page.click(f'#node-table tbody tr[data-node-id="{a}"]', modifiers=["Shift"])
        page.click(f'#node-table tbody tr[data-node-id="{b}"] input.pick')
        assert page.is_checked(f'#node-table tbody tr[data-node-id="{a}"] input.pick')
        assert page.is_checked(f'#node-table tbody tr[data-node-id="{b}"] input.pick')
        assert page.is_enabled("#btn-merge")
        with page.expect_request(is_edit) as req:
            page.click("#btn-merge")
        assert req.value.post_data_json == {"op": "merge", "node_ids": sorted([a, b])}, req.value.post_data_json
        st = saved()
        keep, gone = min(a, b), max(a, b)
        assert gone not in {n["node_id"] for n in st["nodes"]}
        m = node(st, keep)
        assert m["voxel_count"] == node(before, a)["voxel_count"] + node(before, b)["voxel_count"], m
        assert m["origin"] == "merged", m
    else:
        # Seeds at the node's voxels furthest right and left on the axial slice of its centre,
        # where its row puts the cursor.
        n_id = case["split"]
        page.click(f'#node-table tbody tr[data-node-id="{n_id}"]')
        page.evaluate("() => window.nodalReview.slicesReady()")
        z = node(before, n_id)["centre"][2]
        assert page.evaluate("() => window.nodalReview.cursor")[2] == z
        on_slice = np.argwhere(case["pred"][:, :, z] == n_id)
        seeds = [[int(on_slice[k][0]), int(on_slice[k][1]), int(z)] for k in (on_slice[:, 0].argmin(), on_slice[:, 0].argmax())]
        for p in seeds:
            click_voxel(page, "axial", p)
        assert "2 seeds" in page.inner_text("#split-info")
        with page.expect_request(is_edit) as req:
            page.click("#btn-split")
        assert req.value.post_data_json == {"op": "split", "node_id": n_id, "seeds": seeds}, req.value.post_data_json
        st = saved()
        made = sorted({n["node_id"] for n in st["nodes"]} - ids)
        assert len(made) == 1, made
        assert node(st, n_id)["voxel_count"] + node(st, made[0])["voxel_count"] == node(before, n_id)["voxel_count"]
        assert node(st, made[0])["origin"] == "split"
        labels = to_display(nib.load(case["dir"] / "nodes.nii.gz"))
        assert labels[tuple(seeds[0])] == n_id and labels[tuple(seeds[1])] == made[0], "the first seed's piece keeps the id"
    shot(page, f"4-{tool}-1400.png")
    page.mouse.move(2, 2)
    page.keyboard.press("Control+z")
    st = saved()
    assert sorted((n["node_id"], n["voxel_count"]) for n in st["nodes"]) == \
        sorted((n["node_id"], n["voxel_count"]) for n in before["nodes"]), f"undo after {tool}"
    page.click('label[for="tool-select"]')


def shot(page, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / name))


def coloured_fraction(page, view, centre, half_px):
    """Fraction of coloured (overlay) pixels in a box around a voxel on a view's canvas, the
    crosshair's lines left out."""
    pos = page.evaluate("([v, p]) => window.nodalReview.toClient(v, p)", [view, centre])
    box = page.locator(f"#view-{view}").bounding_box()
    img = np.asarray(Image.open(BytesIO(page.locator(f"#view-{view}").screenshot())).convert("RGB")).astype(int)
    cx, cy = int(round(pos["x"] - box["x"])), int(round(pos["y"] - box["y"]))
    h = max(2, int(half_px))
    sub = img[cy - h:cy + h + 1, cx - h:cx + h + 1]
    keep = np.ones(sub.shape[:2], bool)
    keep[max(0, h - 2):h + 3, :] = False
    keep[:, max(0, h - 2):h + 3] = False
    spread = sub.max(axis=-1) - sub.min(axis=-1)
    return float((spread[keep] > 25).mean())


# ------------------------------------------------------------------------------------------------
# The tests
# ------------------------------------------------------------------------------------------------
def test_review_session_in_the_browser(case, server):
    from playwright.sync_api import sync_playwright

    d, dims, spacing = case["dir"], case["dims"], case["spacing"]
    fp, tp, miss = case["fp"], case["tp"], case["miss"]
    print(f"FP {fp} ({'no ground-truth overlap' if case['fp_is_true_fp'] else 'least overlap: the demo has no FP'}), "
          f"TP {tp}, missed GT {miss} at {case['miss_centre']}, brush {case['miss_r']} mm")

    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = open_page(browser, server["url"])
            st0 = state(page)
            gen = [generation(page)]

            def saved():
                """Waits for the next edit's answer: every edit is saved at once."""
                gen[0] += 1
                wait_generation(page, gen[0])
                return state(page)
            assert page.evaluate("() => window.nodalReview.volume.dims") == dims
            assert np.allclose(page.evaluate("() => window.nodalReview.volume.spacing_mm"), spacing)
            # The state describes the model's nodes in display indices.
            pred = case["pred"]
            assert sorted(n["node_id"] for n in st0["nodes"]) == sorted(int(i) for i in np.unique(pred) if i)
            for n in st0["nodes"]:
                m = pred == n["node_id"]
                idx = np.argwhere(m)
                assert n["voxel_count"] == m.sum(), n
                assert n["bbox_min"] == idx.min(axis=0).tolist() and n["bbox_max"] == idx.max(axis=0).tolist(), n
                assert m[tuple(n["centre"])], f"centre {n['centre']} of node {n['node_id']} is not inside it"
                assert n["status"] == "unreviewed" and n["origin"] == "model", n
            listed = api_json(server, "GET", "/api/cases")
            assert listed["reviewer"] == "pytest", listed
            assert [(c["case_id"], c.get("n_nodes"), c["reviewed"]) for c in listed["cases"]] == \
                [(d.name, len(st0["nodes"]), False)], listed
            assert page.evaluate("() => window.nodalReview.volume.orientation") == "LPS"
            rows = page.locator("#node-table tbody tr")
            assert rows.count() == len(st0["nodes"])
            assert page.locator("#case option").count() == 1
            assert_fits(page, 1400)
            shot(page, "1-opened-1400.png")

            # Sorting by short axis: largest first, then smallest first.
            page.click('#node-table th[data-key="short_axis_mm"]')
            ids = [int(x) for x in page.eval_on_selector_all("#node-table tbody tr", "rs => rs.map(r => r.dataset.nodeId)")]
            by_sa = sorted(st0["nodes"], key=lambda n: -n["short_axis_mm"])
            assert ids[0] == by_sa[0]["node_id"] and ids[-1] == by_sa[-1]["node_id"], ids
            page.click('#node-table th[data-key="short_axis_mm"]')
            ids = [int(x) for x in page.eval_on_selector_all("#node-table tbody tr", "rs => rs.map(r => r.dataset.nodeId)")]
            assert ids[0] == by_sa[-1]["node_id"], ids

            # Scrolling (keys and wheel over a view) and window/level (presets, right-drag).
            c0 = page.evaluate("() => window.nodalReview.cursor")
            box = page.locator("#view-axial").bounding_box()
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.keyboard.press("ArrowUp")
            page.keyboard.press("PageUp")
            assert page.evaluate("() => window.nodalReview.cursor") == [c0[0], c0[1], c0[2] + 11]
            page.mouse.wheel(0, 100)
            assert page.evaluate("() => window.nodalReview.cursor") == [c0[0], c0[1], c0[2] + 10]
            page.evaluate("() => window.nodalReview.slicesReady()")
            assert page.get_attribute("#view-axial", "data-index") == str(c0[2] + 10)
            slice_requests = []
            page.on("request", lambda r: "/slice?" in r.url and slice_requests.append(r.url))
            page.click("#wl-bone")
            assert page.inner_text("#wl") == "W 1800 L 400"
            page.mouse.move(box["x"] + 50, box["y"] + 50)
            page.mouse.down(button="right")
            page.mouse.move(box["x"] + 90, box["y"] + 70, steps=4)
            page.mouse.up(button="right")
            assert page.inner_text("#wl") != "W 1800 L 400"
            page.click("#wl-soft")
            assert page.inner_text("#wl") == "W 400 L 40"
            frames(page)
            assert not slice_requests, f"a window change fetched slices again: {slice_requests}"
            assert page.evaluate("() => window.nodalReview.cursor") == [c0[0], c0[1], c0[2] + 10]

            # 1. Reject the false positive: its row moves the cursor to its centre.
            page.click(f'#node-table tbody tr[data-node-id="{fp}"]')
            assert page.evaluate("() => window.nodalReview.selected") == fp
            assert page.evaluate("() => window.nodalReview.cursor") == node(st0, fp)["centre"]
            page.evaluate("() => window.nodalReview.slicesReady()")
            assert page.get_attribute("#view-axial", "data-index") == str(node(st0, fp)["centre"][2])
            page.click("#btn-reject")
            saved()
            assert node(state(page), fp)["status"] == "rejected"
            assert page.get_attribute(f'#node-table tbody tr[data-node-id="{fp}"]', "data-status") == "rejected"
            assert "saved" in page.inner_text("#status")
            shot(page, "2-rejected-1400.png")

            # 2. The true positive is metastatic.
            page.click(f'#node-table tbody tr[data-node-id="{tp}"]')
            page.click("#cls-metastatic")
            saved()
            assert node(state(page), tp)["class"] == "metastatic"
            assert page.get_attribute("#cls-metastatic", "aria-pressed") == "true"
            page.select_option("#level", "IIA")
            assert node(saved(), tp)["level"] == "IIA"
            page.fill("#note", "round, necrotic centre")
            page.keyboard.press("Enter")
            assert node(saved(), tp)["note"] == "round, necrotic centre"

            # 3. Paint the missed node: no node selected, paint tool, 3D sphere, the node's radius,
            #    one click-and-wiggle of the mouse inside the centre voxel on the axial view.
            page.click("#btn-deselect")
            assert page.evaluate("() => window.nodalReview.selected") is None
            page.click('label[for="tool-paint"]')
            assert page.evaluate("() => window.nodalReview.tool") == "paint"
            page.select_option("#brush-shape", "sphere")
            page.fill("#brush-radius", str(case["miss_r"]))
            centre = case["miss_centre"]
            assert page.evaluate("p => window.nodalReview.setCursor(p)", centre) == centre
            page.evaluate("() => window.nodalReview.slicesReady()")
            # Zoom in on it with ctrl+wheel: the point under the mouse stays put.
            # (Wheel events carry whole CSS pixels, so the mouse goes to one.)
            pos = page.evaluate("p => window.nodalReview.toClient('axial', p)", centre)
            mx, my = round(pos["x"]), round(pos["y"])
            page.mouse.move(mx, my)
            page.keyboard.down("Control")
            for _ in range(10):
                page.mouse.wheel(0, -100)
            page.keyboard.up("Control")
            frames(page)
            zoomed = page.evaluate("p => window.nodalReview.toClient('axial', p)", centre)
            assert abs(zoomed["x"] - mx) < zoomed["pxPerVoxel"][0] / 2 and abs(zoomed["y"] - my) < zoomed["pxPerVoxel"][1] / 2, \
                f"zooming moved the voxel under the mouse: {pos} -> {zoomed}"
            assert zoomed["pxPerVoxel"][0] > 3 * pos["pxPerVoxel"][0], (pos, zoomed)
            assert page.evaluate("() => window.nodalReview.cursor") == centre, "ctrl+wheel scrolled"
            pos = zoomed
            half = min(pos["pxPerVoxel"]) / 2
            before_ids = {n["node_id"] for n in state(page)["nodes"]}
            with page.expect_request(is_edit) as req:
                page.mouse.move(pos["x"], pos["y"])
                page.mouse.down()
                page.mouse.move(pos["x"] + half * 0.5, pos["y"] + half * 0.5, steps=3)
                page.mouse.move(pos["x"] - half * 0.5, pos["y"], steps=3)
                page.mouse.up()
            sent = req.value.post_data_json
            assert sent == {"op": "paint", "points": [centre], "radius_mm": case["miss_r"], "shape": "sphere",
                            "view": "axial", "node_id": None}, sent
            saved()
            st = state(page)
            added = sorted({n["node_id"] for n in st["nodes"]} - before_ids)
            assert len(added) == 1, f"paint with no node selected made nodes {added}"
            new = added[0]
            assert page.evaluate("() => window.nodalReview.selected") == new
            assert node(st, new)["origin"] == "added"
            # The overlay shows the new node on the axial view, and `o` hides it.
            # (The mouse leaves the view, taking the brush outline with it.)
            page.mouse.move(2, 2)
            r_px = case["miss_r"] * pos["pxPerVoxel"][0] / spacing[0] * 0.6
            assert coloured_fraction(page, "axial", centre, r_px) > 0.5
            page.keyboard.press("o")
            frames(page)
            assert not page.is_checked("#overlay")
            assert coloured_fraction(page, "axial", centre, r_px) < 0.02
            page.keyboard.press("o")
            frames(page)
            shot(page, "3-painted-1400.png")
            page.click("#btn-reset-zoom")

            # Undo and redo (button, keyboard) come back to the same node.
            new_count = node(st, new)["voxel_count"]
            assert page.is_enabled("#btn-undo")
            page.click("#btn-undo")
            saved()
            assert new not in {n["node_id"] for n in state(page)["nodes"]}
            assert page.is_enabled("#btn-redo")
            page.mouse.move(pos["x"], pos["y"])
            page.keyboard.press("Control+Shift+Z")
            saved()
            assert node(state(page), new)["voxel_count"] == new_count
            redone = state(page)

            # 4. The other tools, each undone again: add node, merge, split.
            for tool in ("add", "merge", "split"):
                check_tool(page, case, tool, saved)
            final = state(page)
            assert final["generation"] == gen[0]
            # An edit the server refuses: its error shows, nothing changes.
            page.evaluate("() => window.nodalReview.edit({op: 'annotate', node_id: 999999, status: 'accepted'})")
            err = page.get_attribute("#status", "data-error")
            assert err and err.startswith("400"), err
            assert "error" in page.get_attribute("#status", "class") and page.is_visible("#status")
            assert generation(page) == final["generation"] and state(page) == final
            strip = lambda st: sorted((n["node_id"], n["voxel_count"], n["status"], n["class"]) for n in st["nodes"])
            assert strip(final) == strip(redone), "undoing the other tools did not restore the nodes"

            # The page fits 1024 px too.
            page.set_viewport_size({"width": 1024, "height": 768})
            frames(page)
            assert_fits(page, 1024)
            shot(page, "4-painted-1024.png")
            page.close()

            # 5. A reload shows the reviewed state.
            page = open_page(browser, server["url"])
            assert generation(page) == final["generation"]
            row = lambda i: f'#node-table tbody tr[data-node-id="{i}"]'
            assert page.get_attribute(row(fp), "data-status") == "rejected"
            assert page.get_attribute(f"{row(tp)} td.cls", "data-v") == "metastatic"
            assert page.locator(row(new)).count() == 1
            reloaded = state(page)
            for n in final["nodes"]:
                m = node(reloaded, n["node_id"])
                assert (m["status"], m["class"], m["origin"]) == (n["status"], n["class"], n["origin"])
            page.click(row(new))
            assert page.evaluate("() => window.nodalReview.cursor") == node(reloaded, new)["centre"]
            shot(page, "5-reloaded-1400.png")
            assert_no_error(page)
        finally:
            browser.close()

    # ---- The case folder on disk ----
    orig = case["orig"]
    for name in ("nodes.nii.gz", "nodes.json", "nodes.csv"):
        assert (d / "model-output" / name).read_bytes() == (orig / name).read_bytes(), f"model-output/{name} changed"

    review = json.loads((d / "review.json").read_text())
    assert review["schema"] == "nodal.review/1"
    assert review["generation"] == final["generation"]
    reviews = review["nodes"]
    reviews = {int(k): v for k, v in reviews.items()} if isinstance(reviews, dict) else {v["node_id"]: v for v in reviews}
    assert reviews[fp]["status"] == "rejected", reviews[fp]
    assert (reviews[tp]["class"], reviews[tp]["level"], reviews[tp]["note"]) == \
        ("metastatic", "IIA", "round, necrotic centre"), reviews[tp]
    assert reviews[new]["origin"] == "added", reviews[new]
    assert review["history"] and all(h["reviewer"] == "pytest" for h in review["history"]), review["history"]
    # It names the model output it started from by sha256.
    sha = hashlib.sha256((orig / "nodes.nii.gz").read_bytes()).hexdigest()
    assert sha in json.dumps(review), "review.json does not name the model output's sha256"
    assert [c["reviewed"] for c in api_json(server, "GET", "/api/cases")["cases"]] == [True]

    img = nib.load(d / "nodes.nii.gz")
    assert np.allclose(img.affine, case["ct_img"].affine) and img.shape == case["ct_img"].shape
    labels = to_display(img).astype(np.int64)
    assert not (labels == fp).any(), "the rejected node is still in nodes.nii.gz"
    assert (labels == tp).sum() == (case["pred"] == tp).sum()
    rejected = to_display(nib.load(d / "rejected.nii.gz")).astype(np.int64)
    assert np.array_equal(rejected == fp, case["pred"] == fp), "rejected.nii.gz is not the FP's voxels"
    assert np.array_equal(rejected > 0, case["pred"] == fp), "rejected.nii.gz holds more than the FP"
    # The painted node: every free voxel of the brush sphere, nothing outside it.
    painted = labels == new
    ball = case["miss_ball"]
    assert painted.sum() == new_count
    assert not (painted & ~ball).any(), f"{(painted & ~ball).sum()} painted voxels outside the brush sphere"
    free = ball & (case["pred"] == 0)
    assert np.array_equal(painted, free), f"painted {painted.sum()} voxels, the sphere has {free.sum()} free"
    in_gt = float((case["gt"][painted] == miss).mean())
    print(f"painted node {new}: {painted.sum()} voxels, {in_gt:.0%} inside ground-truth node {miss} "
          f"({(case['gt'] == miss).sum()} voxels)")
    assert in_gt >= 0.4

    # nodes.json: the measurements of `nodal measure` on the corrected label map.
    ref_dir = d.parent / "measured"
    subprocess.run([NODAL, "measure", str(d / "nodes.nii.gz"), "--labels", "--ct", str(d / "ct.nii.gz"),
                    "-o", str(ref_dir)], check=True, cwd=ROOT, capture_output=True)
    ref = {n["node_id"]: n for n in json.loads((ref_dir / "nodes.json").read_text())["nodes"]}
    got = {n["node_id"]: n for n in json.loads((d / "nodes.json").read_text())["nodes"]}
    assert sorted(got) == sorted(ref) == sorted(i for i in np.unique(labels) if i)
    for i, r in ref.items():
        for key in ("short_axis_mm", "long_axis_mm", "voxel_count", "volume_mm3"):
            assert abs(got[i][key] - r[key]) <= 1e-6, (i, key, got[i][key], r[key])
        s = node(final, i)
        assert abs(s["short_axis_mm"] - r["short_axis_mm"]) <= 1e-6 and s["voxel_count"] == r["voxel_count"], (i, s)
    # nodes.json and nodes.csv carry each node's review, and nodes.json the edit's generation.
    nodes_json = json.loads((d / "nodes.json").read_text())
    gens = list(find_key(nodes_json, "generation"))
    assert gens and all(g == final["generation"] for g in gens), f"nodes.json generation: {gens}"
    for i, n in got.items():
        s = node(final, i)
        for key in ("status", "class", "level", "note"):
            assert key in n and n[key] == s[key], (i, key, n.get(key, "missing"), s[key])
    rows = {int(r["node_id"]): r for r in csv.DictReader((d / "nodes.csv").open())}
    assert sorted(rows) == sorted(ref)
    for key in ("status", "class", "level", "note"):
        assert key in rows[tp], f"nodes.csv has no {key} column"
    assert rows[tp]["class"] == "metastatic" and rows[tp]["status"] == node(final, tp)["status"], rows[tp]


def test_slices_are_the_case_in_display_order_and_fast(case, server):
    """The binary slices match nibabel's view of the files on disk, uncompressed on this machine, under
    50 ms median each."""
    ct, dims = case["ct"], case["dims"]
    cid = api_json(server, "GET", "/api/cases")["cases"][0]["case_id"]
    lab = current_labels(case)
    gen = api_json(server, "GET", f"/api/cases/{cid}/nodes")["generation"]
    times = {"axial": [], "coronal": []}
    for view, axis in (("axial", 2), ("coronal", 1)):
        for index in np.linspace(0, dims[axis] - 1, 20).round().astype(int):
            t = time.perf_counter()
            status, headers, data = request(server, "GET", f"/api/cases/{cid}/slice?view={view}&index={index}")
            times[view].append((time.perf_counter() - t) * 1000)
            assert status == 200, (view, index, status, data[:200])
            hu, lb = parse_slice(data)
            assert np.array_equal(hu, expected_slice(ct, view, index)), f"{view} {index}: HU differ"
            assert np.array_equal(lb, expected_slice(lab, view, index)), f"{view} {index}: labels differ"
    # Sagittal through the middle; on this machine sent as it is even when gzip is welcome
    # (compressing costs more than it saves over loopback; the Rust tests check gzip for others).
    x = dims[0] // 2
    status, headers, data = request(server, "GET", f"/api/cases/{cid}/slice?view=sagittal&index={x}",
                                    headers={"Accept-Encoding": "gzip"})
    assert status == 200
    assert headers.get("content-encoding") is None, headers
    hu, lb = parse_slice(data)
    assert np.array_equal(hu, expected_slice(ct, "sagittal", x)) and np.array_equal(lb, expected_slice(lab, "sagittal", x))
    # Out of range and unknown views are refused.
    for q in (f"view=axial&index={dims[2]}", "view=axial&index=-1", "view=oblique&index=0", "view=axial"):
        status, _, data = request(server, "GET", f"/api/cases/{cid}/slice?{q}")
        assert status == 400, (q, status, data[:200])
        assert "error" in json.loads(data)
    assert api_json(server, "GET", f"/api/cases/{cid}/nodes")["generation"] == gen
    every = times["axial"] + times["coronal"]
    med = statistics.median(every)
    print(f"slice latency over HTTP: median {med:.1f} ms (axial {statistics.median(times['axial']):.1f}, "
          f"coronal {statistics.median(times['coronal']):.1f}), max {max(every):.1f} ms, "
          f"{len(every)} slices of {dims}")
    assert med < 50, f"median slice latency {med:.1f} ms"


def test_token_paths_and_bad_edits_are_refused(case, server):
    base = f"/api/cases"
    # No token, a wrong token (header or query): 401.
    for path, token in (("/api/cases", None), ("/api/cases", "wrong"), ("/api/cases?token=wrong", None),
                        ("/?token=wrong", None), ("/", None)):
        status, _, data = request(server, "GET", path, token=token)
        assert status == 401, (path, token, status)
    # The token in the query works as in the header.
    status, _, _ = request(server, "GET", f"/api/cases?token={server['token']}", token=None)
    assert status == 200
    # The page needs the token too, and is what the browser gets.
    status, headers, page = request(server, "GET", f"/?token={server['token']}", token=None)
    assert status == 200 and page.lstrip().startswith(b"<!DOCTYPE html>"), status
    assert not re.search(rb"https?:/{2}|<link[^>]*href=\"(?!data:)|@import|url\(|src=", page), \
        "the page loads something from outside"

    cid = api_json(server, "GET", "/api/cases")["cases"][0]["case_id"]
    gen = api_json(server, "GET", f"/api/cases/{cid}/nodes")["generation"]
    # Paths that try to leave the case folders: never a file.
    for path in ("/api/cases/..%2F..%2Fetc/volume", "/../../etc/passwd", "/api/cases/%2e%2e/nodes",
                 "/api/cases/..%2F..%2F..%2Fetc%2Fpasswd/nodes", "/api/cases/%2e%2e%2f%2e%2e%2fetc/slice?view=axial&index=0",
                 f"/api/cases/{cid}/../../../etc/passwd", f"/api/cases/{cid}/ct.nii.gz", "/etc/passwd",
                 "/api/cases/nonexistent/nodes"):
        status, _, data = request(server, "GET", path)
        assert status in (400, 404), (path, status, data[:200])
        assert b"root:" not in data
        assert "error" in json.loads(data), (path, data[:200])

    dims = case["dims"]
    some = int(np.unique(case["pred"])[1])
    paint = {"op": "paint", "radius_mm": 3, "shape": "disc", "view": "axial", "node_id": None}
    bad = [
        dict(paint, points=[[dims[0], 0, 0]]),
        dict(paint, points=[[0, 0, dims[2] + 10]]),
        dict(paint, points=[[-1, 5, 5]]),
        dict(paint, points=[[5, 5]]),
        dict(paint, points=[[5, 5, 5]], radius_mm=1e6),
        dict(paint, points=[[5, 5, 5]], node_id=999_999),
        {"op": "grow", "seed": [dims[0] + 1, 0, 0], "hu_min": 0, "hu_max": 100, "max_radius_mm": 10},
        {"op": "annotate", "node_id": 999_999, "status": "accepted"},
        {"op": "annotate", "node_id": some, "status": "maybe"},
        {"op": "annotate", "node_id": some, "level": "XII"},
        {"op": "merge", "node_ids": [some]},
        {"op": "explode"},
    ]
    for body in bad:
        status, _, data = request(server, "POST", f"/api/cases/{cid}/edit", body)
        assert status == 400, (body, status, data[:200])
        assert "error" in json.loads(data), data[:200]
    status, _, data = request(server, "POST", f"/api/cases/{cid}/edit", b"{not json")
    assert status == 400, (status, data[:200])
    # An edit without the token changes nothing either.
    status, _, _ = request(server, "POST", f"/api/cases/{cid}/edit",
                           {"op": "annotate", "node_id": some, "note": "no token"}, token=None)
    assert status == 401
    st = api_json(server, "GET", f"/api/cases/{cid}/nodes")
    assert st["generation"] == gen, "a refused edit changed the generation"
    assert all(n["note"] != "no token" for n in st["nodes"])


def test_a_512_slice_appears_within_50_ms(tmp_path):
    """On a 512 x 512 scan stored RAS (as most NIfTI files), moving the cursor redraws all three
    views (a 512 x 512 axial slice and two 512 x 48 reformations, fetched, decoded, windowed and
    drawn) within 50 ms at the median, and the cursor's HU is nibabel's value at that voxel."""
    from playwright.sync_api import sync_playwright

    d = tmp_path / "scan512"
    d.mkdir()
    rng = np.random.default_rng(3)
    ct = rng.normal(40, 60, (512, 512, 48)).astype(np.int16)  # noise: the worst case for gzip
    affine = np.diag([-0.7, -0.7, 3.0, 1.0])
    nib.save(nib.Nifti1Image(ct, affine), d / "ct.nii.gz")
    labels = np.zeros(ct.shape, np.uint16)
    labels[200:220, 240:260, 20:26] = 1
    labels[300:310, 100:115, 10:14] = 2
    nib.save(nib.Nifti1Image(labels, affine), d / "nodes.nii.gz")
    img = nib.load(d / "ct.nii.gz")
    disp = to_display(img)
    with review_server(d, tmp_path / "stderr.txt") as srv, sync_playwright() as p:
        browser = launch(p)
        try:
            page = open_page(browser, srv["url"])
            assert page.evaluate("() => window.nodalReview.volume.dims") == [512, 512, 48]
            times = page.evaluate("""async () => {
                const out = [];
                for (let z = 1; z < 45; z += 2) {
                    const t = performance.now();
                    window.nodalReview.setCursor([100 + 7 * z, 400 - 5 * z, z]);
                    await window.nodalReview.slicesReady();
                    // The views are drawn in the next animation frame: wait for it too.
                    await new Promise((r) => requestAnimationFrame(r));
                    out.push(performance.now() - t);
                }
                return out;
            }""")
            x, y, z = 100 + 7 * 43, 400 - 5 * 43, 43
            hu = page.inner_text("#cursor-hu")
        finally:
            browser.close()
    median = statistics.median(times)
    print(f"512 x 512 x 48: cursor move to all three views drawn, median {median:.1f} ms, "
          f"max {max(times):.1f} ms over {len(times)} moves")
    assert median < 50, times
    assert int(hu) == int(disp[x, y, z]), (hu, disp[x, y, z])
