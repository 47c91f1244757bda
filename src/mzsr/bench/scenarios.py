"""The paper's test scenarios (spec §6) and their degraded inputs, generated once and cached as PNG.

A scenario is a 21×21 Gaussian kernel plus a subsampling: ``gd0.2``, ``gd2.0``, ``gdani`` (direct) and ``gb1.3``
(MATLAB-bicubic). Ground truth is the HR image of ``$MZSR_DATA/benchmark/<set>/HR`` cropped to a multiple of the
scale, as uint8 RGB (grayscale files are repeated into three channels); the LR input is ``degrade_image(gt)``,
bit-exact with the official Set5 g^d_2.0 inputs.

Beside them, real photos' scenarios (none in the paper): ``krk`` blurs the i-th image of a set (sorted by name)
with DIV2KRK's ``kernel_{i+1}.mat`` for the scale (KernelGAN's random anisotropic kernels, direct subsampling), and
any of the five takes a suffix ``+nS`` (white noise of σ S grey levels), ``+qQ`` (then JPEG at quality Q) or
``+nSqQ``, for S in 2, 3, 5, 10 and Q in 75, 80, 90: e.g. ``krk+n5q75``. The noise is seeded by the image's name.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..api import degrade_image
from ..io import IMAGE_SUFFIXES, ImageError, data_root, read_image, write_image
from ..kernels import PAPER_KERNELS, gaussian_kernel, load_kernel
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
    noise: float = 0.0  # σ of white Gaussian noise on the LR, in grey levels of 0..255
    jpeg: int | None = None  # then JPEG at this quality
    kernels: str = ""  # "DIV2KRK": one of its kernels per image (the λs are unused); "": the Gaussian of the λs

    def kernel(self, hr_path: Path | None = None, scale: int | None = None) -> np.ndarray:
        """The blur of ``hr_path``'s LR at ``scale`` (both needed only for per-image kernels)."""
        if not self.kernels:
            return gaussian_kernel(self.lambda1, self.lambda2, self.theta, size=KERNEL_SIZE)
        if hr_path is None or scale is None:
            raise ValueError(f"scenario {self.id}: its kernel depends on the image and the scale")
        return div2krk_kernel(Path(hr_path), scale)

    def describe(self) -> dict:
        blur = ({"kernels": "DIV2KRK gt_k_x<scale>/kernel_<i+1>.mat for the i-th image"} if self.kernels else
                {"lambda1": self.lambda1, "lambda2": self.lambda2, "theta": self.theta, "kernel_size": KERNEL_SIZE})
        real = {"noise": self.noise, "jpeg": self.jpeg} if self.noise or self.jpeg else {}
        return {"paper_key": self.paper_key, **blur, "downsample": self.downsample, **real}


def div2krk_kernel(hr_path: Path, scale: int) -> np.ndarray:
    """DIV2KRK's ground-truth kernel ``kernel_{i+1}.mat`` for the i-th image (by name) of ``hr_path``'s folder,
    as the kernel-estimation benchmark assigns them, in MZSR's convention."""
    names = sorted(p.name for p in hr_path.parent.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    path = data_root() / "benchmark" / "DIV2KRK" / f"gt_k_x{scale}" / f"kernel_{names.index(hr_path.name) + 1}.mat"
    if not path.is_file():
        raise ImageError(f"{path}: no DIV2KRK kernel for {hr_path.name} at ×{scale}")
    with warnings.catch_warnings():  # their tails dip below 0 by up to 1.6 %: load_kernel clips and renormalises
        warnings.simplefilter("ignore", UserWarning)
        return load_kernel(path)


SCENARIOS = {s.id: s for s in (
    *(Scenario(key.replace("^", "").replace("_", ""), key, *PAPER_KERNELS[key]) for key in PAPER_KERNELS),
    Scenario("krk", "", 0.0, 0.0, 0.0, "direct", kernels="DIV2KRK"),
)}
# real photos: noise σ (grey levels), JPEG quality, and both, on every blur above
REAL_NOISE = (2.0, 3.0, 5.0, 10.0)  # 2: the milder noise of the ×4 target (σ 2 + JPEG 90)
REAL_JPEG = (75, 80, 90)  # 80: a usual web quality, between the two
REAL_CORRUPTIONS = ([(n, None) for n in REAL_NOISE] + [(0.0, q) for q in REAL_JPEG]
                    + [(n, q) for n in REAL_NOISE for q in REAL_JPEG])


def corrupted(scenario: Scenario, noise: float, jpeg: int | None) -> Scenario:
    """``scenario`` with noise and/or JPEG on its LR, named ``<id>+n<σ>q<quality>``."""
    suffix = (f"n{noise:g}" if noise else "") + (f"q{jpeg}" if jpeg else "")
    return replace(scenario, id=f"{scenario.id}+{suffix}", paper_key="", noise=noise, jpeg=jpeg)


SCENARIOS.update({c.id: c for c in (corrupted(s, n, q) for s in list(SCENARIOS.values())
                                    for n, q in REAL_CORRUPTIONS)})
ALL_SCENARIOS = ("gd0.2", "gd2.0", "gdani", "gb1.3")  # the paper's
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
    lr = degrade_image(ground_truth(hr_path, scale), scenario.kernel(hr_path, scale), scale, scenario.downsample,
                       scenario.noise, 0, scenario.jpeg, hr_path.stem)
    write_image(cached, lr)
    return lr
