"""Times `nodal review` on a case folder: slices over HTTP (each view, 30 positions), and edits
(an annotation, a reject, a paint stroke, undo), each saved before it answers.

    .cache/venv/bin/python scripts/bench_review.py CASE_DIR [--nodal target/release/nodal]

The folder is copied first (edits are saved into it). Prints medians and maxima in ms.
"""
import argparse
import http.client
import json
import shutil
import statistics
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("case")
    ap.add_argument("--nodal", default="target/release/nodal")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        case = Path(tmp) / Path(a.case).name
        shutil.copytree(a.case, case)
        proc = subprocess.Popen([a.nodal, "-q", "review", str(case), "--no-open"], stdout=subprocess.PIPE, text=True)
        try:
            u = urllib.parse.urlsplit(proc.stdout.readline().strip())
            port, token = u.port, urllib.parse.parse_qs(u.query)["token"][0]

            def call(method, path, body=None):
                c = http.client.HTTPConnection("127.0.0.1", port)
                t = time.perf_counter()
                c.request(method, path, body=body, headers={"X-Nodal-Token": token, "Accept-Encoding": "gzip"})
                r = c.getresponse()
                data = r.read()
                ms = (time.perf_counter() - t) * 1000
                assert r.status == 200, (path, r.status, data[:200])
                return ms, data

            cid = json.loads(call("GET", "/api/cases")[1])["cases"][0]["case_id"]
            ms, data = call("GET", f"/api/cases/{cid}/volume")
            dims = json.loads(data)["dims"]
            print(f"{cid}: {dims}, first request (reads the case) {ms:.0f} ms")
            for view, axis in (("axial", 2), ("coronal", 1), ("sagittal", 0)):
                times = [call("GET", f"/api/cases/{cid}/slice?view={view}&index={i}")[0]
                         for i in range(0, dims[axis], max(1, dims[axis] // 30))]
                print(f"slice {view}: median {statistics.median(times):.1f} ms, max {max(times):.1f} ms ({len(times)})")
            nodes = json.loads(call("GET", f"/api/cases/{cid}/nodes")[1])["nodes"]
            first = nodes[0]
            edits = [
                ("annotate (class)", {"op": "annotate", "node_id": first["node_id"], "class": "metastatic"}),
                ("reject", {"op": "annotate", "node_id": nodes[-1]["node_id"], "status": "rejected"}),
                ("paint stroke, 10 points, 3 mm sphere",
                 {"op": "paint", "points": [[first["centre"][0] + k, first["centre"][1] + 12, first["centre"][2]] for k in range(10)],
                  "radius_mm": 3, "shape": "sphere", "view": "axial", "node_id": None}),
                ("undo", {"op": "undo"}),
            ]
            for name, e in edits:
                ms, _ = call("POST", f"/api/cases/{cid}/edit", json.dumps(e))
                print(f"edit {name}: {ms:.0f} ms")
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
