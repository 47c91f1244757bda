"""Stage 1 (spec §3): large-scale bicubic pretraining of the SR network with Adam and L1 → θ_T.

``degradation="blind"`` trains the same way on pairs whose LR has a random kernel of its own and, with
``task_noise``/``task_jpeg``, a camera's noise and JPEG (:func:`mzsr.train.data.blind_pair`): a prior that
removes them before any adapting, for real photos (the ``real-x2`` model).
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from ..config import ConfigError, config, option
from ..models import load_model
from ..net import SRNet
from ..runtime import autocast
from ..schedules import RELEASE_STEP_LRS, pretrain_lr
from .common import (check_jpeg_option, check_kernel_min_var, checkpoint_option, clean_share_option, device_option,
                     make_card, make_sampler, run_dir_option, task_jpeg_option, task_noise_option, time_budget_option,
                     train_dirs_option)
from .data import bicubic_pair, blind_pair
from .driver import Evaluation, train
from .validate import psnr_after_steps, set14_pairs, validation_sets

BLIND_VAL_KERNELS = ["iso2.0", "ani4-1"]  # the meta stage's defaults; the first is also validated corrupted


@config
class PretrainConfig:
    scale: int = option(2, "scale factor", at_least=2)
    train_dirs: list[str] = train_dirs_option()
    patch: int = option(64, "HR patch side", at_least=1)
    batch: int = option(16, "patches per step", at_least=1)
    steps: int = option(500_000, "training steps", at_least=0)
    lr: float = option(4e-4, "Adam learning rate at the start", above=0)
    lr_halve_every: int = option(100_000, "steps between halvings of the learning rate", at_least=1)
    lr_floor: float = option(1e-4, "the learning rate's lower bound", at_least=0)
    val_every: int = option(500, "steps between validations (0: none)", at_least=0)
    val_limit: int = option(14, "Set14 images validated on", at_least=1)
    checkpoint_minutes: float = checkpoint_option()
    time_budget: str = time_budget_option()
    seed: int = option(0, "seed of the initial weights and the patch draws", at_least=0)
    precision: Literal["fp32", "bf16", "fp16"] = option("fp32", "arithmetic of the forward pass")
    channels_last: bool = option(False, "NHWC memory layout (for bf16/fp16 convolutions on GPUs)")
    device: str = device_option()
    run_dir: str = run_dir_option("runs/pretrain-x2")
    channels: int = option(64, "feature channels of the network", at_least=1)
    depth: int = option(8, "convolution layers of the network", at_least=2)
    init: str = option("", "warm start: a .safetensors path or shipped model name (empty: random weights)")
    degradation: Literal["bicubic", "blind"] = option(
        "bicubic", "the pairs' LR: bicubic ↓ (stage 1), or blind: a random kernel per patch, then --downsample and "
        "the --task-noise/--task-jpeg corruption (a prior for real photos)")
    downsample: Literal["direct", "bicubic"] = option("direct", "blind: the subsampling after the blur")
    kernel_min_var: float = option(0.35, "blind: the random kernels' smallest variance (λ1 ~ U[it, 2.5·s], "
                                   "λ2 ~ U[it, λ1])", above=0)
    task_noise: float = task_noise_option()
    task_jpeg: int = task_jpeg_option()
    clean_share: float = clean_share_option()
    val_noise: float = option(3.0, "blind: noise σ of the corrupted validation crops (grey levels)", at_least=0)
    val_jpeg: int = option(80, "blind: JPEG quality of the corrupted validation crops (0: none)", at_least=0)

    def check(self) -> None:
        """Options that only blind pairs use are refused with bicubic ones, rather than ignored."""
        for name, value in (("task_jpeg", self.task_jpeg), ("val_jpeg", self.val_jpeg)):
            check_jpeg_option(name, value)
        if self.degradation == "bicubic" and (self.task_noise or self.task_jpeg):
            raise ConfigError("task_noise" if self.task_noise else "task_jpeg", "applies to degradation blind")
        check_kernel_min_var(self.kernel_min_var, self.scale)


class PretrainStage:
    """One Adam step on the L1 loss of bicubic ↓↑ (or blind, :func:`blind_pair`) patches against their HR
    originals. Blind weights are scored un-adapted: the mean Y-PSNR of the validation kernels' crops, clean and
    (the first kernel) corrupted by ``val_noise``/``val_jpeg``."""
    log_every = 50
    minimise = False

    def __init__(self, cfg: PretrainConfig, files: list[Path], device, ddp, validating: bool):
        self.cfg, self.device, self.ddp = cfg, device, ddp
        self.sampler, self.rng = make_sampler(files, cfg.patch, cfg.seed)
        self.net = SRNet(cfg.channels, cfg.depth).to(device)
        if cfg.init:
            self.net.load_state_dict(load_model(cfg.init, device).params)
        if cfg.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=cfg.lr)
        self.model = torch.nn.parallel.DistributedDataParallel(self.net) if ddp.world > 1 else self.net
        self.blind = cfg.degradation == "blind"
        if not validating:
            self.sets = {}
        elif self.blind:
            self.sets = validation_sets(BLIND_VAL_KERNELS, cfg.scale, cfg.downsample, cfg.val_limit, 256,
                                        cfg.val_noise, cfg.val_jpeg or None)
        else:
            self.sets = {"bicubic": (None, set14_pairs(cfg.scale, None, "bicubic", cfg.val_limit), 0.0, None)}
        self.desc = f"pretrain ×{cfg.scale}" + " blind" * self.blind

    def train_step(self, step: int) -> dict:
        cfg = self.cfg
        hr = self.sampler.batch(cfg.batch)  # every rank draws the same batch and keeps its own share
        if self.blind:  # drawn for the whole batch, so every rank's random draws stay in step
            x = blind_pair(hr, self.rng, cfg.scale, cfg.downsample, kernel_min_var=cfg.kernel_min_var,
                           noise=cfg.task_noise, jpeg=cfg.task_jpeg, clean_share=cfg.clean_share)
            x = x[self.ddp.rank::self.ddp.world].to(self.device)
        hr = hr[self.ddp.rank::self.ddp.world].to(self.device)
        if not self.blind:
            x = bicubic_pair(hr, cfg.scale)
        if cfg.channels_last:
            x, hr = x.contiguous(memory_format=torch.channels_last), hr.contiguous(memory_format=torch.channels_last)
        for g in self.opt.param_groups:
            g["lr"] = pretrain_lr(step, cfg.lr, cfg.lr_halve_every, cfg.lr_floor)
        with autocast(self.device, cfg.precision):
            loss = F.l1_loss(self.model(x).float(), hr)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"loss": loss.item(), "lr": self.opt.param_groups[0]["lr"]}

    def evaluate(self) -> Evaluation:
        params = {k: v.detach() for k, v in self.net.state_dict().items()}
        downsample = self.cfg.downsample if self.blind else "bicubic"
        with torch.no_grad():
            scores = {f"set14_{name}_psnr": round(psnr_after_steps(self.net, params, pairs, None, self.cfg.scale,
                                                                   downsample, [0], [0.0], self.device)[0], 4)
                      for name, (_, pairs, _, _) in self.sets.items()}
        score = float(np.mean(list(scores.values())))
        text = ", ".join(f"{k[6:-5]} {v:.3f}" for k, v in scores.items())
        return Evaluation(score, scores, {f"val_{k}": v for k, v in scores.items()}, scores,
                          f"Set14 ×{self.cfg.scale} un-adapted: {text} dB")

    def state(self) -> dict:
        return {}

    def load_state(self, saved: dict) -> None:
        pass

    def card(self, training: dict, metrics: dict, curve: list[dict]) -> dict:
        scale = self.cfg.scale
        if self.blind:
            return make_card(f"real-x{scale}", scale, self.cfg.downsample,
                             RELEASE_STEP_LRS["direct-x2" if scale == 2 else "direct-x4"], self.net, training,
                             metrics, curve, stage="pretrain-blind")
        return make_card(f"pretrained-x{scale}", scale, "bicubic",
                         RELEASE_STEP_LRS["direct-x2" if scale == 2 else "direct-x4"], self.net, training, metrics,
                         curve, stage="pretrain")


def run(cfg: PretrainConfig, resume: bool = False, clock=None) -> Path:
    return train(cfg, PretrainStage, resume, clock)
