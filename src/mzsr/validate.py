"""Checks for what callers hand mzsr: image arrays and option values. Pure functions, each returning the value in
its normal form or raising :class:`~mzsr.errors.InputError` / :class:`~mzsr.errors.OptionError` with one line
that names the option. ``option`` is the name to print (``tile`` for the API, ``--tile`` for the CLI)."""
from __future__ import annotations

import math
import numbers

import numpy as np

from .errors import InputError, OptionError, describe
from .net import RECEPTIVE_RADIUS

SCALES = (2, 3, 4)  # the shipped models cover ×2 and ×4; ×3 works with bicubic, zssr and user-trained models
MAX_STEPS = 10_000  # adaptation steps: beyond this a run is hours of CPU per image, most likely a typo
MAX_BACK_PROJECTION = 1_000
# A tile is the inner part of the network's input; each carries a RECEPTIVE_RADIUS margin on every side, so a
# 32-px tile already computes (32 + 16)² / 32² = 2.25× its pixels, and smaller ones grow that cost fast.
MIN_TILE = 4 * RECEPTIVE_RADIUS
MAX_NOISE = 50.0  # grey levels of 0..255: beyond it the image is mostly noise
JPEG_QUALITIES = (1, 95)  # Pillow's advice: above 95 JPEG only grows the file
CHANNELS = (1, 2, 3, 4)  # gray, gray + alpha, RGB, RGBA


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def integer(value, option: str, lo: int, hi: int | None = None) -> int:
    """``value`` as an ``int`` in ``lo..hi`` (no upper bound for ``hi=None``); bools and floats are refused."""
    bounds = f"{lo}..{hi}" if hi is not None else f"≥ {lo}"
    if not _is_int(value):
        raise OptionError(f"{option} must be an integer {bounds}, got {value!r}")
    value = int(value)
    if value < lo or (hi is not None and value > hi):
        raise OptionError(f"{option} must be an integer {bounds}, got {value}")
    return value


def number(value, option: str, lo: float, hi: float | None = None, lo_open: bool = False) -> float:
    """``value`` as a finite ``float`` in ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``); bools are refused."""
    bounds = (f"{'>' if lo_open else '≥'} {lo:g}" if hi is None else
              f"in {'(' if lo_open else '['}{lo:g}, {hi:g}]")
    if not _is_real(value) or not math.isfinite(float(value)):
        raise OptionError(f"{option} must be a finite number {bounds}, got {value!r}")
    value = float(value)
    if value < lo or (lo_open and value == lo) or (hi is not None and value > hi):
        raise OptionError(f"{option} must be a number {bounds}, got {value:g}")
    return value


def choice(value, option: str, choices) -> str:
    """``value`` if it is one of ``choices`` (strings), else an error listing them."""
    if not isinstance(value, str) or value not in choices:
        raise OptionError(f"{option} must be one of {', '.join(choices)}, got {value!r}")
    return value


def scale(value, option: str = "scale") -> int:
    """The upscaling factor: an integer in :data:`SCALES` (2, 3, 4). Whether a shipped model exists for it is
    :func:`mzsr.models.default_model`'s check (there is none at ×3)."""
    return integer(value, option, SCALES[0], SCALES[-1])


def steps(value, option: str = "steps") -> int | str:
    """Adaptation steps: an integer ``0..MAX_STEPS``, or ``"auto"`` (the adaptation picks the count)."""
    if value == "auto" and isinstance(value, str):
        return value
    if not _is_int(value):
        raise OptionError(f"{option} must be an integer 0..{MAX_STEPS} or 'auto', got {value!r}")
    return integer(value, option, 0, MAX_STEPS)


def tile(value, option: str = "tile") -> int | None:
    """Tile side in pixels of the network's input: ``None`` (automatic) or an integer ≥ :data:`MIN_TILE`."""
    return None if value is None else integer(value, option, MIN_TILE)


def back_projection(value, option: str = "back_projection") -> int:
    """Back-projection iterations: an integer ``0..MAX_BACK_PROJECTION``."""
    return integer(value, option, 0, MAX_BACK_PROJECTION)


def time_limit(value, option: str) -> float | None:
    """A time limit in seconds: ``None`` (none) or a finite number > 0."""
    return None if value is None else number(value, option, 0.0, lo_open=True)


def noise(value, option: str = "noise") -> float:
    """Noise σ in grey levels of 0..255: a finite number in ``[0, MAX_NOISE]``."""
    return number(value, option, 0.0, MAX_NOISE)


def jpeg_quality(value, option: str = "jpeg") -> int | None:
    """JPEG quality: ``None`` (no JPEG) or an integer in ``1..95``."""
    return None if value is None else integer(value, option, *JPEG_QUALITIES)


def max_pixels(value, option: str = "max_pixels") -> int | None:
    """A pixel-count limit: ``None`` (no limit) or an integer > 0."""
    return None if value is None else integer(value, option, 1)


def _range_hint(lo: float, hi: float) -> str:
    if hi <= 255 and lo >= 0:
        return "it looks like 0..255: pass uint8, or divide by 255"
    if hi <= 65535 and lo >= 0:
        return "it looks like 0..65535: pass uint16, or divide by 65535"
    return "rescale it to [0, 1]"


def image(img, option: str = "image", max_pixels: int | None = None) -> np.ndarray:
    """An image array as mzsr takes it, returned unchanged (as an ndarray).

    Shapes ``(H, W)`` or ``(H, W, C)`` with C in 1..4 (gray, gray + alpha, RGB, RGBA), H, W ≥ 1 and at most
    ``max_pixels`` pixels. Dtypes: ``uint8`` (0..255), ``uint16`` (0..65535), or float in [0, 1] without NaN or
    infinities. Other integer dtypes, bools, and floats beyond [0, 1] (a float image holding 0..255) are
    refused rather than guessed at.
    """
    try:
        arr = np.asarray(img)
    except (ValueError, TypeError) as e:
        raise InputError(f"{option}: not an array ({describe(e)})") from None
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in CHANNELS):
        raise InputError(f"{option} must have shape (H, W) or (H, W, C) with C in 1..4, got {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise InputError(f"{option} is empty (shape {arr.shape})")
    pixels = arr.shape[0] * arr.shape[1]
    if max_pixels is not None and pixels > max_pixels:
        raise InputError(f"{option} is {arr.shape[1]}×{arr.shape[0]} px, over the limit of {max_pixels:,} pixels")
    if arr.dtype in (np.uint8, np.uint16):
        return arr
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise InputError(f"{option} contains NaN or infinite values")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0 or hi > 1:
            raise InputError(f"{option}: a float image must lie in [0, 1], this one spans {lo:g}..{hi:g}; "
                             f"{_range_hint(lo, hi)}")
        return arr
    if arr.dtype.kind in "iu":
        lo, hi = int(arr.min()), int(arr.max())
        raise InputError(f"{option}: dtype {arr.dtype} is not taken (uint8, uint16 or float in [0, 1]); values "
                         f"{lo}..{hi}: " + ("use .astype(np.uint8)" if 0 <= lo and hi <= 255 else
                                            "use .astype(np.uint16)" if 0 <= lo and hi <= 65535 else
                                            "rescale it to [0, 1] as float"))
    if arr.dtype.kind == "b":
        raise InputError(f"{option}: a bool image is ambiguous; pass uint8 (0/255) or float (0/1)")
    raise InputError(f"{option}: dtype {arr.dtype} is not an image dtype (uint8, uint16 or float in [0, 1])")
