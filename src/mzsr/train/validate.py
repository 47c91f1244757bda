"""Validation on Set14 (the project's model-selection set): bicubic SR for stage 1, MZSR(n) for stage 2."""
from __future__ import annotations

import numpy as np
from PIL import Image

from ..adapt import adapt, super_resolve, to_image, to_tensor
from ..degrade import degrade, quantize
from ..io import hr_files
from ..metrics import modcrop, psnr_y

import torch


def set14_pairs(scale: int, kernel: np.ndarray | None, downsample: str, limit: int | None = None,
                crop: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(LR uint8, GT uint8) pairs from ``$MZSR_DATA/benchmark/Set14/HR``; ``crop`` takes a centred HR square."""
    pairs = []
    for f in hr_files("Set14", limit):
        with Image.open(f) as im:
            gt = np.asarray(im.convert("RGB"))
        if crop:
            y0, x0 = max((gt.shape[0] - crop) // 2, 0), max((gt.shape[1] - crop) // 2, 0)
            gt = gt[y0: y0 + crop, x0: x0 + crop]
        gt = modcrop(gt, scale)
        pairs.append((quantize(degrade(gt, kernel, scale, downsample)), gt))
    return pairs


def psnr_after_steps(net, params, pairs, kernel, scale: int, downsample: str, steps: list[int],
                     step_lrs: list, device) -> dict[int, float]:
    """Mean Y-PSNR on the pairs after each number of adaptation steps in ``steps`` (ascending), one pass."""
    k = None if kernel is None else torch.as_tensor(kernel, dtype=torch.float32, device=device)
    scores = {n: [] for n in steps}
    for lr_img, gt in pairs:
        lr = to_tensor(lr_img, device)
        p, done = params, 0
        for n in steps:
            p = adapt(net, p, lr, k, scale, downsample, n - done, step_lrs, first_step=done)
            done = n
            scores[n].append(psnr_y(to_image(super_resolve(net, p, lr, scale)), gt, scale))
    return {n: float(np.mean(v)) for n, v in scores.items()}
