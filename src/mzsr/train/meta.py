"""Stage 2 (spec §4): meta-transfer learning — MAML over random-kernel tasks, starting from θ_T → θ_M.

The meta-gradient is exact second order: the inner updates are kept in the graph
(``torch.autograd.grad(create_graph=True)``) and the network runs on the fast weights through
``torch.func.functional_call``. ``first_order`` (or ``first_order_steps`` for a warm-up) drops the second-order
terms, which is cheaper per step. ``learn_step_lrs`` learns one inner learning rate per parameter tensor and
inner step with the weights (MAML++'s LSLR); the model's card then carries them as its test-time rates.
``ema`` validates and keeps an exponential moving average of the weights (and rates) instead of the latest ones.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from ..config import config
from ..kernels import gaussian_kernel
from ..models import load_model, save_model
from ..net import SRNet, functional_forward
from ..runtime import autocast, pick_device
from ..schedules import STEP_LR_CANDIDATES, meta_lr, multi_step_weights, scale_step_lrs
from .common import make_card, make_sampler, open_run
from .data import sample_task
from .loop import Clock, RunLog, drive, parse_duration, save_training, start_or_resume
from .validate import psnr_after_steps, set14_pairs

# Validation kernels (λ1, λ2, θ; fixed, so that scores compare across runs): g^d_2.0 and the paper's anisotropic
# one by default; g^d_0.2's, outside the paper's training range (λ ≥ 1; see kernel_min_var), and one sharp along
# a single axis check sharp images.
VAL_KERNELS = {"iso2.0": (2.0, 2.0, 0.0), "ani4-1": (4.0, 1.0, -0.5), "iso0.2": (0.2, 0.2, 0.0),
               "ani4-0.5": (4.0, 0.5, -0.5)}


@config
class MetaConfig:
    scale: int = 2
    downsample: Literal["direct", "bicubic"] = "direct"
    init: str = "runs/pretrain-x2/best.safetensors"  # θ_T: a .safetensors path or a shipped model name
    name: str = ""  # model name written into the card; default "<downsample>-x<scale>"
    train_dirs: list[str] = field(default_factory=list)
    patch: int = 64
    meta_batch: int = 5
    n_train: int = 8
    n_test: int = 8
    kernel_size: int = 15
    # the narrowest task kernel's variance: the paper's 1 leaves out sharp images (g^d_0.2, and the estimator's
    # kernels down to ESTIMATE_MIN_VAR), which the weights then meet only at test time
    kernel_min_var: float = 1.0
    # the cap on the task kernels' smaller variance (0 = none, the paper's): a specialist for sharp kernels, such as
    # those mzsr.models.model_for_kernel sends to the narrow-kernel model
    kernel_minor_max: float = 0.0
    # real photos (mzsr.train.data.task_corruption): the most noise σ (grey levels of 0..255), drawn U[0, max] per
    # task; the lowest JPEG quality, drawn U{q..95} per task; the share of tasks with neither (0, 0: clean only)
    task_noise: float = 0.0
    task_jpeg: int = 0
    clean_share: float = 0.0
    inner_steps: int = 5
    inner_lr: float = 0.01
    learn_step_lrs: bool = False  # LSLR: per-layer, per-step inner rates, learned from inner_lr
    freeze_weights: bool = False  # with learn_step_lrs: learn only the rates, for weights already meta-trained
    meta_lr: float = 1e-4
    meta_lr_warmup: int = 0  # meta-iterations over which the outer rate ramps up from ~0 (schedules.meta_lr)
    first_order: bool = False
    first_order_steps: int = 0  # first-order warm-up iterations before exact second order
    anneal_steps: int = 3300  # multi-step loss annealing (0 = uniform weights, as the release trained)
    # weight of the un-adapted weights' D_te loss (MZSR(0)'s) in the outer loss, added to the multi-step
    # weights: an anchor against the drift of the starting point, which MZSR(1) follows (0 = the paper's)
    start_weight: float = 0.0
    # decay of an exponential moving average of the weights (and learned rates) over meta-steps; when > 0 the
    # average is what validation scores and best.safetensors keeps, against the swings between steps (0: off)
    ema: float = 0.0
    steps: int = 100_000
    test_step_lrs: list[float] = field(default_factory=lambda: [0.01])  # stored in the card, used at test time
    val_every: int = 25  # 0: no validation
    val_limit: int = 5
    val_crop: int = 256
    val_steps: list[int] = field(default_factory=lambda: [0, 1, 10])
    val_kernels: list[str] = field(default_factory=lambda: ["iso2.0", "ani4-1"])  # names in VAL_KERNELS
    # also score the first val kernel on LRs with this noise σ (grey levels) and JPEG quality, the son corrupted
    # alike, so that selection weighs real photos too (0, 0: off)
    val_noise: float = 0.0
    val_jpeg: int = 0
    # the rule, adapting must help: weights whose MZSR(most val_steps) gains less than this over MZSR(0)
    # on some validation kernel rank below every weights that gain it, whatever their score (--val-min-gain=-inf: off)
    val_min_gain: float = 0.0
    checkpoint_minutes: float = 3.0
    time_budget: str = ""
    seed: int = 0
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    device: str = "auto"
    # "auto": the meta-batch's tasks run together (torch.func.vmap) on CUDA, one after another elsewhere
    batch_tasks: Literal["auto", "true", "false"] = "auto"
    run_dir: str = "runs/meta-direct-x2"


def l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute error, accumulated in at least float32 (autocast may hand in bf16/fp16 outputs)."""
    dtype = torch.promote_types(torch.promote_types(a.dtype, b.dtype), torch.float32)
    return (a.to(dtype) - b.to(dtype)).abs().mean()


