"""The public API. One object, :class:`Upscaler`, makes every decision about a request: it validates the options,
owns the device and the loaded models, picks the model that adapts to each image (by scale, subsampling and
kernel), finds each image's kernel, and scores outputs against ground truth. ``upscale``, ``resolve_kernel``, the
``mzsr upscale`` command and the benchmark are loops over it.
"""
from __future__ import annotations

import warnings
import zlib
from dataclasses import dataclass

import numpy as np

from . import adapt as _adapt
from . import validate
from .degrade import DOWNSAMPLING, check_corruption, corrupt, degrade
from .errors import ImageError, InputError, OptionError
from .estimate import estimate_kernel, get_estimator
from .kernels import KernelSpec, check_kernel, parse_kernel_spec
from .metrics import modcrop, psnr_y, ssim_y
from .models import Model, ModelError, default_model, load_model, model_for_kernel
from .realphoto import auto_corruption, calibrate_son_noise, son_quality
from .resize import imresize
from .runtime import describe_path, fast_precision, pick_device
from .schedules import (AUTO_BACK_PROJECTION, AUTO_BACK_PROJECTION_CORRUPTED, AUTO_ENSEMBLE,
                        AUTO_LARGE_SCALE_CORRUPT_FROM, AUTO_SON_NOISE_SHARE, AUTO_TAIL_MAX_SCALE, AUTO_TIME_LIMIT)

METHODS = ("mzsr", "finetune", "bicubic", "zssr")
ADAPTING = ("mzsr", "finetune")
# Output pixels an upscale may make unless told otherwise: 100 Mpx is a ×2 of the largest camera photos, while
# a decompression bomb or a typo'd scale is refused before any memory is spent on it.
DEFAULT_MAX_PIXELS = 100_000_000


def split_channels(image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, bool, float]:
    """An image as the network sees it → (RGB float64 in [0, 1], alpha in [0, 1] or None, was grayscale, the
    dtype's peak value: 255, 65535, or 1 for floats)."""
    img = np.asarray(image)
    peak = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(img.dtype, 1.0)
    x = img.astype(np.float64) / peak
    gray = x.ndim == 2 or x.shape[-1] in (1, 2)
    if x.ndim == 2:
        x = x[..., None]
    alpha = x[..., -1] if x.shape[-1] in (2, 4) else None
    color = x[..., :1] if gray else x[..., :3]
    return np.repeat(color, 3, axis=-1) if gray else color, alpha, gray, peak


def join_channels(rgb: np.ndarray, alpha: np.ndarray | None, gray: bool, peak: float, dtype) -> np.ndarray:
    """The inverse of :func:`split_channels`: back to the input's layout and dtype (rounded for integers).

    Works in float32 and in place where it can: for a large output, float64 copies would dominate the memory."""
    out = np.asarray(rgb, dtype=np.float32)
    out = out.mean(axis=-1, keepdims=True, dtype=np.float32) if gray else out
    if alpha is not None:
        out = np.concatenate([out, np.asarray(alpha, dtype=np.float32)[..., None]], axis=-1)
    if gray and alpha is None:
        out = out[..., 0]
    out = np.clip(out, 0, 1, out=out if out is not rgb else None)
    if peak == 1.0:
        return out.astype(dtype, copy=False)
    out *= peak
    return np.round(out, out=out).astype(dtype)


def as_uint8_rgb(image: np.ndarray) -> np.ndarray:
    """Any image layout and dtype as the protocol's uint8 RGB (grayscale repeated, alpha dropped)."""
    return np.round(split_channels(image)[0] * 255).astype(np.uint8)


def _as_spec(kernel, convention: str = "auto") -> KernelSpec:
    if isinstance(kernel, KernelSpec):
        return kernel
    if kernel is None or isinstance(kernel, str):
        return parse_kernel_spec(kernel, convention=convention)
    return KernelSpec("fixed", check_kernel(kernel))


def default_downsample(spec: KernelSpec, model: Model | None) -> str:
    """The son's subsampling when none is asked for: the given model's, else bicubic for ``--kernel bicubic`` (the
    plain bicubic degradation) and direct for every blur kernel (MZSR's test inputs)."""
    if model is not None:
        return model.downsample
    return "bicubic" if spec.kind == "bicubic" else "direct"


