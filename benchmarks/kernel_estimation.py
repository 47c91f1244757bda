"""Blind ×2 SR with the built-in kernel estimation (issue 5): PSNR with the estimated kernel, with the true kernel
and with the bicubic assumption, and the seconds the estimate costs.

Test images: the first ``--limit`` images of each set (sorted by name; ``--start`` skips some, to split a run),
degraded by spec §1 (blur, direct ×2 subsampling, uint8) with the DIV2KRK ground-truth kernels: the i-th image of
a set takes ``kernel_{i+1}.mat`` (fixed, so that runs compare; KernelGAN's convention, converted to MZSR's on loading). Then DIV2KRK's own two
LR/GT pairs end to end. Columns: plain bicubic interpolation; MZSR(n) assuming no blur (MATLAB-bicubic
degradation, the bicubic model); MZSR(n) with the estimated kernel; MZSR(n) with the true kernel; with
``--back-projection B``, also the last two followed by B back-projection iterations (which trust the kernel: do
they still help when it is estimated?). Scores: spec §6 (Y, shave 2).

    python benchmarks/kernel_estimation.py [--sets Set14 Urban100] [--limit 20] [--steps 10] [--estimator NAME]
                                           [--back-projection B]
"""
import argparse
import time

import numpy as np
import torch

from mzsr import upscale
from mzsr.bench.scenarios import read_rgb
from mzsr.degrade import degrade, quantize
from mzsr.estimate import DEFAULT_ESTIMATOR, estimate_kernel
from mzsr.io import data_root
from mzsr.kernels import load_kernel
from mzsr.metrics import modcrop, psnr_y
from mzsr.models import load_model
from mzsr.runtime import pick_device

COLUMNS = ("bicubic", "assume bicubic", "estimated", "true")


def restore(lr: np.ndarray, gt: np.ndarray, k_true: np.ndarray, model, steps: int, estimator: str,
            back_projection: int = 0) -> dict:
    """PSNR of each column for one LR image, and the seconds of the estimate."""
    t0 = time.perf_counter()
    k_est = estimate_kernel(lr.astype(np.float64) / 255.0, 2, model, estimator)
    seconds = time.perf_counter() - t0
    outs = {"bicubic": upscale(lr, 2, method="bicubic"),
            "assume bicubic": upscale(lr, 2, kernel=None, steps=steps),
            "estimated": upscale(lr, 2, kernel=k_est, steps=steps, model=model),
            "true": upscale(lr, 2, kernel=k_true, steps=steps, model=model)}
    if back_projection:
        outs.update({f"{c} +BP{back_projection}": upscale(lr, 2, kernel=k, steps=steps, model=model,
                                                           back_projection=back_projection)
                     for c, k in (("estimated", k_est), ("true", k_true))})
    return {**{c: psnr_y(sr, gt, 2) for c, sr in outs.items()}, "seconds": seconds}


def row(name: str, r: dict, columns: list[str]) -> str:
    gaps = f"{r['estimated'] - r['true']:+.2f} | {r['estimated'] - r['assume bicubic']:+.2f}"
    return f"| {name} | " + " | ".join(f"{r[c]:.2f}" for c in columns) + f" | {gaps} | {r['seconds']:.1f} |"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sets", nargs="*", default=["Set14", "Urban100"])
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--start", type=int, default=0, help="skip the first START images (to split a run)")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--estimator", default=DEFAULT_ESTIMATOR)
    p.add_argument("--model", default="direct-x2")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-div2krk", action="store_true", help="skip DIV2KRK's own two LR/GT pairs")
    p.add_argument("--back-projection", type=int, default=0, metavar="B",
                   help="also score the estimated- and true-kernel results after B back-projection iterations")
    args = p.parse_args()
    columns = list(COLUMNS) + [f"{c} +BP{args.back_projection}" for c in ("estimated", "true")
                               if args.back_projection]
    model = load_model(args.model, pick_device(args.device))
    krk = data_root() / "benchmark" / "DIV2KRK"
    print(f"estimator {args.estimator}, model {model.name}, MZSR({args.steps}), torch threads "
          f"{torch.get_num_threads()}")
    print("| image | " + " | ".join(columns) + " | est − true | est − assume bicubic | estimate s |")
    print("|---|" + "---|" * (len(columns) + 3))
    for set_name in args.sets:
        files = sorted((data_root() / "benchmark" / set_name / "HR").glob("*.png"))[args.start: args.limit]
        rows = []
        for i, f in enumerate(files, args.start):
            gt = modcrop(read_rgb(f), 2)
            k_true = load_kernel(krk / "gt_k_x2" / f"kernel_{i + 1}.mat")
            rows.append(restore(quantize(degrade(gt, k_true, 2, "direct")), gt, k_true, model, args.steps,
                                args.estimator, args.back_projection))
            print(row(f"{set_name}/{f.stem} (kernel_{i + 1})", rows[-1], columns), flush=True)
        mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
        print(row(f"**{set_name} mean ({len(rows)})**", mean, columns), flush=True)
    for f in [] if args.no_div2krk else sorted((krk / "gt").glob("*.png")):
        gt = modcrop(read_rgb(f), 2)
        lr = read_rgb(krk / "lr_x2" / f.name)
        k_true = load_kernel(krk / "gt_k_x2" / f"kernel_{f.stem.split('_')[-1]}.mat")
        print(row(f"DIV2KRK/{f.stem} (its own LR)", restore(lr, gt, k_true, model, args.steps, args.estimator,
                                                              args.back_projection), columns), flush=True)


if __name__ == "__main__":
    main()
