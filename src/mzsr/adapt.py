"""Meta-test (spec §5): make the son, take n whole-image SGD steps on (son → LR), then super-resolve.

The forward pass and the gradient are both computed tile by tile when the image is large. Each tile carries
a margin of the network's receptive radius, so tiled outputs and gradients equal the whole-image ones up to
float summation order while memory stays bounded.
"""
from __future__ import annotations

import numpy as np
import torch

from .degrade import degrade_torch
from .ensemble import alignment_shift, kernel_symmetries, self_ensemble
from .net import RECEPTIVE_RADIUS, functional_forward
from .resize import imresize
from .runtime import autocast
from .schedules import step_lr

# Pixels per tile (of the network's input) that keep a forward+backward of the 64-channel net within a few
# hundred MB: activations are ~64 channels × 4 bytes × 8 layers per pixel, twice with autograd.
AUTO_TILE_INFER = 512
AUTO_TILE_TRAIN = 256
MIN_SON = 4  # pixels per side; smaller sons carry no usable signal


def to_tensor(img: np.ndarray, device=None) -> torch.Tensor:
    """``(H, W, C)`` image on 0..255 → ``(1, C, H, W)`` float32 in [0, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 255.0))
    return t.unsqueeze(0).to(device) if device is not None else t.unsqueeze(0)


def to_image(t: torch.Tensor) -> np.ndarray:
    """``(1, C, H, W)`` in [0, 1] → ``(H, W, C)`` uint8, clipped and rounded."""
    arr = t.detach().float().clamp(0, 1).mul(255).round().squeeze(0).permute(1, 2, 0).cpu().numpy()
    return arr.astype(np.uint8)


def upsample(x: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """MATLAB-bicubic upsampling of ``(N, C, h, w)`` to ``shape``."""
    return imresize(x, out_shape=shape)


def make_son(lr: torch.Tensor, kernel: torch.Tensor | None, scale: int, downsample: str) -> torch.Tensor:
    """The son: the LR degraded once more with the same kernel and the model's downsampling, kept in float."""
    son = degrade_torch(lr, kernel, scale, downsample)
    if min(son.shape[-2:]) < MIN_SON:
        raise ValueError(f"image too small to make a son at ×{scale} ({lr.shape[-2]}×{lr.shape[-1]} px)")
    return son


def _tiles(h: int, w: int, tile: int | None):
    """Yield (inner, outer) slices covering the image: inner parts tile it, outer adds the receptive margin."""
    if tile is None or (h <= tile and w <= tile):
        yield (slice(0, h), slice(0, w)), (slice(0, h), slice(0, w))
        return
    m = RECEPTIVE_RADIUS
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            yield ((slice(y0, y1), slice(x0, x1)),
                   (slice(max(y0 - m, 0), min(y1 + m, h)), slice(max(x0 - m, 0), min(x1 + m, w))))


def _crop_inner(out: torch.Tensor, inner, outer) -> torch.Tensor:
    (iy, ix), (oy, ox) = inner, outer
    return out[..., iy.start - oy.start: iy.stop - oy.start, ix.start - ox.start: ix.stop - ox.start]


def _run(net, params, x: torch.Tensor, precision: str) -> torch.Tensor:
    if precision == "fp32":
        return functional_forward(net, params, x)
    with autocast(x.device, precision):
        return functional_forward(net, params, x.contiguous(memory_format=torch.channels_last)).float()


@torch.no_grad()
def forward_tiled(net, params, x: torch.Tensor, tile: int | None = AUTO_TILE_INFER,
                  precision: str = "fp32") -> torch.Tensor:
    """The network on ``x`` (N, C, H, W), tile by tile; equals the whole-image forward.

    ``precision`` ``bf16``/``fp16`` runs under autocast with channels_last tensors (fast on CPUs with AMX or
    AVX-512 BF16 and on GPUs; on older CPUs it is slower than fp32).
    """
    out = torch.empty_like(x)
    for inner, outer in _tiles(x.shape[-2], x.shape[-1], tile):
        y = _run(net, params, x[..., outer[0], outer[1]], precision)
        out[..., inner[0], inner[1]] = _crop_inner(y, inner, outer)
    return out


