"""Blur-kernel estimators (``--kernel estimate``): from an LR image alone, the kernel that degraded it.

Every estimator lives in its own file and exposes ``estimate(lr_rgb01, scale, model, **options)``; it returns the
kernel in MZSR's convention (spec §1: variances in HR pixels², centred on the middle pixel, summing to 1), for the
subsampling of ``model``, the model that will super-resolve the image.
"""
from __future__ import annotations

import numpy as np

from ..errors import OptionError
from ..kernels import check_kernel
from ..models import Model
from . import kernelgan, mzsr_search, predictor


# Scales where the shipped predictor came closer to the true kernel's result than the search, so ``auto`` asks
# it first (docs/results/kernel-estimation-x2.md, kernel-estimation-x4.md)
PREDICTOR_FIRST = (2,)


def reads_as_corrupted(lr_rgb01: np.ndarray) -> bool:
    """Whether an ``(H, W, 3)`` image in [0, 1] reads as noisy or as a JPEG (one ``--noise auto --jpeg auto``
    would corrupt the son of)."""
    from ..realphoto import auto_corruption, son_quality

    img = np.asarray(lr_rgb01, dtype=np.float64) * 255.0
    return auto_corruption(img, son_quality(img)) != (0.0, None)


def auto(lr_rgb01: np.ndarray, scale: int, model: Model, corrupted: bool | None = None, **options) -> np.ndarray:
    """``predictor`` where one is shipped for the model's scale and subsampling and measured better there
    (:data:`PREDICTOR_FIRST`: ×2; closer to the true kernel's result in a sixth of the time), else
    ``mzsr_search`` (at ×4 0.1–0.2 dB closer than the ×4 predictor), or the shipped predictor when the image is
    too small for the search (under ``mzsr_search.smallest_side``: 64 px at ×4). A noisy or JPEG image gets the
    predictor trained on such patches where one is shipped (at ×2: with σ 5 0.12 dB closer than the clean one,
    with σ 3 + JPEG 80 0.09 dB; on clean images it is the worse). ``corrupted``: whether the image is noisy or a
    JPEG, if the caller knows (e.g. from its file's tables); by default :func:`reads_as_corrupted` tells, when it
    matters."""
    shipped = predictor.weights_path(scale, model.downsample).is_file()
    fits = mzsr_search.fits(np.shape(lr_rgb01), scale)
    if not shipped or (fits and scale not in PREDICTOR_FIRST):
        return mzsr_search.estimate(lr_rgb01, scale, model, **options)
    real = predictor.weights_path(scale, model.downsample, real=True)
    if real.is_file() and (reads_as_corrupted(lr_rgb01) if corrupted is None else corrupted):
        options = {"weights": real, **options}
    return predictor.estimate(lr_rgb01, scale, model, **options)


ESTIMATORS = {"auto": auto, "predictor": predictor.estimate, "mzsr_search": mzsr_search.estimate,
              "kernelgan": kernelgan.estimate}
DEFAULT_ESTIMATOR = "auto"


def get_estimator(name: str | None = None):
    """The estimator function called ``name`` (``None``: the default); an unknown name is an OptionError."""
    name = DEFAULT_ESTIMATOR if name is None else name
    if name not in ESTIMATORS:
        raise OptionError(f"unknown estimator {name!r} (choose from {', '.join(ESTIMATORS)})")
    return ESTIMATORS[name]


def estimate_kernel(lr_rgb01: np.ndarray, scale: int, model: Model, estimator: str | None = None,
                    corrupted: bool | None = None, **options) -> np.ndarray:
    """The blur kernel of an ``(H, W, 3)`` RGB image in [0, 1], estimated by ``estimator`` with ``model``;
    ``corrupted`` (whether the image is noisy or a JPEG, if known) goes to ``auto``, which routes by it."""
    fn = get_estimator(estimator)
    k = fn(lr_rgb01, scale, model, **({"corrupted": corrupted} if fn is auto else {}), **options)
    return check_kernel(k, f"estimator {estimator or DEFAULT_ESTIMATOR}")
