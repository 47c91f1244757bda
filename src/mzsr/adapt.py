"""Meta-test (spec §5): make the son, adapt on (son → LR), then super-resolve.

Two schedules: the paper's (n plain-SGD steps on the whole image) and ours, of bounded cost per step (the
model's meta-learned SGD steps, then Adam; crops above a pixel budget), which may stop by itself (``"auto"``).

The forward pass and the gradient are both computed tile by tile when the image is large. Each tile carries
a margin of the network's receptive radius, so tiled outputs and gradients equal the whole-image ones up to
float summation order while memory stays bounded.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.ndimage
import torch

from .degrade import corrupt_torch, degrade_torch
from .ensemble import alignment_shift, dihedral, kernel_symmetries, self_ensemble
from .net import RECEPTIVE_RADIUS, functional_forward
from .realphoto import guard_blend, guard_weight
from .resize import imresize
from .runtime import autocast
from .schedules import (ADAPT_CROPS, ADAPT_TEXTURE_FLOOR, AUTO_ADAPT_MIN_SHARE, AUTO_CHECK_EVERY, AUTO_ENSEMBLE_SHARE,
                        AUTO_HOLDOUT_BLOCK, AUTO_HOLDOUT_FRACTION, AUTO_HOLDOUT_MAX_BLOCKS, AUTO_INFER_MARGIN,
                        AUTO_MAX_STEPS, AUTO_PATIENCE, AUTO_TIME_LIMIT, TAIL_ADAM_LR, adapt_crop, step_lr)

# Side of a tile of the network's input. Small enough that a layer's 64-channel activations stay in the CPU's
# cache: a 1024×768 LR ×2 (fp32, 2 threads, AMD EPYC with AVX2) took 19.8 s in 512² tiles, 14.2 in 256², 11.7 in
# 192², 12.1 in 128² (the 8 px margins start to cost); a forward+backward of a 512×384 LR 14.6 / 10.5 / 9.6 /
# 11.0 s.
AUTO_TILE_INFER = 192
AUTO_TILE_TRAIN = 192
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
                  precision: str = "fp32", mask: torch.Tensor | None = None):
    """Mean-L1 loss of net(x) vs target and its gradient w.r.t. ``params``, accumulated tile by tile.

    ``mask`` (``(N, 1, H, W)``, 0 or 1): only pixels where it is 1 count (held-out pixels are 0).
    """
    names = list(params)
    grads = [torch.zeros_like(params[n]) for n in names]
    total = 0.0
    count = target.numel() if mask is None else mask.sum().item() * target.shape[1]
    for inner, outer in _tiles(x.shape[-2], x.shape[-1], tile):
        y = _crop_inner(_run(net, params, x[..., outer[0], outer[1]], precision), inner, outer)
        diff = (y - target[..., inner[0], inner[1]]).abs()
        if mask is not None:
            diff = diff * mask[..., inner[0], inner[1]]
        loss = diff.sum() / count
        for g, d in zip(grads, torch.autograd.grad(loss, [params[n] for n in names])):
            g += d
        total += loss.item()
    return total, dict(zip(names, grads))


@dataclass
class Pair:
    """One son pair: the son bicubic-upsampled to the LR's size, the LR it should map to, and which target
    pixels count (``None``: all)."""

    x: torch.Tensor
    y: torch.Tensor
    mask: torch.Tensor | None = None


def texture(lr: torch.Tensor) -> np.ndarray:
    """Per-pixel gradient magnitude of the LR's channel mean, ``(H, W)``: where a son pair carries signal."""
    g = lr[0].mean(0).double().cpu().numpy()
    return np.hypot(scipy.ndimage.sobel(g, 0), scipy.ndimage.sobel(g, 1))


