"""The public API: ``upscale`` (every method), ``resolve_kernel``, ``degrade_image`` and model loading. The CLI
only wraps these."""
from __future__ import annotations

import zlib

import numpy as np

from . import adapt as _adapt
from .degrade import check_corruption, corrupt, degrade
from .estimate import estimate_kernel
from .kernels import KernelSpec, check_kernel, parse_kernel_spec
from .models import Model, default_model, load_model, model_for_kernel
from .resize import imresize
from .runtime import pick_device

METHODS = ("mzsr", "finetune", "bicubic", "zssr")


def _split(image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, bool, float]:
    """→ (RGB float in [0, 1], alpha in [0, 1] or None, was grayscale, peak value of the dtype)."""
    img = np.asarray(image)
    peak = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(img.dtype, 1.0)
    x = img.astype(np.float64) / peak
    gray = x.ndim == 2 or x.shape[-1] in (1, 2)
    if x.ndim == 2:
        x = x[..., None]
    alpha = x[..., -1] if x.shape[-1] in (2, 4) else None
    color = x[..., :1] if gray else x[..., :3]
    return np.repeat(color, 3, axis=-1) if gray else color, alpha, gray, peak


def _join(rgb: np.ndarray, alpha: np.ndarray | None, gray: bool, peak: float, dtype) -> np.ndarray:
    out = rgb.mean(axis=-1, keepdims=True) if gray else rgb
    if alpha is not None:
        out = np.concatenate([out, alpha[..., None]], axis=-1)
    if gray and alpha is None:
        out = out[..., 0]
    out = np.clip(out, 0, 1)
    if peak == 1.0:
        return out.astype(dtype)
    return np.round(out * peak).astype(dtype)


def _as_spec(kernel) -> KernelSpec:
    if isinstance(kernel, KernelSpec):
        spec = kernel
    elif kernel is None or isinstance(kernel, str):
        spec = parse_kernel_spec(kernel)
    else:
        spec = KernelSpec("fixed", check_kernel(kernel))
    if spec.kind == "folder":
        raise ValueError("upscale() takes one kernel; pick it from the folder with KernelSpec.for_image")
    return spec


def _default_downsample(spec: KernelSpec, model: Model | None) -> str:
    return model.downsample if model is not None else ("bicubic" if spec.kind == "bicubic" else "direct")


def _kernel_for(rgb: np.ndarray, spec: KernelSpec, scale: int, model: Model | None, estimator: str | None):
    return estimate_kernel(rgb, scale, model, estimator) if spec.kind == "estimate" else spec.kernel


def resolve_kernel(image: np.ndarray, kernel=None, scale: int = 2, model: str | Model | None = None,
                   estimator: str | None = None, downsample: str | None = None, device: str = "auto"):
    """The kernel ``upscale`` blurs with for ``image`` (``None``: no blur, the bicubic degradation).

    ``kernel`` as for ``upscale``; for ``"estimate"`` the kernel is estimated from the image by ``estimator``
    (default ``mzsr.estimate.DEFAULT_ESTIMATOR``) with ``model`` (default: the shipped one for ``scale`` and
    ``downsample``). Passing the result to ``upscale`` gives what ``kernel="estimate"`` gives; the CLI does so to
    save the kernel it used.
    """
    spec = _as_spec(kernel)
    if spec.kind == "estimate" and not isinstance(model, Model):
        model = load_model(model or default_model(scale, downsample or "direct"), pick_device(device))
    return _kernel_for(_split(image)[0], spec, scale, model, estimator)


