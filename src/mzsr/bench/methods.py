"""The compared methods, by name: ``bicubic``, ``zssr`` (``zssrreal``: its real-image setting, noise on the sons),
``mzsrN`` and ``finetuneN`` (N adaptation steps, the paper's recipe: plain SGD on the whole image), and
``mzsrNbpB``: MZSR(N) then B back-projection iterations, and
``mzsrNx8`` / ``mzsrNbpBx8``: with the 8-way self-ensemble, and ``mzsrauto``: our schedule (the meta-learned steps,
then Adam, crops on large images) until held-out blocks stop improving, within a time limit, in the fastest
precision the machine has, with what ``mzsr.schedules`` makes part of it (additions of ours, not rows of the paper).

``mzsrN`` adapts the meta-learned weights, ``finetuneN`` the bicubic-pretrained weights they started from (the
model card's ``base``), both on the whole image and on a clean son, as the paper does (no noise or JPEG given to it,
whatever the input reads as); ``mzsrauto`` corrupts its son as the input reads, as ``mzsr upscale`` does.
Fine-tuning with fewer than ``ADAM_FROM_STEPS`` steps uses the model's plain-SGD step learning rates, like MZSR;
from ``ADAM_FROM_STEPS`` on it uses Adam at
``FINETUNE_ADAM_LR``, because plain SGD with those rates barely moves pretrained weights (spec §5: 29.14 →
29.33 dB in 100 steps, against 35.34 dB with Adam) and would make a strawman of fine-tuning.
Every method returns uint8 RGB.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch

from ..adapt import l1_grad_tiled, make_son, super_resolve, to_image, to_tensor, upsample
from ..api import upscale
from ..degrade import quantize
from ..models import Model
from ..runtime import describe_path
from ..schedules import (ADAM_FROM_STEPS, AUTO_BACK_PROJECTION, AUTO_ENSEMBLE, AUTO_LARGE_SCALE_CORRUPT_FROM,
                         AUTO_SON_NOISE_SHARE, AUTO_SUMMARY, AUTO_TAIL_MAX_SCALE, AUTO_TIME_LIMIT, FINETUNE_ADAM_LR,
                         ZSSR_REAL_NOISE)
from ..zssr import zssr

_STEPPED = re.compile(r"(mzsr|finetune)(\d+)|mzsr(\d+|auto)(?:bp(\d+))?(x8)?(blind)?")


@dataclass(frozen=True)
class Method:
    name: str
    kind: str  # "bicubic" | "zssr" | "mzsr" | "finetune"
    steps: int | str = 0  # a count, or "auto"
    back_projection: int = 0
    ensemble: bool = False
    blind: bool = False  # the kernel estimated from the LR (mzsr.estimate's default), not the scenario's
    son_noise: float = 0.0  # ZSSR: σ (grey levels) of the noise on its sons (its real-image setting)

    @property
    def needs_model(self) -> bool:
        return self.kind in ("mzsr", "finetune")

    @property
    def adam(self) -> bool:
        return self.kind == "finetune" and self.steps >= ADAM_FROM_STEPS

    @property
    def auto(self) -> bool:
        return self.steps == "auto"

    @property
    def paper_name(self) -> str | None:
        """The method's row in the paper's tables (fine-tuning has none)."""
        if self.back_projection or self.ensemble or self.auto or self.blind:
            return None
        if self.son_noise:
            return None
        return {"bicubic": "Bicubic", "zssr": "ZSSR", "mzsr": f"MZSR({self.steps})"}.get(self.kind)

    def path(self, device) -> str:
        """The precision the method computes in on ``device``, as ``mzsr.upscale`` picks it: the machine's fast
        path for our schedule, fp32 for the paper's recipes, fine-tuning, ZSSR and bicubic."""
        return describe_path(device) if self.auto else "fp32"

    @property
    def label(self) -> str:
        if self.kind == "finetune":
            return f"Fine-tune({self.steps}{', Adam' if self.adam else ''})"
        if self.son_noise:
            return "ZSSR, real-image setting"
        if self.back_projection or self.ensemble or self.auto or self.blind:
            return f"MZSR({self.steps})" + "+x8" * self.ensemble + f"+BP{self.back_projection}" * bool(
                self.back_projection) + ", blind" * self.blind
        return self.paper_name

    def describe(self) -> str:
        if self.kind == "bicubic":
            return "MATLAB-bicubic upsampling"
        if self.kind == "zssr":
            return "a fresh net trained on the image alone (spec §8)" + (
                f", noise of σ {self.son_noise:.2f} grey levels on every son" if self.son_noise else "")
        if self.auto:
            return (f"our schedule ({AUTO_SUMMARY}) until held-out blocks of the son pair stop improving, within "
                    f"{AUTO_TIME_LIMIT:g} s per image" + (", median over the kernel-keeping rotations/flips"
                                                          if AUTO_ENSEMBLE else "")
                    + (f", then {AUTO_BACK_PROJECTION} back-projection iterations (none where the son is given noise "
                       "or JPEG)" if AUTO_BACK_PROJECTION else "")
                    + f"; a noisy input's son takes {AUTO_SON_NOISE_SHARE:g} of the σ read on it; above "
                    f"×{AUTO_TAIL_MAX_SCALE} the son is given noise and JPEG only from a σ of "
                    f"{AUTO_LARGE_SCALE_CORRUPT_FROM:g} read on the input, and a clean son the SGD steps only")
        steps = f"{self.steps} whole-image step{'' if self.steps == 1 else 's'}"
        if self.kind == "mzsr":
            x8 = ", median over 8 rotations/flips" if self.ensemble else ""
            bp = f", then {self.back_projection} back-projection iterations" if self.back_projection else ""
            blind = ", with the kernel estimated from the LR" if self.blind else ""
            return f"{steps} of SGD from the meta-learned weights (the model's step lrs) on a clean son{blind}{x8}{bp}"
        rule = f"Adam lr {FINETUNE_ADAM_LR:g}" if self.adam else "SGD, the model's step lrs"
        return f"{steps} from the bicubic-pretrained weights ({rule}) on a clean son"


