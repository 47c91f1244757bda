"""The paper's test scenarios (spec §6) and their degraded inputs, generated once and cached as PNG.

A scenario is a 21×21 Gaussian kernel plus a subsampling: ``gd0.2``, ``gd2.0``, ``gdani`` (direct) and ``gb1.3``
(MATLAB-bicubic). Ground truth is the HR image of ``$MZSR_DATA/benchmark/<set>/HR`` cropped to a multiple of the
scale, as uint8 RGB (grayscale files are repeated into three channels); the LR input is ``degrade_image(gt)``,
bit-exact with the official Set5 g^d_2.0 inputs.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..api import degrade_image
from ..io import ImageError, read_image, write_image
from ..kernels import gaussian_kernel
from ..metrics import modcrop

KERNEL_SIZE = 21  # the size of the official g^d_2.0 kernel file
PAPER_SETS = ("Set5", "BSD100", "Urban100")
PAPER_RESULTS = Path(__file__).resolve().parents[1] / "assets" / "paper_results.json"


@dataclass(frozen=True)
class Scenario:
    """One test degradation; ``paper_key`` names it in ``paper_results.json`` (``g^d_2.0`` …)."""

    id: str
    paper_key: str
    lambda1: float
    lambda2: float
    theta: float
    downsample: str

    def kernel(self) -> np.ndarray:
        return gaussian_kernel(self.lambda1, self.lambda2, self.theta, size=KERNEL_SIZE)

    def describe(self) -> dict:
        return {"paper_key": self.paper_key, "lambda1": self.lambda1, "lambda2": self.lambda2,
                "theta": self.theta, "kernel_size": KERNEL_SIZE, "downsample": self.downsample}


SCENARIOS = {s.id: s for s in (
    Scenario("gd0.2", "g^d_0.2", 0.2, 0.2, 0.0, "direct"),
    Scenario("gd2.0", "g^d_2.0", 2.0, 2.0, 0.0, "direct"),
    Scenario("gdani", "g^d_ani", 4.0, 1.0, -0.5, "direct"),
    Scenario("gb1.3", "g^b_1.3", 1.3, 1.3, 0.0, "bicubic"),
)}
ALL_SCENARIOS = tuple(SCENARIOS)
DEFAULT_SCENARIOS = {4: ("gd2.0",)}  # the paper's ×4 table has g^d_2.0 only


def get_scenario(scenario_id: str) -> Scenario:
    try:
        return SCENARIOS[scenario_id]
    except KeyError:
        raise ValueError(f"unknown scenario '{scenario_id}' (choose from {', '.join(SCENARIOS)})") from None


def default_scenarios(scale: int) -> list[str]:
    return list(DEFAULT_SCENARIOS.get(scale, ALL_SCENARIOS))


@lru_cache(maxsize=1)
def _paper() -> dict:
    return json.loads(PAPER_RESULTS.read_text())


def paper_value(scale: int, scenario: Scenario, set_name: str, paper_method: str | None) -> dict | None:
    """The paper's ``{"psnr", "ssim"}`` for a table cell, or ``None`` where its tables have no such cell."""
    table = _paper().get(f"x{scale}", {})
    return table.get(scenario.paper_key, {}).get(set_name, {}).get(paper_method)


def read_rgb(path) -> np.ndarray:
    """An 8-bit image as ``(H, W, 3)`` uint8 RGB: the protocol scores colour images."""
    img = read_image(path)
    if img.dtype != np.uint8:
        raise ImageError(f"{path}: the benchmark takes 8-bit images")
    if img.ndim == 2:
        img = img[..., None]
    return np.repeat(img[..., :1], 3, axis=-1) if img.shape[-1] in (1, 2) else img[..., :3]


def ground_truth(hr_path: Path, scale: int) -> np.ndarray:
    return modcrop(read_rgb(hr_path), scale)


def degraded_input(hr_path: Path, scenario: Scenario, scale: int, cache_dir: Path) -> np.ndarray:
    """The LR input of ``hr_path`` under ``scenario``, read from ``cache_dir/<stem>.png`` or made and cached there."""
    cached = cache_dir / f"{hr_path.stem}.png"
    if cached.is_file():
        return read_rgb(cached)
    lr = degrade_image(ground_truth(hr_path, scale), scenario.kernel(), scale, scenario.downsample)
    write_image(cached, lr)
    return lr
