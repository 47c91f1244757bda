"""Stage 1 (spec §3): large-scale bicubic pretraining of the SR network with Adam and L1 → θ_T."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F

from ..config import config, option
from ..models import load_model
from ..net import SRNet
from ..runtime import autocast
from ..schedules import RELEASE_STEP_LRS, pretrain_lr
from .common import (checkpoint_option, device_option, make_card, make_sampler, run_dir_option,
                     time_budget_option, train_dirs_option)
from .data import bicubic_pair
from .driver import Evaluation, train
from .validate import psnr_after_steps, set14_pairs


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


class PretrainStage:
    """One Adam step on the L1 loss of bicubic ↓↑ patches against their HR originals."""
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
        self.pairs = set14_pairs(cfg.scale, None, "bicubic", cfg.val_limit) if validating else []
        self.desc = f"pretrain ×{cfg.scale}"

    def train_step(self, step: int) -> dict:
        cfg = self.cfg
        hr = self.sampler.batch(cfg.batch)  # every rank draws the same batch and keeps its own share
        hr = hr[self.ddp.rank::self.ddp.world].to(self.device)
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
        with torch.no_grad():
            score = psnr_after_steps(self.net, params, self.pairs, None, self.cfg.scale, "bicubic", [0], [0.0],
                                     self.device)[0]
        return Evaluation(score, {"set14_bicubic_psnr": round(score, 4)}, {"val_set14_bicubic_psnr": score},
                          {"set14_bicubic_psnr": round(score, 4)}, f"Set14 bicubic ×{self.cfg.scale} {score:.3f} dB")

    def state(self) -> dict:
        return {}

    def load_state(self, saved: dict) -> None:
        pass

    def card(self, training: dict, metrics: dict, curve: list[dict]) -> dict:
        scale = self.cfg.scale
        return make_card(f"pretrained-x{scale}", scale, "bicubic",
                         RELEASE_STEP_LRS["direct-x2" if scale == 2 else "direct-x4"], self.net, training, metrics,
                         curve, stage="pretrain")


def run(cfg: PretrainConfig, resume: bool = False, clock=None) -> Path:
    return train(cfg, PretrainStage, resume, clock)
