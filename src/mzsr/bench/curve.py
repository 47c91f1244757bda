"""PSNR after each adaptation step (the paper's Fig. 1 idea): MZSR against fine-tuning the pretrained weights.

Both take the same plain-SGD steps with the MZSR model's step learning rates, so the curves differ only in the
starting weights. Step ``i`` continues from step ``i − 1`` (``adapt(..., first_step=i)``), so the whole curve
costs one adaptation of ``steps`` steps per model plus one inference per point.
"""
from __future__ import annotations

import numpy as np
import torch

from ..adapt import adapt, super_resolve, to_image, to_tensor
from ..metrics import psnr_y
from ..models import Model


def psnr_vs_steps(model: Model, weights: Model, lr_img: np.ndarray, gt: np.ndarray, kernel: np.ndarray,
                  scale: int, downsample: str, steps: int, device) -> list[float]:
    """Y-PSNR of the SR image after 0, 1, …, ``steps`` steps from ``weights`` (``model`` gives the step lrs)."""
    lr = to_tensor(lr_img, device)
    k = torch.as_tensor(kernel, dtype=torch.float32, device=device)
    params = weights.params

    def score() -> float:
        return psnr_y(to_image(super_resolve(weights.net, params, lr, scale)), gt, scale)

    curve = [score()]
    for i in range(steps):
        params = adapt(weights.net, params, lr, k, scale, downsample, 1, model.step_lrs, first_step=i)
        curve.append(score())
    return curve
