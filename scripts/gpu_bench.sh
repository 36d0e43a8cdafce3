#!/usr/bin/env bash
# The network on a GPU (`--device gpu`) against the CPU, on one machine, in one run:
#   1. `nodal segment` on the 512x512x250 speed phantom: CPU, then GPU (batch 2, twice, and 8);
#      times per stage from segment.json, probability maps and labels compared with the CPU's;
#   2. training steps on small phantoms: CPU against GPU (seconds per step, loss);
#   3. one 64^3 tile of the shipped weights: burn on the GPU against the PyTorch twin on CUDA
#      (outputs to 1e-4; `scripts/torch_twin.py`).
# Needs a nodal built with `--features gpu` and the example `net_twin_dump` from the same build;
# step 3 runs only where python3 imports torch with CUDA.
#
#   cargo build --release -p nodal --features gpu && cargo build --release -p nodal-net --features gpu --examples
#   bash scripts/gpu_bench.sh OUT_DIR [TARGET_DIR]
# PHANTOM="--size small --seed 5" and TRAIN_STEPS=10 make a quick run (a software GPU, say).
set -uo pipefail
out=${1:?usage: gpu_bench.sh OUT_DIR [TARGET_DIR]}
bin_dir=${2:-target/release}
nodal=$bin_dir/nodal
mkdir -p "$out"
work=$(mktemp -d)
py=${PYTHON:-python3}
# A step that hangs (a driver compiling kernels forever) must not take the rest with it.
limit=${STEP_TIMEOUT:-300}

say() { echo "== $* ($(date +%T))"; }

say "machine"
nproc
nvidia-smi -L 2>/dev/null || true

say "speed phantom"
# shellcheck disable=SC2086 # PHANTOM holds several arguments
$nodal phantom ${PHANTOM:---size full --seed 0 --spacing 0.6 --slice-thickness 0.89} -o "$work/ph" || exit 1

run_segment() { # name device batch
  say "segment $1"
  timeout "$limit" $nodal segment "$work/ph/ct.nii.gz" -o "$work/$1" --probabilities --device "$2" --batch "$3" \
    >/dev/null || echo "segment $1 failed: exit $?"
}
run_segment cpu cpu 2
run_segment gpu gpu 2
run_segment gpu_again gpu 2
run_segment gpu_b8 gpu 8

say "compare"
$py - "$work" <<'EOF' | tee "$out/segment_compare.json"
import gzip, json, struct, sys
import numpy as np

DTYPES = {2: "u1", 4: "<i2", 16: "<f4", 512: "<u2"}

def nifti(path):
    raw = gzip.open(path).read()
    assert struct.unpack("<i", raw[:4])[0] == 348, "NIfTI-1 expected"
    dims = struct.unpack("<8h", raw[40:56])
    dtype = DTYPES[struct.unpack("<h", raw[70:72])[0]]
    off = int(struct.unpack("<f", raw[108:112])[0])
    n = int(np.prod(dims[1:dims[0] + 1]))
    return np.frombuffer(raw, dtype=dtype, count=n, offset=off)

work = sys.argv[1]
ref_p = nifti(f"{work}/cpu/probabilities.nii.gz")
ref_l = nifti(f"{work}/cpu/nodes.nii.gz")
res = {}
for name in ["gpu", "gpu_again", "gpu_b8"]:
    try:
        p = nifti(f"{work}/{name}/probabilities.nii.gz")
        l = nifti(f"{work}/{name}/nodes.nii.gz")
    except FileNotFoundError:
        res[name] = "missing"
        continue
    res[name] = {
        "prob_max_abs_diff": float(np.abs(p - ref_p).max()),
        "prob_voxels_diff_gt_1e-3": int((np.abs(p - ref_p) > 1e-3).sum()),
        "label_voxels_differ": int(((l > 0) != (ref_l > 0)).sum()),
        "nodes": [int(ref_l.max()), int(l.max())],
    }
for name in ["cpu", "gpu", "gpu_again", "gpu_b8"]:
    try:
        rec = json.load(open(f"{work}/{name}/segment.json"))
    except FileNotFoundError:
        continue
    res.setdefault(name, {}).update(timings_s=rec["timings_s"], device=rec["device"], batch=rec["batch"])
print(json.dumps(res, indent=2))
EOF

say "training steps"
$nodal dataset --n 3 --size small --seed 1 -o "$work/Dataset001_Train" >/dev/null &&
  $nodal dataset --n 1 --size small --seed 1 --split val -o "$work/Dataset002_Val" >/dev/null
$py - "$work" "${TRAIN_STEPS:-60}" <<'EOF'
import json, sys
work = sys.argv[1]
cfg = json.load(open("models/default/training/stage10_train_config.json"))
cfg.update(init_from="models/default", steps=int(sys.argv[2]), warmup_steps=5, val_every=1000, val_cases=1,
           checkpoint_every=1000, log_every=10, max_minutes=None)
json.dump(cfg, open(f"{work}/train.json", "w"), indent=2)
EOF
for dev in cpu gpu; do
  say "train $dev"
  timeout "$limit" $nodal train --data "$work/Dataset001_Train" --val-data "$work/Dataset002_Val" --config "$work/train.json" -o "$work/run_$dev" \
    --device "$dev" >/dev/null 2>"$work/train_$dev.err" || tail -5 "$work/train_$dev.err"
  cp "$work/run_$dev/log.csv" "$out/train_log_$dev.csv" 2>/dev/null && cat "$out/train_log_$dev.csv"
done

if $py -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  say "tile: burn on the GPU vs PyTorch on CUDA"
  NODAL_DEVICE=gpu timeout "$limit" "$bin_dir/examples/net_twin_dump" models/default "$work/twin" >/dev/null &&
    $py scripts/torch_twin.py models/default "$work/twin" --device cuda --batch 16 | tee "$out/twin_cuda.json"
  say "tile: burn on the CPU vs PyTorch on CUDA"
  timeout "$limit" "$bin_dir/examples/net_twin_dump" models/default "$work/twin_cpu" >/dev/null &&
    $py scripts/torch_twin.py models/default "$work/twin_cpu" --device cuda --batch 16 | tee "$out/twin_cpu_vs_cuda.json"
fi
say "done"
