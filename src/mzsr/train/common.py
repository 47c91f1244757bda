"""What the stages share: their run options, the training images, the patch sampler and the card of an SR
network."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..config import ConfigError, option
from ..io import data_root
from ..net import SRNet
from .data import PatchSampler, list_images, load_images
from .loop import parse_duration
from ..validate import JPEG_QUALITIES, MAX_NOISE

DEFAULT_TRAIN_DIRS = ("train/T91", "train/BSDS500_test")


# The options every stage's config has, each a fresh field per config class.
def train_dirs_option():
    return option([], "folders of HR training images (empty: T91 and BSDS500_test under $MZSR_DATA)")


def checkpoint_option():
    return option(3.0, "minutes between checkpoints", at_least=0)


def time_budget_option():
    return option("", "stop cleanly after this long, e.g. 90m or 2h (empty: no limit)", parse=parse_duration)


def device_option():
    return option("auto", "auto, cpu or cuda")


def task_noise_option():
    return option(0.0, "most noise σ of a task's LR, grey levels of 0..255, drawn U[0, max] (0: none)",
                  at_least=0, at_most=MAX_NOISE)


def task_jpeg_option():
    return option(0, "lowest JPEG quality of a task's LR, drawn U{q..95} (0: none)", at_least=0)


def clean_share_option():
    return option(0.0, "share of tasks with neither noise nor JPEG", at_least=0, at_most=1)


def check_jpeg_option(name: str, value: int) -> None:
    """A JPEG option is 0 (none) or a quality that :func:`mzsr.degrade.corrupt` takes."""
    if value and not JPEG_QUALITIES[0] <= value <= JPEG_QUALITIES[1]:
        raise ConfigError(name, f"must be 0 (none) or a quality in {JPEG_QUALITIES[0]}..{JPEG_QUALITIES[1]}, "
                          f"got {value}")


def check_kernel_min_var(value: float, scale: int) -> None:
    """The task kernels' smallest variance may not pass λ1's upper end, 2.5·s (:func:`mzsr.kernels.random_kernel`)."""
    if not value <= 2.5 * scale:
        raise ConfigError("kernel_min_var", f"must be in (0, {2.5 * scale:g}] (λ1's upper end) at ×{scale}, "
                          f"got {value:g}")


def run_dir_option(default: str):
    return option(default, "run folder: config, log, checkpoint and best weights")


def training_files(train_dirs: list[str]) -> list[Path]:
    dirs = [Path(d) if Path(d).is_absolute() or Path(d).exists() else data_root() / d
            for d in (train_dirs or DEFAULT_TRAIN_DIRS)]
    return list_images(dirs)


def make_sampler(files: list[Path], patch: int, seed: int) -> tuple[PatchSampler, np.random.Generator]:
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    return PatchSampler(load_images(files), patch, rng), rng


def make_card(name: str, scale: int, downsample: str, step_lrs: list, net: SRNet, training: dict, metrics: dict,
              curve: list[dict], **extra) -> dict:
    """An SR model's card (``mzsr.models``): what it is, how it adapts, how it was trained and scored."""
    conv = net.convs[0]
    return {
        "name": name,
        "scale": scale,
        "downsample": downsample,
        "step_lrs": step_lrs,
        "arch": {"channels": conv.out_channels, "depth": len(net.convs), "bias": conv.bias is not None},
        "training": training,
        "metrics": metrics,
        "validation_curve": curve,
        **extra,
    }
