"""Seconds for MZSR(n) on one LR image: adaptation and inference, fp32 versus bf16 + channels_last.

    python benchmarks/speed_upscale.py [--size 256] [--steps 10] [--repeats 3] [--model direct-x2]
"""
import argparse
import time

import numpy as np
import torch

from mzsr.adapt import adapt, super_resolve, to_tensor
from mzsr.kernels import gaussian_kernel
from mzsr.models import load_model
from mzsr.runtime import pick_device

from _common import sample_image


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--model", default="direct-x2")
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    device = pick_device(args.device)
    model = load_model(args.model, device)
    img = sample_image()[: args.size, : args.size]
    lr = to_tensor(img, device)
    k = torch.as_tensor(gaussian_kernel(2.0), dtype=torch.float32, device=device)
    print(f"device {device}, torch threads {torch.get_num_threads()}, LR {args.size}x{args.size} x{model.scale}, "
          f"MZSR({args.steps}), {args.repeats} repeats")
    print("| precision | adaptation s | inference s | total s |")
    print("|---|---|---|---|")
    for precision in args.precisions:
        times = []
        for _ in range(args.repeats + 1):  # the first run warms up allocators and kernels
            t0 = time.perf_counter()
            params = adapt(model.net, model.params, lr, k, model.scale, model.downsample, args.steps,
                           model.step_lrs, precision=precision)
            t1 = time.perf_counter()
            super_resolve(model.net, params, lr, model.scale, precision=precision)
            times.append((t1 - t0, time.perf_counter() - t1))
        a, i = np.array(times[1:]).T
        print(f"| {precision} | {a.mean():.2f} ± {a.std():.2f} | {i.mean():.2f} ± {i.std():.2f} | {(a + i).mean():.2f} |")


if __name__ == "__main__":
    main()
