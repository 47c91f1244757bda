"""``predictor``: a small CNN that reads the blur kernel off the image's most detailed LR patches (kernel
prediction as in IKC, Gu et al. 2019), trained on synthetic degradations of the training images
(``mzsr train kernel``); milliseconds per image.

The kernel family is the search's: Gaussians with variances λ1 ≥ λ2 in [``ESTIMATE_MIN_VAR``,
``ESTIMATE_MAX_VAR_PER_SCALE``·s] (HR pixels², drawn log-uniformly in training) at any angle θ. The net predicts
the matrix logarithm of the covariance, L = R(θ) diag(log λ1, log λ2) R(θ)ᵀ, as (L_xx, L_yy, L_xy): three
numbers without the angle's wrap-around or the axes' order, on the log scale on which sizes are told apart.
Its predictions for the ``PREDICT_TILES`` busiest tiles, each seen in the 8 rotations/flips of
:mod:`mzsr.ensemble` (each prediction mapped back by :func:`undo_dihedral_log_covariance`), are averaged, then
mapped back to a kernel.

Each patch is standardised (zero mean, unit RMS) before the net sees it, so that contrast cannot pass for
sharpness; without it a first attempt did not learn at all in 600 steps.
"""
from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn

from ..ensemble import N_DIHEDRAL, dihedral
from ..kernels import gaussian_kernel
from ..metrics import rgb_to_y
from ..models import Model
from ..schedules import ESTIMATE_KERNEL_SIZE, ESTIMATE_MAX_VAR_PER_SCALE, ESTIMATE_MIN_VAR, PREDICT_TILE, PREDICT_TILES

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights" / "estimators"


