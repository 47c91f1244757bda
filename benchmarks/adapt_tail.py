"""Test-time adaptation recipes compared on a validation set (Set14 by default, not a test set): Y-PSNR after
the paper's n SGD steps and after our schedule (meta-learned SGD steps, then Adam) at several tail rates, with
and without kernel-keeping augmentation, and what self-ensemble and back-projection add on top.

    python benchmarks/adapt_tail.py [--set Set14] [--limit 6] [--scenarios gdani gd2.0] \\
        [--runs paper:10 tail:40:1e-4 ...] [--precision bf16]

A run is ``paper:N`` or ``tail:N:LR[:noaug]`` (N a count or ``auto``).
"""
import argparse
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
import torch

from mzsr.adapt import adapt, alignment_shift, back_project, super_resolve, to_image, to_tensor
from mzsr.bench.scenarios import degraded_input, get_scenario, ground_truth
from mzsr.ensemble import kernel_symmetries
from mzsr.io import hr_files
from mzsr.metrics import psnr_y
from mzsr.models import load_model, model_for_kernel
from mzsr.runtime import cpu_model, fast_precision
from mzsr.schedules import TAIL_ADAM_LR


def parse_run(text: str) -> dict:
    parts = text.split(":")
    steps = parts[1] if parts[1] == "auto" else int(parts[1])
    run = {"schedule": parts[0], "steps": steps}
    if parts[0] == "tail":
        run.update(tail_lr=float(parts[2]) if len(parts) > 2 else TAIL_ADAM_LR, augment="noaug" not in parts)
    return run


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--set", default="Set14")
    p.add_argument("--limit", type=int)
    p.add_argument("--scale", type=int, default=2)
    p.add_argument("--scenarios", nargs="+", default=["gdani", "gd2.0"])
    p.add_argument("--runs", nargs="+", default=["paper:10", "tail:10:1e-4", "tail:40:5e-5", "tail:40:1e-4",
                                                 "tail:40:2e-4", "tail:40:1e-4:noaug"])
    p.add_argument("--precision", default=fast_precision("cpu"))
    p.add_argument("--extras", action="store_true", help="also score +x8 (self-ensemble), +BP2 and both")
    args = p.parse_args()
    print(f"{cpu_model()}, torch threads {torch.get_num_threads()}, {args.precision}, {args.set} "
          f"{'all' if args.limit is None else args.limit} images, x{args.scale}")
    hrs = hr_files(args.set, args.limit)
    with TemporaryDirectory() as tmp:
        for sid in args.scenarios:
            sc = get_scenario(sid)
            kernel = torch.as_tensor(sc.kernel(), dtype=torch.float32)
            model = load_model(model_for_kernel(args.scale, sc.downsample, sc.kernel()), "cpu")
            shift, frames = alignment_shift(args.scale, sc.downsample), kernel_symmetries(kernel)
            print(f"\n{sid} ({model.name})\n| run | PSNR | +x8 | +BP2 | +x8+BP2 | steps | s/image |\n|---|---|---|---|---|---|---|")
            for text in args.runs:
                run, scores, steps, secs = parse_run(text), [], [], []
                for hr in hrs:
                    lr = to_tensor(degraded_input(hr, sc, args.scale, Path(tmp) / sid), "cpu")
                    gt = ground_truth(hr, args.scale)
                    count = [0]
                    t0 = time.perf_counter()
                    params = adapt(model.net, model.params, lr, kernel, args.scale, sc.downsample,
                                   step_lrs=model.step_lrs, precision=args.precision,
                                   callback=lambda i, loss: count.__setitem__(0, i + 1), **run)
                    sr = super_resolve(model.net, params, lr, args.scale, precision=args.precision)
                    secs.append(time.perf_counter() - t0)
                    row = [psnr_y(to_image(sr), gt, args.scale)]
                    if args.extras:
                        x8 = super_resolve(model.net, params, lr, args.scale, precision=args.precision,
                                           frames=frames, shift=shift)
                        bp = back_project(sr, lr, kernel, args.scale, sc.downsample, 2).clamp(0, 1)
                        both = back_project(x8, lr, kernel, args.scale, sc.downsample, 2).clamp(0, 1)
                        row += [psnr_y(to_image(t), gt, args.scale) for t in (x8, bp, both)]
                    scores.append(row)
                    steps.append(count[0])
                mean = np.mean(scores, axis=0)
                extra = " | ".join(f"{v:.2f}" for v in mean[1:]) if args.extras else "– | – | –"
                print(f"| {text} | {mean[0]:.2f} | {extra} | {np.mean(steps):.0f} | {np.mean(secs):.1f} |",
                      flush=True)


if __name__ == "__main__":
    main()