def parse_method(name: str) -> Method:
    if name in ("bicubic", "zssr"):
        return Method(name, name)
    if name == "zssrreal":
        return Method(name, "zssr", son_noise=ZSSR_REAL_NOISE)
    m = _STEPPED.fullmatch(name)
    if m is None:
        raise ValueError(f"unknown method '{name}' (bicubic, zssr, zssrreal, mzsrN, finetuneN, mzsrNbpB, mzsrNx8, "
                         "mzsrNbpBx8, mzsrauto, each of those mzsr ones +blind: N steps, B back-projection iterations, "
                         "x8 self-ensemble, auto: our schedule, blind: the kernel estimated)")
    if m.group(1) is None:
        blind = m.group(6) is not None
        if m.group(3) == "auto":
            if m.group(4) or m.group(5):  # auto decides on the ensemble and back-projection itself
                raise ValueError(f"unknown method '{name}' (mzsrauto takes no bp/x8 suffix)")
            return Method(name, "mzsr", "auto", blind=blind)
        return Method(name, "mzsr", int(m.group(3)), int(m.group(4) or 0), m.group(5) is not None, blind)
    return Method(name, m.group(1), int(m.group(2)))


def finetune_adam(base: Model, lr_img: np.ndarray, kernel: np.ndarray, scale: int, downsample: str, steps: int,
                  device, learning_rate: float = FINETUNE_ADAM_LR, callback=None) -> np.ndarray:
    """``steps`` Adam steps of ``base`` on the whole image (son → LR, L1), then SR; uint8 like ``zero_shot``."""
    lr = to_tensor(lr_img, device)
    k = torch.as_tensor(kernel, dtype=torch.float32, device=device)
    x = upsample(make_son(lr, k, scale, downsample), lr.shape[-2:])
    params = {n: v.detach().clone().requires_grad_(True) for n, v in base.params.items()}
    opt = torch.optim.Adam(params.values(), lr=learning_rate)
    for i in range(steps):
        loss, grads = l1_grad_tiled(base.net, params, x, lr)
        for n, p in params.items():
            p.grad = grads[n]
        opt.step()
        if callback is not None:
            callback(i, loss)
    return to_image(super_resolve(base.net, {n: p.detach() for n, p in params.items()}, lr, scale))


def run_method(method: Method, lr: np.ndarray, scale: int, kernel: np.ndarray, downsample: str,
               model: Model | None, base: Model | None, device, zssr_iters: int | None = None, seed: int = 0,
               callback=None) -> np.ndarray:
    """Super-resolve the uint8 RGB ``lr`` with ``method``; ``model`` is the MZSR model, ``base`` its pretrained one.
    ``mzsrauto``'s noise and JPEG are left to ``auto``, as for a user's file (the benchmark's inputs are PNGs, whose
    JPEG quality ``auto`` finds in the pixels); the paper's rows take a clean son."""
    if method.kind == "zssr":
        # called directly, not through upscale(), for its seed and iteration cap; rounded as upscale() would
        return quantize(255.0 * zssr(lr / 255.0, scale, kernel, downsample, device, callback, zssr_iters, seed,
                                     method.son_noise))
    if method.kind == "bicubic":
        return upscale(lr, scale, method="bicubic")
    if method.adam:
        return finetune_adam(base, lr, kernel, scale, downsample, method.steps, device, callback=callback)
    kernel = "estimate" if method.blind else kernel
    son = {} if method.auto else {"noise": 0.0, "jpeg": None}
    # None leaves them to the recipe: mzsrauto's own ensemble and back-projection, none for the paper's mzsrN
    return upscale(lr, scale, kernel, method.steps, method.kind, model, downsample, device, callback=callback,
                   back_projection=method.back_projection or None, ensemble=method.ensemble or None, seed=seed, **son)
