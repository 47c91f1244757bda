"""Training the kernel predictor (``mzsr.estimate.predictor``): HR patches of the training images, blurred by
random kernels of the estimator's family, subsampled like the SR model and rounded to uint8 (with
``task_noise``/``task_jpeg``, each patch then corrupted like a real photo's LR,
:func:`mzsr.train.data.task_corruption`); the net regresses the kernel's log-covariance (L1). Validation: the mean
error on fixed Set14 patches and kernels, corrupted alike when training is; the best is kept.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from ..config import config, option
from ..degrade import corrupt_torch, degrade_torch
from ..estimate.predictor import KernelNet, random_kernels
from ..io import hr_files
from ..schedules import predictor_lr
from .common import (check_jpeg_option, checkpoint_option, clean_share_option, device_option, make_sampler,
                     run_dir_option, task_jpeg_option, task_noise_option, time_budget_option, train_dirs_option)
from .data import PatchSampler, load_images, task_corruption
from .driver import Evaluation, train


@config
class KernelConfig:
    scale: int = option(2, "scale factor", at_least=2)
    downsample: Literal["direct", "bicubic"] = option("direct", "the subsampling after the blur")
    train_dirs: list[str] = train_dirs_option()
    patch: int = option(64, "LR patch side (the HR patch is scale times larger)", at_least=1)
    batch: int = option(16, "patches per step", at_least=1)
    steps: int = option(100_000, "training steps", at_least=0)
    lr: float = option(1e-3, "Adam learning rate", above=0)
    lr_drop_at: int = option(0, "from this step on, a tenth of lr (0: never), e.g. set on --resume for a final "
                             "phase", at_least=0)
    channels: int = option(32, "feature channels of the predictor", at_least=1)
    task_noise: float = task_noise_option()
    task_jpeg: int = task_jpeg_option()
    clean_share: float = clean_share_option()
    val_every: int = option(500, "steps between validations (0: none)", at_least=0)
    val_size: int = option(256, "Set14 validation patches, each with its own fixed random kernel", at_least=1)
    checkpoint_minutes: float = checkpoint_option()
    time_budget: str = time_budget_option()
    seed: int = option(0, "seed of the initial weights, the patch and kernel draws", at_least=0)
    device: str = device_option()
    run_dir: str = run_dir_option("runs/kernel-predictor-x2")

    def check(self) -> None:
        check_jpeg_option("task_jpeg", self.task_jpeg)


def make_batch(hr: torch.Tensor, rng: np.random.Generator, cfg: KernelConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(LR patches as uint8-rounded floats, their kernels' log-covariances) for a batch of HR patches."""
    kernels, targets = random_kernels(rng, hr.shape[0], cfg.scale)
    lr = degrade_torch(hr, kernels, cfg.scale, cfg.downsample).mul(255).round().clamp(0, 255).div(255)
    if cfg.task_noise or cfg.task_jpeg:
        lr = torch.cat([corrupt_torch(p[None], *task_corruption(rng, cfg.task_noise, cfg.task_jpeg, cfg.clean_share),
                                      rng) for p in lr])
    return lr, targets


def validation_set(cfg: KernelConfig) -> tuple[torch.Tensor, torch.Tensor]:
    sampler = PatchSampler(load_images(hr_files("Set14")), cfg.patch * cfg.scale, np.random.default_rng(cfg.seed + 1))
    return make_batch(sampler.batch(cfg.val_size), np.random.default_rng(cfg.seed + 2), cfg)


class KernelStage:
    """One Adam step on the L1 error of the predicted log-covariances."""
    log_every = 50
    minimise = True

    def __init__(self, cfg: KernelConfig, files: list[Path], device, ddp, validating: bool):
        self.cfg, self.device, self.ddp = cfg, device, ddp
        self.sampler, self.rng = make_sampler(files, cfg.patch * cfg.scale, cfg.seed)
        self.net = KernelNet(cfg.channels).to(device)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=cfg.lr)
        self.model = torch.nn.parallel.DistributedDataParallel(self.net) if ddp.world > 1 else self.net
        self.val = validation_set(cfg) if validating else None
        self.desc = f"kernel predictor ×{cfg.scale}"

    def train_step(self, step: int) -> dict:
        cfg, ddp = self.cfg, self.ddp
        x, y = make_batch(self.sampler.batch(cfg.batch), self.rng, cfg)  # every rank draws it, keeps its share
        x, y = x[ddp.rank::ddp.world].to(self.device), y[ddp.rank::ddp.world].to(self.device)
        for group in self.opt.param_groups:
            group["lr"] = predictor_lr(step, cfg.lr, cfg.lr_drop_at)
        loss = F.l1_loss(self.model(x), y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"loss": loss.item()}

    def evaluate(self) -> Evaluation:
        val_x, val_y = self.val
        self.net.eval()
        with torch.no_grad():
            err = (self.net(val_x.to(self.device)) - val_y.to(self.device)).abs().mean(0).cpu()
        self.net.train()
        score = float(err.mean())
        return Evaluation(score, {"val_log_cov_l1": round(score, 4)},
                          {"val_log_cov_l1": score, "val_per_entry": [round(float(e), 4) for e in err]},
                          {"set14_val_log_cov_l1": round(score, 4)},
                          f"Set14 patches, mean |log-covariance error| {score:.4f}")

    def state(self) -> dict:
        return {}

    def load_state(self, saved: dict) -> None:
        pass

    def card(self, training: dict, metrics: dict, curve: list[dict]) -> dict:
        cfg = self.cfg
        return {"name": f"predictor-{cfg.downsample}-x{cfg.scale}", "scale": cfg.scale, "downsample": cfg.downsample,
                "channels": cfg.channels, "training": training, "metrics": metrics, "validation_curve": curve}


def run(cfg: KernelConfig, resume: bool = False, clock=None) -> Path:
    return train(cfg, KernelStage, resume, clock)
