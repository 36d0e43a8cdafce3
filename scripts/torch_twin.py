#!/usr/bin/env python3
"""PyTorch twin of the foveal net: loads a nodal model folder (config.json + model.safetensors) into
an independent PyTorch implementation, runs it on the inputs written by the Rust example
`net_twin_dump`, checks the logits agree to 1e-4 and reports the speed ratio.

Developer tool only (torch is large and not part of CI):

    python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch safetensors numpy
    cargo run --release -p nodal-net --example net_twin_dump -- models/default /tmp/twin
    /tmp/torchenv/bin/python scripts/torch_twin.py models/default /tmp/twin [--device cuda] [--batch N]

`--device cuda` runs the twin on a GPU (TF32 off, so the 1e-4 check holds); `--batch N` also times
a batch of N tiles (throughput per tile).

The network is re-implemented from its description (valid 3x3x3 conv + LeakyReLU pathways per
level, x2 transposed-conv up-sampling, centre crop, concatenation, 1x1x1 fuse + LeakyReLU, merge
convs, 1x1x1 head), so agreement checks the Rust forward pass and the weight layout together.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.numpy import load_file

SLOPE = 0.01


def centre_crop(x, size):
    d, h, w = x.shape[2:]
    oz, oy, ox = (d - size[0]) // 2, (h - size[1]) // 2, (w - size[2]) // 2
    return x[:, :, oz:oz + size[0], oy:oy + size[1], ox:ox + size[2]]


class Foveal(torch.nn.Module):
    def __init__(self, arch, weights):
        super().__init__()
        self.levels = len(arch["channels"])
        self.convs = arch["convs"]
        self.merge_convs = arch["merge_convs"]
        self.w = {k: torch.from_numpy(v.copy()) for k, v in weights.items()}

    def conv(self, x, name):
        return F.conv3d(x, self.w[f"{name}.weight"], self.w[f"{name}.bias"])

    def forward(self, inputs):
        feats = []
        for lev, x in enumerate(inputs):
            for c in range(self.convs[lev]):
                x = F.leaky_relu(self.conv(x, f"Foveal.pathways.{lev}.convs.{c}"), SLOPE)
            feats.append(x)
        coarse = feats.pop()
        for lev in reversed(range(self.levels - 1)):
            fine = feats.pop()
            up = F.conv_transpose3d(coarse, self.w[f"Foveal.ups.{lev}.weight"], self.w[f"Foveal.ups.{lev}.bias"],
                                    stride=2)
            up = centre_crop(up, fine.shape[2:])
            x = F.leaky_relu(self.conv(torch.cat([fine, up], 1), f"Foveal.fuses.{lev}"), SLOPE)
            for c in range(self.merge_convs):
                x = F.leaky_relu(self.conv(x, f"Foveal.merges.{lev}.convs.{c}"), SLOPE)
            coarse = x
        return self.conv(coarse, "Foveal.head")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("dump", type=Path)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=1)
    args = ap.parse_args()
    model_dir, dump, dev = args.model_dir, args.dump, torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    cfg = json.loads((model_dir / "config.json").read_text())
    assert cfg["arch"]["kind"] == "foveal", "the twin implements the foveal net"
    meta = json.loads((dump / "meta.json").read_text())
    net = Foveal(cfg["arch"], load_file(str(model_dir / "model.safetensors"))).eval().to(dev)
    inputs = [torch.from_numpy(np.fromfile(dump / f"input_{l}.f32", dtype="<f4").reshape(s)).to(dev)
              for l, s in enumerate(meta["input_shapes"])]
    rust = np.fromfile(dump / "logits.f32", dtype="<f4").reshape(meta["logits_shape"])
    if dev.type == "cpu":
        torch.set_num_threads(2)

    def timed(xs, reps=5):
        times = []
        for _ in range(reps):
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            net(xs)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
        return sorted(times)[reps // 2]

    with torch.no_grad():
        out = net(inputs).cpu().numpy()
        timed(inputs, 2)  # warm-up (cuDNN picks its kernels)
        t_torch = timed(inputs)
        batch = {}
        if args.batch > 1:
            xs = [x.repeat(args.batch, 1, 1, 1, 1) for x in inputs]
            timed(xs, 2)
            t_b = timed(xs)
            batch = {"batch": args.batch, "torch_s_per_tile_batched": t_b / args.batch}
    diff = float(np.abs(out - rust).max())
    t_rust = meta["seconds_per_forward_median"]
    print(json.dumps({
        "tile": meta["tile"],
        "max_abs_diff": diff,
        "torch_device": str(dev),
        "torch_s": t_torch,
        "burn_device": meta.get("device", "cpu"),
        "burn_s": t_rust,
        "burn_over_torch": t_rust / t_torch,
        **batch,
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
    }, indent=2))
    if diff > 1e-4:
        sys.exit(f"outputs differ by {diff} > 1e-4")


if __name__ == "__main__":
    main()
