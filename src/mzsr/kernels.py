"""Blur kernels: Gaussian construction, random task sampling, file loading and validation.

Conventions (spec §1): widths λ are variances in HR pixels²; Σ = R(θ) diag(λ1, λ2) R(θ)ᵀ; the kernel is
evaluated on the integer grid centred on the middle pixel and normalised to sum 1. Offsets are (x, y) =
(column, row). MZSR kernels are unshifted (used with top-left direct subsampling); KernelGAN's and ZSSR's
(``.mat`` key ``Kernel``) may carry a sub-pixel shift, removed by :func:`kernelgan_to_mzsr` (spec §9).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.ndimage

from .errors import KernelError


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


def kernel_variances(k: np.ndarray) -> tuple[float, float]:
    """The kernel's principal variances in px², smaller first: the eigenvalues of its second central moments.

    For a Gaussian of variances λ1, λ2 they are λ1, λ2 (to 0.01 from λ = 0.35 up; a sampled λ = 0.2 reads 0.14).
    """
    k = np.asarray(k, dtype=np.float64)
    k = k / k.sum()
    yy, xx = np.mgrid[:k.shape[0], :k.shape[1]].astype(np.float64)
    dy, dx = yy - (k * yy).sum(), xx - (k * xx).sum()
    cov = np.array([[(k * dy * dy).sum(), (k * dy * dx).sum()], [(k * dy * dx).sum(), (k * dx * dx).sum()]])
    small, large = np.linalg.eigvalsh(cov)
    return float(small), float(large)


def random_kernel(rng: np.random.Generator, scale: float, size: int = 15, min_var: float = 1.0,
                  minor_max: float | None = None) -> np.ndarray:
    """A meta-training task kernel (spec §4): θ ~ U[0, π), λ1 ~ U[m, 2.5·s], λ2 ~ U[m, λ1].

    ``m = min_var``: 1 in the paper; lower values add sharper kernels than the paper's range. ``minor_max``
    caps the smaller variance, λ2 ~ U[m, min(λ1, minor_max)]: kernels sharp along at least one axis.
    """
    if not 0 < min_var <= 2.5 * scale:  # beyond 2.5·s the draws would silently come from a reversed range
        raise KernelError(f"min_var must be in (0, {2.5 * scale:g}] at ×{scale:g}, got {min_var:g}")
    if minor_max is not None and not minor_max > min_var:
        raise KernelError(f"minor_max must exceed min_var ({min_var:g}), got {minor_max:g}")
    theta = rng.uniform(0, math.pi)
    lambda1 = rng.uniform(min_var, 2.5 * scale)
    lambda2 = rng.uniform(min_var, lambda1 if minor_max is None else min(lambda1, minor_max))
    return gaussian_kernel(lambda1, lambda2, theta, size)


# Estimated kernels come with slightly negative tails: KernelGAN's DIV2KRK ground truths go down to −1.6 % of their
# peak. Such values are noise, clipped with a warning; anything more negative is an error.
NEGATIVE_TOLERANCE = 0.02


def check_kernel(k, source: str = "kernel") -> np.ndarray:
    """Validate a kernel; returns it as float64 summing to 1 (with a warning if it had to be normalised)."""
    k = np.asarray(k, dtype=np.float64)
    if k.ndim != 2 or k.size == 0:
        raise KernelError(f"{source}: kernel must be a non-empty 2-D array, got shape {k.shape}")
    if not np.all(np.isfinite(k)):
        raise KernelError(f"{source}: kernel contains NaN or infinite values")
    if np.any(k < 0):
        if k.max() <= 0 or k.min() < -NEGATIVE_TOLERANCE * k.max():
            raise KernelError(f"{source}: kernel has negative values (min {k.min():.3g})")
        warnings.warn(f"{source}: kernel has small negative values (min {k.min():.3g}), set to 0", stacklevel=2)
        k = np.clip(k, 0, None)
    total = k.sum()
    if total <= 0:
        raise KernelError(f"{source}: kernel sums to 0")
    if abs(total - 1) > 1e-6:
        warnings.warn(f"{source}: kernel sums to {total:.6g}, normalised to 1", stacklevel=2)
        k = k / total
    return k


CONVENTIONS = ("auto", "mzsr", "kernelgan")
_CENTRED = 1e-6  # pixels: centre-of-mass offsets below this are float noise, not a shift


def kernelgan_to_mzsr(kernel: np.ndarray) -> np.ndarray:
    """A KernelGAN/ZSSR-convention kernel in MZSR's: shifted so that its centre of mass is the middle pixel.

    KernelGAN saves kernels whose centre of mass lies (s−1)/2 HR pixels right of and below the middle pixel, so
    that correlating and keeping the top-left pixel of each s×s block samples the block's centre (where
    MATLAB-bicubic upsampling puts the LR pixel); MZSR keeps the top-left pixel with a centred kernel. Used in
    the other convention, a kernel shifts what it degrades by (s−1)/2 pixels: half a pixel at ×2.

    Why re-centre rather than shift by a fixed (s−1)/2: files with key ``Kernel`` come both ways. ZSSR's
    released estimate (``kernels/ZSSR``) sits +0.47 px off-centre, while DIV2KRK's ground-truth kernels are
    centred to within 0.05 px (3 checked; im_43's LR nonetheless matches block-centre sampling best), so a
    fixed shift would move those by half a pixel. And since a GAN cannot tell shifted kernels apart, KernelGAN
    itself sets the centre of mass when saving: it is all the alignment a file carries. The shift is cubic-spline
    (as KernelGAN's own), on a kernel padded so that no mass is lost; spline overshoots below 0 are clipped and
    the result renormalised. Works at any scale and for even sizes (the middle pixel is index size // 2, as in
    scipy's correlation).
    """
    k = check_kernel(kernel, "KernelGAN kernel")
    shift = np.array(k.shape) // 2 - np.array(scipy.ndimage.center_of_mass(k))
    if np.abs(shift).max() < _CENTRED:
        return k
    pad = int(np.ceil(np.abs(shift).max()))
    k = scipy.ndimage.shift(np.pad(k, pad), shift, order=3, mode="constant")
    k = np.clip(k, 0, None)
    return k / k.sum()


def _read_kernel(path: Path) -> tuple[np.ndarray, str]:
    """The raw array of a kernel file and the convention its format implies (``Kernel`` key → KernelGAN)."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".mat":
            from scipy.io import loadmat

            data = loadmat(path)
            key = next((k for k in ("kernel", "Kernel") if k in data), None)
            if key is None:
                raise KernelError(f"{path}: no 'kernel' or 'Kernel' variable in the .mat file")
            return data[key], "kernelgan" if key == "Kernel" else "mzsr"
        if suffix == ".npy":
            return np.load(path, allow_pickle=False), "mzsr"
        if suffix in (".png", ".bmp", ".tif", ".tiff"):
            from PIL import Image

            with Image.open(path) as im:
                return np.asarray(im.convert("F"), dtype=np.float64), "mzsr"
        raise KernelError(f"{path}: unknown kernel format (use .mat, .npy or .png)")
    except KernelError:
        raise
    except Exception as e:  # noqa: BLE001 - any reader failure becomes one clear line
        raise KernelError(f"{path}: cannot read kernel ({e.__class__.__name__}: {e})") from None


def _check_convention(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise KernelError(f"kernel convention must be one of {', '.join(CONVENTIONS)}, got {convention!r}")


def load_kernel(path, convention: str = "auto") -> np.ndarray:
    """Read a kernel from ``.mat`` (key ``kernel`` or ``Kernel``), ``.npy`` or a grayscale image, validated and
    in MZSR's convention.

    ``convention``: ``auto`` takes the ``.mat`` key ``Kernel`` (KernelGAN, ZSSR) as KernelGAN's convention and
    everything else as MZSR's; ``mzsr`` or ``kernelgan`` force one.
    """
    _check_convention(convention)
    path = Path(path)
    k, implied = _read_kernel(path)
    k = check_kernel(k, str(path))
    return kernelgan_to_mzsr(k) if (implied if convention == "auto" else convention) == "kernelgan" else k


@dataclass(frozen=True)
class KernelSpec:
    """What ``--kernel`` named: ``bicubic`` (no blur), a fixed kernel, a folder of per-image kernels, or
    ``estimate`` (each image's kernel is estimated from the image: ``mzsr.api.resolve_kernel``)."""

    kind: str  # "bicubic" | "fixed" | "folder" | "estimate"
    kernel: np.ndarray | None = None
    folder: Path | None = None
    convention: str = "auto"  # of the folder's files

    def for_image(self, stem: str, scale: int) -> np.ndarray | None:
        """The kernel for an image with this file stem (``None`` means no blur)."""
        if self.kind == "estimate":
            raise KernelError("--kernel estimate: the kernel comes from the image itself (mzsr.api.resolve_kernel)")
        if self.kind != "folder":
            return self.kernel
        for name in (f"{stem}.mat", f"{stem}_kernel_x{scale}.mat", f"{stem}.npy", f"{stem}.png"):
            if (self.folder / name).is_file():
                return load_kernel(self.folder / name, self.convention)
        raise KernelError(f"{self.folder}: no kernel for image '{stem}' (looked for {stem}.mat, "
                          f"{stem}_kernel_x{scale}.mat, {stem}.npy, {stem}.png)")


def parse_kernel_spec(spec: str | None, size: int = 21, convention: str = "auto") -> KernelSpec:
    """``bicubic`` | ``estimate`` | ``iso:VAR`` | ``aniso:L1,L2,THETA`` | a kernel file | a folder of kernels.

    ``convention`` applies to kernel files (see :func:`load_kernel`); generated kernels are MZSR's.
    """
    _check_convention(convention)
    if spec is None or spec == "bicubic":
        return KernelSpec("bicubic")
    if spec == "estimate":
        return KernelSpec("estimate")
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
        return KernelSpec("folder", folder=path, convention=convention)
    if path.is_file():
        return KernelSpec("fixed", load_kernel(path, convention))
    raise KernelError(f"--kernel {spec}: not a file, a folder, 'bicubic', 'estimate', 'iso:VAR' or "
                      "'aniso:L1,L2,THETA'")