def _inner_loop(loss_fn, fast: dict, train: tuple, test: tuple, inner_steps: int,
                inner_lr: float | torch.Tensor, second_order: bool, with_start: bool) -> list[torch.Tensor]:
    losses = [loss_fn(fast, *test)] if with_start else []
    for i in range(inner_steps):
        # .sum(): batched tasks' losses are independent, so this sum's gradient w.r.t. task t's weights is task t's
        grads = torch.autograd.grad(loss_fn(fast, *train).sum(), list(fast.values()), create_graph=second_order)
        rates = inner_lr[i] if torch.is_tensor(inner_lr) else [inner_lr] * len(grads)
        fast = {k: w - a * g for (k, w), a, g in zip(fast.items(), rates, grads)}
        losses.append(loss_fn(fast, *test))
    return losses


def task_losses(net: SRNet, params: dict, task, inner_steps: int, inner_lr: float | torch.Tensor,
                second_order: bool, with_start: bool = False) -> list[torch.Tensor]:
    """D_te losses after each of the inner SGD steps taken on D_tr, differentiable w.r.t. ``params`` (and
    ``inner_lr`` when it is a learned ``(inner_steps, len(params))`` tensor of per-step, per-parameter rates);
    ``with_start`` puts the loss before any step first."""
    return _inner_loop(lambda p, x, y: l1(functional_forward(net, p, x), y), dict(params), *task,
                       inner_steps, inner_lr, second_order, with_start)


def batched_task_losses(net: SRNet, params: dict, tasks: list, inner_steps: int,
                        inner_lr: float | torch.Tensor, second_order: bool, with_start: bool = False) -> torch.Tensor:
    """``task_losses`` of several tasks at once, as an ``(inner_steps [+ 1], len(tasks))`` tensor: each task has its
    own fast weights and ``vmap`` runs every layer once for all of them (a grouped convolution): bigger kernels
    for a GPU that one task's 8 small patches leave launch-bound (slower on a CPU; timings in the README's
    Training section)."""
    x_tr, y_tr, x_te, y_te = (torch.stack(part) for part in zip(*(t[0] + t[1] for t in tasks)))
    fast = {k: w.expand(len(tasks), *w.shape) for k, w in params.items()}
    batched_l1 = torch.func.vmap(lambda p, x, y: l1(functional_forward(net, p, x), y))
    return torch.stack(_inner_loop(batched_l1, fast, (x_tr, y_tr), (x_te, y_te), inner_steps, inner_lr,
                                   second_order, with_start))


def batching_tasks(cfg: MetaConfig, device) -> bool:
    """Whether a run's meta-batches go through ``batched_task_losses``."""
    return torch.device(device).type == "cuda" if cfg.batch_tasks == "auto" else cfg.batch_tasks == "true"


def init_step_lrs(net: SRNet, cfg: MetaConfig, start: list | None = None) -> torch.Tensor | None:
    """The learned inner rates (LSLR); ``None`` when the rate is fixed. They start from ``start``'s learned
    per-layer rates (the card of the model a run goes on from) where it has them, else from ``inner_lr``: a
    scalar test-time schedule is not an inner rate the weights were trained with."""
    if not cfg.learn_step_lrs:
        return None
    names = [k for k, _ in net.named_parameters()]
    given = list(start or []) + [None] * cfg.inner_steps
    rows = [[float(r[k]) for k in names] if isinstance(r, dict) and set(names) <= set(r)
            else [cfg.inner_lr] * len(names) for r in given[:cfg.inner_steps]]
    like = next(net.parameters())
    return torch.tensor(rows, dtype=like.dtype, device=like.device, requires_grad=True)


