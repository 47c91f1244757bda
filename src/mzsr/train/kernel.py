"""Training the kernel predictor (``mzsr.estimate.predictor``): HR patches of the training images, blurred by
random kernels of the estimator's family, subsampled like the SR model and rounded to uint8; the net regresses
the kernel's log-covariance (L1). Validation: the mean error on fixed Set14 patches and kernels; the best is kept.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from ..config import config
from ..degrade import degrade_torch
from ..io import atomic_write, data_root
from ..estimate.predictor import KernelNet, random_kernels
from ..schedules import predictor_lr
from .common import make_sampler, open_run
from .data import PatchSampler, load_images
from .loop import Clock, RunLog, code_version, drive, parse_duration, save_training, start_or_resume


@config
class KernelConfig:
    scale: int = 2
    downsample: Literal["direct", "bicubic"] = "direct"
    train_dirs: list[str] = field(default_factory=list)  # empty: T91 + BSDS500_test under $MZSR_DATA
    patch: int = 64  # LR pixels per side (the HR patch is scale times larger)
    batch: int = 16
    steps: int = 100_000
    lr: float = 1e-3
    lr_drop_at: int = 0  # from this step on, lr / 10 (0: never); e.g. set on --resume for a final phase
    channels: int = 32
    val_every: int = 500  # 0: no validation
    val_size: int = 256  # Set14 patches (each with its own fixed random kernel)
    checkpoint_minutes: float = 3.0
    time_budget: str = ""
    seed: int = 0
    device: str = "auto"
    run_dir: str = "runs/kernel-predictor-x2"


def make_batch(hr: torch.Tensor, rng: np.random.Generator, cfg: KernelConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(LR patches as uint8-rounded floats, their kernels' log-covariances) for a batch of HR patches."""
    kernels, targets = random_kernels(rng, hr.shape[0], cfg.scale)
    lr = degrade_torch(hr, kernels, cfg.scale, cfg.downsample)
    return lr.mul(255).round().clamp(0, 255).div(255), targets


def validation_set(cfg: KernelConfig) -> tuple[torch.Tensor, torch.Tensor]:
    files = sorted((data_root() / "benchmark" / "Set14" / "HR").glob("*.png"))
    sampler = PatchSampler(load_images(files), cfg.patch * cfg.scale, np.random.default_rng(cfg.seed + 1))
    return make_batch(sampler.batch(cfg.val_size), np.random.default_rng(cfg.seed + 2), cfg)


def save_predictor(path: Path, net: KernelNet, card: dict) -> None:
    tensors = {k: v.detach().float().cpu().contiguous() for k, v in net.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp))
    atomic_write(path.with_suffix(".json"), lambda tmp: Path(tmp).write_text(json.dumps(card, indent=1) + "\n"))


def run(cfg: KernelConfig, resume: bool = False) -> Path:
    stop, device, ddp, run_dir, files = open_run(cfg, resume)
    sampler, rng = make_sampler(files, cfg.patch * cfg.scale, cfg.seed)
    net = KernelNet(cfg.channels).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    ckpt = run_dir / "checkpoint.pt"
    step, best, curve, wall, _ = start_or_resume(ckpt, net, opt, rng, resume, worst=float("inf"))
    model = torch.nn.parallel.DistributedDataParallel(net) if ddp.world > 1 else net
    val_x, val_y = validation_set(cfg) if ddp.main and cfg.val_every > 0 else (None, None)
    log = RunLog(run_dir, ddp.main)
    clock = Clock(parse_duration(cfg.time_budget), cfg.checkpoint_minutes * 60)
    wall0 = wall

    def train_step(i: int) -> dict:
        x, y = make_batch(sampler.batch(cfg.batch), rng, cfg)  # every rank draws the batch, keeps its share
        x, y = x[ddp.rank::ddp.world].to(device), y[ddp.rank::ddp.world].to(device)
        for group in opt.param_groups:
            group["lr"] = predictor_lr(i, cfg.lr, cfg.lr_drop_at)
        loss = F.l1_loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if ddp.main and (i + 1) % 50 == 0:
            log.write(step=i + 1, loss=loss.item(), time=round(wall0 + clock.elapsed(), 1))
        return {"loss": f"{loss.item():.3f}"}

    def evaluate(i: int) -> str:
        nonlocal best
        net.eval()
        with torch.no_grad():
            err = (net(val_x.to(device)) - val_y.to(device)).abs().mean(0).cpu()
        net.train()
        score = float(err.mean())
        curve.append({"step": i, "val_log_cov_l1": round(score, 4)})
        log.write(step=i, val_log_cov_l1=score, val_per_entry=[round(float(e), 4) for e in err])
        if score < best:
            best = score
            card = {"name": f"predictor-{cfg.downsample}-x{cfg.scale}", "scale": cfg.scale,
                    "downsample": cfg.downsample, "channels": cfg.channels,
                    "training": {"config": dataclasses.asdict(cfg),
                                 "data": sorted({str(Path(f).parent) for f in files}), "data_files": len(files),
                                 "steps": i, "wall_time_s": round(wall0 + clock.elapsed(), 1),
                                 "code_version": code_version()},
                    "metrics": {"set14_val_log_cov_l1": round(score, 4)}, "validation_curve": curve}
            save_predictor(run_dir / "best.safetensors", net, card)
        return f"step {i}: Set14 patches, mean |log-covariance error| {score:.4f}"

    def checkpoint(i: int) -> None:
        save_training(ckpt, net, opt, rng, dict(step=i, best=best, curve=curve, wall=wall0 + clock.elapsed()),
                      dataclasses.asdict(cfg))

    drive(step=step, total=cfg.steps, desc=f"kernel predictor ×{cfg.scale}", ddp=ddp, stop=stop, clock=clock,
          val_every=cfg.val_every, train_step=train_step, evaluate=evaluate, checkpoint=checkpoint)
    return run_dir
