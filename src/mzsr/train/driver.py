"""The one training loop. A stage (pretraining, meta-training, the kernel predictor) says how to take a step, how
to score its weights and what its card says; the loop owns everything around that: the run folder, resume, the
log, the clock, DDP, keeping the best weights and their card.

Everything that can fail (the config's combinations, the checkpoint to resume, the initial weights, the data)
is read before the run folder is touched, so that a run that cannot start leaves the disk as it was.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import NamedTuple, Protocol

import numpy as np
import torch
from tqdm import tqdm

from ..io import portable_path
from ..models import save_model
from ..runtime import pick_device
from .common import training_files
from .loop import (Clock, Distributed, RunLog, StopFlag, check_run_dir, code_version, load_checkpoint,
                   parse_duration, prepare_run_dir, rng_state, save_checkpoint, set_rng_state)


class Evaluation(NamedTuple):
    """One validation of a stage's current weights."""
    value: float  # what best-keeping compares (``Stage.minimise`` says which way is better)
    curve: dict  # the validation curve's entry (the loop adds the step)
    log: dict  # the log.jsonl record (the loop adds the step)
    metrics: dict  # the card's metrics, should these weights be the best
    text: str  # the progress line


class Stage(Protocol):
    """What the loop drives. A stage is built from ``(cfg, files, device, ddp, validating)``: the config, the
    training images, the device, the distributed setup and whether this process validates (main rank, val_every
    > 0); its constructor reads all it needs (initial weights, validation data) and fails there if it cannot."""
    desc: str  # the progress bar's label
    log_every: int  # training steps between log records
    minimise: bool  # a lower Evaluation.value is better
    net: torch.nn.Module  # the weights checkpointed and kept as best.safetensors
    opt: torch.optim.Optimizer
    rng: np.random.Generator  # the stream its data come from (checkpointed with torch's)

    def train_step(self, step: int) -> dict:
        """One update (step counted from 0); returns the values to log, ``loss`` first."""

    def evaluate(self) -> Evaluation:
        """Score the current weights (main rank only)."""

    def state(self) -> dict:
        """What else the stage keeps in the checkpoint (beside weights, optimizer and RNG streams)."""

    def load_state(self, saved: dict) -> None:
        """Restore ``state()`` from a checkpoint's contents."""

    def card(self, training: dict, metrics: dict, curve: list[dict]) -> dict:
        """The model card saved beside best.safetensors, from the loop's training record (config, data, steps,
        time, code version), the evaluation's metrics and the validation curve."""


def training_record(cfg, files: list[Path], step: int, wall_s: float) -> dict:
    return {"config": dataclasses.asdict(cfg), "data": sorted({portable_path(Path(f).parent) for f in files}),
            "data_files": len(files), "steps": step, "wall_time_s": round(wall_s, 1), "code_version": code_version(),
            "saved": time.strftime("%Y-%m-%dT%H:%M:%S")}


def _restore(stage: Stage, saved: dict, ckpt: Path) -> None:
    try:
        stage.net.load_state_dict(saved["net"])
        stage.opt.load_state_dict(saved["opt"])
    except (RuntimeError, ValueError, KeyError) as e:
        raise ValueError(f"{ckpt}: does not fit this run's network or optimizer ({str(e).splitlines()[0]})") from None
    set_rng_state(stage.rng, saved["rng"])
    stage.load_state(saved)


def train(cfg, make_stage, resume: bool = False, clock: Clock | None = None) -> Path:
    """Run (or with ``resume`` continue exactly, from ``checkpoint.pt``) the stage ``make_stage`` builds, in
    ``cfg.run_dir``; returns the run folder. ``clock`` replaces the wall clock (tests)."""
    budget_s = parse_duration(cfg.time_budget)
    run_dir = Path(cfg.run_dir)
    ckpt = run_dir / "checkpoint.pt"
    check_run_dir(run_dir, resume)
    stop = StopFlag()  # before the setup, so that a signal during it still ends in a clean stop
    try:
        saved = load_checkpoint(ckpt) if resume and ckpt.exists() else None
        device = pick_device(cfg.device)
        ddp = Distributed(device)
        files = training_files(cfg.train_dirs)
        stage = make_stage(cfg, files, device, ddp, ddp.main and cfg.val_every > 0)
        step, best, curve, wall0 = 0, (np.inf if stage.minimise else -np.inf), [], 0.0
        if saved:
            _restore(stage, saved, ckpt)
            step, best, curve, wall0 = (saved[k] for k in ("step", "best", "curve", "wall"))
        log = RunLog(run_dir, ddp.main)
        if ddp.main:
            prepare_run_dir(run_dir, dataclasses.asdict(cfg), files)
            log.keep_until(step if saved else -1)
        clock = clock or Clock(budget_s, cfg.checkpoint_minutes * 60)
        _loop(cfg, stage, step, best, curve, wall0, files, ddp, stop, clock, log)
        ddp.close()
    finally:
        stop.restore()
    return run_dir


def _loop(cfg, stage: Stage, step: int, best: float, curve: list, wall0: float, files, ddp: Distributed,
          stop: StopFlag, clock: Clock, log: RunLog) -> None:
    """Train to ``cfg.steps``, validating every ``cfg.val_every`` steps, at the last step and when stopping (budget
    or signal), so that the end is never unscored; checkpoint every ``cfg.checkpoint_minutes`` and at the end."""
    run_dir = Path(cfg.run_dir)
    validating = ddp.main and cfg.val_every > 0
    bar = tqdm(total=cfg.steps, initial=step, disable=not ddp.main, desc=stage.desc, unit="step")

    def evaluate(i: int) -> None:
        nonlocal best
        ev = stage.evaluate()
        curve.append({"step": i, **ev.curve})
        log.write(step=i, **ev.log)
        if ev.value < best if stage.minimise else ev.value > best:
            best = ev.value
            card = stage.card(training_record(cfg, files, i, wall0 + clock.elapsed()), ev.metrics, curve)
            save_model(run_dir / "best.safetensors", stage.net.state_dict(), card)
        bar.write(f"step {i}: {ev.text}")

    def checkpoint(i: int) -> None:
        save_checkpoint(run_dir / "checkpoint.pt", net=stage.net.state_dict(), opt=stage.opt.state_dict(),
                        rng=rng_state(stage.rng), config=dataclasses.asdict(cfg), step=i, best=best, curve=curve,
                        wall=wall0 + clock.elapsed(), **stage.state())

    if validating and step == 0:
        evaluate(0)
    while step < cfg.steps:
        record = stage.train_step(step)
        step += 1
        if ddp.main and step % stage.log_every == 0:
            log.write(step=step, **record, time=round(wall0 + clock.elapsed(), 1))
        bar.update()
        bar.set_postfix(loss=f"{record['loss']:.4f}")
        stopping = ddp.any(stop.requested or clock.out_of_budget())
        if validating and (step % cfg.val_every == 0 or step == cfg.steps or stopping):
            evaluate(step)
        if stopping:
            break
        if clock.checkpoint_due() and ddp.main:
            checkpoint(step)
    if ddp.main:
        checkpoint(step)
    bar.close()
