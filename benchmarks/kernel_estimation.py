"""Blind SR with the built-in kernel estimation (issue 5): PSNR with the estimated kernel, with the true kernel
and with the bicubic assumption, and the seconds the estimate costs.

Test images: the first ``--limit`` images of each set (sorted by name; ``--start`` skips some, to split a run),
degraded by spec §1 (blur, direct ×``--scale`` subsampling, uint8; with ``--noise``/``--jpeg``, then noise and
JPEG as a real photo's) with the DIV2KRK ground-truth kernels: the i-th image of a set takes ``kernel_{i+1}.mat``
(fixed, so that runs compare; KernelGAN's convention, converted to MZSR's on loading). Then DIV2KRK's own two
LR/GT pairs end to end (clean inputs only). Columns: plain bicubic interpolation; MZSR(n) assuming no blur
(MATLAB-bicubic degradation, the bicubic model); MZSR(n) with the estimated kernel; MZSR(n) with the true kernel; with
``--back-projection B``, also the last two followed by B back-projection iterations (which trust the kernel: do
they still help when it is estimated?). Scores: spec §6 (Y, shave the scale).

    python benchmarks/kernel_estimation.py [--sets Set14 Urban100] [--limit 20] [--steps 10] [--estimator NAME]
                                           [--back-projection B] [--scale 4] [--noise 2 --jpeg 90]
                                           [--predictor-weights PATH]
"""
import argparse
import time

import numpy as np
import torch

from mzsr import upscale
from mzsr.api import degrade_image
from mzsr.bench.scenarios import read_rgb
from mzsr.estimate import DEFAULT_ESTIMATOR, estimate_kernel
from mzsr.io import data_root
from mzsr.kernels import load_kernel
from mzsr.metrics import modcrop, psnr_y
from mzsr.models import load_model
from mzsr.runtime import pick_device

COLUMNS = ("bicubic", "assume bicubic", "estimated", "true")


def restore(lr: np.ndarray, gt: np.ndarray, k_true: np.ndarray, model, steps: int, estimator: str,
            back_projection: int = 0, **options) -> dict:
    """PSNR of each column for one LR image, and the seconds of the estimate (``options``: the estimator's)."""
    s = model.scale
    t0 = time.perf_counter()
    k_est = estimate_kernel(lr.astype(np.float64) / 255.0, s, model, estimator, **options)
    seconds = time.perf_counter() - t0
    outs = {"bicubic": upscale(lr, s, method="bicubic"),
            "assume bicubic": upscale(lr, s, kernel=None, steps=steps),
            "estimated": upscale(lr, s, kernel=k_est, steps=steps, model=model),
            "true": upscale(lr, s, kernel=k_true, steps=steps, model=model)}
    if back_projection:
        outs.update({f"{c} +BP{back_projection}": upscale(lr, s, kernel=k, steps=steps, model=model,
                                                           back_projection=back_projection)
                     for c, k in (("estimated", k_est), ("true", k_true))})
    return {**{c: psnr_y(sr, gt, s) for c, sr in outs.items()}, "seconds": seconds}


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
    p.add_argument("--scale", type=int, default=2, choices=(2, 4))
    p.add_argument("--model", help="default: direct-x<scale>")
    p.add_argument("--noise", type=float, default=0.0, help="σ (grey levels) of noise on the LR inputs")
    p.add_argument("--jpeg", type=int, help="JPEG quality of the LR inputs (default: none)")
    p.add_argument("--predictor-weights", help="with --estimator predictor: weights other than the shipped ones")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-div2krk", action="store_true", help="skip DIV2KRK's own two LR/GT pairs")
    p.add_argument("--back-projection", type=int, default=0, metavar="B",
                   help="also score the estimated- and true-kernel results after B back-projection iterations")
    args = p.parse_args()
    columns = list(COLUMNS) + [f"{c} +BP{args.back_projection}" for c in ("estimated", "true")
                               if args.back_projection]
    s = args.scale
    model = load_model(args.model or f"direct-x{s}", pick_device(args.device))
    options = {"weights": args.predictor_weights} if args.predictor_weights else {}
    krk = data_root() / "benchmark" / "DIV2KRK"
    print(f"×{s}, estimator {args.estimator} {args.predictor_weights or ''}, model {model.name}, MZSR({args.steps}), "
          f"noise σ {args.noise:g}, JPEG {args.jpeg}, torch threads {torch.get_num_threads()}")
    print("| image | " + " | ".join(columns) + " | est − true | est − assume bicubic | estimate s |")
    print("|---|" + "---|" * (len(columns) + 3))
    for set_name in args.sets:
        files = sorted((data_root() / "benchmark" / set_name / "HR").glob("*.png"))[args.start: args.limit]
        rows = []
        for i, f in enumerate(files, args.start):
            gt = modcrop(read_rgb(f), s)
            k_true = load_kernel(krk / f"gt_k_x{s}" / f"kernel_{i + 1}.mat")
            lr = degrade_image(gt, k_true, s, "direct", args.noise, 0, args.jpeg, f.stem)
            rows.append(restore(lr, gt, k_true, model, args.steps, args.estimator, args.back_projection, **options))
            print(row(f"{set_name}/{f.stem} (kernel_{i + 1})", rows[-1], columns), flush=True)
        mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
        print(row(f"**{set_name} mean ({len(rows)})**", mean, columns), flush=True)
    for f in [] if args.no_div2krk or args.noise or args.jpeg else sorted((krk / "gt").glob("*.png")):
        gt = modcrop(read_rgb(f), s)
        lr = read_rgb(krk / f"lr_x{s}" / f.name)
        k_true = load_kernel(krk / f"gt_k_x{s}" / f"kernel_{f.stem.split('_')[-1]}.mat")
        print(row(f"DIV2KRK/{f.stem} (its own LR)", restore(lr, gt, k_true, model, args.steps, args.estimator,
                                                              args.back_projection, **options), columns), flush=True)


if __name__ == "__main__":
    main()
