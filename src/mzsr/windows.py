"""Where in an image to look: the window with the most detail (edges and texture).

Flat regions look alike under every method and carry no trace of the blur; the report's crops and the kernel
estimator both want the busiest part of an image.
"""
from __future__ import annotations

import numpy as np


def busiest_window(luma: np.ndarray, size: int, step: int = 1) -> tuple[int, int]:
    """Top-left corner (multiples of ``step``) of the ``size``² window of the 2-D ``luma`` with the largest sum
    of absolute horizontal and vertical differences."""
    y = np.asarray(luma, dtype=np.float64)
    energy = np.zeros(y.shape)
    energy[:-1] += np.abs(np.diff(y, axis=0))
    energy[:, :-1] += np.abs(np.diff(y, axis=1))
    sums = np.pad(energy.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    win = sums[size:, size:] - sums[:-size, size:] - sums[size:, :-size] + sums[:-size, :-size]
    win = win[::step, ::step]
    top, left = np.unravel_index(np.argmax(win), win.shape)
    return int(top) * step, int(left) * step
