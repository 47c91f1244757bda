"""The report's figures as PNG: PSNR versus adaptation steps, and crops of every method side by side.

Drawn on bare ``matplotlib.figure.Figure`` objects (Agg rendering, no pyplot): no display is needed and no
global backend state is touched.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..io import atomic_write
from ..metrics import rgb_to_y
from ..windows import busiest_window

CROP = 120  # HR pixels per side of the grid's crops
DPI = 100


def _save(fig: Figure, path: Path) -> None:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight"))


def steps_plot(path: Path, steps: list[int], curves: dict[str, list[float]], title: str,
               levels: dict[str, float] | None = None) -> None:
    """One line per adaptation method (PSNR after each step), dashed horizontal lines for fixed ``levels``."""
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    for label, psnr in curves.items():
        ax.plot(steps, psnr, marker="o", markersize=3, label=label)
    for label, value in (levels or {}).items():
        ax.axhline(value, linestyle="--", linewidth=1, color="grey")
        ax.annotate(label, (steps[-1], value), textcoords="offset points", xytext=(-4, 3), ha="right",
                    fontsize=8, color="grey")
    ax.set(xlabel="adaptation steps", ylabel="PSNR (dB, Y)", title=title)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend()
    _save(fig, path)


def comparison_grid(path: Path, lr: np.ndarray, gt: np.ndarray, panels: list[tuple[str, np.ndarray]],
                    scale: int, title: str) -> None:
    """LR (nearest-neighbour enlarged) | each ``(label, SR)`` | GT, all cropped to the same busy window."""
    size = min(CROP, gt.shape[0], gt.shape[1]) // scale * scale
    top, left = busiest_window(rgb_to_y(gt), size, scale)
    lr_crop = lr[top // scale: (top + size) // scale, left // scale: (left + size) // scale]
    crops = [("LR (input)", np.repeat(np.repeat(lr_crop, scale, axis=0), scale, axis=1))]
    crops += [(label, sr[top: top + size, left: left + size]) for label, sr in panels]
    crops.append(("GT", gt[top: top + size, left: left + size]))
    fig = Figure(figsize=(2.2 * len(crops), 2.7))
    for ax, (label, img) in zip(fig.subplots(1, len(crops), squeeze=False)[0], crops):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(label, fontsize=9)
        ax.set_axis_off()
    fig.suptitle(title, fontsize=10)
    _save(fig, path)
