"""Real photos: estimate an input's noise level and JPEG quality, decide the son's corruption from them, and
guard the result against being worse than bicubic.

MZSR fits the son → LR mapping. On a noisy, JPEG-compressed photo the LR carries noise and 8×8 blocks that a
clean son does not, and the adaptation learns to make them. Giving the son the same corruption
(:func:`mzsr.degrade.corrupt_torch`, noise σ in grey levels of 0..255, then JPEG) leaves only the detail to learn.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import scipy.fft
import scipy.stats
from numpy.lib.stride_tricks import sliding_window_view

from .schedules import AUTO_GUARD_MARGIN
from .validate import MAX_NOISE

# IJG's example tables (JPEG standard, Annex K), row-major, as libjpeg (and so Pillow) scales them by quality
IJG_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99])
IJG_CHROMA = np.array([17, 18, 24, 47] + [99] * 4 + [18, 21, 26, 66] + [99] * 4 + [24, 26, 56] + [99] * 5
                      + [47, 66] + [99] * 6 + [99] * 32)

PATCH = 7  # side of the patches whose covariance gives the noise level
# patches the covariance is taken over, evenly spaced: every overlapping one up to ~316² px. A small LR needs all of
# them: at a stride of 3, Set14's and Set5's clean ×4 g^d_2.0 LRs (57×86 to 192×128) read σ 0–12.3, at 1 0–3.0;
# a large one reads as well on fewer (2000×1500 px, σ 5: 4.99 at a stride of 6 in 1.0 s, at 3 in 3.6 s)
MAX_PATCHES = 100_000
# σ estimates below this many grey levels are taken as no noise: uint8 rounding alone is 0.29, and the estimator
# reads up to 0.74 on the paper's clean ×2 LRs (Set14 g^d_2.0; sharp ×4 LRs read more: mzsr.schedules'
# AUTO_LARGE_SCALE_CORRUPT_FROM)
NOISE_FLOOR = 1.0
MAX_QUALITY = 95  # mzsr.degrade.corrupt's highest; a file above it is too mild to imitate

# Finding a JPEG's quality in its decoded pixels (a PNG or an array that was a JPEG once), see quality_from_pixels
JPEG_MIN_STEP = 3  # quantiser steps under this many grey levels drown in the decoded pixels' rounding
JPEG_ROUNDING = 0.5  # grey levels of rounding error a decoded coefficient carries (σ)
JPEG_MATCH = 0.6  # share of the lattice fit that an exact IJG quality would reach: at least this is a JPEG
JPEG_MIN_COEFFICIENTS = 200  # non-zero coefficients a quality must be judged on
JPEG_MAX_BLOCKS = 4096  # 8×8 blocks looked at, evenly spaced: the estimate's cost stays bounded
BT601 = np.array([0.299, 0.587, 0.114])  # JFIF's luma


def _noise_variance(patches: np.ndarray) -> float:
    """Chen et al. (ICCV 2015): the largest tail of the patch covariance's eigenvalues whose mean does not exceed
    its median is noise alone (signal eigenvalues are few and large); its mean is σ²."""
    centred = patches - patches.mean(0)
    ev = np.sort(np.linalg.eigvalsh(centred.T @ centred / len(patches)))
    for end in range(len(ev), 0, -1):
        if np.mean(ev[:end]) <= np.median(ev[:end]):
            return float(max(np.mean(ev[:end]), 0.0))
    return float(max(ev[0], 0.0))


def _channel_sigma(channel: np.ndarray, iters: int = 3, confidence: float = 0.999) -> float:
    positions = (channel.shape[0] - PATCH + 1) * (channel.shape[1] - PATCH + 1)
    stride = max(1, math.ceil(math.sqrt(positions / MAX_PATCHES)))
    windows = sliding_window_view(channel, (PATCH, PATCH))[::stride, ::stride].reshape(-1, PATCH, PATCH)
    texture = (np.diff(windows, axis=1) ** 2).sum((1, 2)) + (np.diff(windows, axis=2) ** 2).sum((1, 2))
    flat = windows.reshape(len(windows), -1)
    # clipped pixels (0 or 255) hold less noise than the rest: their flat patches would pull the estimate down
    unclipped = (flat.min(1) > 0) & (flat.max(1) < 255)
    if unclipped.sum() >= 2 * PATCH * PATCH:
        texture, flat = texture[unclipped], flat[unclipped]
    var = _noise_variance(flat)
    for _ in range(iters):
        if var == 0:  # a flat image: no noise, and no gamma to draw the limit from
            break
        # Liu et al. (2013): keep the weak-texture patches, whose gradient energy pure noise of this σ would reach
        # (the sum of squared neighbour differences, a gamma with the correlations' doubled variance)
        limit = scipy.stats.gamma.ppf(confidence, a=PATCH * (PATCH - 1) / 2, scale=8 * var)
        keep = texture < limit
        if keep.sum() < 2 * PATCH * PATCH:
            break
        var = _noise_variance(flat[keep])
    return float(np.sqrt(var))


def estimate_noise(img: np.ndarray) -> float:
    """σ of white Gaussian noise in an ``(H, W[, C])`` image on 0..255, in grey levels: the mean over the channels
    of a weak-texture-patch PCA estimate (within ±1 of the truth on blurred, subsampled test images for σ 0..10;
    the paper's clean ×2 inputs read 0–0.74, their rounding being 0.29; texture reads as noise where little blur
    is left, as on g^d_0.2 or ×4 inputs)."""
    img = np.asarray(img, dtype=np.float64)
    channels = [img] if img.ndim == 2 else [img[..., c] for c in range(min(img.shape[-1], 3))]
    if min(img.shape[:2]) < 4 * PATCH:
        raise ValueError(f"image too small to estimate its noise ({img.shape[0]}×{img.shape[1]} px)")
    return float(np.mean([_channel_sigma(c) for c in channels]))


def ijg_table(base: np.ndarray, quality: int) -> np.ndarray:
    """libjpeg's ``jpeg_quality_scaling``: the base table scaled for ``quality`` 1..100, clamped to 1..255."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return np.clip((base * scale + 50) // 100, 1, 255)


