"""A ceiling for one kernel: the network trained with that kernel's own external pairs, not zero-shot.

The bicubic-pretrained weights are trained supervised (Adam, L1) on the training images degraded by one test
scenario's kernel, and scored without adapting on a test set under that scenario, next to the paper's MZSR(1)
and MZSR(10). It tells whether the network and the shared training data could reach the paper's numbers for a
kernel known in advance, i.e. whether a shortfall of MZSR lies in meta-training or in the data and the network.

    python benchmarks/kernel_oracle.py [--scenario gd2.0] [--scale 2] [--set Set5] [--minutes 50]
"""
import argparse
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from mzsr.bench.scenarios import degraded_input, get_scenario, ground_truth, paper_value
from mzsr.io import hr_files
from mzsr.models import load_model
from mzsr.runtime import pick_device
from mzsr.train.common import make_sampler, training_files
from mzsr.train.data import task_input
from mzsr.train.validate import psnr_after_steps


def score(net, pairs, scenario, scale: int, device) -> float:
    """Mean Y-PSNR of the network as it is (no adapting step) on the pairs, the paper's protocol."""
    params = {n: p.detach() for n, p in net.named_parameters()}
    with torch.no_grad():
        return psnr_after_steps(net, params, pairs, None, scale, scenario.downsample, [0], [0.0], device)[0]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", default="gd2.0")
    p.add_argument("--scale", type=int, default=2)
    p.add_argument("--set", default="Set5")
    p.add_argument("--init", help="starting weights (default: pretrained-x<scale>)")
    p.add_argument("--minutes", type=float, default=50)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--patch", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-4, help="Adam rate, lowered to --final-lr for the last 40%%")
    p.add_argument("--final-lr", type=float, default=5e-5)
    p.add_argument("--eval-every", type=int, default=150)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    device = pick_device(args.device)
    scenario = get_scenario(args.scenario)
    base = load_model(args.init or f"pretrained-x{args.scale}", device)
    net = base.net.requires_grad_(True)  # loaded frozen, for inference
    sampler, _ = make_sampler(training_files([]), args.patch, args.seed)
    kernel = torch.from_numpy(scenario.kernel()).float().to(device)
    with tempfile.TemporaryDirectory() as cache:
        pairs = [(degraded_input(h, scenario, args.scale, Path(cache)), ground_truth(h, args.scale))
                 for h in hr_files(args.set)]
    paper = {m: paper_value(args.scale, scenario, args.set, m) for m in ("MZSR(1)", "MZSR(10)")}
    print(f"{base.name} trained on {scenario.paper_key} ×{args.scale} pairs, scored un-adapted on {args.set} "
          f"({device}, {torch.get_num_threads()} threads); the paper's MZSR(1) / (10): "
          + " / ".join("—" if v is None else f"{v['psnr']:.2f}" for v in paper.values()))
    print("| step | minutes | L1 loss | PSNR dB |\n|---|---|---|---|")
    print(f"| 0 | 0 | | {score(net, pairs, scenario, args.scale, device):.2f} |", flush=True)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    t0, step, budget = time.perf_counter(), 0, args.minutes * 60
    while (elapsed := time.perf_counter() - t0) < budget:
        for g in opt.param_groups:
            g["lr"] = args.lr if elapsed < 0.6 * budget else args.final_lr
        hr = sampler.batch(args.batch).to(device)
        loss = F.l1_loss(net(task_input(hr, kernel, args.scale, scenario.downsample)), hr)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % args.eval_every == 0 or time.perf_counter() - t0 >= budget:
            print(f"| {step} | {(time.perf_counter() - t0) / 60:.1f} | {loss.item():.4f} | "
                  f"{score(net, pairs, scenario, args.scale, device):.2f} |", flush=True)


if __name__ == "__main__":
    main()
