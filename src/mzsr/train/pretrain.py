"""Stage 1 (spec §3): large-scale bicubic pretraining of the SR network with Adam and L1 → θ_T."""
from __future__ import annotations

import dataclasses
from dataclasses import field
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F

from ..config import config
from ..models import load_model, save_model
from ..net import SRNet
from ..runtime import autocast
from ..schedules import RELEASE_STEP_LRS, pretrain_lr
from .common import make_card, make_sampler, open_run
from .data import bicubic_pair
from .loop import Clock, RunLog, drive, parse_duration, save_training, start_or_resume
from .validate import psnr_after_steps, set14_pairs


@config
class PretrainConfig:
    scale: int = 2
    train_dirs: list[str] = field(default_factory=list)  # empty: T91 + BSDS500_test under $MZSR_DATA
    patch: int = 64
    batch: int = 16
    steps: int = 500_000
    lr: float = 4e-4
    lr_halve_every: int = 100_000
    lr_floor: float = 1e-4
    val_every: int = 500  # 0: no validation
    val_limit: int = 14
    checkpoint_minutes: float = 3.0
    time_budget: str = ""
    seed: int = 0
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    channels_last: bool = False
    device: str = "auto"
    run_dir: str = "runs/pretrain-x2"
    channels: int = 64
    depth: int = 8
    init: str = ""  # warm start (a .safetensors path or shipped model name), e.g. ×4 from the ×2 weights


def run(cfg: PretrainConfig, resume: bool = False) -> Path:
    stop, device, ddp, run_dir, files = open_run(cfg, resume)
    sampler, rng = make_sampler(files, cfg.patch, cfg.seed)
    net = SRNet(cfg.channels, cfg.depth).to(device)
    if cfg.init:
        net.load_state_dict(load_model(cfg.init, device).params)
    if cfg.channels_last:
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    ckpt = run_dir / "checkpoint.pt"
    step, best, curve, wall, _ = start_or_resume(ckpt, net, opt, rng, resume, worst=float("-inf"))
    model = torch.nn.parallel.DistributedDataParallel(net) if ddp.world > 1 else net
    val_pairs = set14_pairs(cfg.scale, None, "bicubic", cfg.val_limit) if ddp.main and cfg.val_every > 0 else []
    log = RunLog(run_dir, ddp.main)
    clock = Clock(parse_duration(cfg.time_budget), cfg.checkpoint_minutes * 60)
    wall0 = wall

    def train_step(i: int) -> dict:
        hr = sampler.batch(cfg.batch)  # every rank draws the same batch and keeps its own share
        hr = hr[ddp.rank::ddp.world].to(device)
        x = bicubic_pair(hr, cfg.scale)
        if cfg.channels_last:
            x, hr = x.contiguous(memory_format=torch.channels_last), hr.contiguous(memory_format=torch.channels_last)
        for g in opt.param_groups:
            g["lr"] = pretrain_lr(i, cfg.lr, cfg.lr_halve_every, cfg.lr_floor)
        with autocast(device, cfg.precision):
            loss = F.l1_loss(model(x).float(), hr)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if ddp.main and (i + 1) % 50 == 0:
            log.write(step=i + 1, loss=loss.item(), lr=opt.param_groups[0]["lr"], time=round(wall0 + clock.elapsed(), 1))
        return {"loss": f"{loss.item():.4f}"}

    def evaluate(i: int) -> str:
        nonlocal best
        params = {k: v.detach() for k, v in net.state_dict().items()}
        with torch.no_grad():
            score = psnr_after_steps(net, params, val_pairs, None, cfg.scale, "bicubic", [0], [0.0], device)[0]
        curve.append({"step": i, "set14_bicubic_psnr": round(score, 4)})
        log.write(step=i, val_set14_bicubic_psnr=score)
        if score > best:
            best = score
            card = make_card(f"pretrained-x{cfg.scale}", cfg.scale, "bicubic",
                             RELEASE_STEP_LRS["direct-x2" if cfg.scale == 2 else "direct-x4"], net,
                             dataclasses.asdict(cfg), files, i, wall0 + clock.elapsed(), curve,
                             {"set14_bicubic_psnr": round(score, 4)}, stage="pretrain")
            save_model(run_dir / "best.safetensors", net.state_dict(), card)
        return f"step {i}: Set14 bicubic ×{cfg.scale} {score:.3f} dB"

    def checkpoint(i: int) -> None:
        save_training(ckpt, net, opt, rng, dict(step=i, best=best, curve=curve, wall=wall0 + clock.elapsed()),
                      dataclasses.asdict(cfg))

    drive(step=step, total=cfg.steps, desc=f"pretrain ×{cfg.scale}", ddp=ddp, stop=stop, clock=clock,
          val_every=cfg.val_every, train_step=train_step, evaluate=evaluate,
          checkpoint=checkpoint)
    return run_dir