def quality_from_tables(tables: dict) -> tuple[int, float]:
    """(quality 1..100 whose IJG tables are nearest, their mean absolute difference from ``tables``) for a JPEG's
    quantisation tables as Pillow reads them (``{0: luma, 1: chroma, ...}``, 64 values row-major). A difference
    of 0 means an IJG-scaled file (libjpeg, Pillow, most software); cameras' own tables give a nearest match."""
    given = [np.asarray(tables[k], dtype=np.int64).ravel() for k in sorted(tables)][:2]
    bases = [IJG_LUMA, IJG_CHROMA][:len(given)]
    errors = [np.mean([np.abs(t - ijg_table(b, q)).mean() for t, b in zip(given, bases)]) for q in range(1, 101)]
    best = int(np.argmin(errors))
    return best + 1, float(errors[best])


def jpeg_quality(path) -> int | None:
    """The JPEG quality a file was saved at (:func:`quality_from_tables`), or ``None`` when it is no JPEG."""
    from PIL import Image

    with Image.open(Path(path)) as im:
        tables = getattr(im, "quantization", None) if im.format == "JPEG" else None
    return quality_from_tables(tables)[0] if tables else None


def luma_block_dct(img: np.ndarray, max_blocks: int = JPEG_MAX_BLOCKS) -> np.ndarray:
    """``(blocks, 64)`` DCT coefficients, row-major as JPEG's tables, of the JFIF luma of an ``(H, W[, C])`` image
    on 0..255, in the 8×8 blocks of JPEG's grid (from the top-left corner), at most ``max_blocks`` of them."""
    img = np.asarray(img, dtype=np.float64)
    y = (img[..., :3] @ BT601 if img.shape[-1] >= 3 else img[..., 0]) if img.ndim == 3 else img
    h, w = y.shape[0] // 8 * 8, y.shape[1] // 8 * 8
    blocks = (y[:h, :w] - 128).reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3).reshape(-1, 8, 8)
    blocks = blocks[:: max(1, -(-len(blocks) // max_blocks))]
    return scipy.fft.dctn(blocks, axes=(1, 2), norm="ortho").reshape(-1, 64)  # JPEG's DCT is the orthonormal one


def quality_from_pixels(img: np.ndarray) -> int | None:
    """The IJG quality (1..100) an ``(H, W[, C])`` image on 0..255 was JPEG-compressed at, found in its decoded
    pixels, or ``None`` when it shows none (never compressed, or resized or shifted off the 8×8 grid since).

    A decoded JPEG's block-DCT coefficients sit on multiples of the quantiser's steps, up to the pixels' rounding.
    For each quality, the fit of the coefficients to its luma table's lattice (mean cosine of 2π·c/step over
    coefficients above a quarter step; steps under :data:`JPEG_MIN_STEP` left out) is compared with what an exact
    match would give through :data:`JPEG_ROUNDING`; of the qualities reaching :data:`JPEG_MATCH` of that, the
    best fit wins: a table of half the steps fits as well but through relatively more rounding, a table of
    larger steps puts the true lattice's odd multiples at a half period. Qualities over 95 (steps of 1–3) read
    as ``None`` or lower."""
    coefs = luma_block_dct(img)
    best, best_fit = None, -1.0
    for quality in range(1, 101):
        steps = ijg_table(IJG_LUMA, quality).astype(np.float64)
        fit = expected = count = 0.0
        for j in np.flatnonzero(steps >= JPEG_MIN_STEP):
            c = coefs[:, j][np.abs(coefs[:, j]) > steps[j] / 4]
            fit += np.cos(2 * np.pi * c / steps[j]).sum()
            expected += len(c) * np.exp(-2 * (np.pi * JPEG_ROUNDING / steps[j]) ** 2)
            count += len(c)
        if count >= JPEG_MIN_COEFFICIENTS and fit >= JPEG_MATCH * expected and fit / count > best_fit:
            best, best_fit = quality, fit / count
    return best


def son_corruption(noise: float, quality: int | None) -> tuple[float, int | None]:
    """What corruption to give the son (``noise="auto"``) from the LR's estimates: its σ, unless under
    :data:`NOISE_FLOOR` (a clean image: then none, which changes nothing) and at most :data:`mzsr.validate.MAX_NOISE`
    (texture can read as more), and its JPEG quality, unless it is no JPEG or above :data:`MAX_QUALITY`."""
    sigma = min(float(noise), MAX_NOISE) if noise >= NOISE_FLOOR else 0.0
    return sigma, quality if quality is not None and quality <= MAX_QUALITY else None


def calibrate_son_noise(son: np.ndarray, lr_noise: float, quality: int | None, top: float = 30.0,
                        iters: int = 10, seed: int = 0) -> float:
    """The σ to corrupt the ``son`` (``(h, w[, C])`` on 0..255, before any corruption) with, so that its measured
    noise after :func:`mzsr.degrade.corrupt` with ``quality`` matches the LR's measured ``lr_noise``: a bisection
    on [0, ``top``]. JPEG removes most of the noise the estimator sees (σ 5 at quality 75 reads ~0.5), so the
    LR's reading is not the σ it was given; and the son keeps part of the LR's own noise. 0 when the LR reads
    clean (:data:`NOISE_FLOOR`); ``lr_noise`` itself when the son is too small to measure (a small LR at ×4)."""
    from .degrade import corrupt

    if lr_noise < NOISE_FLOOR:
        return 0.0
    if min(np.shape(son)[:2]) < 4 * PATCH:
        return float(lr_noise)

    def reads(sigma: float) -> float:
        return estimate_noise(corrupt(son, sigma, quality, np.random.default_rng(seed)))

    if reads(0.0) >= lr_noise:
        return 0.0
    lo, hi = 0.0, top
    for _ in range(iters):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if reads(mid) < lr_noise else (lo, mid)
    return (lo + hi) / 2


def son_quality(img: np.ndarray, path=None) -> int | None:
    """The JPEG quality ``jpeg="auto"`` gives the son of an ``(H, W[, C])`` LR image on 0..255: its file's
    (:func:`jpeg_quality`, when ``path`` is a JPEG), else the one its pixels read as (:func:`quality_from_pixels`);
    ``None`` when it reads as no JPEG, as one above :data:`MAX_QUALITY`, or is too small to measure."""
    if min(np.shape(img)[:2]) < 4 * PATCH:
        return None
    quality = jpeg_quality(path) if path is not None else None
    quality = quality_from_pixels(img) if quality is None else quality
    return son_corruption(0.0, quality)[1]


def auto_corruption(img: np.ndarray, quality: int | None = None) -> tuple[float, int | None]:
    """(σ, quality) that ``noise="auto"`` reads on an ``(H, W[, C])`` LR image on 0..255 whose JPEG ``quality``
    (e.g. :func:`son_quality`'s) is known: :func:`son_corruption` of its measured noise. For a JPEG the son's σ
    is then matched through the compression (:func:`calibrate_son_noise`). An image too small to measure reads as
    clean."""
    if min(np.shape(img)[:2]) < 4 * PATCH:
        return 0.0, None
    return son_corruption(estimate_noise(img), quality)


def guard_weight(net_error: float, bicubic_error: float, margin: float = AUTO_GUARD_MARGIN) -> float:
    """Never worse than bicubic, judged on the image itself: the share of the network's SR to keep (the rest
    bicubic's), from how well each reconstructs the LR from the son (e.g. mean L1 of the adapted net's
    son → LR against bicubic ↑ of the son's). 1 while the net is at least ``margin`` (relative) better than
    bicubic; 0 when it is no better; linear between."""
    if not bicubic_error > 0:
        return 1.0 if net_error <= bicubic_error else 0.0
    gain = (bicubic_error - net_error) / bicubic_error
    return float(np.clip(gain / margin, 0.0, 1.0)) if margin > 0 else float(gain > 0)


def guard_blend(sr_net, sr_bicubic, weight: float):
    """``weight`` × the network's SR + the rest × bicubic's (arrays or tensors of one shape)."""
    return sr_net if weight >= 1 else sr_bicubic if weight <= 0 else weight * sr_net + (1 - weight) * sr_bicubic
