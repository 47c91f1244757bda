"""Validation on Set14 (the project's model-selection set) and the selection rule: bicubic SR for pretraining,
MZSR(n) under fixed kernels for meta-training."""
from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image

from ..adapt import adapt, super_resolve, to_image, to_tensor
from ..degrade import corrupt, degrade, quantize
from ..io import hr_files
from ..kernels import PAPER_KERNELS, gaussian_kernel
from ..metrics import modcrop, psnr_y

# Validation kernels (λ1, λ2, θ; fixed, so that scores compare across runs): g^d_2.0 and the paper's anisotropic
# one by default; g^d_0.2's, outside the paper's training range (λ ≥ 1; see kernel_min_var), and one sharp along
# a single axis check sharp images.
VAL_KERNELS = {"iso2.0": PAPER_KERNELS["g^d_2.0"][:3], "ani4-1": PAPER_KERNELS["g^d_ani"][:3],
               "iso0.2": PAPER_KERNELS["g^d_0.2"][:3], "ani4-0.5": (4.0, 0.5, -0.5)}


def set14_pairs(scale: int, kernel: np.ndarray | None, downsample: str, limit: int | None = None,
                crop: int | None = None, noise: float = 0.0,
                jpeg: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(LR uint8, GT uint8) pairs from ``$MZSR_DATA/benchmark/Set14/HR``; ``crop`` takes a centred HR square;
    ``noise``/``jpeg`` corrupt the LRs (:func:`mzsr.degrade.corrupt`, a fixed seed per image)."""
    pairs = []
    for i, f in enumerate(hr_files("Set14", limit)):
        with Image.open(f) as im:
            gt = np.asarray(im.convert("RGB"))
        if crop:
            y0, x0 = max((gt.shape[0] - crop) // 2, 0), max((gt.shape[1] - crop) // 2, 0)
            gt = gt[y0: y0 + crop, x0: x0 + crop]
        gt = modcrop(gt, scale)
        lr = degrade(gt, kernel, scale, downsample)
        lr = corrupt(lr, noise, jpeg, np.random.default_rng(i)) if noise or jpeg else quantize(lr)
        pairs.append((lr, gt))
    return pairs


def psnr_after_steps(net, params, pairs, kernel, scale: int, downsample: str, steps: list[int],
                     step_lrs: list, device, noise: float = 0.0, jpeg: int | None = None) -> dict[int, float]:
    """Mean Y-PSNR on the pairs after each number of adaptation steps in ``steps`` (ascending), one pass; with
    ``noise``/``jpeg`` the son is corrupted afresh at each step, as a real photo's LR was (seeded per image)."""
    k = None if kernel is None else torch.as_tensor(kernel, dtype=torch.float32, device=device)
    scores = {n: [] for n in steps}
    for i, (lr_img, gt) in enumerate(pairs):
        lr = to_tensor(lr_img, device)
        p, done = params, 0
        for n in steps:
            p = adapt(net, p, lr, k, scale, downsample, n - done, step_lrs, first_step=done, noise=noise, jpeg=jpeg,
                      seed=[i, done])
            done = n
            scores[n].append(psnr_y(to_image(super_resolve(net, p, lr, scale)), gt, scale))
    return {n: float(np.mean(v)) for n, v in scores.items()}


def validation_sets(kernels: list[str], scale: int, downsample: str, limit: int, crop: int, noise: float = 0.0,
                    jpeg: int | None = None) -> dict:
    """{name: (kernel, Set14 pairs, noise, jpeg)} for the kernel names in ``VAL_KERNELS``, clean; with ``noise`` or
    ``jpeg``, also the first kernel's pairs so corrupted (named e.g. ``iso2.0+n5q85``)."""
    sets = {name: (k, set14_pairs(scale, k, downsample, limit, crop), 0.0, None)
            for name in kernels for k in [gaussian_kernel(*VAL_KERNELS[name], size=21)]}
    if noise or jpeg:
        k = sets[kernels[0]][0]
        sets[f"{kernels[0]}+n{noise:g}q{jpeg or 0}"] = (k, set14_pairs(scale, k, downsample, limit, crop, noise, jpeg),
                                                      noise, jpeg)
    return sets


def validate(net, sets: dict, params: dict, scale: int, downsample: str, steps: list[int], step_lrs: list) -> dict:
    """MZSR(n) Y-PSNR for each n in ``steps`` on each kernel's validation crops, and the selection score: the mean
    of MZSR(n ≥ 1) over the kernels; ``min_gain``, the least gain of MZSR(most steps) over MZSR(0) among them."""
    device = next(iter(params.values())).device
    scores = {}
    for name, (k, pairs, noise, jpeg) in sets.items():
        res = psnr_after_steps(net, params, pairs, k, scale, downsample, steps, step_lrs, device, noise, jpeg)
        scores.update({f"{name}_mzsr{n}": round(v, 4) for n, v in res.items()})
    adapted = [v for key, v in scores.items() if not key.endswith("_mzsr0")]
    scores["score"] = round(float(np.mean(adapted)), 4)
    most = max(steps)
    if 0 in steps and most > 0:
        scores["min_gain"] = round(min(scores[f"{n}_mzsr{most}"] - scores[f"{n}_mzsr0"] for n in sets), 4)
    return scores


def selection_value(scores: dict, min_gain: float) -> float:
    """What the best checkpoint maximises: the score, minus 100 dB where adapting gains less than ``min_gain``
    (so such weights are kept only until weights that pass come)."""
    return scores["score"] - (100.0 if scores.get("min_gain", math.inf) < min_gain else 0.0)
