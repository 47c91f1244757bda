"""Real photos (issue 27): ×2 direct with DIV2KRK's kernels (the i-th image of a set takes ``kernel_{i+1}.mat``),
white noise of σ ``--noise`` grey levels, then JPEG at ``--jpeg``, MZSR(n) with the TRUE kernel.

Columns: bicubic; MZSR(n) as today (the son clean, so the adaptation learns to make the LR's noise and blocks);
MZSR(n) with the son corrupted like the LR (σ from :func:`mzsr.realphoto.estimate_noise` on the LR, calibrated
through the JPEG by :func:`mzsr.realphoto.calibrate_son_noise`, the quality given, as read from the file's
tables); and that one behind the never-worse-than-bicubic guard (:func:`mzsr.realphoto.guard_weight` on the L1
of the adapted net's son → LR against bicubic's, its weight shown). Scores: spec §6 (Y, shave 2).

    python benchmarks/real_photos.py [--set BSD100] [--limit 10] [--noise 3] [--jpeg 80] [--steps 10]
                                     [--model direct-x2 | PATH]
"""
import argparse
import time

import numpy as np
import torch

from mzsr.adapt import adapt, forward_tiled, make_son, super_resolve, to_image, to_tensor, upsample
from mzsr.api import degrade_image, upscale
from mzsr.bench.scenarios import div2krk_kernel, ground_truth
from mzsr.degrade import corrupt_torch
from mzsr.io import hr_files
from mzsr.metrics import psnr_y
from mzsr.models import load_model
from mzsr.realphoto import calibrate_son_noise, estimate_noise, guard_blend, guard_weight

COLUMNS = ("bicubic", "clean son", "corrupted son", "guarded", "guard w", "son σ", "LR reads σ")


def son_errors(net, params, son_in: torch.Tensor, lr: torch.Tensor) -> tuple[float, float]:
    """Mean L1 of the net's and of bicubic's reconstruction of the LR from the son (as the net sees it)."""
    x = upsample(son_in, lr.shape[-2:])
    return float((forward_tiled(net, params, x) - lr).abs().mean()), float((x - lr).abs().mean())


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--set", default="BSD100")
    p.add_argument("--limit", type=int, default=10)
    p.add_argument("--noise", type=float, default=3.0)
    p.add_argument("--jpeg", type=int, default=80, help="quality (0: no JPEG)")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--model", default="direct-x2")
    args = p.parse_args()
    args.jpeg = args.jpeg or None
    model = load_model(args.model, "cpu")
    print(f"{args.set} first {args.limit}, DIV2KRK kernels, ×2 direct, σ {args.noise:g} + JPEG {args.jpeg}, "
          f"model {model.name}, MZSR({args.steps}), true kernel, torch threads {torch.get_num_threads()}")
    print("| image | " + " | ".join(COLUMNS) + " |\n|---|" + "---|" * len(COLUMNS))
    rows = []
    t0 = time.perf_counter()
    for hr in hr_files(args.set, args.limit):
        gt = ground_truth(hr, 2)
        k = div2krk_kernel(hr, 2)
        lr_img = degrade_image(gt, k, 2, "direct", args.noise, 0, args.jpeg, hr.stem)
        lr = to_tensor(lr_img)
        kt = torch.as_tensor(k, dtype=torch.float32)
        son = make_son(lr, kt, 2, "direct")
        reads = estimate_noise(lr_img)
        sigma = calibrate_son_noise(son[0].permute(1, 2, 0).numpy() * 255.0, reads, args.jpeg)
        clean = adapt(model.net, model.params, lr, kt, 2, "direct", args.steps, model.step_lrs)
        noisy = adapt(model.net, model.params, lr, kt, 2, "direct", args.steps, model.step_lrs, noise=sigma,
                      jpeg=args.jpeg)
        bicubic = upscale(lr_img, 2, method="bicubic")
        sr = super_resolve(model.net, noisy, lr, 2)
        # the guard judges the son as the net saw it: corrupted, with a draw of its own
        w = guard_weight(*son_errors(model.net, noisy, corrupt_torch(son, sigma, args.jpeg,
                                                                        np.random.default_rng(1)), lr))
        guarded = guard_blend(sr, to_tensor(bicubic), w)
        r = {"bicubic": psnr_y(bicubic, gt, 2), "clean son": psnr_y(to_image(super_resolve(model.net, clean, lr, 2)),
                                                                     gt, 2),
             "corrupted son": psnr_y(to_image(sr), gt, 2), "guarded": psnr_y(to_image(guarded), gt, 2),
             "guard w": w, "son σ": sigma, "LR reads σ": reads}
        rows.append(r)
        print(f"| {hr.stem} | " + " | ".join(f"{r[c]:.2f}" for c in COLUMNS) + " |", flush=True)
    mean = {c: float(np.mean([r[c] for r in rows])) for c in COLUMNS}
    print(f"| **mean ({len(rows)})** | " + " | ".join(f"{mean[c]:.2f}" for c in COLUMNS) + " |")
    print(f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
