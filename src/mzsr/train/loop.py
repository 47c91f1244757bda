"""The plumbing under the training driver (``mzsr.train.driver``): run folders, atomic checkpoints, RNG streams,
signals, the clock, JSONL logs and the distributed setup (torchrun)."""
from __future__ import annotations

import json
import os
import pickle
import re
import signal
import subprocess
import time
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

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


CHECKPOINT_KEYS = ("net", "opt", "rng", "step", "best", "curve", "wall")


def save_checkpoint(path: Path, **state) -> None:
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: Path) -> dict:
    """A checkpoint's contents; ``ValueError`` naming the file when it is truncated, corrupt or not a training
    checkpoint."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError,
            AttributeError) as e:
        reason = str(e).splitlines()[0] if str(e) else e.__class__.__name__
        raise ValueError(f"{path}: truncated or corrupt checkpoint ({reason})") from None
    missing = [k for k in CHECKPOINT_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise ValueError(f"{path}: not a training checkpoint (no {', '.join(missing)})")
    return state


class RunLog:
    """Appends JSON lines to ``log.jsonl`` in the run folder (main rank only)."""

    def __init__(self, run_dir: Path, enabled: bool = True):
        self.path = run_dir / "log.jsonl"
        self.enabled = enabled

    def write(self, **record) -> None:
        if self.enabled:
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")

    def keep_until(self, step: int) -> None:
        """Drop the records after ``step`` (a resumed run's checkpoint; -1: all), which the run repeats."""
        if self.enabled and self.path.exists():
            kept = [r for r in self.records() if r.get("step", 0) <= step]
            atomic_write(self.path, lambda tmp: Path(tmp).write_text("".join(json.dumps(r) + "\n" for r in kept)))

    def records(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]


def check_run_dir(run_dir: Path, resume: bool) -> None:
    if (run_dir / "checkpoint.pt").exists() and not resume:
        raise FileExistsError(f"{run_dir} already holds a run: pass --resume to continue it or pick another --run-dir")


def prepare_run_dir(run_dir: Path, config: dict, data_files: list) -> None:
    """Create the run folder and keep its resolved config, data list and code version beside the weights."""
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
    try:
        return json.loads(records[-1].read_text())["config"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{records[-1]}: not a readable run record ({e.__class__.__name__}: {e})") from None


class Clock:
    """Wall-clock budget and checkpoint interval, read from ``now`` (seconds; a test passes its own)."""

    def __init__(self, budget_s: float | None, checkpoint_s: float, now=time.monotonic):
        self.now = now
        self.start = self.last_ckpt = now()
        self.budget_s, self.checkpoint_s = budget_s, checkpoint_s

    def elapsed(self) -> float:
        return self.now() - self.start

    def out_of_budget(self) -> bool:
        return self.budget_s is not None and self.elapsed() >= self.budget_s

    def checkpoint_due(self) -> bool:
        if self.now() - self.last_ckpt >= self.checkpoint_s:
            self.last_ckpt = self.now()
            return True
        return False