def card_step_lrs(net: SRNet, rates: torch.Tensor | None, cfg: MetaConfig) -> list:
    """The test-time rates a model ships with: the learned ones per step and parameter for the inner steps,
    then the configured ``test_step_lrs`` for later steps (all of them when nothing is learned)."""
    if rates is None:
        return list(cfg.test_step_lrs)
    names = [k for k, _ in net.named_parameters()]
    learned = [{k: round(float(a), 7) for k, a in zip(names, row)} for row in rates.detach().cpu()]
    return learned + list(cfg.test_step_lrs[len(learned):])


def followed(net: SRNet, rates: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """What the moving average follows: the weights by name and, when learned, the rates (``step_lrs``)."""
    out = {k: v.detach() for k, v in net.named_parameters()}
    return out if rates is None else {**out, "step_lrs": rates.detach()}


def meta_backward(net: SRNet, tasks: list, weights: list[float], cfg: MetaConfig, second_order: bool,
                  device, rates: torch.Tensor | None = None, batched: bool = False) -> float:
    """Accumulate into ``net``'s (and the learned ``rates``') .grad the sum over ``tasks`` of the weighted
    multi-step loss (plus ``cfg.start_weight`` × the loss before adapting); returns it. ``batched`` runs the tasks
    together (``batched_task_losses``)."""
    params = dict(net.named_parameters())
    rate = cfg.inner_lr if rates is None else rates
    with_start = cfg.start_weight > 0
    weights = [cfg.start_weight] * with_start + list(weights)
    # unbatched, one task at a time keeps one task's graph in memory
    groups = [tasks] if batched and tasks else [[task] for task in tasks]
    total = 0.0
    for group in groups:
        group = [tuple((x.to(device), y.to(device)) for x, y in task) for task in group]
        with autocast(device, cfg.precision):
            if batched:
                losses = batched_task_losses(net, params, group, cfg.inner_steps, rate, second_order,
                                             with_start).sum(1)
            else:
                losses = task_losses(net, params, group[0], cfg.inner_steps, rate, second_order, with_start)
        loss = sum(w * l for w, l in zip(weights, losses))
        loss.backward()
        total += loss.item()
    return total


def _validation_sets(cfg: MetaConfig):
    unknown = [name for name in cfg.val_kernels if name not in VAL_KERNELS]
    if unknown or not cfg.val_kernels:
        raise ValueError(f"val_kernels: {', '.join(unknown) or 'none given'}: choose from {', '.join(VAL_KERNELS)}")
    sets = {}
    for name in cfg.val_kernels:
        k = gaussian_kernel(*VAL_KERNELS[name], size=21)
        sets[name] = (k, set14_pairs(cfg.scale, k, cfg.downsample, cfg.val_limit, cfg.val_crop), 0.0, None)
    if cfg.val_noise or cfg.val_jpeg:
        name, jpeg = cfg.val_kernels[0], cfg.val_jpeg or None
        k = sets[name][0]
        sets[f"{name}+n{cfg.val_noise:g}q{cfg.val_jpeg}"] = (k, set14_pairs(
            cfg.scale, k, cfg.downsample, cfg.val_limit, cfg.val_crop, cfg.val_noise, jpeg), cfg.val_noise, jpeg)
    return sets


def validate(net, cfg: MetaConfig, sets, params: dict | None = None, step_lrs: list | None = None) -> dict:
    """MZSR(n) Y-PSNR on the validation crops for each kernel, and the selection score; ``step_lrs`` default
    to the configured test-time rates."""
    params = params if params is not None else {k: v.detach() for k, v in net.named_parameters()}
    device = next(iter(params.values())).device
    scores = {}
    for name, (k, pairs, noise, jpeg) in sets.items():
        res = psnr_after_steps(net, params, pairs, k, cfg.scale, cfg.downsample, cfg.val_steps,
                               cfg.test_step_lrs if step_lrs is None else step_lrs, device, noise, jpeg)
        scores.update({f"{name}_mzsr{n}": round(v, 4) for n, v in res.items()})
    adapted = [v for key, v in scores.items() if not key.endswith("_mzsr0")]
    scores["score"] = round(float(np.mean(adapted)), 4)  # selection: mean of MZSR(n≥1) over the kernels
    most = max(cfg.val_steps)
    if 0 in cfg.val_steps and most > 0:
        scores["min_gain"] = round(min(scores[f"{n}_mzsr{most}"] - scores[f"{n}_mzsr0"] for n in sets), 4)
    return scores


def selection_value(scores: dict, min_gain: float) -> float:
    """What the best checkpoint maximises: the score, minus 100 dB where adapting gains less than ``min_gain``
    (so such weights are kept only until weights that pass come)."""
    return scores["score"] - (100.0 if scores.get("min_gain", math.inf) < min_gain else 0.0)


def tune_step_lrs(weights, cfg: MetaConfig, candidates: dict = STEP_LR_CANDIDATES) -> list[tuple[str, list, dict]]:
    """Validation scores of each candidate test-time schedule for a trained model, best first. The model's own
    schedule (``card``, learned per-layer rates included) competes too: scaled ×0.75 and ×1.25, and with only the
    steps beyond its own (where its last rate repeats) scaled ×0.5, ×1.5 and ×2, which moves MZSR(10) alone."""
    model = load_model(weights, pick_device(cfg.device))
    own = {"card": model.step_lrs, "card×0.75": scale_step_lrs(model.step_lrs, 0.75),
           "card×1.25": scale_step_lrs(model.step_lrs, 1.25),
           **{f"card, then ×{f:g}": model.step_lrs + scale_step_lrs(model.step_lrs[-1:], f) for f in (0.5, 1.5, 2)}}
    candidates = {**own, **candidates}
    sets = _validation_sets(cfg)
    rows = [(name, lrs, validate(model.net, dataclasses.replace(cfg, test_step_lrs=lrs), sets, model.params))
            for name, lrs in candidates.items()]
    return sorted(rows, key=lambda r: -r[2]["score"])


def check_config(cfg: MetaConfig) -> None:
    """Reject option combinations that cannot train, before the run folder and data are touched."""
    if cfg.freeze_weights and not cfg.learn_step_lrs:
        raise ValueError("freeze_weights needs learn_step_lrs: there would be nothing to learn")
    if cfg.ema and not 0 < cfg.ema < 1:
        raise ValueError(f"ema is a decay in (0, 1), got {cfg.ema}")
    if not 0 < cfg.kernel_min_var <= 2.5 * cfg.scale:
        raise ValueError(f"kernel_min_var must be in (0, {2.5 * cfg.scale:g}] (λ1's upper end) at ×{cfg.scale}, "
                         f"got {cfg.kernel_min_var:g}")
    for opt, value, ok in (("task_noise", cfg.task_noise, 0 <= cfg.task_noise <= 50),
                           ("task_jpeg", cfg.task_jpeg, cfg.task_jpeg == 0 or 1 <= cfg.task_jpeg <= 95),
                           ("clean_share", cfg.clean_share, 0 <= cfg.clean_share <= 1),
                           ("val_noise", cfg.val_noise, 0 <= cfg.val_noise <= 50),
                           ("val_jpeg", cfg.val_jpeg, cfg.val_jpeg == 0 or 1 <= cfg.val_jpeg <= 95)):
        if not ok:  # NaN fails every comparison, so it lands here too
            raise ValueError(f"{opt} out of range (σ 0..50 grey levels, quality 1..95 or 0 = none, share 0..1), "
                             f"got {value:g}")
    if cfg.kernel_minor_max and not cfg.kernel_minor_max > cfg.kernel_min_var:
        raise ValueError(f"kernel_minor_max must exceed kernel_min_var ({cfg.kernel_min_var:g}), "
                         f"got {cfg.kernel_minor_max:g}")


def run(cfg: MetaConfig, resume: bool = False) -> Path:
    check_config(cfg)
    stop, device, ddp, run_dir, files = open_run(cfg, resume)
    name = cfg.name or f"{cfg.downsample}-x{cfg.scale}"
    sampler, rng = make_sampler(files, cfg.patch, cfg.seed)
    base = load_model(cfg.init, device)
    net = SRNet(base.card["arch"]["channels"], base.card["arch"]["depth"], base.card["arch"]["bias"]).to(device)
    net.load_state_dict(base.params)
    rates = init_step_lrs(net, cfg, base.card.get("step_lrs"))
    # going on from meta-learned weights keeps their pretrained base: it is what --method finetune compares with
    pretrained = base.card.get("base", base.name)
    batched = batching_tasks(cfg, device)
    learned = ([] if cfg.freeze_weights else list(net.parameters())) + ([] if rates is None else [rates])
    opt = torch.optim.Adam(learned, lr=cfg.meta_lr)
    ckpt = run_dir / "checkpoint.pt"
    step, best, curve, wall, saved = start_or_resume(ckpt, net, opt, rng, resume, worst=float("-inf"))
    if rates is not None and saved:
        with torch.no_grad():
            rates.copy_(saved["step_lrs"])
    average = None
    if cfg.ema:  # starts at the initial weights, which for a run going on from a model are good ones
        average = {k: v.to(device) for k, v in saved["ema"].items()} if saved else \
            {k: v.clone() for k, v in followed(net, rates).items()}
    val_sets = _validation_sets(cfg) if ddp.main and cfg.val_every > 0 else {}
    log = RunLog(run_dir, ddp.main)
    clock = Clock(parse_duration(cfg.time_budget), cfg.checkpoint_minutes * 60)
    wall0 = wall

    def train_step(i: int) -> dict:
        # every rank draws the same meta-batch (same seed) and computes its share of the tasks
        tasks = [sample_task(sampler, rng, cfg.scale, cfg.downsample, cfg.n_train, cfg.n_test, cfg.kernel_size,
                             cfg.kernel_min_var, cfg.kernel_minor_max or None, cfg.task_noise, cfg.task_jpeg,
                             cfg.clean_share)
                 for _ in range(cfg.meta_batch)]
        second_order = not cfg.first_order and i >= cfg.first_order_steps
        weights = multi_step_weights(i, cfg.inner_steps, cfg.anneal_steps)
        opt.zero_grad(set_to_none=True)
        net.zero_grad(set_to_none=True)  # frozen weights are not the optimizer's to clear
        mine = ddp.share(tasks)
        loss = meta_backward(net, mine, weights, cfg, second_order, device, rates, batched) / max(len(mine), 1)
        ddp.average_grads(list(net.parameters()) + ([] if rates is None else [rates]), len(mine), cfg.meta_batch)
        for group in opt.param_groups:
            group["lr"] = meta_lr(i, cfg.meta_lr, cfg.meta_lr_warmup)
        opt.step()
        if rates is not None:
            with torch.no_grad():
                rates.clamp_(min=0)  # a negative rate would climb the loss
        if average is not None:
            with torch.no_grad():
                for k, v in followed(net, rates).items():
                    average[k].lerp_(v, 1 - cfg.ema)
        if ddp.main:
            log.write(step=i + 1, loss=loss, second_order=second_order, time=round(wall0 + clock.elapsed(), 1))
        return {"loss": f"{loss:.4f}", "order": 2 if second_order else 1}

    def score(now: dict) -> tuple[dict, list, dict]:
        """Weights, test-time rates and validation scores of ``followed(...)`` or of the average."""
        params = {k: v for k, v in now.items() if k != "step_lrs"}
        step_lrs = card_step_lrs(net, now.get("step_lrs"), cfg)
        return params, step_lrs, validate(net, cfg, val_sets, params, step_lrs)

    def evaluate(i: int) -> str:
        nonlocal best
        params, step_lrs, scores = score(followed(net, rates) if average is None else average)
        curve.append({"step": i, **scores})
        # with an average, the latest weights are scored too (logged only): what averaging gained, in one run;
        # not at step 0, where the average is the weights
        latest = {} if average is None or i == 0 else {"val_latest": score(followed(net, rates))[2]}
        log.write(step=i, val=scores, **latest)
        value = selection_value(scores, cfg.val_min_gain)
        if value > best:
            best = value
            card = make_card(name, cfg.scale, cfg.downsample, step_lrs, net,
                             dataclasses.asdict(cfg), files, i, wall0 + clock.elapsed(), curve,
                             {"set14_val": scores}, stage="meta", base=pretrained, base_card=base.card)
            save_model(run_dir / "best.safetensors", params, card)
        return f"step {i}: " + " ".join(f"{k} {v:.2f}" for k, v in scores.items())

    def checkpoint(i: int) -> None:
        progress = dict(step=i, best=best, curve=curve, wall=wall0 + clock.elapsed())
        if rates is not None:
            progress["step_lrs"] = rates.detach().clone()
        if average is not None:
            progress["ema"] = {k: v.clone() for k, v in average.items()}
        save_training(ckpt, net, opt, rng, progress, dataclasses.asdict(cfg))

    drive(step=step, total=cfg.steps, desc=f"meta {name}", ddp=ddp, stop=stop, clock=clock,
          val_every=cfg.val_every, train_step=train_step, evaluate=evaluate, checkpoint=checkpoint)
    return run_dir
