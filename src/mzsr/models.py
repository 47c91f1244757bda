"""Shipped weights and their model cards: safetensors + JSON side by side, loaded by name or path."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .errors import ModelError
from .io import atomic_write
from .kernels import kernel_variances
from .net import SRNet

WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_MODELS = {("direct", 2): "direct-x2", ("bicubic", 2): "bicubic-x2", ("direct", 4): "direct-x4",
                  ("bicubic", 4): "direct-x4"}
# Models meta-trained on sharp task kernels (the smaller variance from 0.2 to 0.85, against the paper's 1 up), the
# default for a kernel whose narrower axis has a variance under NARROW_KERNEL_VAR px²: on Set14, MZSR(10) of
# direct-x2-sharp beat direct-x2's at 0.7 and below and lost at 1 and above (docs/training.md §10-11).
NARROW_MODELS = {("direct", 2): "direct-x2-sharp"}
NARROW_KERNEL_VAR = 0.8


@dataclass
class Model:
    name: str
    card: dict
    net: SRNet
    params: dict[str, torch.Tensor]

    @property
    def scale(self) -> int:
        return int(self.card["scale"])

    @property
    def downsample(self) -> str:
        return self.card["downsample"]

    @property
    def step_lrs(self) -> list:
        """Test-time rate per step: a number, or a ``{parameter name: rate}`` dict for learned per-layer rates."""
        return list(self.card["step_lrs"])


def available() -> list[str]:
    return sorted(p.stem for p in WEIGHTS_DIR.glob("*.safetensors"))


def read_card(name: str) -> dict:
    return json.loads((WEIGHTS_DIR / f"{name}.json").read_text())


def default_model(scale: int, downsample: str) -> str:
    try:
        return DEFAULT_MODELS[(downsample, scale)]
    except KeyError:
        raise ModelError(f"no shipped model for ×{scale} with {downsample} downsampling "
                         f"(shipped: {', '.join(available())})") from None


def model_for_kernel(scale: int, downsample: str, kernel) -> str:
    """The shipped model for a kernel (``None``: no blur): the narrow-kernel model where there is one and the kernel
    is sharp enough, else :func:`default_model`."""
    narrow = NARROW_MODELS.get((downsample, scale))
    if narrow and kernel is not None and kernel_variances(kernel)[0] < NARROW_KERNEL_VAR:
        return narrow
    return default_model(scale, downsample)


def _resolve(name_or_path) -> Path:
    p = Path(name_or_path)
    if p.suffix == ".safetensors":
        if not p.is_file():
            raise ModelError(f"{p}: no such weights file")
        return p
    if (WEIGHTS_DIR / f"{name_or_path}.safetensors").is_file():
        return WEIGHTS_DIR / f"{name_or_path}.safetensors"
    raise ModelError(f"unknown model '{name_or_path}' (shipped: {', '.join(available())}; or give a .safetensors path)")


def load_model(name_or_path, device="cpu") -> Model:
    """A model by shipped name (``direct-x2`` …) or by ``.safetensors`` path with its ``.json`` card beside it."""
    path = _resolve(name_or_path)
    card_path = path.with_suffix(".json")
    try:
        card = json.loads(card_path.read_text())
        params = load_file(str(path), device=str(device))
        arch = card.get("arch", {})
        net = SRNet(channels=arch.get("channels", 64), depth=arch.get("depth", 8), bias=arch.get("bias", True))
        net.load_state_dict(params)  # checks names and shapes
    except FileNotFoundError:
        raise ModelError(f"{card_path}: model card missing") from None
    except Exception as e:  # noqa: BLE001 - corrupt or mismatched files become one clear line
        raise ModelError(f"{path}: cannot load weights ({e.__class__.__name__}: {str(e).splitlines()[0]})") from None
    net.to(device).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return Model(path.stem, card, net, {k: v.to(device) for k, v in net.state_dict().items()})


def save_model(path, state_dict: dict, card: dict) -> None:
    """Write ``path`` (.safetensors) and its ``.json`` card atomically."""
    path = Path(path)
    tensors = {k: v.detach().float().cpu().contiguous() for k, v in state_dict.items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp))
    atomic_write(path.with_suffix(".json"), lambda tmp: Path(tmp).write_text(json.dumps(card, indent=2) + "\n"))


def ship(src, name: str, base: str | None = None, notes: str | None = None, **card_updates) -> Path:
    """Copy a trained ``.safetensors`` + card (or a loaded ``Model``) into the package as model ``name``
    (optionally naming the shipped bicubic-pretrained model it started from, used by ``--method finetune``)."""
    model = src if isinstance(src, Model) else load_model(src)
    card = {**model.card, "name": name, **card_updates}
    if base is not None:
        card["base"] = base
    if notes is not None:
        card["notes"] = notes
    dest = WEIGHTS_DIR / f"{name}.safetensors"
    save_model(dest, model.net.state_dict(), card)
    return dest
