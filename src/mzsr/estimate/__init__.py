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


def reads_as_jpeg(lr_rgb01: np.ndarray) -> bool:
    """Whether an ``(H, W, 3)`` image in [0, 1] reads as a JPEG (one ``--jpeg auto`` would give its son)."""
    from ..realphoto import son_quality

    return son_quality(np.asarray(lr_rgb01, dtype=np.float64) * 255.0) is not None


def auto(lr_rgb01: np.ndarray, scale: int, model: Model, jpeg: bool | None = None, **options) -> np.ndarray:
    """``predictor`` where one is shipped for the model's scale and subsampling and measured better there
    (:data:`PREDICTOR_FIRST`: ×2, but for JPEGs; closer to the true kernel's result in a tenth of the time), else
    ``mzsr_search`` (at ×4 0.1–0.2 dB closer than the ×4 predictor; at ×2 on JPEGs, which the ×2 predictor never
    saw: 0.10 dB closer on Set14 with σ 3 + JPEG 80, while with noise alone, σ 5, the predictor was 0.14 dB
    closer), or the shipped predictor when the image is too small for the search (under
    ``mzsr_search.smallest_side``: 64 px at ×4). ``jpeg``: whether the image is a JPEG, if the caller knows
    (e.g. from its file's tables); by default :func:`reads_as_jpeg` tells, when it matters."""
    shipped = predictor.weights_path(scale, model.downsample).is_file()
    fits = mzsr_search.fits(np.shape(lr_rgb01), scale)
    is_jpeg = lambda: reads_as_jpeg(lr_rgb01) if jpeg is None else jpeg  # noqa: E731 (measured only if it matters)
    first = shipped and (not fits or (scale in PREDICTOR_FIRST and not is_jpeg()))
    return (predictor.estimate if first else mzsr_search.estimate)(lr_rgb01, scale, model, **options)


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
                    jpeg: bool | None = None, **options) -> np.ndarray:
    """The blur kernel of an ``(H, W, 3)`` RGB image in [0, 1], estimated by ``estimator`` with ``model``;
    ``jpeg`` (whether the image is a JPEG, if known) goes to ``auto``, which routes by it."""
    fn = get_estimator(estimator)
    k = fn(lr_rgb01, scale, model, **({"jpeg": jpeg} if fn is auto else {}), **options)
    return check_kernel(k, f"estimator {estimator or DEFAULT_ESTIMATOR}")
