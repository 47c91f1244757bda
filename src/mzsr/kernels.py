"""Blur kernels: Gaussian construction, random task sampling, file loading and validation.

Conventions (spec §1): widths λ are variances in HR pixels²; Σ = R(θ) diag(λ1, λ2) R(θ)ᵀ; the kernel is
evaluated on the integer grid centred on the middle pixel and normalised to sum 1. Offsets are (x, y) =
(column, row). MZSR kernels are unshifted (used with top-left direct subsampling).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class KernelError(ValueError):
    """A kernel that cannot be used; the message names its source and the problem."""


def gaussian_kernel(lambda1: float, lambda2: float | None = None, theta: float = 0.0, size: int = 21) -> np.ndarray:
    """Normalised Gaussian kernel ``(size, size)`` float64; ``lambda2`` defaults to ``lambda1`` (isotropic)."""
    if size < 1 or size % 2 == 0:
        raise KernelError(f"kernel size must be odd and positive, got {size}")
    lambda2 = lambda1 if lambda2 is None else lambda2
    if lambda1 <= 0 or lambda2 <= 0:
        raise KernelError(f"kernel variances must be positive, got {lambda1}, {lambda2}")
    c, s = math.cos(theta), math.sin(theta)
    rot = np.array([[c, -s], [s, c]])
    sigma = rot @ np.diag([lambda1, lambda2]) @ rot.T
    inv = np.linalg.inv(sigma)
    r = np.arange(size) - size // 2
    xx, yy = np.meshgrid(r, r)  # xx varies along columns, yy along rows
    pts = np.stack([xx, yy], axis=-1).astype(np.float64)
    k = np.exp(-0.5 * np.einsum("...i,ij,...j->...", pts, inv, pts))
    return k / k.sum()


def random_kernel(rng: np.random.Generator, scale: float, size: int = 15) -> np.ndarray:
    """A meta-training task kernel (spec §4): θ ~ U[0, π), λ1 ~ U[1, 2.5·s], λ2 ~ U[1, λ1]."""
    theta = rng.uniform(0, math.pi)
    lambda1 = rng.uniform(1, 2.5 * scale)
    lambda2 = rng.uniform(1, lambda1)
    return gaussian_kernel(lambda1, lambda2, theta, size)


def check_kernel(k, source: str = "kernel") -> np.ndarray:
    """Validate a kernel; returns it as float64 summing to 1 (with a warning if it had to be normalised)."""
    k = np.asarray(k, dtype=np.float64)
    if k.ndim != 2 or k.size == 0:
        raise KernelError(f"{source}: kernel must be a non-empty 2-D array, got shape {k.shape}")
    if not np.all(np.isfinite(k)):
        raise KernelError(f"{source}: kernel contains NaN or infinite values")
    if np.any(k < 0):
        raise KernelError(f"{source}: kernel has negative values (min {k.min():.3g})")
    total = k.sum()
    if total <= 0:
        raise KernelError(f"{source}: kernel sums to 0")
    if abs(total - 1) > 1e-6:
        warnings.warn(f"{source}: kernel sums to {total:.6g}, normalised to 1", stacklevel=2)
        k = k / total
    return k


def load_kernel(path) -> np.ndarray:
    """Read a kernel from ``.mat`` (key ``kernel`` or ``Kernel``), ``.npy`` or a grayscale image, validated."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".mat":
            from scipy.io import loadmat

            data = loadmat(path)
            key = next((k for k in ("kernel", "Kernel") if k in data), None)
            if key is None:
                raise KernelError(f"{path}: no 'kernel' or 'Kernel' variable in the .mat file")
            k = data[key]
        elif suffix == ".npy":
            k = np.load(path, allow_pickle=False)
        elif suffix in (".png", ".bmp", ".tif", ".tiff"):
            from PIL import Image

            with Image.open(path) as im:
                k = np.asarray(im.convert("F"), dtype=np.float64)
        else:
            raise KernelError(f"{path}: unknown kernel format (use .mat, .npy or .png)")
    except KernelError:
        raise
    except Exception as e:  # noqa: BLE001 - any reader failure becomes one clear line
        raise KernelError(f"{path}: cannot read kernel ({e.__class__.__name__}: {e})") from None
    return check_kernel(k, str(path))


@dataclass(frozen=True)
class KernelSpec:
    """What ``--kernel`` named: ``bicubic`` (no blur), a fixed kernel, or a folder of per-image kernels."""

    kind: str  # "bicubic" | "fixed" | "folder"
    kernel: np.ndarray | None = None
    folder: Path | None = None

    def for_image(self, stem: str, scale: int) -> np.ndarray | None:
        """The kernel for an image with this file stem (``None`` means no blur)."""
        if self.kind != "folder":
            return self.kernel
        for name in (f"{stem}.mat", f"{stem}_kernel_x{scale}.mat", f"{stem}.npy", f"{stem}.png"):
            if (self.folder / name).is_file():
                return load_kernel(self.folder / name)
        raise KernelError(f"{self.folder}: no kernel for image '{stem}' (looked for {stem}.mat, "
                          f"{stem}_kernel_x{scale}.mat, {stem}.npy, {stem}.png)")


def parse_kernel_spec(spec: str | None, size: int = 21) -> KernelSpec:
    """``bicubic`` | ``iso:VAR`` | ``aniso:L1,L2,THETA`` | a kernel file | a folder of kernels."""
    if spec is None or spec == "bicubic":
        return KernelSpec("bicubic")
    try:
        if spec.startswith("iso:"):
            return KernelSpec("fixed", gaussian_kernel(float(spec[4:]), size=size))
        if spec.startswith("aniso:"):
            l1, l2, theta = (float(v) for v in spec[6:].split(","))
            return KernelSpec("fixed", gaussian_kernel(l1, l2, theta, size=size))
    except ValueError as e:
        raise KernelError(f"--kernel {spec}: {e}") from None
    path = Path(spec)
    if path.is_dir():
        return KernelSpec("folder", folder=path)
    if path.is_file():
        return KernelSpec("fixed", load_kernel(path))
    raise KernelError(f"--kernel {spec}: not a file, a folder, 'bicubic', 'iso:VAR' or 'aniso:L1,L2,THETA'")