def l1_grad_tiled(net, params, x: torch.Tensor, target: torch.Tensor, tile: int | None = AUTO_TILE_TRAIN,
                  precision: str = "fp32"):
    """Mean-L1 loss of net(x) vs target and its gradient w.r.t. ``params``, accumulated tile by tile."""
    names = list(params)
    grads = [torch.zeros_like(params[n]) for n in names]
    total = 0.0
    count = target.numel()
    for inner, outer in _tiles(x.shape[-2], x.shape[-1], tile):
        y = _crop_inner(_run(net, params, x[..., outer[0], outer[1]], precision), inner, outer)
        loss = (y - target[..., inner[0], inner[1]]).abs().sum() / count
        for g, d in zip(grads, torch.autograd.grad(loss, [params[n] for n in names])):
            g += d
        total += loss.item()
    return total, dict(zip(names, grads))


def adapt(net, params: dict, lr: torch.Tensor, kernel: torch.Tensor | None, scale: int, downsample: str,
          steps: int, step_lrs: list, tile: int | None = AUTO_TILE_TRAIN, callback=None,
          first_step: int = 0, precision: str = "fp32") -> dict:
    """``steps`` plain-SGD steps on the whole image (no crops, no augmentation); returns new weights.

    ``step_lrs``: per step, one rate or a ``{parameter name: rate}`` dict (see ``schedules.step_lr``).
    ``first_step`` offsets the learning-rate schedule, so that adapting 1 step and then 9 more equals 10 steps.
    """
    if steps == 0:
        return params
    son = make_son(lr, kernel, scale, downsample)
    x = upsample(son, lr.shape[-2:])
    params = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    for i in range(first_step, first_step + steps):
        loss, grads = l1_grad_tiled(net, params, x, lr, tile, precision)
        with torch.no_grad():
            params = {k: (p - step_lr(step_lrs, i, k) * grads[k]).requires_grad_(True)
                      for k, p in params.items()}
        if callback is not None:
            callback(i, loss)
    return {k: v.detach() for k, v in params.items()}


def back_project(sr: torch.Tensor, lr: torch.Tensor, kernel: torch.Tensor | None, scale: int, downsample: str,
                 iters: int) -> torch.Tensor:
    """Push ``sr`` towards consistency with the degradation model, degrade(sr) ≈ lr: ``iters`` times, add the
    bicubic-upsampled residual (ZSSR's last step; also an option after MZSR's adaptation)."""
    for _ in range(iters):
        residual = lr - degrade_torch(sr, kernel, scale, downsample)
        sr = sr + upsample(residual, sr.shape[-2:])
    return sr


def super_resolve(net, params: dict, lr: torch.Tensor, scale: int, tile: int | None = AUTO_TILE_INFER,
                  precision: str = "fp32", frames: list[int] | None = None, shift: int = 0) -> torch.Tensor:
    """SR = f(bicubic↑(LR)), clipped to [0, 1]; with ``frames``, the self-ensemble over those rotations/flips,
    realigned by ``shift`` (:func:`mzsr.ensemble.self_ensemble`)."""
    x = upsample(lr, (lr.shape[-2] * scale, lr.shape[-1] * scale))
    if frames is None:
        return forward_tiled(net, params, x, tile, precision).clamp_(0, 1)
    return self_ensemble(lambda t: forward_tiled(net, params, t, tile, precision), x, shift, frames).clamp_(0, 1)


def zero_shot(net, params: dict, lr_img: np.ndarray, kernel: np.ndarray | None, scale: int, downsample: str,
              steps: int, step_lrs: list, device="cpu", tile_train: int | None = AUTO_TILE_TRAIN,
              tile_infer: int | None = AUTO_TILE_INFER, callback=None, precision: str = "fp32",
              back_projection: int = 0, ensemble: bool = False) -> np.ndarray:
    """The whole meta-test on one ``(h, w, 3)`` image on 0..255: adapt, super-resolve (with ``ensemble``, as the
    median over the rotations/flips that leave the kernel unchanged, :mod:`mzsr.ensemble`), then
    ``back_projection`` iterations of :func:`back_project`. Neither is in the paper's MZSR.

    Returns ``(h·s, w·s, 3)`` float32 in [0, 1], unrounded, so that 16-bit outputs keep their precision.
    """
    lr = to_tensor(lr_img, device)
    k = None if kernel is None else torch.as_tensor(kernel, dtype=torch.float32, device=device)
    adapted = adapt(net, params, lr, k, scale, downsample, steps, step_lrs, tile_train, callback,
                    precision=precision)
    frames = kernel_symmetries(k) if ensemble else None
    sr = super_resolve(net, adapted, lr, scale, tile_infer, precision, frames, alignment_shift(scale, downsample))
    if back_projection:
        sr = back_project(sr, lr, k, scale, downsample, back_projection).clamp_(0, 1)
    return sr.squeeze(0).permute(1, 2, 0).cpu().numpy()
