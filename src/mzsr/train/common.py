"""Setup shared by the two stages: data, network, optimizer state, resume and model cards."""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from ..io import data_root, portable_path
from ..net import SRNet
from .data import PatchSampler, list_images, load_images
from ..runtime import pick_device
from .loop import Distributed, StopFlag, code_version, prepare_run_dir

DEFAULT_TRAIN_DIRS = ("train/T91", "train/BSDS500_test")


def training_files(train_dirs: list[str]) -> list[Path]:
    dirs = [Path(d) if Path(d).is_absolute() or Path(d).exists() else data_root() / d
            for d in (train_dirs or DEFAULT_TRAIN_DIRS)]
    return list_images(dirs)


def open_run(cfg, resume: bool):
    """(stop flag, device, distributed setup, run folder, training files) for a stage's config; the main rank
    prepares the run folder (config, data list, code version)."""
    stop = StopFlag()  # first, so that a signal during setup still ends in a clean stop
    device = pick_device(cfg.device)
    ddp = Distributed(device)
    files = training_files(cfg.train_dirs)
    if ddp.main:
        prepare_run_dir(Path(cfg.run_dir), dataclasses.asdict(cfg), files, resume)
    return stop, device, ddp, Path(cfg.run_dir), files


def make_sampler(files: list[Path], patch: int, seed: int) -> tuple[PatchSampler, np.random.Generator]:
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    return PatchSampler(load_images(files), patch, rng), rng


def make_card(name: str, scale: int, downsample: str, step_lrs: list, net: SRNet, config: dict,
              files: list[Path], step: int, wall_s: float, curve: list[dict], metrics: dict, **extra) -> dict:
    conv = net.convs[0]
    return {
        "name": name,
        "scale": scale,
        "downsample": downsample,
        "step_lrs": step_lrs,
        "arch": {"channels": conv.out_channels, "depth": len(net.convs), "bias": conv.bias is not None},
        "training": {"config": config, "data": sorted({portable_path(Path(f).parent) for f in files}),
                     "data_files": len(files), "steps": step, "wall_time_s": round(wall_s, 1),
                     "code_version": code_version(), "saved": time.strftime("%Y-%m-%dT%H:%M:%S")},
        "metrics": metrics,
        "validation_curve": curve,
        **extra,
    }
