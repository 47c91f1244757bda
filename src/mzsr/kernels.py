"""Blur kernels: Gaussian construction, random task sampling, file loading and validation.

Conventions (spec §1): widths λ are variances in HR pixels²; Σ = R(θ) diag(λ1, λ2) R(θ)ᵀ; the kernel is
evaluated on the integer grid centred on the middle pixel and normalised to sum 1. Offsets are (x, y) =
(column, row). MZSR kernels are unshifted (used with top-left direct subsampling); KernelGAN's and ZSSR's
(``.mat`` key ``Kernel``) may carry a sub-pixel shift, removed by :func:`kernelgan_to_mzsr` (spec §9).
"""
from __future__ import annotations

import faulthandler
import io as _io
import math
import os
import signal
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.ndimage

from .errors import KernelError, describe


# The largest kernel side taken: 101 px holds a Gaussian of σ = 12.5 px (variance 156 px²) to ±4σ, far beyond the
# blurs of ×4 SR (variances up to 10), while keeping a per-pixel correlation cheap.
MAX_KERNEL_SIZE = 101
# Below this variance (px²) a Gaussian is a delta to within e⁻⁵⁰ at the next pixel: asking for one is a mistake,
# and near 0 the covariance matrix cannot be inverted.
MIN_VARIANCE = 0.01
MAX_VARIANCE = ((MAX_KERNEL_SIZE // 2) / 4) ** 2  # ±4σ within MAX_KERNEL_SIZE


def gaussian_size(lambda1: float, lambda2: float | None = None, size: int = 21) -> int:
    """The odd kernel side that holds a Gaussian of these variances to ±4σ, at least ``size``."""
    sigma = math.sqrt(max(lambda1, lambda1 if lambda2 is None else lambda2))
    return max(size, 2 * math.ceil(4 * sigma) + 1)


def gaussian_kernel(lambda1: float, lambda2: float | None = None, theta: float = 0.0, size: int = 21) -> np.ndarray:
    """Normalised Gaussian kernel ``(size, size)`` float64; ``lambda2`` defaults to ``lambda1`` (isotropic).

    Variances must lie in [MIN_VARIANCE, MAX_VARIANCE] px², ``theta`` be finite and ``size`` odd, 1..MAX_KERNEL_SIZE.
    """
    if not 1 <= size <= MAX_KERNEL_SIZE or size % 2 == 0:
        raise KernelError(f"kernel size must be odd, 1..{MAX_KERNEL_SIZE}, got {size}")
    lambda2 = lambda1 if lambda2 is None else lambda2
    for value in (lambda1, lambda2):
        if not MIN_VARIANCE <= value <= MAX_VARIANCE:  # NaN fails too
            raise KernelError(f"kernel variances must be in [{MIN_VARIANCE:g}, {MAX_VARIANCE:g}] px², got {value:g}")
    if not math.isfinite(theta):
        raise KernelError(f"kernel angle must be finite, got {theta:g}")
    c, s = math.cos(theta), math.sin(theta)
    rot = np.array([[c, -s], [s, c]])
    sigma = rot @ np.diag([lambda1, lambda2]) @ rot.T
    inv = np.linalg.inv(sigma)
    r = np.arange(size) - size // 2
    xx, yy = np.meshgrid(r, r)  # xx varies along columns, yy along rows
    pts = np.stack([xx, yy], axis=-1).astype(np.float64)
    k = np.exp(-0.5 * np.einsum("...i,ij,...j->...", pts, inv, pts))
    return k / k.sum()


# The paper's test kernels (spec §6) by their table names: (λ1, λ2, θ, subsampling). The one registry that the
# benchmark's scenarios and meta-training's validation kernels are built from.
PAPER_KERNELS = {
    "g^d_0.2": (0.2, 0.2, 0.0, "direct"),
    "g^d_2.0": (2.0, 2.0, 0.0, "direct"),
    "g^d_ani": (4.0, 1.0, -0.5, "direct"),
    "g^b_1.3": (1.3, 1.3, 0.0, "bicubic"),
}


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


def _odd_square(k: np.ndarray) -> np.ndarray:
    """``k`` zero-padded to an odd square with the same centre (index size // 2 per axis, scipy's convention: an
    even side pads at its end), so that every blur (NumPy's takes any shape, torch's odd squares) agrees."""
    centre = np.array(k.shape) // 2
    half = int(centre.max())
    before = half - centre
    after = 2 * half + 1 - np.array(k.shape) - before
    if not before.any() and not after.any():
        return k
    return np.pad(k, [(int(before[0]), int(after[0])), (int(before[1]), int(after[1]))])


def check_kernel(k, source: str = "kernel") -> np.ndarray:
    """Validate a kernel: the one check every blur kernel passes, for degrading and upscaling alike.

    Returns it as float64, an odd square (others are zero-padded, keeping the centre: exact), summing to 1
    (normalised with a warning if it did not). Refused (:class:`KernelError` naming ``source``): not a 2-D real
    array, a side over MAX_KERNEL_SIZE, NaN or infinite values, negative values beyond a small tolerance, a sum of 0.
    """
    raw = np.asarray(k)
    if raw.dtype.kind not in "biuf":
        raise KernelError(f"{source}: kernel must be a real-valued array, got dtype {raw.dtype}")
    if raw.ndim != 2 or raw.size == 0:
        raise KernelError(f"{source}: kernel must be a non-empty 2-D array, got shape {raw.shape}")
    _check_size(raw.shape, source)
    k = raw.astype(np.float64)
    if not np.all(np.isfinite(k)):
        raise KernelError(f"{source}: kernel contains NaN or infinite values")
    if np.any(k < 0):
        if k.max() <= 0 or k.min() < -NEGATIVE_TOLERANCE * k.max():
            raise KernelError(f"{source}: kernel has negative values (min {k.min():.3g})")
        warnings.warn(f"{source}: kernel has small negative values (min {k.min():.3g}), set to 0", stacklevel=2)
        k = np.clip(k, 0, None)
    with np.errstate(over="ignore"):
        total = k.sum()
    if not np.isfinite(total):  # values near the float maximum overflow their sum: scale them down first
        k = k / k.max()
        total = k.sum()
    if total <= 0:
        raise KernelError(f"{source}: kernel sums to 0")
    if abs(total - 1) > 1e-6:
        warnings.warn(f"{source}: kernel sums to {total:.6g}, normalised to 1", stacklevel=2)
        k = k / total
    return _odd_square(k)


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
            key, k = _read_mat(path)
            if key is None:
                raise KernelError(f"{path}: no 'kernel' or 'Kernel' variable in the .mat file")
            return k, "kernelgan" if key == "Kernel" else "mzsr"
        if suffix == ".npy":
            k = np.load(path, mmap_mode="r", allow_pickle=False)  # mapped: the shape is checked before reading
            _check_size(k.shape, path)
            return np.array(k), "mzsr"
        if suffix in (".png", ".bmp", ".tif", ".tiff"):
            from PIL import Image

            with Image.open(path) as im:
                _check_size(im.size[::-1], path)  # from the header, before decoding
                return np.asarray(im.convert("F"), dtype=np.float64), "mzsr"
        raise KernelError(f"{path}: unknown kernel format (use .mat, .npy or .png)")
    except KernelError:
        raise
    except FileNotFoundError:
        raise KernelError(f"{path}: no such file") from None
    except Exception as e:  # noqa: BLE001 - any reader failure becomes one clear line
        raise KernelError(f"{path}: cannot read kernel ({describe(e)})") from None


def _mat_variable(path: Path) -> tuple[str | None, np.ndarray | None]:
    from scipy.io import loadmat

    data = loadmat(path)
    key = next((k for k in ("kernel", "Kernel") if k in data), None)
    return key, (None if key is None else np.asarray(data[key]))


def _read_mat(path: Path) -> tuple[str | None, np.ndarray | None]:
    """The ``kernel`` or ``Kernel`` variable of a .mat file, read in a forked child where fork exists: scipy's
    MAT reader dies of a segmentation fault on some damaged files (found by fuzzing, scipy 1.17), which would
    end the whole run without a word. The child sends back the array (as .npy bytes) or its error."""
    if not hasattr(os, "fork"):
        return _mat_variable(path)
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Python ≥ 3.12 warns about fork with threads
        pid = os.fork()
    if pid == 0:  # the child: read, report, leave without running the parent's cleanups
        try:
            faulthandler.disable()  # a crash here is the expected report, not a trace to print
            for signum in (signal.SIGSEGV, signal.SIGBUS):  # nor a fuzzer's crash (its handlers are inherited)
                signal.signal(signum, signal.SIG_DFL)
            os.close(read_end)
            with os.fdopen(write_end, "wb") as out:
                try:
                    key, k = _mat_variable(path)
                    buf = _io.BytesIO()  # not np.save to the pipe: it bypasses the file's buffer
                    if k is not None:
                        np.save(buf, k, allow_pickle=False)
                    out.write({None: b"N", "kernel": b"k", "Kernel": b"K"}[key] + buf.getvalue())
                except Exception as e:  # noqa: BLE001 - reported to the parent as one line
                    out.write(b"E" + describe(e).encode("utf-8", "replace"))
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as answer:
        payload = answer.read()
    os.waitpid(pid, 0)
    if not payload:
        raise KernelError(f"{path}: cannot read kernel (the MAT reader crashed on it: a damaged file)")
    tag, body = payload[:1], payload[1:]
    if tag == b"E":
        raise KernelError(f"{path}: cannot read kernel ({body.decode('utf-8', 'replace')})")
    if tag == b"N":
        return None, None
    return ("Kernel" if tag == b"K" else "kernel"), np.load(_io.BytesIO(body), allow_pickle=False)


def _check_size(shape, source) -> None:
    if len(shape) == 2 and max(shape) > MAX_KERNEL_SIZE:
        raise KernelError(f"{source}: kernel is {shape[0]}×{shape[1]}, over the {MAX_KERNEL_SIZE}-px limit")


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


def _gaussian_from_spec(spec: str, size: int, option: str) -> np.ndarray:
    kind, _, args = spec.partition(":")
    form = "iso:VAR" if kind == "iso" else "aniso:L1,L2,THETA"
    try:
        values = [float(v) for v in args.split(",")]
    except ValueError:
        values = []
    if len(values) != (1 if kind == "iso" else 3):
        raise KernelError(f"{option} {_shown(spec)}: expected {form} with numbers")
    l1, l2, theta = (values[0], values[0], 0.0) if kind == "iso" else values
    if not (MIN_VARIANCE <= l1 <= MAX_VARIANCE and MIN_VARIANCE <= l2 <= MAX_VARIANCE and math.isfinite(theta)):
        raise KernelError(f"{option} {_shown(spec)}: variances must be in [{MIN_VARIANCE:g}, {MAX_VARIANCE:g}] px² "
                          f"(a {MAX_KERNEL_SIZE}-px kernel holds ±4σ of {MAX_VARIANCE:g}) and the angle finite")
    return gaussian_kernel(l1, l2, theta, gaussian_size(l1, l2, size))


def _shown(spec: str) -> str:
    """The spec as typed, or quoted where it holds line breaks or other unprintable characters."""
    return spec if spec and spec.isprintable() else repr(spec)


def parse_kernel_spec(spec: str | None, size: int = 21, convention: str = "auto",
                      option: str = "--kernel") -> KernelSpec:
    """``bicubic`` | ``estimate`` | ``iso:VAR`` | ``aniso:L1,L2,THETA`` | a kernel file | a folder of kernels.

    Generated kernels are ``size`` px a side, more when needed to hold the Gaussian to ±4σ (:func:`gaussian_size`),
    and in MZSR's convention; ``convention`` applies to kernel files (see :func:`load_kernel`). Errors are
    :class:`KernelError` naming ``option`` and the spec.
    """
    _check_convention(convention)
    if spec is None or spec == "bicubic":
        return KernelSpec("bicubic")
    if not isinstance(spec, str):
        raise KernelError(f"{option} must be a string (iso:VAR, aniso:L1,L2,THETA, a file, a folder, bicubic or "
                          f"estimate), got {type(spec).__name__}")
    if spec == "estimate":
        return KernelSpec("estimate")
    if spec.startswith(("iso:", "aniso:")):
        return KernelSpec("fixed", _gaussian_from_spec(spec, size, option))
    path = Path(spec)
    try:
        if not spec.strip():  # Path("") is the current folder
            raise ValueError
        is_dir, is_file = path.is_dir(), path.is_file()
    except (OSError, ValueError):  # a name too long, a null byte …: no such file
        is_dir = is_file = False
    if is_dir:
        return KernelSpec("folder", folder=path, convention=convention)
    if is_file:
        return KernelSpec("fixed", load_kernel(path, convention))
    raise KernelError(f"{option} {_shown(spec)}: not a file, a folder, 'bicubic', 'estimate', 'iso:VAR' or "
                      "'aniso:L1,L2,THETA'")