@dataclass
class Result:
    """What :meth:`Upscaler.upscale` gives for one image."""

    image: np.ndarray  # the output, in the input's layout and dtype
    kernel: np.ndarray | None  # the kernel it was upscaled with (None: no blur, the bicubic degradation)
    model: str | None  # the model that adapted (None for bicubic and zssr)
    noise: float = 0.0  # σ (grey levels) of the noise the son was given
    jpeg: int | None = None  # the JPEG quality the son was compressed at (None: none)
    steps: int | None = None  # adaptation steps taken
    guard: float = 1.0  # the share of the network's output kept (the rest bicubic's; see adapt.zero_shot)
    frames: int = 1  # the self-ensemble's rotations/flips the output is the median of (1: a plain pass)


class Upscaler:
    """Every decision of an upscaling request, made once: options are validated when it is built (before any image
    is read), models are loaded once and cached.

    ``kernel``: an array, a :class:`mzsr.kernels.KernelSpec`, or a spec string (``iso:VAR``,
    ``aniso:L1,L2,THETA``, a kernel file, a folder of per-image kernels, ``bicubic``, ``estimate``); ``None`` is
    ``bicubic`` (no blur, MATLAB-bicubic degradation). ``model``: a shipped name, a ``.safetensors`` path or a
    loaded model, which then adapts to every image; by default each image gets the shipped model for the scale,
    subsampling and its kernel (:func:`mzsr.models.model_for_kernel`). ``downsample``: the son's subsampling,
    by default :func:`default_downsample`. ``max_pixels``: the most output pixels an image may give (``None``:
    no limit). See :func:`upscale` for the other options.

    ``steps``: ``"auto"`` (our schedule: the model's meta-learned steps, then, at ×2 or on a noisy or JPEG son,
    Adam until held-out parts of the son pair stop improving, within ``time_limit`` seconds per image, blended
    towards bicubic where the adapted net does no better than bicubic on them; bounded cost per step; then the
    self-ensemble and (on a clean son) back-projection unless told otherwise; in bf16 where the machine has it)
    or ``N``: the paper's MZSR(N), N plain-SGD steps on the whole image in fp32. ``noise`` / ``jpeg``: the corruption the son is
    given, so that adapting learns to remove the input's noise and JPEG blocks rather than to reproduce them:
    ``"auto"`` measures the input (noise level; JPEG quality from the file's tables; above ×2, with ``steps="auto"``,
    only a σ from :data:`mzsr.schedules.AUTO_LARGE_SCALE_CORRUPT_FROM` corrupts the son), a number fixes it, 0 /
    ``None`` means none; ZSSR's sons (``method="zssr"``) take the noise, as in its real-image setting, not JPEG.
    ``seed`` seeds what adapting draws (crops, the son's noise).
    """

    def __init__(self, scale: int = 2, kernel=None, steps: int | str = "auto", method: str = "mzsr",
                 model: str | Model | None = None, downsample: str | None = None, device: str = "auto",
                 tile: int | None = None, estimator: str | None = None, back_projection: int | None = None,
                 ensemble: bool | None = None, kernel_convention: str = "auto",
                 max_pixels: int | None = DEFAULT_MAX_PIXELS, noise: float | str = "auto",
                 jpeg: int | str | None = "auto", time_limit: float | None = None, seed: int = 0):
        validate.choice(method, "method", METHODS)
        self.scale, self.steps = validate.scale(scale), validate.steps(steps)
        self.tile, self.max_pixels = validate.tile(tile), validate.max_pixels(max_pixels)
        self.back_projection = None if back_projection is None else validate.back_projection(back_projection)
        self.time_limit = AUTO_TIME_LIMIT if time_limit is None else validate.time_limit(time_limit, "time_limit")
        self.noise = noise if noise == "auto" else validate.noise(noise)
        self.jpeg = jpeg if jpeg == "auto" else validate.jpeg_quality(jpeg)
        self.seed = validate.integer(seed, "seed", 0)
        for option, value in (("back_projection", back_projection), ("ensemble", ensemble)):
            if value and method not in ADAPTING:
                raise OptionError(f"{option} applies to mzsr and finetune, not {method}")
        if method == "zssr" and self.jpeg not in ("auto", None):
            raise OptionError("jpeg applies to mzsr and finetune, not zssr (its sons take noise only)")
        if downsample is not None:
            validate.choice(downsample, "downsample", DOWNSAMPLING)
        self.spec = _as_spec(kernel, kernel_convention)
        if estimator is not None:
            if self.spec.kind != "estimate":
                raise OptionError(f"estimator {estimator!r} is only used with kernel 'estimate'")
            get_estimator(estimator)
        self.method, self.estimator, self.ensemble = method, estimator, None if ensemble is None else bool(ensemble)
        self.device = pick_device(device)
        self._models: dict[str, Model] = {}
        self.fixed = self._load(model) if model is not None else None
        if self.fixed is not None and self.fixed.scale != self.scale:
            raise OptionError(f"model '{self.fixed.name}' is a ×{self.fixed.scale} model, asked for ×{self.scale}")
        self.downsample = downsample or default_downsample(self.spec, self.fixed)
        if self.fixed is None and (method in ADAPTING or self.spec.kind == "estimate"):
            default_model(self.scale, self.downsample)  # no shipped model for this request: fail now
        self._warned: set[str] = set()

    def _load(self, model: str | Model) -> Model:
        if isinstance(model, Model):
            return model
        if model not in self._models:
            self._models[model] = load_model(model, self.device)
        return self._models[model]

    def model_for(self, kernel: np.ndarray | None) -> Model | None:
        """The model that adapts to an image with this kernel (``None`` for bicubic and zssr)."""
        if self.method not in ADAPTING:
            return None
        if self.fixed is not None:
            model = self.fixed
        elif self.method == "finetune":
            model = self._load(default_model(self.scale, self.downsample))
        else:
            model = self._load(model_for_kernel(self.scale, self.downsample, kernel))
        if model.downsample != self.downsample and model.name not in self._warned:
            self._warned.add(model.name)
            warnings.warn(f"model '{model.name}' was meta-trained for {model.downsample} subsampling; it adapts "
                          f"here with {self.downsample}-subsampled sons", stacklevel=2)
        return model

    def kernel_for(self, image: np.ndarray, stem: str | None = None,
                   corrupted: bool | None = None) -> np.ndarray | None:
        """The kernel ``image`` is upscaled with: the given one, its file in a kernel folder (matched by ``stem``),
        or estimated from the image (with the scale's default model; ``corrupted``: whether it is noisy or a
        JPEG, if known); ``None`` means no blur."""
        if self.spec.kind == "estimate":
            model = self.fixed or self._load(default_model(self.scale, self.downsample))
            return estimate_kernel(split_channels(image)[0], self.scale, model, self.estimator, corrupted)
        if self.spec.kind == "folder" and stem is None:
            raise OptionError("a kernel folder needs the image's file stem to pick its kernel")
        return self.spec.for_image(stem, self.scale)

    @property
    def auto(self) -> bool:
        return self.steps == "auto"

    @property
    def precision(self) -> str:
        """fp32 for the paper's MZSR(N), exactly as published; the machine's fast path for ``steps="auto"``."""
        return fast_precision(self.device) if self.auto else "fp32"

    @property
    def meta_only_above_x2(self) -> bool:
        """Whether a clean son takes the meta-learned steps only (:data:`mzsr.schedules.AUTO_TAIL_MAX_SCALE`): our
        schedule with the meta-learned weights above ×2 (the bicubic-pretrained ones of ``finetune`` need more)."""
        return self.auto and self.method == "mzsr" and self.scale > AUTO_TAIL_MAX_SCALE

    def describe(self) -> str:
        """The recipe in a few words, for a summary line."""
        if self.method not in ADAPTING:
            return self.method
        how = "auto steps" if self.auto else f"{self.steps} steps"
        return f"{self.method}, {how}, {describe_path(self.device) if self.auto else 'fp32'}"

    def measure(self, rgb: np.ndarray, path=None) -> tuple[float, int | None]:
        """The input's noise σ and JPEG quality, as ``"auto"`` reads them (:func:`mzsr.realphoto.auto_corruption`,
        :func:`mzsr.realphoto.son_quality`; ``path``, its file, for the JPEG tables), each read once and only
        where an option is ``"auto"`` or the kernel is estimated (the estimate routes by them); else 0 / None."""
        estimating = self.spec.kind == "estimate"
        quality = (son_quality(rgb * 255.0, path)
                   if estimating or (self.method in ADAPTING and self.jpeg == "auto") else None)
        sigma = (auto_corruption(rgb * 255.0)[0]
                 if estimating or (self.method != "bicubic" and self.noise == "auto") else 0.0)
        return sigma, quality

    def son_corruption(self, rgb: np.ndarray, kernel, sigma: float, quality: int | None) -> tuple[float, int | None]:
        """(σ, JPEG quality) to corrupt the son with: the given values, or (``"auto"``) the input's measured ones
        (:meth:`measure`), σ matched through the son's JPEG (:func:`mzsr.realphoto.calibrate_son_noise`); with
        ``steps="auto"``, :data:`mzsr.schedules.AUTO_SON_NOISE_SHARE` of that σ, and above ×2 neither noise nor
        the read JPEG under a σ of :data:`mzsr.schedules.AUTO_LARGE_SCALE_CORRUPT_FROM`."""
        clean_large = self.meta_only_above_x2 and sigma < AUTO_LARGE_SCALE_CORRUPT_FROM
        jpeg = (None if clean_large else quality) if self.jpeg == "auto" else self.jpeg
        if self.noise != "auto":
            return float(self.noise), jpeg
        if clean_large:
            return 0.0, jpeg
        if jpeg is not None and sigma:  # JPEG removes most of the noise the estimate sees
            sigma = calibrate_son_noise(degrade(rgb * 255.0, kernel, self.scale, self.downsample), sigma, jpeg)
        return float(sigma) * (AUTO_SON_NOISE_SHARE if self.auto else 1.0), jpeg

    def input_limit(self) -> int | None:
        """The most input pixels whose output stays within ``max_pixels`` (for checking a file's header)."""
        return None if self.max_pixels is None else self.max_pixels // self.scale ** 2

    def check_size(self, width: int, height: int, source: str = "image") -> None:
        """Refuse an input whose output would exceed ``max_pixels``, before it is decoded or processed."""
        out = width * height * self.scale ** 2
        if self.max_pixels is not None and out > self.max_pixels:
            raise ImageError(f"{source}: {width}×{height} px gives a {width * self.scale}×{height * self.scale} "
                             f"output ({out:,} pixels), over the limit of {self.max_pixels:,} (max_pixels)")

    def upscale(self, image: np.ndarray, stem: str | None = None, callback=None, path=None) -> Result:
        """Super-resolve one image (layout and dtype as :func:`upscale` takes them); ``stem`` names its kernel in a
        kernel folder; ``path``, the file it came from, lets ``jpeg="auto"`` read its quality. ``callback(step,
        loss)`` is called after each adaptation step."""
        image = validate.image(image)
        self.check_size(image.shape[1], image.shape[0])
        rgb, alpha, gray, peak = split_channels(image)
        sigma, quality = self.measure(rgb, path)
        kernel = self.kernel_for(image, stem, sigma > 0 or quality is not None)
        model, noise = self.model_for(kernel), 0.0
        if self.method == "bicubic":
            sr = imresize(rgb, self.scale)
        elif self.method == "zssr":
            from .zssr import zssr

            noise = sigma if self.noise == "auto" else float(self.noise)  # ZSSR's sons take no JPEG
            sr = zssr(rgb, self.scale, kernel, self.downsample, device=self.device, callback=callback, noise=noise,
                      seed=self.seed)
        else:
            weights = model if self.method == "mzsr" else self._base_of(model)
            tiles = {} if self.tile is None else {"tile_train": self.tile, "tile_infer": self.tile}
            noise, jpeg = self.son_corruption(rgb, kernel, sigma, quality)
            report: dict = {}
            ensemble = (AUTO_ENSEMBLE if self.auto else False) if self.ensemble is None else self.ensemble
            corrupted = bool(noise) or jpeg is not None
            auto_bp = AUTO_BACK_PROJECTION_CORRUPTED if corrupted else AUTO_BACK_PROJECTION
            bp = (auto_bp if self.auto else 0) if self.back_projection is None else self.back_projection
            sr = _adapt.zero_shot(weights.net, weights.params, rgb * 255.0, kernel, self.scale, self.downsample,
                                  self.steps, model.step_lrs, self.device, callback=callback, precision=self.precision,
                                  back_projection=bp, ensemble=ensemble, schedule="tail" if self.auto else "paper",
                                  noise=noise, jpeg=jpeg, seed=self.seed, time_limit=self.time_limit,
                                  guard=self.auto, tail=corrupted or not self.meta_only_above_x2,
                                  report=report, **tiles)
        up_alpha = None if alpha is None else imresize(alpha, out_shape=sr.shape[:2])
        out = join_channels(sr, up_alpha, gray, peak, image.dtype)
        if model is None:
            return Result(out, kernel, None, noise)
        return Result(out, kernel, model.name, noise, jpeg, report["steps"], report["guard"],
                      report["frames"])

    def _base_of(self, model: Model) -> Model:
        if "base" not in model.card:
            raise ModelError(f"model '{model.name}' names no pretrained 'base' in its card (needed by finetune)")
        return self._load(model.card["base"])

    def score(self, sr: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
        """(PSNR dB, SSIM) of an output against its ground truth by the paper's protocol (spec §6): Y channel of
        uint8 RGB, ground truth cropped to a multiple of the scale, ``scale`` pixels shaved."""
        sr8, gt8 = as_uint8_rgb(sr), modcrop(as_uint8_rgb(gt), self.scale)
        if sr8.shape != gt8.shape:
            raise InputError(f"output {sr8.shape[1]}×{sr8.shape[0]} and ground truth {gt8.shape[1]}×{gt8.shape[0]} "
                             "differ in size")
        return psnr_y(sr8, gt8, self.scale), ssim_y(sr8, gt8, self.scale)


def upscale(image: np.ndarray, scale: int = 2, kernel=None, steps: int | str = "auto", method: str = "mzsr",
            model: str | Model | None = None, downsample: str | None = None, device: str = "auto",
            tile: int | None = None, callback=None, estimator: str | None = None,
            back_projection: int | None = None, ensemble: bool | None = None,
            max_pixels: int | None = DEFAULT_MAX_PIXELS, noise: float | str = "auto",
            jpeg: int | str | None = "auto", time_limit: float | None = None, seed: int = 0) -> np.ndarray:
    """Super-resolve one image ×``scale`` by zero-shot adaptation to its blur ``kernel``.

    ``image``: ``(H, W)``, ``(H, W, 2|3|4)`` array, uint8, uint16, or float in [0, 1]; the result has the same
    layout and dtype (grayscale stays grayscale; alpha is upscaled bicubically and re-attached).
    ``kernel``, ``model``, ``downsample``: as for :class:`Upscaler`; ``estimate`` finds the kernel in the image
    with ``estimator`` (default ``mzsr.estimate.DEFAULT_ESTIMATOR``). ``method``: ``mzsr`` (meta-learned
    weights), ``finetune`` (the same steps from the bicubic-pretrained weights), ``bicubic`` or ``zssr``.
    ``callback(step, loss)`` is called after each adaptation step. ``back_projection`` > 0 (``mzsr`` and
    ``finetune``) ends with that many back-projection iterations, which pull the output towards reproducing the
    input under the kernel (not in the paper's MZSR; ZSSR always ends so). ``ensemble`` (``mzsr`` and
    ``finetune``) takes the median over the rotations/flips of the input that leave the kernel unchanged (all 8
    for an isotropic kernel, as ZSSR does; 2 for an anisotropic one): up to 8× the inference time.
    ``max_pixels``: the most output pixels (``None``: no limit). ``steps``, ``noise``, ``jpeg``, ``time_limit`` and
    ``seed``: see :class:`Upscaler` (by default our schedule, the son corrupted as the input is; ``back_projection``
    and ``ensemble`` default to what that schedule does). Bad values raise :class:`mzsr.errors.MzsrError`.
    """
    if isinstance(kernel, KernelSpec) and kernel.kind == "folder":
        raise OptionError("upscale() takes one kernel; use Upscaler(...).upscale(image, stem) for a kernel folder")
    up = Upscaler(scale, kernel, steps, method, model, downsample, device, tile, estimator, back_projection, ensemble,
                  max_pixels=max_pixels, noise=noise, jpeg=jpeg, time_limit=time_limit, seed=seed)
    return up.upscale(image, callback=callback).image


def resolve_kernel(image: np.ndarray, kernel=None, scale: int = 2, model: str | Model | None = None,
                   estimator: str | None = None, downsample: str | None = None, device: str = "auto"):
    """The kernel ``upscale`` blurs with for ``image`` (``None``: no blur, the bicubic degradation); for
    ``"estimate"``, estimated from the image. Passing the result to ``upscale`` gives what ``kernel="estimate"``
    gives."""
    return Upscaler(scale, kernel, model=model, downsample=downsample, device=device,
                    estimator=estimator).kernel_for(image)


def degrade_image(image: np.ndarray, kernel=None, scale: int = 2, downsample: str | None = None,
                  noise: float = 0.0, seed: int | None = None, jpeg: int | None = None,
                  name: str | None = None) -> np.ndarray:
    """LR = (HR ⊛ k)↓s + n for a uint8 image, rounded to uint8 (bit-exact with MZSR's test inputs); then, with
    ``jpeg``, JPEG-compressed at that quality (:func:`mzsr.degrade.corrupt`).

    ``noise`` is σ in grey levels of 0..255. The noise is drawn from ``seed`` and, when given, the image's
    ``name`` (e.g. its file's stem), so that an image's result does not depend on the others beside it.
    """
    check_corruption(noise, jpeg)
    spec = _as_spec(kernel)
    if spec.kind in ("estimate", "folder"):
        raise OptionError(f"degrading needs one given kernel, not {'estimate' if spec.kind == 'estimate' else 'a folder'}")
    k, downsample = spec.kernel, downsample or default_downsample(spec, None)
    img = np.asarray(image)
    rng = np.random.default_rng(seed if name is None else [seed or 0, zlib.crc32(name.encode())])
    return corrupt(degrade(img.astype(np.float64), k, scale, downsample), noise, jpeg, rng)
