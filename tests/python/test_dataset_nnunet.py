"""`nodal dataset` writes a folder that nnU-Net v2 takes as it is.

The checks are those of nnU-Net v2's `verify_dataset_integrity` (nnunetv2/experiment_planning/
verify_dataset_integrity.py), done here with nibabel: the folder name, dataset.json's required keys,
consecutive label values starting with background 0, numTraining equal to the cases, one image per
channel per case named `<case>_<XXXX><file_ending>`, label files whose values are all declared, and
images and labels of one case on the same grid. nodal's own readers use the instance ids beside them.
"""
import json
import os
import re
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
NODAL = os.environ.get("NODAL_BIN", str(ROOT / "target/debug/nodal"))


def verify_like_nnunet(folder: Path):
    assert re.fullmatch(r"Dataset\d{3}_.+", folder.name), folder.name
    ds = json.loads((folder / "dataset.json").read_text())
    for key in ("labels", "channel_names", "numTraining", "file_ending"):
        assert key in ds, f"dataset.json lacks {key}"
    values = sorted(ds["labels"].values())
    assert ds["labels"].get("background") == 0
    assert values == list(range(len(values))), "label values must be consecutive from 0"
    ending = ds["file_ending"]
    labels = sorted((folder / "labelsTr").glob(f"*{ending}"))
    cases = [p.name[: -len(ending)] for p in labels]
    assert ds["numTraining"] == len(cases)
    channels = sorted(int(c) for c in ds["channel_names"])
    images = sorted((folder / "imagesTr").glob(f"*{ending}"))
    assert len(images) == len(cases) * len(channels)
    for case in cases:
        label = nib.load(folder / "labelsTr" / f"{case}{ending}")
        present = set(np.unique(np.asarray(label.dataobj)).tolist())
        assert present <= set(values), f"{case}: label values {present - set(values)} not in dataset.json"
        for c in channels:
            image = nib.load(folder / "imagesTr" / f"{case}_{c:04d}{ending}")
            assert image.shape == label.shape, case
            np.testing.assert_allclose(image.affine, label.affine, atol=1e-4, err_msg=case)
    return cases


def test_dataset_passes_nnunet_integrity_rules_and_keeps_node_ids(tmp_path):
    out = tmp_path / "Dataset123_NodalSim"
    subprocess.run(
        [NODAL, "dataset", "--n", "2", "--size", "small", "--seed", "3", "-o", str(out)], check=True, cwd=ROOT
    )
    cases = verify_like_nnunet(out)
    assert cases == ["case_000", "case_001"]
    for case in cases:
        binary = np.asarray(nib.load(out / "labelsTr" / f"{case}.nii.gz").dataobj)
        ids = np.asarray(nib.load(out / "instancesTr" / f"{case}.nii.gz").dataobj)
        assert binary.dtype == np.uint8 and set(np.unique(binary).tolist()) <= {0, 1}
        np.testing.assert_array_equal(binary > 0, ids > 0)
        nodes = json.loads((out / "nodesTr" / f"{case}.json").read_text())["nodes"]
        assert sorted(int(i) for i in np.unique(ids) if i) == sorted(n["id"] for n in nodes)


def test_a_folder_nnunet_would_not_take_is_refused(tmp_path):
    out = tmp_path / "my-dataset"
    r = subprocess.run(
        [NODAL, "dataset", "--n", "1", "--size", "small", "-o", str(out)], capture_output=True, text=True, cwd=ROOT
    )
    assert r.returncode == 2, r.stderr
    assert "DatasetNNN_Name" in r.stderr and str(out) in r.stderr
    assert not out.exists()
