"""The paper's evaluation protocol (spec §6): Y-channel PSNR and SSIM with a border shave, plus RGB PSNR.

Every function takes ``uint8`` RGB (or grayscale) arrays ``(H, W[, 3])`` on 0..255, SR and GT of the same size
(crop GT to a multiple of the scale with :func:`modcrop` first).
"""
from __future__ import annotations

import numpy as np
from scipy.signal import correlate2d


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom/right so that height and width are multiples of ``scale``."""
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma on 16..235 from uint8 RGB, **rounded** as MATLAB's ``rgb2ycbcr`` on uint8 does.

    A 2-D (grayscale) input is returned as float64 unchanged: its grey level is its luma.
    """
    img = np.asarray(img, dtype=np.float64)
    if img.ndim == 2:
        return img
    y = 16.0 + (65.481 * img[..., 0] + 128.553 * img[..., 1] + 24.966 * img[..., 2]) / 255.0
    return np.round(y)


def _shave(img: np.ndarray, shave: int) -> np.ndarray:
    return img[shave:-shave, shave:-shave] if shave > 0 else img


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a - b) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def psnr_y(sr: np.ndarray, gt: np.ndarray, shave: int) -> float:
    """PSNR (dB, peak 255) of the rounded Y channel, ``shave`` pixels removed at every border."""
    return _psnr(_shave(rgb_to_y(sr), shave), _shave(rgb_to_y(gt), shave))


def psnr_rgb(sr: np.ndarray, gt: np.ndarray, shave: int) -> float:
    """PSNR (dB, peak 255) over all RGB channels, ``shave`` pixels removed at every border."""
    return _psnr(_shave(np.asarray(sr, np.float64), shave), _shave(np.asarray(gt, np.float64), shave))


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    r = np.arange(size) - size // 2
    g = np.exp(-(r ** 2) / (2 * sigma ** 2))
    w = np.outer(g, g)
    return w / w.sum()


def ssim_y(sr: np.ndarray, gt: np.ndarray, shave: int) -> float:
    """SSIM of the rounded Y channel (Wang et al. 2004): 11×11 Gaussian window σ 1.5, K1 0.01, K2 0.03,
    L 255, 'valid' filtering, mean of the map; ``shave`` pixels removed at every border first."""
    a, b = _shave(rgb_to_y(sr), shave), _shave(rgb_to_y(gt), shave)
    win = _gaussian_window()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def filt(x):
        return correlate2d(x, win, mode="valid")

    mu_a, mu_b = filt(a), filt(b)
    var_a = filt(a * a) - mu_a ** 2
    var_b = filt(b * b) - mu_b ** 2
    cov = filt(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())
