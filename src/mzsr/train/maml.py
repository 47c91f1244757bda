"""The MAML maths of meta-training (spec §4): inner SGD loops on fast weights, the exact second-order
meta-gradient, tasks batched with ``vmap``, and the learned per-layer, per-step inner rates (MAML++'s LSLR).

The meta-gradient is exact second order: the inner updates are kept in the graph
(``torch.autograd.grad(create_graph=True)``) and the network runs on the fast weights through
``torch.func.functional_call``; ``second_order=False`` drops the second-order terms, which is cheaper per step.
"""
from __future__ import annotations

import torch

from ..net import SRNet, functional_forward
from ..runtime import autocast


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
    for a GPU that one task's 8 small patches leave launch-bound (slower on a CPU; timings in docs/training.md)."""
    x_tr, y_tr, x_te, y_te = (torch.stack(part) for part in zip(*(t[0] + t[1] for t in tasks)))
    fast = {k: w.expand(len(tasks), *w.shape) for k, w in params.items()}
    batched_l1 = torch.func.vmap(lambda p, x, y: l1(functional_forward(net, p, x), y))
    return torch.stack(_inner_loop(batched_l1, fast, (x_tr, y_tr), (x_te, y_te), inner_steps, inner_lr,
                                   second_order, with_start))


def init_step_lrs(net: SRNet, inner_steps: int, inner_lr: float, start: list | None = None) -> torch.Tensor:
    """Learned inner rates (LSLR), one per inner step and parameter tensor, to train: ``start``'s learned
    per-layer rates (the card of the model a run goes on from) where it has them, else ``inner_lr``: a scalar
    test-time schedule is not an inner rate the weights were trained with."""
    names = [k for k, _ in net.named_parameters()]
    given = list(start or []) + [None] * inner_steps
    rows = [[float(r[k]) for k in names] if isinstance(r, dict) and set(names) <= set(r)
            else [inner_lr] * len(names) for r in given[:inner_steps]]
    like = next(net.parameters())
    return torch.tensor(rows, dtype=like.dtype, device=like.device, requires_grad=True)


def card_step_lrs(net: SRNet, rates: torch.Tensor | None, test_step_lrs: list[float]) -> list:
    """The test-time rates a model ships with: the learned ones per step and parameter for the inner steps,
    then ``test_step_lrs`` for later steps (all of them when nothing is learned)."""
    if rates is None:
        return list(test_step_lrs)
    names = [k for k, _ in net.named_parameters()]
    learned = [{k: round(float(a), 7) for k, a in zip(names, row)} for row in rates.detach().cpu()]
    return learned + list(test_step_lrs[len(learned):])


def meta_backward(net: SRNet, tasks: list, weights: list[float], inner_steps: int, inner_lr: float | torch.Tensor,
                  second_order: bool, device, start_weight: float = 0.0, precision: str = "fp32",
                  batched: bool = False) -> float:
    """Accumulate into ``net``'s (and learned ``inner_lr``'s) .grad the sum over ``tasks`` of the multi-step loss
    weighted by ``weights`` (plus ``start_weight`` × the loss before adapting); returns it. ``batched`` runs the
    tasks together (``batched_task_losses``)."""
    params = dict(net.named_parameters())
    with_start = start_weight > 0
    weights = [start_weight] * with_start + list(weights)
    # unbatched, one task at a time keeps one task's graph in memory
    groups = [tasks] if batched and tasks else [[task] for task in tasks]
    total = 0.0
    for group in groups:
        group = [tuple((x.to(device), y.to(device)) for x, y in task) for task in group]
        with autocast(device, precision):
            if batched:
                losses = batched_task_losses(net, params, group, inner_steps, inner_lr, second_order,
                                             with_start).sum(1)
            else:
                losses = task_losses(net, params, group[0], inner_steps, inner_lr, second_order, with_start)
        loss = sum(w * l for w, l in zip(weights, losses))
        loss.backward()
        total += loss.item()
    return total
