"""Seconds per training step of both stages, as the real training loops log them: bicubic pretraining
(fp32, and bf16 autocast + channels_last) and meta-steps (exact second order and first order, fp32 and bf16;
second order also with the meta-batch's tasks batched through vmap).

    python benchmarks/speed_train.py [--cases pretrain-fp32 meta2-fp32 ...] [--meta-steps 3] [--meta-batch 5]
                                     [--pretrain-steps 150] [--inner-steps 5] [--train-dirs DIR ...]

Each case runs ``mzsr train pretrain|meta`` in-process for a few steps (no validation) into a temporary run
folder and reads the step times from its ``log.jsonl``; the first logged step is left out (warm-up), so image
loading and allocator start-up are not counted. Meta-learning starts from the shipped ``pretrained-x2``.
The issue's starting point on a 2-core CPU: ~0.25 s per pretraining step of 16×64², ~6.7 s per second-order
meta-step (paper settings, bf16) — on a CPU with AMX; CPUs without bf16 units run bf16 slower than fp32.
"""
import argparse
import json
import tempfile
from pathlib import Path

import torch

from mzsr.io import data_root
from mzsr.train.meta import MetaConfig, run as run_meta
from mzsr.train.pretrain import PretrainConfig, run as run_pretrain

# name: (stage, precision, first order, tasks batched); meta2 = exact second order, meta1 = first order;
# "-batched": the meta-batch's tasks in one vmapped pass (the default on CUDA), else one after another
CASES = {
    "pretrain-fp32": ("pretrain", "fp32", None, None),
    "pretrain-bf16": ("pretrain", "bf16", None, None),
    "meta2-fp32": ("meta", "fp32", False, "false"),
    "meta2-fp32-batched": ("meta", "fp32", False, "true"),
    "meta2-bf16": ("meta", "bf16", False, "false"),
    "meta1-fp32": ("meta", "fp32", True, "false"),
    "meta1-bf16": ("meta", "bf16", True, "false"),
}


def seconds_per_step(run_dir: Path) -> tuple[float, int]:
    """Mean seconds between the logged training steps after the first, and how many steps that covers."""
    rows = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "time" in r]
    if len(rows) < 2:
        raise SystemExit(f"{run_dir}: too few logged steps to time; raise the step count")
    steps = rows[-1]["step"] - rows[0]["step"]
    return (rows[-1]["time"] - rows[0]["time"]) / steps, steps


def run_case(name: str, args, tmp: Path) -> tuple[float, int]:
    stage, precision, first_order, batch_tasks = CASES[name]
    common = dict(train_dirs=args.train_dirs, precision=precision, val_every=0, device=args.device,
                  run_dir=str(tmp / name))
    if stage == "pretrain":
        # pretraining logs every 50 steps
        run_pretrain(PretrainConfig(batch=args.batch, patch=args.patch, steps=args.pretrain_steps,
                                    channels_last=precision != "fp32", **common))
    else:
        run_meta(MetaConfig(init="pretrained-x2", inner_steps=args.inner_steps, first_order=first_order,
                            batch_tasks=batch_tasks, meta_batch=args.meta_batch, steps=args.meta_steps,
                            **common))
    return seconds_per_step(tmp / name)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    p.add_argument("--pretrain-steps", type=int, default=150)
    p.add_argument("--meta-steps", type=int, default=3)
    p.add_argument("--inner-steps", type=int, default=5)
    p.add_argument("--meta-batch", type=int, default=5)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--patch", type=int, default=64)
    p.add_argument("--train-dirs", nargs="+", default=[str(data_root() / "train/T91")],
                   help="training images (default T91 alone: it loads in seconds)")
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; pretraining batch {args.batch}×"
          f"{args.patch}²; meta batch {args.meta_batch} tasks × (8+8)×64², {args.inner_steps} inner steps")
    print("| case | s per step | steps timed |")
    print("|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.cases:
            s, n = run_case(name, args, Path(tmp))
            print(f"| {name} | {s:.3f} | {n} |", flush=True)


if __name__ == "__main__":
    main()
