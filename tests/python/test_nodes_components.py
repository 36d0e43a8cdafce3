"""Cross-check of nodal's 3D connected components against cc3d (connected-components-3d).

nodal labels a NIfTI mask (crates/eval/examples/cc_bench.rs --out); the labelling must equal cc3d's
up to renumbering (a one-to-one map between the two label sets), with the same component count, for
6-, 18- and 26-connectivity. Both number components in raster order of first voxel, so the ids are
compared exactly as well.
"""
import subprocess

import cc3d
import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from cargo_example import example


def masks():
    rng = np.random.default_rng(7)
    out = []
    # Sparse random voxels: many diagonal-only contacts, where the connectivities differ most.
    out.append((rng.random((23, 31, 37)) < 0.25).astype(np.uint8))
    # Smoothed-noise blobs.
    noise = ndimage.gaussian_filter(rng.standard_normal((40, 50, 60)), 2.0)
    out.append((noise > 0.05).astype(np.uint8))
    # A thin diagonal line touching only at corners, and an empty mask.
    line = np.zeros((12, 12, 12), np.uint8)
    for t in range(12):
        line[t, t, t] = 1
    out.append(line)
    out.append(np.zeros((5, 6, 7), np.uint8))
    return out


@pytest.mark.parametrize("connectivity", [6, 18, 26])
def test_components_match_cc3d(tmp_path, connectivity):
    exe = example("cc_bench")
    for n, mask_kji in enumerate(masks()):
        src = tmp_path / f"mask{n}.nii"
        dst = tmp_path / f"labels{n}.nii"
        affine = np.diag([-0.7, -0.8, 2.0, 1.0])  # anisotropic, RAS-flipped: labelling ignores geometry
        nib.save(nib.Nifti1Image(np.ascontiguousarray(mask_kji.transpose(2, 1, 0)), affine), src)
        subprocess.run([exe, str(src), "--connectivity", str(connectivity), "--repeat", "1", "--out", str(dst)],
                       check=True, capture_output=True)
        ours = np.asarray(nib.load(dst).dataobj).transpose(2, 1, 0)
        theirs, count = cc3d.connected_components(mask_kji, connectivity=connectivity, return_N=True)
        assert ours.max() == count, (n, connectivity)
        assert np.array_equal(ours > 0, theirs > 0)
        # One-to-one correspondence of labels.
        fg = theirs > 0
        pairs = np.unique(np.stack([ours[fg], theirs[fg]]), axis=1)
        assert pairs.shape[1] == count
        assert len(np.unique(pairs[0])) == count and len(np.unique(pairs[1])) == count
        # Same numbering (raster order of first voxel).
        assert np.array_equal(ours, theirs.astype(ours.dtype)), (n, connectivity)
