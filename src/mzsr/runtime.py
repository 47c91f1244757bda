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
    """``cpu (<CPU model>, <fast path>)`` or ``cuda (<GPU name>)``: what timings were measured on, for reports.
    A CPU's label names its path because time-limited adaptation takes as many steps as that path affords."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({cpu_model()}, {describe_path(device)})"


BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")  # CPUs with native bf16 dot products (oneDNN uses them)


def _cpuinfo(field: str) -> str | None:
    """The first ``field`` line's value in /proc/cpuinfo; ``None`` where there is none (e.g. off Linux)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith(field):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where it is missing)."""
    return set((_cpuinfo("flags") or "").split())


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, or the platform's processor string."""
    import platform

    return _cpuinfo("model name") or platform.processor() or "unknown CPU"


def has_fast_bf16(device) -> bool:
    """Whether bf16 matrix products run natively: AVX-512 BF16 or AMX on a CPU, bf16 support on a GPU. Elsewhere
    autocast emulates bf16 and is slower than fp32."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and bool(cpu_flags() & set(BF16_CPU_FLAGS))


def fast_precision(device) -> str:
    """The precision that adaptation and inference should run in on ``device``: ``bf16`` (under autocast, with
    channels_last tensors) where it is native, else ``fp32``.

    torch.compile is not used: on the CPU its compilation takes longer than it saves on one image.
    """
    return "bf16" if has_fast_bf16(device) else "fp32"


def describe_path(device) -> str:
    """What :func:`fast_precision` picks, in words for a summary line: ``bf16+channels_last`` or ``fp32``."""
    return "bf16+channels_last" if fast_precision(device) == "bf16" else "fp32"
