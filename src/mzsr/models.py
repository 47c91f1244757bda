"""Shipped weights and their model cards: safetensors + JSON side by side, loaded by name or path."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from . import validate
from .degrade import DOWNSAMPLING
from .errors import ModelError, OptionError, describe
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


MAX_CHANNELS, MAX_DEPTH = 1024, 64  # far beyond the 64 × 8 net; a card asking for more is damaged or hostile


def _check_rate(rate, where: str, names: set[str] | None) -> None:
    if isinstance(rate, dict):
        if names is not None and set(rate) != names:
            odd = sorted(set(rate) ^ names)
            raise OptionError(f"{where} must name every parameter of the net, once (differs in {', '.join(odd[:3])}"
                              f"{' …' if len(odd) > 3 else ''})")
        for key, value in rate.items():
            validate.number(value, f"{where}[{key!r}]", 0.0)
    else:
        validate.number(rate, where, 0.0)


def check_card(card, source, names: set[str] | None = None) -> dict:
    """Validate a model card (the JSON beside the weights); returns it. Required: ``scale`` (2..4), ``downsample``
    (direct or bicubic), ``step_lrs`` (a non-empty list of rates ≥ 0, each a number or a ``{parameter name: rate}``
    dict naming every parameter in ``names`` when given). Optional, typed when present: ``arch`` (``channels``,
    ``depth`` integers, ``bias`` a bool), ``name``, ``base``, ``notes`` (strings). One :class:`ModelError` line
    names ``source`` and the problem."""
    if not isinstance(card, dict):
        raise ModelError(f"{source}: a model card must be a JSON object, got {type(card).__name__}")
    missing = [key for key in ("scale", "downsample", "step_lrs") if key not in card]
    if missing:
        raise ModelError(f"{source}: model card lacks {', '.join(repr(k) for k in missing)}")
    try:
        validate.scale(card["scale"], "'scale'")
        validate.choice(card["downsample"], "'downsample'", DOWNSAMPLING)
        rates = card["step_lrs"]
        if not isinstance(rates, list) or not rates:
            raise OptionError(f"'step_lrs' must be a non-empty list of rates, got {rates!r:.60}")
        for i, rate in enumerate(rates):
            _check_rate(rate, f"'step_lrs'[{i}]", names)
        arch = card.get("arch", {})
        if not isinstance(arch, dict):
            raise OptionError(f"'arch' must be an object, got {arch!r:.60}")
        validate.integer(arch.get("channels", 64), "'arch.channels'", 1, MAX_CHANNELS)
        validate.integer(arch.get("depth", 8), "'arch.depth'", 1, MAX_DEPTH)
        if not isinstance(arch.get("bias", True), bool):
            raise OptionError(f"'arch.bias' must be true or false, got {arch['bias']!r:.60}")
        for key in ("name", "base", "notes"):
            if key in card and not isinstance(card[key], str):
                raise OptionError(f"'{key}' must be a string, got {card[key]!r:.60}")
    except OptionError as e:
        raise ModelError(f"{source}: model card: {e}") from None
    return card


def _read_card_file(card_path: Path) -> dict:
    try:
        return json.loads(card_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{card_path}: model card missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ModelError(f"{card_path}: model card is not readable JSON ({describe(e)})") from None


def _net_for(card: dict) -> SRNet:
    arch = card.get("arch", {})
    return SRNet(channels=arch.get("channels", 64), depth=arch.get("depth", 8), bias=arch.get("bias", True))


def _check_weights(params: dict, net: SRNet, path: Path, card: dict) -> None:
    """The weights' names and shapes against the card's net, every difference in one line; then their values."""
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in params.items()}
    problems = [f"{k} is {list(found[k])}, expected {list(shape)}" for k, shape in expected.items()
                if k in found and found[k] != shape]
    missing, unexpected = sorted(expected.keys() - found.keys()), sorted(found.keys() - expected.keys())
    if missing:
        problems.append(f"missing {', '.join(missing)}")
    if unexpected:
        problems.append(f"unexpected {', '.join(unexpected)}")
    if problems:
        arch = card.get("arch", {})
        raise ModelError(f"{path}: weights do not fit the card's net (channels {arch.get('channels', 64)}, depth "
                         f"{arch.get('depth', 8)}, bias {arch.get('bias', True)}): {'; '.join(problems)}")
    for k, v in params.items():
        if not v.is_floating_point():
            raise ModelError(f"{path}: {k} has dtype {v.dtype}, expected floating point")
        if not torch.isfinite(v).all():
            raise ModelError(f"{path}: {k} contains NaN or infinite values (damaged or diverged weights)")


def load_model(name_or_path, device="cpu") -> Model:
    """A model by shipped name (``direct-x2`` …) or by ``.safetensors`` path with its ``.json`` card beside it.

    The card is checked (:func:`check_card`), the weights against it (names, shapes, finite values); every
    failure is a :class:`ModelError` naming the file. A device that is not available is reported as such
    (:func:`mzsr.runtime.pick_device` does so for names), not as a fault of the file."""
    path = _resolve(name_or_path)
    card_path = path.with_suffix(".json")
    card = check_card(_read_card_file(card_path), card_path)
    net = _net_for(card)
    try:
        params = load_file(str(path), device="cpu")
    except Exception as e:  # noqa: BLE001 - a corrupt file makes the reader raise about anything
        raise ModelError(f"{path}: cannot load weights ({describe(e)})") from None
    _check_weights(params, net, path, card)
    check_card(card, card_path, set(params))  # learned per-parameter rates must name the net's parameters
    net.load_state_dict(params)
    try:
        net.to(device).eval()
    except (RuntimeError, AssertionError, TypeError, ValueError) as e:
        raise OptionError(f"device {device}: not available ({describe(e)})") from None
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


def fingerprint(model: Model) -> dict:
    """What identifies a model's results: its weights' digest and its step learning rates. Not its name, so
    cells measured with a run's ``best.safetensors`` are reused once it ships under a model name."""
    h = hashlib.sha256()
    for name in sorted(model.params):
        h.update(name.encode())
        h.update(model.params[name].detach().cpu().numpy().tobytes())
    return {"sha256": h.hexdigest()[:16], "step_lrs": model.step_lrs}
