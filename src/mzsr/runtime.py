"""Device and precision choices shared by inference and training."""
from __future__ import annotations

import contextlib

import torch

from .errors import OptionError


COMPUTE_DEVICES = ("cpu", "cuda", "mps", "xpu")


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` takes CUDA when present, else the CPU; a device that is not a name or not available here (CUDA
    without one, ``cuda:7`` on a one-GPU machine, ``mps`` off a Mac) is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(name, str) and name.startswith("cuda") and not torch.cuda.is_available():
        raise OptionError(f"--device {name}: no CUDA device is available")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        device = None
    if device is None or device.type not in COMPUTE_DEVICES:
        raise OptionError(f"--device {name}: not a device (auto, {', '.join(COMPUTE_DEVICES)}, cuda:N)")
    try:
        torch.empty(0, device=device)  # the one check every backend answers: can a tensor live there?
    except (RuntimeError, AssertionError, TypeError, ValueError):  # torch built without it, or no such unit
        raise OptionError(f"--device {name}: not available (torch has no such device here)") from None
    return device


def autocast(device: torch.device, precision: str = "fp32"):
    """``fp32`` (no autocast), ``bf16`` (CPU or CUDA) or ``fp16`` (CUDA only) mixed precision."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return torch.autocast(device_type=device.type, dtype=dtype)


def device_label(device) -> str:
    """``cpu`` or ``cuda (<GPU name>)``: what timings were measured on, for reports."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type