def upscale(image: np.ndarray, scale: int = 2, kernel=None, steps: int = 10, method: str = "mzsr",
            model: str | Model | None = None, downsample: str | None = None, device: str = "auto",
            tile: int | None = None, callback=None, estimator: str | None = None,
            back_projection: int = 0, ensemble: bool = False) -> np.ndarray:
    """Super-resolve one image ×``scale`` by zero-shot adaptation to its blur ``kernel``.

    ``image``: ``(H, W)``, ``(H, W, 2|3|4)`` array, uint8, uint16, or float in [0, 1]; the result has the same
    layout and dtype (grayscale stays grayscale; alpha is upscaled bicubically and re-attached).
    ``kernel``: an array, a spec string (``iso:VAR``, ``aniso:L1,L2,THETA``, a file, ``bicubic``, ``estimate``)
    or ``None`` (= ``bicubic``: no blur, MATLAB-bicubic degradation). ``estimate`` finds the kernel in the image
    with ``estimator`` (see ``resolve_kernel``) and the model. ``method``: ``mzsr`` (meta-learned weights),
    ``finetune`` (the same steps from the bicubic-pretrained weights), ``bicubic`` or ``zssr``. ``model``: a
    shipped name, a ``.safetensors`` path or a loaded model; by default the shipped one for the scale, subsampling
    and kernel (:func:`mzsr.models.model_for_kernel`: ``direct-x2-sharp`` for a sharp kernel at ×2, else the default).
    ``downsample``: the son's subsampling, ``direct`` or ``bicubic``; by default the model's.
    ``callback(step, loss)`` is called after each adaptation step. ``back_projection`` > 0 (``mzsr`` and
    ``finetune``) ends with that many back-projection iterations, which pull the output towards reproducing the
    input under the kernel (not in the paper's MZSR; ZSSR always ends so). ``ensemble`` (``mzsr`` and
    ``finetune``) takes the median over the rotations/flips of the input that leave the kernel unchanged (all 8
    for an isotropic kernel, as ZSSR does; 2 for an anisotropic one): up to 8× the inference time.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r} (choose from {', '.join(METHODS)})")
    if steps < 0 or back_projection < 0:
        raise ValueError(f"steps and back_projection must be ≥ 0, got {steps} and {back_projection}")
    for option, value in (("back_projection", back_projection), ("ensemble", ensemble)):
        if value and method not in ("mzsr", "finetune"):
            raise ValueError(f"{option} applies to mzsr and finetune, not {method}")
    rgb, alpha, gray, peak = _split(image)
    dtype = np.asarray(image).dtype
    dev = pick_device(device)
    spec = _as_spec(kernel)
    if isinstance(model, str):
        model = load_model(model, dev)
    if downsample is None:
        downsample = _default_downsample(spec, model)
    auto = model is None
    if auto and spec.kind == "estimate":  # the estimate needs a model before the kernel can choose one
        model = load_model(default_model(scale, downsample), dev)
    k = _kernel_for(rgb, spec, scale, model, estimator)
    if auto and method in ("mzsr", "finetune"):
        name = model_for_kernel(scale, downsample, k) if method == "mzsr" else default_model(scale, downsample)
        if model is None or model.name != name:
            model = load_model(name, dev)
    if method == "bicubic":
        sr = imresize(rgb, scale)
    elif method == "zssr":
        from .zssr import zssr

        sr = zssr(rgb, scale, k, downsample, device=dev, callback=callback)
    else:
        if model.scale != scale:
            raise ValueError(f"model '{model.name}' is a ×{model.scale} model, asked for ×{scale}")
        weights = model if method == "mzsr" else load_model(model.card["base"], dev)
        tiles = {} if tile is None else {"tile_train": tile, "tile_infer": tile}
        sr = _adapt.zero_shot(weights.net, weights.params, rgb * 255.0, k, scale, downsample, steps,
                              model.step_lrs, dev, callback=callback, back_projection=back_projection,
                              ensemble=ensemble, **tiles)
    up_alpha = None if alpha is None else imresize(alpha, out_shape=sr.shape[:2])
    return _join(np.asarray(sr, dtype=np.float64), up_alpha, gray, peak, dtype)


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
    if spec.kind == "estimate":
        raise ValueError("degrading needs a given kernel ('estimate' is for upscaling)")
    k, downsample = spec.kernel, downsample or _default_downsample(spec, None)
    img = np.asarray(image)
    rng = np.random.default_rng(seed if name is None else [seed or 0, zlib.crc32(name.encode())])
    return corrupt(degrade(img.astype(np.float64), k, scale, downsample), noise, jpeg, rng)
