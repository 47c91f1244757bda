"""What both training stages share: run folders, atomic checkpoints, exact resume, signals, time budget,
JSONL logs, distributed setup (torchrun) and the model export."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from ..io import atomic_write


def parse_duration(text: str | None) -> float | None:
    """``90m``, ``2h``, ``45s`` or plain seconds → seconds; ``None`` or empty → no budget."""
    if not text:
        return None
    m = re.fullmatch(r"\s*([\d.]+)\s*([smh]?)\s*", str(text))
    if not m:
        raise ValueError(f"cannot read duration {text!r} (use e.g. 90m, 2h, 45s)")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def code_version() -> str:
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10)
        if rev.returncode == 0:
            return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    from importlib.metadata import version
    return "mzsr " + version("mzsr")


class Distributed:
    """Rank/world from torchrun's environment; a single process when not launched by it."""

    def __init__(self, device: torch.device):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def share(self, items: list) -> list:
        """This rank's slice of a list that every rank built identically."""
        return items[self.rank::self.world]

    def average_grads(self, params, count_local: int, count_total: int) -> None:
        """Turn per-rank gradient sums over ``count_local`` items into the mean over all ranks' items."""
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            if self.world > 1:
                dist.all_reduce(p.grad)
            p.grad /= count_total

    def any(self, flag: bool) -> bool:
        """True on every rank when any rank says so, so that all ranks stop at the same step."""
        if self.world == 1:
            return flag
        t = torch.tensor([float(flag)])
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            # leave together: a rank that tears its sockets down while the main rank still writes the last
            # checkpoint makes gloo abort the other one ("connection closed by peer")
            dist.barrier()
            dist.destroy_process_group()


class StopFlag:
    """SIGINT/SIGTERM ask the loop to checkpoint and stop after the current step."""

    def __init__(self):
        self.requested = False
        self._previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}

    def _handle(self, signum, frame):
        self.requested = True

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def rng_state(rng: np.random.Generator) -> dict:
    return {"numpy": rng.bit_generator.state, "torch": torch.get_rng_state()}


def set_rng_state(rng: np.random.Generator, state: dict) -> None:
    rng.bit_generator.state = state["numpy"]
    torch.set_rng_state(state["torch"])


def save_checkpoint(path: Path, **state) -> None:
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def save_training(path: Path, net, opt, rng: np.random.Generator, progress: dict, config: dict) -> None:
    """Everything an exact resume needs: weights, optimizer, RNG streams, step, best score, curve, wall time."""
    save_checkpoint(path, net=net.state_dict(), opt=opt.state_dict(), rng=rng_state(rng), config=config,
                    **progress)


def resume_training(path: Path, net, opt, rng: np.random.Generator) -> dict:
    """Load a checkpoint into ``net``, ``opt`` and ``rng``; returns the progress saved with it (step, best,
    curve, wall and whatever else the stage keeps)."""
    state = load_checkpoint(path)
    net.load_state_dict(state["net"])
    opt.load_state_dict(state["opt"])
    set_rng_state(rng, state["rng"])
    return {k: v for k, v in state.items() if k not in ("net", "opt", "rng", "config")}


def start_or_resume(ckpt: Path, net, opt, rng: np.random.Generator, resume: bool, worst: float):
    """(step, best score, validation curve, wall seconds, everything saved): a fresh run's (nothing saved:
    ``{}``), or with ``resume`` those saved in ``ckpt``, whose weights, optimizer and RNG streams are then
    restored too; a stage reads what else it keeps from the last item."""
    if resume and ckpt.exists():
        progress = resume_training(ckpt, net, opt, rng)
        return (*(progress[k] for k in ("step", "best", "curve", "wall")), progress)
    return 0, worst, [], 0.0, {}


class RunLog:
    """Appends JSON lines to ``log.jsonl`` in the run folder (main rank only)."""

    def __init__(self, run_dir: Path, enabled: bool = True):
        self.path = run_dir / "log.jsonl"
        self.enabled = enabled

    def write(self, **record) -> None:
        if self.enabled:
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")

    def records(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]


def prepare_run_dir(run_dir: Path, config: dict, data_files: list, resume: bool) -> None:
    """Create the run folder and keep its resolved config, data list and code version beside the weights."""
    if run_dir.exists() and (run_dir / "checkpoint.pt").exists() and not resume:
        raise FileExistsError(f"{run_dir} already holds a run: pass --resume to continue it or pick another --run-dir")
    run_dir.mkdir(parents=True, exist_ok=True)
    meta = {"config": config, "code_version": code_version(), "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    name = "run.json" if not (run_dir / "run.json").exists() else f"run-resume-{int(time.time())}.json"
    (run_dir / name).write_text(json.dumps(meta, indent=2) + "\n")
    (run_dir / "data.txt").write_text("".join(f"{f}\n" for f in data_files))


def saved_config(run_dir: Path) -> dict:
    """The config a run last ran with (its newest run record), for ``--resume`` without repeating options."""
    records = sorted(Path(run_dir).glob("run-resume-*.json")) or [Path(run_dir) / "run.json"]
    if not records[-1].is_file():
        raise FileNotFoundError(f"{run_dir}: no run to resume there (no run.json)")
    return json.loads(records[-1].read_text())["config"]


class Clock:
    """Wall-clock budget and checkpoint interval."""

    def __init__(self, budget_s: float | None, checkpoint_s: float):
        self.start = self.last_ckpt = time.monotonic()
        self.budget_s, self.checkpoint_s = budget_s, checkpoint_s

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def out_of_budget(self) -> bool:
        return self.budget_s is not None and self.elapsed() >= self.budget_s

    def checkpoint_due(self) -> bool:
        if time.monotonic() - self.last_ckpt >= self.checkpoint_s:
            self.last_ckpt = time.monotonic()
            return True
        return False


def drive(*, step: int, total: int, desc: str, ddp: Distributed, stop: StopFlag, clock: Clock, val_every: int,
          train_step, evaluate, checkpoint) -> int:
    """The loop both stages share; returns the last step done.

    ``train_step(step) -> dict`` does one update (the dict goes to the progress bar); ``evaluate(step) -> str``
    validates and keeps the best model (``None`` or ``val_every`` 0 disables it); ``checkpoint(step)`` saves.
    Validation also runs at the last step and when stopping (budget or signal), so the end is never unscored.
    """
    validating = ddp.main and evaluate is not None and val_every > 0
    bar = tqdm(total=total, initial=step, disable=not ddp.main, desc=desc, unit="step")
    if validating and step == 0:
        bar.write(evaluate(0))
    while step < total:
        postfix = train_step(step)
        step += 1
        bar.update()
        bar.set_postfix(postfix)
        stopping = ddp.any(stop.requested or clock.out_of_budget())
        if validating and (step % val_every == 0 or step == total or stopping):
            bar.write(evaluate(step))
        if stopping:
            break
        if clock.checkpoint_due() and ddp.main:
            checkpoint(step)
    if ddp.main:
        checkpoint(step)
    bar.close()
    ddp.close()
    stop.restore()
    return step