def _window_means(weight: np.ndarray, side: int) -> np.ndarray:
    """Mean of ``weight`` over every ``side``² window, indexed by its top-left corner."""
    c = np.pad(weight, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    return (c[side:, side:] - c[:-side, side:] - c[side:, :-side] + c[:-side, :-side]) / side ** 2


def holdout_blocks(lr: torch.Tensor, rng: np.random.Generator, block: int = AUTO_HOLDOUT_BLOCK,
                   fraction: float = AUTO_HOLDOUT_FRACTION, max_blocks: int = AUTO_HOLDOUT_MAX_BLOCKS):
    """Top-left corners of the held-out LR blocks: non-overlapping cells of a grid whose windows (the block plus
    the receptive margin) lie inside the image, drawn without replacement by texture. May be empty."""
    win = block + 2 * RECEPTIVE_RADIUS
    h, w = lr.shape[-2:]
    cells = [(y, x) for y in range(0, h - win + 1, win) for x in range(0, w - win + 1, win)]
    n = min(len(cells), max_blocks, round(fraction * h * w / block ** 2))
    if n == 0:
        return []
    tex = texture(lr)
    weight = np.array([tex[y:y + win, x:x + win].mean() for y, x in cells]) + 1e-12
    picked = rng.choice(len(cells), n, replace=False, p=weight / weight.sum())
    return [(cells[i][0] + RECEPTIVE_RADIUS, cells[i][1] + RECEPTIVE_RADIUS) for i in sorted(picked)]


def son_sampler(lr: torch.Tensor, kernel: torch.Tensor | None, scale: int, downsample: str, noise: float = 0.0,
                jpeg: int | None = None, frames: list[int] | None = None, crop: int | None = None,
                crops: int = ADAPT_CROPS, keep: torch.Tensor | None = None):
    """A function ``rng → Pair``: the son pair of one adaptation step, drawn afresh each call.

    An LR of up to ``crops`` × ``crop``² pixels (``crop`` ``None``: any) gives the whole image, else ``crops``
    crops of ``crop``² pixels, placed with probability growing with their texture. Each image or crop is first
    turned by one of ``frames`` (:func:`mzsr.ensemble.dihedral`; only those that keep the kernel, by default the
    identity), and its son is made from the turned LR: the pair then follows the degradation model exactly,
    kernel and subsampling grid included, which turning a finished pair would break. With ``noise`` (σ, grey
    levels) or ``jpeg`` (quality), the son gets a fresh :func:`mzsr.degrade.corrupt_torch` per draw. ``keep``
    (``(1, 1, H, W)``) marks the target pixels that may enter the loss.
    """
    frames = frames or [0]
    corrupted = noise > 0 or jpeg is not None
    h, w = lr.shape[-2:]

    def pair_of(part: torch.Tensor, mask: torch.Tensor | None, rng) -> Pair:
        son = make_son(part, kernel, scale, downsample)
        if corrupted:
            son = corrupt_torch(son, noise, jpeg, rng)
        return Pair(upsample(son, part.shape[-2:]), part, mask)

    def turned(t, f):
        return None if t is None else dihedral(t, f)

    if crop is None or h * w <= crops * crop ** 2:
        if not corrupted and frames == [0]:
            fixed = pair_of(lr, keep, None)
            return lambda rng: fixed

        def whole(rng) -> Pair:
            f = frames[rng.integers(len(frames))]
            return pair_of(turned(lr, f), turned(keep, f), rng)
        return whole

    side = max(scale, min(crop, h, w) // scale * scale)
    means = _window_means(texture(lr), side)
    p = (means + ADAPT_TEXTURE_FLOOR * means.mean() + 1e-12).ravel()
    p /= p.sum()
    cols = means.shape[1]

    def cropped(rng) -> Pair:
        parts, masks = [], []
        for i in rng.choice(p.size, crops, p=p):
            y0, x0 = divmod(int(i), cols)
            f = frames[rng.integers(len(frames))]
            window = (..., slice(y0, y0 + side), slice(x0, x0 + side))
            parts.append(dihedral(lr[window], f))
            masks.append(None if keep is None else dihedral(keep[window], f))
        return pair_of(torch.cat(parts), None if keep is None else torch.cat(masks), rng)
    return cropped


def holdout_pair(lr: torch.Tensor, kernel, scale: int, downsample: str, corners, noise: float = 0.0,
                 jpeg: int | None = None, seed: int = 0, block: int = AUTO_HOLDOUT_BLOCK) -> Pair:
    """The held-out blocks as one batch, each with the receptive margin of context, cut from the whole-image
    son pair (corrupted once, with ``seed``, so that evaluations compare like with like); the mask marks the
    blocks themselves."""
    m = RECEPTIVE_RADIUS
    full = son_sampler(lr, kernel, scale, downsample, noise, jpeg)(np.random.default_rng(seed))
    win = [(..., slice(y - m, y + block + m), slice(x - m, x + block + m)) for y, x in corners]
    mask = torch.zeros(len(corners), 1, block + 2 * m, block + 2 * m, device=lr.device)
    mask[..., m:m + block, m:m + block] = 1
    return Pair(torch.cat([full.x[c] for c in win]), torch.cat([full.y[c] for c in win]), mask)


def holdout_mask(lr: torch.Tensor, corners, block: int = AUTO_HOLDOUT_BLOCK) -> torch.Tensor:
    """``(1, 1, H, W)``: 1 where the target may be trained on, 0 on the held-out blocks."""
    keep = torch.ones(1, 1, *lr.shape[-2:], device=lr.device)
    for y, x in corners:
        keep[..., y:y + block, x:x + block] = 0
    return keep


@torch.no_grad()
def pair_loss(net, params, pair: Pair, tile: int | None = AUTO_TILE_INFER, precision: str = "fp32") -> float:
    """Mean-L1 of the network on ``pair``, over the pixels its mask keeps."""
    diff = (forward_tiled(net, params, pair.x, tile, precision) - pair.y).abs()
    if pair.mask is None:
        return diff.mean().item()
    return ((diff * pair.mask).sum() / (pair.mask.sum() * diff.shape[1])).item()


SCHEDULES = ("paper", "tail")


def adapt(net, params: dict, lr: torch.Tensor, kernel: torch.Tensor | None, scale: int, downsample: str,
          steps: int | str, step_lrs: list, tile: int | None = AUTO_TILE_TRAIN, callback=None,
          first_step: int = 0, precision: str = "fp32", schedule: str = "paper", noise: float = 0.0,
          jpeg: int | None = None, seed: int = 0, time_limit: float = AUTO_TIME_LIMIT, clock=time.monotonic,
          infer_seconds: float = 0.0, tail_lr: float = TAIL_ADAM_LR, augment: bool = True,
          report: dict | None = None) -> dict:
    """Adapt the weights to the image on its son pair; returns new weights.

    ``schedule="paper"`` (MZSR(n) as published): ``steps`` plain-SGD steps on the whole image at the
    ``step_lrs`` rates, no crops, no augmentation. ``schedule="tail"``: the ``len(step_lrs)`` meta-learned SGD
    steps, then Adam at ``tail_lr``; each step on the whole image up to ``ADAPT_CROPS`` crops' pixels, else on
    texture-weighted crops of :func:`mzsr.schedules.adapt_crop` pixels; with ``augment``, pairs turned by the
    transforms that keep the kernel (:func:`son_sampler`).
    ``step_lrs``: per step, one rate or a ``{parameter name: rate}`` dict (see ``schedules.step_lr``).
    ``first_step`` offsets the schedule, so that adapting 1 step and then 9 more equals 10 steps (SGD only: Adam's
    moments start afresh). ``noise``/``jpeg`` corrupt the son afresh each step (:func:`mzsr.degrade.corrupt_torch`),
    drawn, like the crops, from ``seed``.

    ``steps="auto"``: the meta-learned steps, then more until the loss on held-out blocks of the son pair has not
    improved for ``AUTO_PATIENCE`` evaluations, or ``AUTO_MAX_STEPS``, or until one more step would end past
    ``time_limit`` seconds of ``clock`` with ``infer_seconds`` left for the inference; the weights with the best
    held-out loss are returned. The meta-learned steps are always taken: the weights before them are a starting
    point, not an SR model, and on crops they cost little whatever the image's size. ``report``, a dict, receives ``steps`` (taken) and, with ``"auto"``, ``held_loss`` (the returned weights' held-out loss)
    and ``bicubic_loss`` (bicubic's on the same blocks: what :func:`mzsr.realphoto.guard_weight` compares).
    """
    if steps == 0:
        if report is not None:
            report["steps"] = 0
        return params
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    start, auto, paper = clock(), steps == "auto", schedule == "paper"
    rng = np.random.default_rng(seed)
    corners = holdout_blocks(lr, rng) if auto else []
    frames = kernel_symmetries(kernel) if augment and not paper else [0]
    draw = son_sampler(lr, kernel, scale, downsample, noise, jpeg, frames, None if paper else adapt_crop(scale),
                       keep=holdout_mask(lr, corners) if corners else None)
    held = holdout_pair(lr, kernel, scale, downsample, corners, noise, jpeg, seed) if corners else None
    params = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    opt, best, best_loss, stale, step_time, taken = None, params, float("inf"), 0, 0.0, 0
    for i in range(first_step, first_step + AUTO_MAX_STEPS if auto else first_step + steps):
        if auto and i >= len(step_lrs) and clock() - start + step_time + infer_seconds > time_limit:
            break
        t0 = clock()
        pair = draw(rng)
        loss, grads = l1_grad_tiled(net, params, pair.x, pair.y, tile, precision, pair.mask)
        if paper or i < len(step_lrs):
            with torch.no_grad():
                params = {k: (p - step_lr(step_lrs, i, k) * grads[k]).requires_grad_(True)
                          for k, p in params.items()}
        else:
            if opt is None:
                opt = torch.optim.Adam(params.values(), lr=tail_lr)
            for k, p in params.items():
                p.grad = grads[k]
            opt.step()
        taken += 1
        if callback is not None:
            callback(i, loss)
        step_time = clock() - t0
        if held is None or i + 1 < len(step_lrs) or (i + 1 - len(step_lrs)) % AUTO_CHECK_EVERY:
            continue
        held_loss = pair_loss(net, params, held, precision=precision)
        if held_loss < best_loss:
            best, best_loss, stale = {k: v.detach().clone() for k, v in params.items()}, held_loss, 0
        else:
            stale += 1
            if stale >= AUTO_PATIENCE:
                break
    if report is not None:
        report["steps"] = taken
        if held is not None:
            final = best if best_loss < float("inf") else params
            report["held_loss"] = min(best_loss, pair_loss(net, final, held, precision=precision))
            report["bicubic_loss"] = (((held.x - held.y).abs() * held.mask).sum()
                                      / (held.mask.sum() * held.x.shape[1])).item()
    return {k: v.detach() for k, v in (params if best_loss == float("inf") else best).items()}


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


def forward_seconds_per_pixel(net, params: dict, lr: torch.Tensor, precision: str, clock=time.monotonic,
                              side: int = 96) -> float:
    """The network's forward time per output pixel here, timed on a ``side``² patch of the bicubic-upsampled LR
    (after one warm-up pass)."""
    x = upsample(lr[..., :side, :side], (min(side, lr.shape[-2]) * 2, min(side, lr.shape[-1]) * 2))
    forward_tiled(net, params, x, None, precision)
    t0 = clock()
    forward_tiled(net, params, x, None, precision)
    return (clock() - t0) / (x.shape[-2] * x.shape[-1])


def affordable_frames(frames: list[int], seconds_per_pass: float, budget: float) -> list[int] | None:
    """The leading ``frames`` (halved until they fit) whose passes take at most ``budget`` seconds; ``None``
    (one plain pass) when not even two do."""
    while len(frames) > 1 and seconds_per_pass * len(frames) > budget:
        frames = frames[: len(frames) // 2]
    return frames if len(frames) > 1 else None


def zero_shot(net, params: dict, lr_img: np.ndarray, kernel: np.ndarray | None, scale: int, downsample: str,
              steps: int | str, step_lrs: list, device="cpu", tile_train: int | None = AUTO_TILE_TRAIN,
              tile_infer: int | None = AUTO_TILE_INFER, callback=None, precision: str = "fp32",
              back_projection: int = 0, ensemble: bool = False, schedule: str = "tail", noise: float = 0.0,
              jpeg: int | None = None, seed: int = 0, time_limit: float = AUTO_TIME_LIMIT,
              clock=time.monotonic, guard: bool = False, tail: bool = True, report: dict | None = None) -> np.ndarray:
    """The whole meta-test on one ``(h, w, 3)`` image on 0..255: adapt (:func:`adapt`: ``steps`` a count or
    ``"auto"``, ``schedule`` ``"tail"`` or ``"paper"``, the son corrupted with ``noise``/``jpeg``; without ``tail``,
    ``"auto"`` takes the meta-learned steps only, on every pixel), super-resolve (with ``ensemble``, as the median
    over the rotations/flips that leave the kernel unchanged, :mod:`mzsr.ensemble`), then ``back_projection``
    iterations of :func:`back_project`. Neither is in the paper's MZSR. With ``steps="auto"``, ``time_limit``
    seconds of ``clock`` bound the whole call, inference included (but at least ``AUTO_ADAPT_MIN_SHARE`` of them go
    to adapting, so a large image's call overruns them), and ``guard`` blends the result towards bicubic where the
    adapted net reconstructs the held-out blocks of the son pair no better than bicubic does
    (:func:`mzsr.realphoto.guard_weight`): never worse than bicubic, judged on the image itself (without ``tail``
    nothing is held out, so nothing is blended). ``report`` receives what :func:`adapt` reports, the ensemble's
    ``frames`` and the ``guard`` weight kept (1: all net).

    Returns ``(h·s, w·s, 3)`` float32 in [0, 1], unrounded, so that 16-bit outputs keep their precision.
    """
    lr = to_tensor(lr_img, device)
    k = None if kernel is None else torch.as_tensor(kernel, dtype=torch.float32, device=device)
    frames = kernel_symmetries(k) if ensemble else None
    out_pixels = lr.shape[-2] * lr.shape[-1] * scale ** 2
    infer_seconds = 0.0
    if steps == "auto":  # measured, not scaled from a step's time: the first Adam step alone can take 8 others'
        per_pass = forward_seconds_per_pixel(net, params, lr, precision, clock) * out_pixels
        if frames and len(frames) > 1:
            frames = affordable_frames(frames, per_pass, AUTO_ENSEMBLE_SHARE * time_limit)
        infer_seconds = min(AUTO_INFER_MARGIN * per_pass * (len(frames) if frames else 1),
                            (1 - AUTO_ADAPT_MIN_SHARE) * time_limit)
    report = {} if report is None else report
    adapted = adapt(net, params, lr, k, scale, downsample, steps if tail else len(step_lrs), step_lrs, tile_train,
                    callback, precision=precision, schedule=schedule, noise=noise, jpeg=jpeg, seed=seed,
                    time_limit=time_limit, clock=clock, infer_seconds=infer_seconds, report=report)
    report["frames"] = len(frames) if frames else 1
    sr = super_resolve(net, adapted, lr, scale, tile_infer, precision, frames, alignment_shift(scale, downsample))
    if back_projection:
        sr = back_project(sr, lr, k, scale, downsample, back_projection).clamp_(0, 1)
    report["guard"] = guard_weight(report["held_loss"], report["bicubic_loss"]) if guard and "held_loss" in report \
        else 1.0
    if report["guard"] < 1:
        sr = guard_blend(sr, upsample(lr, sr.shape[-2:]).clamp_(0, 1), report["guard"])
    return sr.squeeze(0).permute(1, 2, 0).cpu().numpy()
