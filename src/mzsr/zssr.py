"""ZSSR (Shocher, Cohen, Irani, CVPR 2018; spec §8): train a fresh net on the test image alone, then super-resolve.

The LR image is its own training set: random augmented crops of it ("HR fathers") are degraded once more into
"LR sons", and the net learns son → father. The same relation, applied to the LR image, gives the SR image.
Written from the paper's description; no code from the original release.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .adapt import back_project, forward_tiled, make_son, to_tensor, upsample
from .ensemble import N_DIHEDRAL, alignment_shift, dihedral, self_ensemble
from .net import SRNet
from .schedules import (ZSSR_AFFINE_MAX_SHEAR, ZSSR_AFFINE_MIN_ZOOM, ZSSR_BACKPROJECTION_ITERS_BICUBIC,
                        ZSSR_BACKPROJECTION_ITERS_KERNEL, ZSSR_CROP, ZSSR_LR, ZSSR_LR_CHECK_EVERY,
                        ZSSR_LR_SLOPE_FACTOR, ZSSR_LR_SLOPE_RANGE, ZSSR_MAX_ITERS, ZSSR_MIN_ITERS, ZSSR_MIN_LR,
                        ZSSR_P_DIHEDRAL, ZSSR_P_UNTOUCHED, ZSSR_TEST_EVERY)

# Bumped whenever ZSSR's outputs change, so that cached benchmark results of an older version are not reused.
# 2: the self-ensemble realigns flipped frames under direct subsampling (mzsr.ensemble).
REVISION = 2


def should_drop_lr(iters: Sequence[float], errors: Sequence[float], factor: float = ZSSR_LR_SLOPE_FACTOR) -> bool:
    """True when the errors have stopped falling: the fitted decline per iteration is within their scatter.

    Fewer than 3 points leave no scatter to measure, so they never justify a drop.
    """
    if len(errors) < 3:
        return False
    t, e = np.asarray(iters, dtype=np.float64), np.asarray(errors, dtype=np.float64)
    slope, intercept = np.polyfit(t, e, 1)
    scatter = np.std(e - (slope * t + intercept))
    return -factor * slope < scatter


def _crop_shape(lr: torch.Tensor) -> tuple[int, int]:
    return min(ZSSR_CROP, lr.shape[-2]), min(ZSSR_CROP, lr.shape[-1])


def _plain_crop(lr: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    (h, w), (ch, cw) = lr.shape[-2:], _crop_shape(lr)
    top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    return lr[..., top: top + ch, left: left + cw]


def _affine_crop(lr: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """A crop seen through a random zoom-out, shear and rotation.

    The grid samples the whole image around the crop's centre, so rotated corners show real neighbouring
    content; beyond the border it mirrors half-sample-symmetrically, like the degradation's blur.
    """
    (h, w), (ch, cw) = lr.shape[-2:], _crop_shape(lr)
    angle = rng.uniform(0, 2 * math.pi)
    shear = rng.uniform(-ZSSR_AFFINE_MAX_SHEAR, ZSSR_AFFINE_MAX_SHEAR)
    zoom = rng.uniform(ZSSR_AFFINE_MIN_ZOOM, 1.0, size=2)  # per axis (x, y); < 1 shows more, sharper content
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    m = rot @ np.array([[1.0, shear], [0.0, 1.0]]) @ np.diag(1.0 / zoom)
    cy = rng.uniform((ch - 1) / 2, h - 1 - (ch - 1) / 2)
    cx = rng.uniform((cw - 1) / 2, w - 1 - (cw - 1) / 2)
    dy, dx = np.meshgrid(np.arange(ch) - (ch - 1) / 2, np.arange(cw) - (cw - 1) / 2, indexing="ij")
    sx = cx + m[0, 0] * dx + m[0, 1] * dy
    sy = cy + m[1, 0] * dx + m[1, 1] * dy
    # grid_sample's coordinates with align_corners=False: pixel centres at (2i + 1) / n − 1
    grid = np.stack([(2 * sx + 1) / w - 1, (2 * sy + 1) / h - 1], axis=-1)[None]
    grid_t = torch.from_numpy(grid).to(device=lr.device, dtype=lr.dtype)
    out = F.grid_sample(lr, grid_t, mode="bicubic", padding_mode="reflection", align_corners=False)
    return out.clamp(0, 1)  # cubic overshoot would teach the net values no image has


def make_father(lr: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """One augmented training target from the ``(1, C, h, w)`` LR image (spec §8's 5% / 45% / 50% mix)."""
    u = rng.uniform()
    if u < ZSSR_P_UNTOUCHED:
        return _plain_crop(lr, rng)
    if u < ZSSR_P_UNTOUCHED + ZSSR_P_DIHEDRAL:
        return dihedral(_plain_crop(lr, rng), int(rng.integers(N_DIHEDRAL)))
    return _affine_crop(lr, rng)


def _net_input(img: torch.Tensor, kernel: torch.Tensor | None, scale: int, downsample: str, noise: float = 0.0,
               rng: np.random.Generator | None = None) -> torch.Tensor:
    """What the net sees when ``img`` plays the HR role: its son (with ``noise``, white noise of that σ in grey
    levels added, drawn from ``rng``), bicubic-upsampled back to its size."""
    son = make_son(img, kernel, scale, downsample)
    if noise:
        son = son + torch.from_numpy(rng.normal(0.0, noise / 255.0, son.shape)).to(son)
    return upsample(son, img.shape[-2:])


def _reconstruction_error(net: SRNet, x: torch.Tensor, target: torch.Tensor) -> float:
    params = {k: v.detach() for k, v in net.named_parameters()}
    return (forward_tiled(net, params, x) - target).abs().mean().item()


def train(net: SRNet, lr: torch.Tensor, kernel: torch.Tensor | None, scale: int, downsample: str,
          max_iters: int, rng: np.random.Generator, callback=None, noise: float = 0.0) -> None:
    """Fit ``net`` in place to son → father pairs drawn from ``lr`` until the lr policy or ``max_iters`` stops it;
    ``noise``: σ (grey levels) of white noise on each son, so that the net learns to remove noise, not make it.

    The policy judges the whole-image reconstruction error (LR's son → LR), not the crop losses: those
    vary with each random crop and would look flat long before learning is over.
    """
    opt = torch.optim.Adam(net.parameters(), lr=ZSSR_LR)
    rate, last_change = ZSSR_LR, 0
    min_iters = min(ZSSR_MIN_ITERS, max_iters)
    whole_input = _net_input(lr, kernel, scale, downsample)
    tests: list[tuple[int, float]] = []
    for it in range(max_iters):
        father = make_father(lr, rng)
        loss = (net(_net_input(father, kernel, scale, downsample, noise, rng)) - father).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if callback is not None:
            callback(it, loss.item())
        done = it + 1
        if done % ZSSR_TEST_EVERY == 0:
            tests.append((done, _reconstruction_error(net, whole_input, lr)))
        if done % ZSSR_LR_CHECK_EVERY or done - last_change < min_iters:
            continue
        recent = [(i, e) for i, e in tests if i > max(done - ZSSR_LR_SLOPE_RANGE, last_change)]
        if recent and should_drop_lr(*zip(*recent)):
            rate, last_change = rate / 10, done
            if rate < ZSSR_MIN_LR:
                return
            for group in opt.param_groups:
                group["lr"] = rate


def _fresh_net(seed: int, device) -> SRNet:
    # the fork keeps the caller's global torch RNG untouched while the seed fixes the initial weights
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SRNet(bias=False).to(device)


def zssr(lr: np.ndarray, scale: int, kernel: np.ndarray | None, downsample: str = "direct", device="cpu",
         callback=None, max_iters: int | None = None, seed: int = 0, noise: float = 0.0) -> np.ndarray:
    """lr: (h, w, 3) float64 RGB in [0, 1]. Returns (h*scale, w*scale, 3) float in [0, 1].

    ``kernel`` ``None`` means the ideal bicubic degradation (no blur). ``callback(iteration, loss)`` follows
    every training iteration; ``max_iters`` caps training (default ZSSR_MAX_ITERS). ``noise``: σ in grey levels
    of the noise added to every son (``ZSSR_REAL_NOISE`` is ZSSR's real-image setting). Runs with the same
    ``seed`` give the same result on the CPU; on CUDA, cuDNN's nondeterministic kernels may differ slightly.
    """
    device = torch.device(device)
    rng = np.random.default_rng(seed)
    net = _fresh_net(seed, device)
    lr_t = to_tensor(np.asarray(lr, dtype=np.float64) * 255.0, device)
    k = None if kernel is None else torch.as_tensor(kernel, dtype=torch.float32, device=device)
    train(net, lr_t, k, scale, downsample, ZSSR_MAX_ITERS if max_iters is None else max_iters, rng, callback,
          noise)
    params = {name: p.detach() for name, p in net.named_parameters()}
    x = upsample(lr_t, (lr_t.shape[-2] * scale, lr_t.shape[-1] * scale))
    sr = self_ensemble(lambda t: forward_tiled(net, params, t), x, alignment_shift(scale, downsample))
    bp_iters = ZSSR_BACKPROJECTION_ITERS_BICUBIC if kernel is None else ZSSR_BACKPROJECTION_ITERS_KERNEL
    sr = back_project(sr, lr_t, k, scale, downsample, bp_iters).clamp(0, 1)
    return sr[0].permute(1, 2, 0).cpu().numpy().astype(np.float64)