class KernelNet(nn.Module):
    """Six 3×3 convolutions (two of stride 2), global average pooling, a linear map to (L_xx, L_yy, L_xy)."""

    def __init__(self, channels: int = 32):
        super().__init__()
        c = channels
        layers, widths = [], [(3, c, 1), (c, c, 1), (c, 2 * c, 2), (2 * c, 2 * c, 1), (2 * c, 2 * c, 2),
                              (2 * c, 2 * c, 1)]
        for cin, cout, stride in widths:
            layers += [nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(2 * c, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 3, h, w)`` LR patches in [0, 1] → ``(N, 3)`` log-covariances."""
        x = x - x.mean((-3, -2, -1), keepdim=True)
        x = x / (x.pow(2).mean((-3, -2, -1), keepdim=True).sqrt() + 1e-2)
        return self.head(self.features(x).mean((-2, -1)))


def variance_range(scale: int) -> tuple[float, float]:
    return ESTIMATE_MIN_VAR, ESTIMATE_MAX_VAR_PER_SCALE * scale


def log_covariance(lambda1: float, lambda2: float, theta: float) -> tuple[float, float, float]:
    """(L_xx, L_yy, L_xy) of the Gaussian with variances ``lambda1``, ``lambda2`` along angle ``theta``."""
    c, s = math.cos(theta), math.sin(theta)
    rot = np.array([[c, -s], [s, c]])
    log_cov = rot @ np.diag([math.log(lambda1), math.log(lambda2)]) @ rot.T
    return float(log_cov[0, 0]), float(log_cov[1, 1]), float(log_cov[0, 1])


def undo_dihedral_log_covariance(p: torch.Tensor, i: int) -> torch.Tensor:
    """``(N, 3)`` log-covariances predicted on ``dihedral(x, i)`` mapped back to ``x``'s frame. A quarter turn
    swaps the axes and mirrors the diagonal (L_xx ↔ L_yy, L_xy → −L_xy), a flip mirrors it; both are their
    own inverses and commute on (L_xx, L_yy, L_xy), so the frame's own map also undoes it."""
    quarter = i % 2 == 1
    sign = -1.0 if quarter != (i >= 4) else 1.0
    lxx, lyy, lxy = p.unbind(-1)
    return torch.stack([lyy, lxx, sign * lxy] if quarter else [lxx, lyy, sign * lxy], -1)


def kernel_from_log_covariance(p, scale: int, size: int = ESTIMATE_KERNEL_SIZE) -> np.ndarray:
    """The Gaussian kernel of a predicted (L_xx, L_yy, L_xy), its variances clamped to the family's range."""
    lxx, lyy, lxy = (float(v) for v in p)
    logs, vecs = np.linalg.eigh(np.array([[lxx, lxy], [lxy, lyy]]))
    lo, hi = variance_range(scale)
    lambda2, lambda1 = np.clip(np.exp(logs), lo, hi)
    return gaussian_kernel(lambda1, lambda2, math.atan2(vecs[1, 1], vecs[0, 1]), size)


def random_kernels(rng: np.random.Generator, n: int, scale: int, size: int = ESTIMATE_KERNEL_SIZE):
    """``n`` training kernels ``(n, size, size)`` and their targets ``(n, 3)``: variances log-uniform over the
    family's range, any angle."""
    lo, hi = (math.log(v) for v in variance_range(scale))
    kernels, targets = [], []
    for _ in range(n):
        log1, log2 = sorted(rng.uniform(lo, hi, 2), reverse=True)
        theta = rng.uniform(0, math.pi)
        kernels.append(gaussian_kernel(math.exp(log1), math.exp(log2), theta, size))
        targets.append(log_covariance(math.exp(log1), math.exp(log2), theta))
    return (torch.as_tensor(np.stack(kernels), dtype=torch.float32),
            torch.as_tensor(np.array(targets), dtype=torch.float32))


def busiest_tiles(lr_rgb01: np.ndarray, side: int = PREDICT_TILE, count: int = PREDICT_TILES) -> torch.Tensor:
    """The ``count`` tiles of ``side``² (on a half-overlapping grid) with the most luma gradient, as ``(N, 3,
    side, side)``; an image smaller than a tile is one tile of its own size."""
    img = np.asarray(lr_rgb01, dtype=np.float64)
    h, w = img.shape[:2]
    if min(h, w) < side:
        return torch.from_numpy(img.transpose(2, 0, 1)[None].astype(np.float32))
    y = rgb_to_y(np.round(img * 255).astype(np.uint8)).astype(np.float64)
    step = side // 2
    corners = [(t, l) for t in range(0, h - side + 1, step) for l in range(0, w - side + 1, step)]
    detail = [np.abs(np.diff(y[t:t + side, l:l + side], axis=0)).sum()
              + np.abs(np.diff(y[t:t + side, l:l + side], axis=1)).sum() for t, l in corners]
    best = [corners[i] for i in np.argsort(detail)[::-1][:count]]
    tiles = np.stack([img[t:t + side, l:l + side] for t, l in best]).astype(np.float32)
    return torch.from_numpy(tiles.transpose(0, 3, 1, 2).copy())


def weights_path(scale: int, downsample: str, real: bool = False) -> Path:
    """The shipped predictor's file; ``real``: the one trained on noisy and JPEG patches too, where there are two."""
    return WEIGHTS_DIR / f"predictor-{downsample}-x{scale}{'-real' * real}.safetensors"


def load_predictor(path: Path) -> KernelNet:
    """The predictor saved at ``path``, read once per version of the file (a folder's images share it)."""
    path = Path(path)
    st = path.stat()
    return _read_predictor(str(path.resolve()), (st.st_ino, st.st_mtime_ns))


@functools.lru_cache(maxsize=4)
def _read_predictor(path: str, version: tuple) -> KernelNet:  # a file replaced or rewritten is a new key
    card = json.loads(Path(path).with_suffix(".json").read_text())
    net = KernelNet(card["channels"])
    net.load_state_dict(load_file(path))
    return net.eval()


def estimate(lr_rgb01: np.ndarray, scale: int, model: Model, weights: str | Path | None = None) -> np.ndarray:
    """The ``ESTIMATE_KERNEL_SIZE``² Gaussian kernel of an ``(H, W, 3)`` RGB image in [0, 1] (module docstring).

    ``weights``: a predictor's ``.safetensors`` (its ``.json`` beside it); by default the shipped one for the
    model's scale and subsampling.
    """
    path = Path(weights) if weights is not None else weights_path(scale, model.downsample)
    if not path.is_file():
        raise ValueError(f"no kernel predictor for ×{scale} {model.downsample} subsampling ({path.name} not "
                         "shipped); use --estimator mzsr_search")
    return kernel_from_log_covariance(predict(load_predictor(path), busiest_tiles(lr_rgb01)).tolist(), scale)


def predict(net: KernelNet, tiles: torch.Tensor) -> torch.Tensor:
    """The mean ``(3,)`` log-covariance over ``tiles`` ``(N, 3, h, w)`` and their 8 rotations/flips."""
    with torch.no_grad():
        return torch.stack([undo_dihedral_log_covariance(net(dihedral(tiles, i)), i).mean(0)
                            for i in range(N_DIHEDRAL)]).mean(0)
