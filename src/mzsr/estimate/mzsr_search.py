"""``mzsr_search``: the Gaussian kernel under which the meta-learned model, adapted in one step, explains the
image equally well at two scales.

For a candidate kernel k: son = degrade(LR, k), grandson = degrade(son, k); the model adapts on grandson → son
(``adapt`` given the son as its "LR") and then reconstructs son from grandson and LR from son. If k is the
image's blur and the scene looks alike across scales (KernelGAN's premise), (grandson, son) is (son, LR) one
scale down, so the two reconstructions leave residuals of the same size. A kernel too narrow leaves the son
sharper than the LR (its level is the harder one), a kernel too wide leaves it blurrier. The score is
Σ_d log²(residual at LR / residual at son) over four directions d (the residuals' mean absolute differences
along x, y and both diagonals), so that an elongated kernel must match in each direction, not on average.

Why not simply the error of LR reconstructed from son: on a 64² LR crop of Set14's comic blurred with λ = 0.4, 1,
2 and 4 it was smallest at λ ≈ 1.5 every time, the kernel the model is most at ease with, not the image's.
Measured (a handful of cases only, interim direct-x2, default settings; λ as (λ1, λ2, θ)): on the comic's
125×128 LR crop, isotropic 0.4 / 2 / 4 gave average variances 0.62 / 2.03 / 3.98 but elongated 1.4–1.7:1,
(4, 1, 0) gave (3.66, 1.30, 0.00) and (4, 1, π/4) gave (4.37, 0.92, 0.88). But the residuals' directional
sizes also follow the content's own orientation: isotropic 3 on a 128² LR crop of baboon's fur came out
(5.0, 2.1, 0), and on 64² crops of the comic isotropic blur came out up to 5:1 and (4, 1, 0.5) nearly round.
Trust the size more than the shape.

The search: a coarse grid (isotropic variances from ``ESTIMATE_MIN_VAR`` to ``ESTIMATE_MAX_VAR_PER_SCALE``·s and
elongated kernels at ``ESTIMATE_ANISO_ANGLES`` angles), then a pattern search around the best candidate on
(log size, log elongation, angle), halving its steps when no neighbour scores better, until
``ESTIMATE_MAX_EVALS`` candidates have been scored. Only the busiest crop of at most ``ESTIMATE_CROP`` pixels (most
luma gradient) is used: on Set14 with DIV2KRK kernels it lifted the result 0.20 dB on average over a centred crop
(0.99 and 1.35 dB on two images whose centres are plain, −0.23 at worst). A flat crop carries no blur
information: every candidate ties and the first (the narrowest) is returned.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..adapt import MIN_SON, adapt, forward_tiled, make_son, to_tensor, upsample
from ..kernels import gaussian_kernel
from ..metrics import rgb_to_y
from ..models import Model
from ..schedules import (ESTIMATE_ANGLE_STEP, ESTIMATE_ANISO_ANGLES, ESTIMATE_ANISO_VARS, ESTIMATE_CROP,
                         ESTIMATE_ISO_WIDTHS, ESTIMATE_KERNEL_SIZE, ESTIMATE_LOG_STEP, ESTIMATE_MAX_EVALS,
                         ESTIMATE_MAX_VAR_PER_SCALE, ESTIMATE_MIN_LOG_STEP, ESTIMATE_MIN_VAR, ESTIMATE_STEPS)
from ..windows import busiest_window

_TINY = 1e-12  # residual size of a perfectly reconstructed (flat) image: keeps the log finite

# A candidate is a point (m, a, t): variances λ1 = e^(m+a) ≥ λ2 = e^(m−a), major axis at angle t ∈ [0, π).
Point = tuple[float, float, float]


def _canonical(m: float, a: float, t: float, lo: float, hi: float) -> Point:
    """The unique name of a kernel: a ≥ 0, t ∈ [0, π) (0 when isotropic), variances clamped to [lo, hi]."""
    if a < 0:  # the other axis is the major one
        a, t = -a, t + math.pi / 2
    l1 = min(max(math.exp(m + a), lo), hi)
    l2 = min(max(math.exp(m - a), lo), hi)
    m, a = (math.log(l1) + math.log(l2)) / 2, (math.log(l1) - math.log(l2)) / 2
    t = 0.0 if a < 1e-9 else t % math.pi
    return round(m, 9), round(a, 9), round(t, 9)


def _kernel(p: Point, size: int = ESTIMATE_KERNEL_SIZE) -> np.ndarray:
    m, a, t = p
    return gaussian_kernel(math.exp(m + a), math.exp(m - a), t, size)


def _coarse_grid(scale: int, lo: float, hi: float) -> list[Point]:
    iso = [_canonical(math.log(v), 0.0, 0.0, lo, hi) for v in np.geomspace(lo, hi, ESTIMATE_ISO_WIDTHS)]
    l1, l2 = (v * scale for v in ESTIMATE_ANISO_VARS)
    m, a = (math.log(l1) + math.log(l2)) / 2, (math.log(l1) - math.log(l2)) / 2
    return iso + [_canonical(m, a, i * math.pi / ESTIMATE_ANISO_ANGLES, lo, hi) for i in range(ESTIMATE_ANISO_ANGLES)]


def _directional(r: torch.Tensor) -> torch.Tensor:
    """How large a residual is along x, y and both diagonals: its mean absolute differences that way."""
    return torch.stack([(r[..., :, 1:] - r[..., :, :-1]).abs().mean(), (r[..., 1:, :] - r[..., :-1, :]).abs().mean(),
                        (r[..., 1:, 1:] - r[..., :-1, :-1]).abs().mean(),
                        (r[..., 1:, :-1] - r[..., :-1, 1:]).abs().mean()])


def inconsistency(model: Model, lr: torch.Tensor, kernel: torch.Tensor, scale: int, steps: int = ESTIMATE_STEPS
                  ) -> float:
    """Σ_d log²(residual at LR / residual at son) after ``steps`` adaptation steps on grandson → son; 0 when
    ``kernel`` makes the image self-similar across the two scales."""
    son = make_son(lr, kernel, scale, model.downsample)
    grandson = make_son(son, kernel, scale, model.downsample)
    adapted = adapt(model.net, model.params, son, kernel, scale, model.downsample, steps, model.step_lrs)
    at_lr = forward_tiled(model.net, adapted, upsample(son, lr.shape[-2:])) - lr
    at_son = forward_tiled(model.net, adapted, upsample(grandson, son.shape[-2:])) - son
    ratio = _directional(at_lr).clamp_min(_TINY) / _directional(at_son).clamp_min(_TINY)
    return float((ratio.log() ** 2).sum())


def smallest_side(scale: int) -> int:
    """The shortest image side the search works on: the grandson needs ``MIN_SON`` pixels per side."""
    return MIN_SON * scale * scale


def fits(shape: tuple, scale: int) -> bool:
    """Whether an image of ``shape`` (H, W, ...) is large enough for the search at ``scale``."""
    return min(shape[:2]) >= smallest_side(scale)


def _busiest_crop(img: np.ndarray, side: int) -> np.ndarray:
    """The ``side``² window of the ``(H, W, 3)`` image in [0, 1] with the most detail; an image narrower than
    ``side`` is cropped to ``side`` about its centre along its long side."""
    h, w = img.shape[:2]
    if min(h, w) <= side:
        y, x = max((h - side) // 2, 0), max((w - side) // 2, 0)
        return img[y:y + side, x:x + side]
    y, x = busiest_window(rgb_to_y(np.round(img * 255).astype(np.uint8)), side)
    return img[y:y + side, x:x + side]


def _pattern_search(score, start: list[Point], lo: float, hi: float, max_evals: int) -> Point:
    """Best of ``start``, then moves of ± one step along each coordinate; steps halve when none improves."""
    scores: dict[Point, float] = {}
    for p in start[:max_evals]:
        if p not in scores:
            scores[p] = score(p)
    best = min(scores, key=scores.get)
    steps = [ESTIMATE_LOG_STEP, ESTIMATE_LOG_STEP, ESTIMATE_ANGLE_STEP]
    while len(scores) < max_evals and steps[0] >= ESTIMATE_MIN_LOG_STEP:
        moves = []
        for i, step in enumerate(steps):
            for sign in (1, -1):
                q = list(best)
                q[i] += sign * step
                moves.append(_canonical(*q, lo, hi))
        for q in moves:  # moves that name an already scored kernel cost nothing
            if q not in scores and len(scores) < max_evals:
                scores[q] = score(q)
        nxt = min((q for q in moves if q in scores), key=scores.get)
        if scores[nxt] < scores[best]:
            best = nxt
        else:
            steps = [s / 2 for s in steps]
    return best


def estimate(lr_rgb01: np.ndarray, scale: int, model: Model, crop: int = ESTIMATE_CROP, steps: int = ESTIMATE_STEPS,
             max_evals: int = ESTIMATE_MAX_EVALS) -> np.ndarray:
    """The ``ESTIMATE_KERNEL_SIZE``² Gaussian kernel of an ``(H, W, 3)`` RGB image in [0, 1] (module docstring)."""
    if model.scale != scale:
        raise ValueError(f"model '{model.name}' is a ×{model.scale} model, asked to estimate a ×{scale} kernel")
    img = _busiest_crop(np.asarray(lr_rgb01, dtype=np.float64), crop)
    if not fits(img.shape, scale):
        need = smallest_side(scale)
        raise ValueError(f"image too small to estimate a ×{scale} kernel ({img.shape[0]}×{img.shape[1]} px, "
                         f"needs {need}×{need})")
    device = next(iter(model.params.values())).device
    lr = to_tensor(img * 255.0, device)
    lo, hi = ESTIMATE_MIN_VAR, ESTIMATE_MAX_VAR_PER_SCALE * scale

    def score(p: Point) -> float:
        k = torch.as_tensor(_kernel(p), dtype=torch.float32, device=device)
        return inconsistency(model, lr, k, scale, steps)

    return _kernel(_pattern_search(score, _coarse_grid(scale, lo, hi), lo, hi, max_evals))
