"""The degradation model LR = (HR ⊛ k)↓s + n, in NumPy (exact, for files) and torch (batched, differentiable).

Blur is per-channel correlation with half-sample-symmetric borders (``dcba|abcd``); ``direct``
subsampling keeps rows/cols 0, s, 2s, …; ``bicubic`` subsampling is MATLAB ``imresize(1/s)``.
A kernel of ``None`` means no blur (the plain bicubic degradation).
"""
from __future__ import annotations

import io as _io

import numpy as np
import scipy.ndimage
import torch
import torch.nn.functional as F

from .resize import imresize

DOWNSAMPLING = ("direct", "bicubic")


def _check_downsample(downsample: str) -> None:
    if downsample not in DOWNSAMPLING:
        raise ValueError(f"downsample must be one of {DOWNSAMPLING}, got {downsample!r}")


def _correlate(channel: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    # The symmetric padding is done here, not by scipy's mode="reflect": scipy 1.17 reads out of bounds when an
    # axis is shorter than about half the kernel (a 2-px axis, 17 taps). np.pad repeats the reflection as often
    # as needed; the correlation of the padded image then never reaches a border, and its valid part is
    # bit-identical to scipy's own reflect mode where that works. Centre: index size // 2 per axis, as scipy's.
    before = np.array(kernel.shape) // 2
    after = np.array(kernel.shape) - 1 - before
    padded = np.pad(channel, list(zip(before, after)), mode="symmetric")
    out = scipy.ndimage.correlate(padded, kernel, mode="constant")
    return out[before[0]: before[0] + channel.shape[0], before[1]: before[1] + channel.shape[1]]


def blur(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Correlate each channel of an ``(H, W[, C])`` image with a 2-D ``kernel``; float64, symmetric borders
    (``dcba|abcd``, repeated for axes shorter than the kernel)."""
    img = np.asarray(img, dtype=np.float64)
    kernel = np.asarray(kernel, dtype=np.float64)
    if img.ndim == 2:
        return _correlate(img, kernel)
    return np.stack([_correlate(img[..., c], kernel) for c in range(img.shape[-1])], axis=-1)


def subsample(img, scale: int, downsample: str = "direct"):
    """Direct (top-left sample of each s×s block) or MATLAB-bicubic downscaling, NumPy HW[C] or torch (..., H, W)."""
    _check_downsample(downsample)
    if downsample == "bicubic":
        return imresize(img, 1.0 / scale)
    if isinstance(img, torch.Tensor):
        return img[..., ::scale, ::scale]
    return img[::scale, ::scale]


def quantize(img: np.ndarray) -> np.ndarray:
    """Round and clip an image on the 0..255 scale to uint8."""
    return np.round(np.clip(img, 0, 255)).astype(np.uint8)


def degrade(img: np.ndarray, kernel: np.ndarray | None, scale: int, downsample: str = "direct",
            noise: float = 0.0, rng: np.random.Generator | None = None) -> np.ndarray:
    """Degrade an ``(H, W[, C])`` image on the 0..255 scale; returns float64 on the same scale, unrounded.

    ``noise`` is the σ of white Gaussian noise on the [0, 1] scale. ``quantize(degrade(hr, k, 2))`` with the
    official g^d_2.0 kernel reproduces MZSR's Set5 test inputs bit for bit.
    """
    out = np.asarray(img, dtype=np.float64)
    if kernel is not None:
        out = blur(out, kernel)
    out = subsample(out, scale, downsample)
    if noise > 0:
        rng = rng if rng is not None else np.random.default_rng()
        out = out + rng.normal(0.0, noise * 255.0, out.shape)
    return out


def check_corruption(noise: float, jpeg: int | None, names: tuple[str, str] = ("noise", "jpeg")) -> None:
    """Raise an :class:`~mzsr.errors.OptionError` naming the option (``names``) unless ``noise`` is a σ in
    grey levels and ``jpeg`` ``None`` or a quality (:func:`mzsr.validate.noise`, :func:`mzsr.validate.jpeg_quality`)."""
    from . import validate

    validate.noise(noise, names[0])
    validate.jpeg_quality(jpeg, names[1])


def corrupt(img: np.ndarray, noise: float = 0.0, jpeg: int | None = None,
            rng: np.random.Generator | None = None) -> np.ndarray:
    """A real camera's last steps on an ``(H, W[, C])`` image on the 0..255 scale: white Gaussian noise of σ
    ``noise`` grey levels, rounding to uint8, then JPEG at ``jpeg`` quality (1..95; ``None``: none).

    Returns uint8. Grey levels of 0..255, as BasicSR and Real-ESRGAN count σ.
    """
    check_corruption(noise, jpeg)
    out = np.asarray(img, dtype=np.float64)
    if noise > 0:
        rng = rng if rng is not None else np.random.default_rng()
        out = out + rng.normal(0.0, noise, out.shape)
    out = quantize(out)
    if jpeg is None:
        return out
    from PIL import Image

    buf = _io.BytesIO()
    Image.fromarray(out.squeeze(-1) if out.ndim == 3 and out.shape[-1] == 1 else out).save(
        buf, format="JPEG", quality=int(jpeg))
    with Image.open(buf) as im:
        back = np.asarray(im).copy()
    return back.reshape(out.shape)


def corrupt_torch(x: torch.Tensor, noise: float = 0.0, jpeg: int | None = None,
                  rng: np.random.Generator | None = None) -> torch.Tensor:
    """:func:`corrupt` of each ``(N, C, H, W)`` image in [0, 1]; returns the same layout, dtype and device (not
    differentiable: JPEG runs in Pillow)."""
    arr = x.detach().float().cpu().permute(0, 2, 3, 1).numpy() * 255.0
    out = np.stack([corrupt(a, noise, jpeg, rng) for a in arr]).astype(np.float32) / 255.0
    return torch.from_numpy(out).permute(0, 3, 1, 2).to(device=x.device, dtype=x.dtype)


def _symmetric_index(n: int, pad: int, device) -> torch.Tensor:
    return torch.from_numpy(np.pad(np.arange(n), pad, mode="symmetric")).to(device)


def pad_symmetric(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Half-sample-symmetric padding of the last two dims (torch's 'reflect' is the other reflection)."""
    if pad == 0:
        return x
    x = x.index_select(-2, _symmetric_index(x.shape[-2], pad, x.device))
    return x.index_select(-1, _symmetric_index(x.shape[-1], pad, x.device))


def blur_torch(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Correlate ``(N, C, H, W)`` with one ``(k, k)`` kernel or one per sample ``(N, k, k)`` (odd k)."""
    n, c, h, w = x.shape
    if kernels.ndim == 2:
        kernels = kernels.expand(n, *kernels.shape)
    ksize = kernels.shape[-1]
    xp = pad_symmetric(x, ksize // 2).reshape(1, n * c, h + ksize - 1, w + ksize - 1)
    weight = kernels.to(x.dtype).repeat_interleave(c, dim=0).unsqueeze(1)
    return F.conv2d(xp, weight, groups=n * c).reshape(n, c, h, w)


def degrade_torch(x: torch.Tensor, kernels: torch.Tensor | None, scale: int,
                  downsample: str = "direct") -> torch.Tensor:
    """Differentiable, batched degradation of ``(N, C, H, W)`` images (any value scale), no noise or rounding."""
    if kernels is not None:
        x = blur_torch(x, kernels)
    return subsample(x, scale, downsample)
