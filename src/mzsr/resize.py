"""MATLAB-exact bicubic ``imresize`` for NumPy arrays and torch tensors.

Semantics follow MATLAB's ``imresize(..., 'bicubic')``: cubic kernel with a = -0.5, the kernel widened by
1/scale when downscaling (antialiasing), half-sample-symmetric borders, output size ``ceil(in * scale)``.
PIL, OpenCV and ``torch.nn.functional.interpolate`` all differ from it, mostly at the borders.

Layouts: NumPy arrays are ``(H, W)`` or ``(H, W, C)`` and are computed in float64; torch tensors are
``(..., H, W)``, keep their dtype and device, and stay differentiable.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch


def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return near + far


@lru_cache(maxsize=256)
def contributions(in_len: int, out_len: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Source indices and weights, each ``(out_len, taps)``, for one dimension.

    Indices already fold the symmetric border in, so applying them is a plain gather + weighted sum.
    """
    width = 4.0
    if scale < 1:
        width /= scale
    u = np.arange(1, out_len + 1, dtype=np.float64) / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]
    dist = u[:, None] - idx
    w = scale * _cubic(scale * dist) if scale < 1 else _cubic(dist)
    w /= w.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len)[::-1]])
    idx = mirror[np.mod(idx.astype(np.int64) - 1, 2 * in_len)]
    keep = np.any(w != 0, axis=0)  # drop all-zero tap columns: they only cost time
    return np.ascontiguousarray(idx[:, keep]), np.ascontiguousarray(w[:, keep])


def _plan(in_hw: tuple[int, int], scale, out_shape) -> list[tuple[int, int, float]]:
    """(in_len, out_len, scale) for the H and W dimensions."""
    if out_shape is not None:
        outs = tuple(int(o) for o in out_shape)
        scales = tuple(o / i for o, i in zip(outs, in_hw))
    elif scale is not None:
        scales = (float(scale), float(scale)) if np.isscalar(scale) else tuple(float(s) for s in scale)
        # MATLAB's ceil, guarded so that 256 * 0.5 stays 128 despite float noise
        outs = tuple(int(math.ceil(i * s - 1e-9)) for i, s in zip(in_hw, scales))
    else:
        raise ValueError("imresize needs scale or out_shape")
    if min(outs) < 1:
        raise ValueError(f"imresize to an empty image ({outs[0]}x{outs[1]})")
    return [(i, o, s) for i, o, s in zip(in_hw, outs, scales)]


def _resize_axis(x, axis: int, in_len: int, out_len: int, scale: float):
    """Resize one axis of a NumPy array or torch tensor: a weighted sum of gathered source rows."""
    if in_len == out_len and scale == 1:
        return x
    idx, w = contributions(in_len, out_len, scale)
    shape = [1] * x.ndim
    shape[axis] = out_len
    if isinstance(x, torch.Tensor):
        idx = torch.from_numpy(idx).to(x.device)
        w = torch.from_numpy(w).to(device=x.device, dtype=x.dtype)
        def take(j): return x.index_select(axis, idx[:, j])
    else:
        def take(j): return np.take(x, idx[:, j], axis=axis)
    out = take(0) * w[:, 0].reshape(shape)
    for j in range(1, idx.shape[1]):  # one tap at a time keeps memory at two output-sized arrays
        out += take(j) * w[:, j].reshape(shape)
    return out


def imresize(x, scale=None, out_shape=None):
    """Resize like MATLAB ``imresize(x, scale)`` or ``imresize(x, out_shape)`` with bicubic interpolation.

    ``scale`` is a number or an (h, w) pair; ``out_shape`` is (H, W) and takes precedence.
    """
    if isinstance(x, torch.Tensor):
        h_axis, w_axis = x.ndim - 2, x.ndim - 1
    else:
        x = np.asarray(x, dtype=np.float64)
        h_axis, w_axis = 0, 1
    (ih, oh, sh), (iw, ow, sw) = _plan((x.shape[h_axis], x.shape[w_axis]), scale, out_shape)
    # MATLAB resizes the dimension with the smaller scale first; the order only changes float rounding
    if sh <= sw:
        return _resize_axis(_resize_axis(x, h_axis, ih, oh, sh), w_axis, iw, ow, sw)
    return _resize_axis(_resize_axis(x, w_axis, iw, ow, sw), h_axis, ih, oh, sh)
