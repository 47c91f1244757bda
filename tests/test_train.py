"""Training: exact MAML meta-gradient, loss-weight schedule, exact resume, SIGKILL, time budget, DDP (gloo)."""
import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

from mzsr.net import SRNet
from mzsr.schedules import meta_lr, multi_step_weights
from mzsr.train.loop import load_checkpoint
from mzsr.train.meta import (MetaConfig, _validation_sets, batching_tasks, card_step_lrs, init_step_lrs, l1,
                             meta_backward, task_losses, validate)
from mzsr.train.meta import run as run_meta
from mzsr.train.pretrain import PretrainConfig
from mzsr.train.pretrain import run as run_pretrain


@pytest.fixture(scope="module")
def train_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("train")
    rng = np.random.default_rng(0)
    for i in range(3):
        yy, xx = np.mgrid[0:40, 0:44]
        img = 128 + 100 * np.sin(xx / (2 + i)) * np.cos(yy / 3) + rng.normal(0, 8, (40, 44))
        Image.fromarray(np.clip(np.dstack([img, img[::-1], img * 0.8]), 0, 255)
                        .astype(np.uint8)).save(d / f"img{i}.png")
    return d


def tiny_task(seed=0, n=2, size=8):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(2 * n, 3, size, size, generator=g, dtype=torch.float64)
    y = (x + 0.1 * torch.rand(2 * n, 3, size, size, generator=g, dtype=torch.float64)).clamp(0, 1)
    return (x[:n], y[:n]), (x[n:], y[n:])


def test_meta_gradient_matches_finite_differences():
    torch.manual_seed(0)
    net = SRNet(channels=3, depth=2).double()
    for conv in net.convs:
        torch.nn.init.normal_(conv.weight, std=0.3)
    params = dict(net.named_parameters())
    task, weights = tiny_task(), [0.3, 0.7]

    def objective(p):
        return sum(w * l for w, l in zip(weights, task_losses(net, p, task, 2, 0.5, second_order=True)))

    grads = torch.autograd.grad(objective(params), list(params.values()))
    first = torch.autograd.grad(
        sum(w * l for w, l in zip(weights, task_losses(net, params, task, 2, 0.5, second_order=False))),
        list(params.values()))
    eps, rng, checked = 1e-6, np.random.default_rng(0), 0
    for (name, p), g, g1 in zip(params.items(), grads, first):
        for idx in rng.choice(p.numel(), size=min(3, p.numel()), replace=False):
            def at(delta):
                q = {k: v.detach().clone() for k, v in params.items()}
                q[name].view(-1)[idx] += delta
                return objective({k: v.requires_grad_(True) for k, v in q.items()}).item()
            fd = (at(eps) - at(-eps)) / (2 * eps)
            assert g.view(-1)[idx].item() == pytest.approx(fd, rel=1e-4, abs=1e-8)
            checked += 1
    assert checked >= 10
    # and the first-order approximation really is different
    assert any(not torch.allclose(a, b, rtol=1e-3) for a, b in zip(grads, first))


def test_learned_step_lrs_gradient_matches_finite_differences():
    torch.manual_seed(1)
    net = SRNet(channels=3, depth=2).double()
    params = dict(net.named_parameters())
    task = tiny_task(seed=1)
    rates = torch.rand(2, len(params), dtype=torch.float64) * 0.5 + 0.2

    def objective(r):
        return sum(task_losses(net, params, task, 2, r, second_order=True))

    r = rates.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(objective(r), [r])
    eps = 1e-6
    for i in range(2):
        for j in range(len(params)):
            up, down = rates.clone(), rates.clone()
            up[i, j] += eps
            down[i, j] -= eps
            fd = (objective(up).item() - objective(down).item()) / (2 * eps)
            assert grad[i, j].item() == pytest.approx(fd, rel=1e-4, abs=1e-8)
    assert grad.abs().min() > 0  # every rate of every step matters


@pytest.mark.parametrize("second_order,start_weight", [(True, 0.0), (False, 0.0), (True, 0.1)])
def test_batched_tasks_give_the_same_meta_gradient(second_order, start_weight):
    """vmap over the meta-batch (the CUDA default) = the tasks one after another, weights and learned rates."""
    torch.manual_seed(2)
    net = SRNet(channels=4, depth=3).double()
    tasks = [tiny_task(seed=s, n=3) for s in range(3)]
    cfg = MetaConfig(inner_steps=2, start_weight=start_weight)
    rates = (torch.rand(2, len(list(net.parameters())), dtype=torch.float64) * 0.5 + 0.2).requires_grad_(True)
    grads, totals = [], []
    for batched in (False, True):
        net.zero_grad(set_to_none=True)
        rates.grad = None
        totals.append(meta_backward(net, tasks, [0.4, 0.6], cfg, second_order, "cpu", rates, batched))
        grads.append([p.grad.clone() for p in net.parameters()] + [rates.grad.clone()])
    assert totals[1] == pytest.approx(totals[0], rel=1e-12)
    for a, b in zip(*grads):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12)
    assert all(g.abs().sum() > 0 for g in grads[1])


def test_start_weight_adds_the_unadapted_loss():
    """``start_weight`` adds w × the D_te loss of the weights before any inner step, gradient included."""
    torch.manual_seed(3)
    net = SRNet(channels=3, depth=2).double()
    tasks = [tiny_task(seed=s) for s in range(2)]
    runs = []
    for w in (0.0, 0.3):
        net.zero_grad(set_to_none=True)
        total = meta_backward(net, tasks, [0.4, 0.6], MetaConfig(inner_steps=2, start_weight=w), True, "cpu")
        runs.append((total, [p.grad.clone() for p in net.parameters()]))
    start = sum(l1(net(x), y) for _, (x, y) in tasks)
    grads = torch.autograd.grad(start, list(net.parameters()))
    assert runs[1][0] - runs[0][0] == pytest.approx(0.3 * start.item(), rel=1e-9)
    for with_start, without, g in zip(runs[1][1], runs[0][1], grads):
        assert torch.allclose(with_start - without, 0.3 * g, rtol=1e-7, atol=1e-12)
    assert any(g.abs().sum() > 0 for g in grads)


def test_batching_tasks_default_follows_the_device():
    assert batching_tasks(MetaConfig(), "cuda") and not batching_tasks(MetaConfig(), "cpu")
    assert batching_tasks(MetaConfig(batch_tasks="true"), "cpu")
    assert not batching_tasks(MetaConfig(batch_tasks="false"), "cuda")


def test_meta_lr_ramps_up_then_holds():
    assert [meta_lr(i, 1e-4, 4) for i in range(6)] == pytest.approx([2.5e-5, 5e-5, 7.5e-5, 1e-4, 1e-4, 1e-4])
    assert meta_lr(0, 1e-4) == 1e-4


def test_multi_step_weights_anneal():
    assert multi_step_weights(0, 5) == pytest.approx([0.2] * 5)
    end = multi_step_weights(10_000, 5, anneal_steps=3300)
    assert end[:4] == pytest.approx([0.006] * 4) and end[4] == pytest.approx(0.976)
    mid = multi_step_weights(1650, 5, anneal_steps=3300)
    assert 0.006 < mid[0] < 0.2 and sum(mid) == pytest.approx(1.0)
    assert multi_step_weights(5000, 5, anneal_steps=0) == pytest.approx([0.2] * 5)


def pre_cfg(train_dir, run_dir, **kw):
    base = dict(train_dirs=[str(train_dir)], patch=16, batch=4, steps=6, val_every=0, channels=8, depth=3,
                device="cpu", run_dir=str(run_dir), checkpoint_minutes=10.0)
    return PretrainConfig(**{**base, **kw})


def test_pretrain_resume_is_exact(train_dir, tmp_path):
    run_pretrain(pre_cfg(train_dir, tmp_path / "a", steps=6))
    run_pretrain(pre_cfg(train_dir, tmp_path / "b", steps=3))
    run_pretrain(pre_cfg(train_dir, tmp_path / "b", steps=6), resume=True)
    a, b = load_checkpoint(tmp_path / "a/checkpoint.pt"), load_checkpoint(tmp_path / "b/checkpoint.pt")
    assert a["step"] == b["step"] == 6
    for k in a["net"]:
        assert torch.equal(a["net"][k], b["net"][k]), k
    with pytest.raises(FileExistsError):
        run_pretrain(pre_cfg(train_dir, tmp_path / "a"))
    assert (tmp_path / "b/run.json").exists() and (tmp_path / "b/data.txt").read_text().count("img") == 3


def test_pretrain_warm_start_from_weights(train_dir, tmp_path, tiny_model):
    from mzsr.models import load_model
    run_pretrain(pre_cfg(train_dir, tmp_path / "w", steps=0, init=str(tiny_model)))
    start = load_checkpoint(tmp_path / "w/checkpoint.pt")["net"]
    for k, v in load_model(tiny_model, "cpu").params.items():
        assert torch.equal(start[k], v), k


def test_validation_keeps_best_with_card(train_dir, tmp_path, data):
    run_pretrain(pre_cfg(train_dir, tmp_path / "v", steps=2, val_every=2, val_limit=1))
    card = json.loads((tmp_path / "v/best.json").read_text())
    curve = load_checkpoint(tmp_path / "v/checkpoint.pt")["curve"]
    assert [c["step"] for c in curve] == [0, 2]
    best = max(curve, key=lambda c: c["set14_bicubic_psnr"])
    assert card["training"]["steps"] == best["step"] and card["metrics"]["set14_bicubic_psnr"] == best["set14_bicubic_psnr"] > 15
    assert card["training"]["code_version"]
    assert card["training"]["data"] == [str(train_dir)]  # outside $MZSR_DATA: named as given


def meta_args(init, run_dir, **kw):
    args = dict(init=init, train_dirs=None, patch=16, meta_batch=2, n_train=2, n_test=2, kernel_size=7,
                inner_steps=2, steps=1, val_every=0, device="cpu", run_dir=run_dir)
    return {**args, **kw}


@pytest.mark.parametrize("learn, ema", [(False, 0.0), (True, 0.9)])
def test_meta_resume_is_exact(train_dir, tmp_path, tiny_model, learn, ema):
    cfg = lambda d, steps: MetaConfig(**meta_args(str(tiny_model), str(tmp_path / d), steps=steps,  # noqa: E731
                                                  train_dirs=[str(train_dir)], learn_step_lrs=learn, ema=ema,
                                                  meta_lr_warmup=4 if learn else 0))
    run_meta(cfg("a", 3))
    run_meta(cfg("b", 2))
    run_meta(cfg("b", 3), resume=True)
    a, b = load_checkpoint(tmp_path / "a/checkpoint.pt"), load_checkpoint(tmp_path / "b/checkpoint.pt")
    for k in a["net"]:
        assert torch.equal(a["net"][k], b["net"][k]), k
    if learn:
        assert torch.equal(a["step_lrs"], b["step_lrs"])
        assert a["opt"]["param_groups"][0]["lr"] == pytest.approx(1e-4 * 3 / 4)  # the warm-up's third step
    for k in a.get("ema", {}):
        assert torch.equal(a["ema"][k], b["ema"][k]), k


def test_learned_step_lrs_move_and_ship_in_the_card(train_dir, tmp_path, tiny_model, data):
    from mzsr.models import load_model

    run_dir = tmp_path / "l"
    run_meta(MetaConfig(**meta_args(str(tiny_model), str(run_dir), steps=2, val_every=2, val_limit=1, val_crop=32,
                                    val_steps=[1], train_dirs=[str(train_dir)], learn_step_lrs=True,
                                    inner_lr=0.01, meta_lr=1e-3)))
    rates = load_checkpoint(run_dir / "checkpoint.pt")["step_lrs"]
    assert rates.shape == (2, len(load_model(tiny_model).params)) and (rates >= 0).all()
    assert not torch.allclose(rates, torch.full_like(rates, 0.01))  # Adam moved them
    model = load_model(run_dir / "best.safetensors")
    assert len(model.step_lrs) == 2 and set(model.step_lrs[0]) == set(model.params)
    assert model.card["base"] == load_model(tiny_model).card["base"]  # the pretrained weights, not the init
    net = SRNet(**{k: v for k, v in model.card["arch"].items()})
    assert card_step_lrs(net, None, MetaConfig(test_step_lrs=[0.02])) == [0.02]
    assert init_step_lrs(net, MetaConfig()) is None
    # going on from these weights starts from their learned rates; steps they lack, and scalar schedules, from
    # the inner rate
    going_on = init_step_lrs(net, MetaConfig(learn_step_lrs=True, inner_steps=3, inner_lr=0.05), model.step_lrs)
    assert torch.equal(going_on[:2], torch.tensor([list(r.values()) for r in model.step_lrs]))
    assert torch.equal(going_on[2], torch.full_like(going_on[2], 0.05))
    fresh = init_step_lrs(net, MetaConfig(learn_step_lrs=True, inner_steps=2, inner_lr=0.05), [0.02, 0.01])
    assert torch.equal(fresh, torch.full_like(fresh, 0.05)) and fresh.requires_grad
    from mzsr import upscale
    from mzsr.cli import _describe_step_lrs

    assert _describe_step_lrs(model.step_lrs).startswith("learned per layer, mean per step [")
    from mzsr.schedules import scale_step_lrs

    doubled = scale_step_lrs(model.step_lrs + [0.01], 2)
    assert all(doubled[i][k] == 2 * model.step_lrs[i][k] for i in range(2) for k in model.params) and doubled[2] == 0.02
    img = (np.random.default_rng(0).random((24, 20, 3)) * 255).astype(np.uint8)
    assert upscale(img, 2, kernel="iso:1.0", steps=3, model=model, device="cpu").shape == (48, 40, 3)


def test_rates_alone_for_frozen_weights(train_dir, tmp_path, tiny_model):
    from mzsr.models import load_model

    run_dir = tmp_path / "f"
    run_meta(MetaConfig(**meta_args(str(tiny_model), str(run_dir), steps=2, inner_steps=1, first_order=True,
                                    train_dirs=[str(train_dir)], learn_step_lrs=True, freeze_weights=True,
                                    meta_lr=1e-3, test_step_lrs=[0.01, 0.005, 0.002])))
    state = load_checkpoint(run_dir / "checkpoint.pt")
    for k, v in load_model(tiny_model).params.items():
        assert torch.equal(state["net"][k], v), k
    assert not torch.allclose(state["step_lrs"], torch.full_like(state["step_lrs"], 0.01))
    net = SRNet(channels=8, depth=3)
    lrs = card_step_lrs(net, torch.full((1, 6), 0.03), MetaConfig(test_step_lrs=[0.01, 0.005, 0.002]))
    assert isinstance(lrs[0], dict) and lrs[1:] == [0.005, 0.002]  # learned step first, then the schedule


@pytest.mark.parametrize("bad, message", [({"freeze_weights": True}, "freeze_weights needs learn_step_lrs"),
                                          ({"ema": 1.0}, "ema is a decay"),
                                          ({"kernel_min_var": 6.0}, r"kernel_min_var must be in \(0, 5\]"),
                                          ({"kernel_minor_max": 0.85}, "kernel_minor_max must exceed")])
def test_meta_rejects_configs_that_cannot_train(train_dir, tmp_path, tiny_model, bad, message):
    with pytest.raises(ValueError, match=message):
        run_meta(MetaConfig(**meta_args(str(tiny_model), str(tmp_path / "g"), train_dirs=[str(train_dir)], **bad)))
    assert not (tmp_path / "g").exists()  # rejected before the run folder is made


def test_ema_follows_the_weights_and_is_what_validation_scores(train_dir, tmp_path, tiny_model, data):
    from mzsr.models import load_model

    run_dir = tmp_path / "e"
    cfg = MetaConfig(**meta_args(str(tiny_model), str(run_dir), steps=1, val_every=1, val_limit=1, val_crop=32,
                                 val_steps=[1], train_dirs=[str(train_dir)], learn_step_lrs=True, meta_lr=1e-2,
                                 ema=0.75))
    run_meta(cfg)
    state, init = load_checkpoint(run_dir / "checkpoint.pt"), load_model(tiny_model).params
    for k, w in state["net"].items():
        assert torch.allclose(state["ema"][k], 0.75 * init[k] + 0.25 * w, atol=1e-7), k
    assert torch.allclose(state["ema"]["step_lrs"], 0.75 * 0.01 + 0.25 * state["step_lrs"])
    net = SRNet(channels=8, depth=3)
    averaged = validate(net, cfg, _validation_sets(cfg), {k: state["ema"][k] for k in init},
                        card_step_lrs(net, state["ema"]["step_lrs"], cfg))
    raw = validate(net, cfg, _validation_sets(cfg), state["net"], card_step_lrs(net, state["step_lrs"], cfg))
    logged = [r for r in map(json.loads, (run_dir / "log.jsonl").read_text().splitlines()) if "val" in r]
    assert [r["step"] for r in logged] == [0, 1] and "val_latest" not in logged[0]  # step 0: nothing to compare
    assert (logged[1]["val"], logged[1]["val_latest"]) == (averaged, raw) and averaged != raw


def cli(*args):
    return [sys.executable, "-m", "mzsr.cli", *map(str, args)]


def test_sigkill_loses_at_most_one_checkpoint_interval(train_dir, tmp_path):
    run_dir = tmp_path / "k"
    interval_s = 1.0
    proc = subprocess.Popen(cli("train", "pretrain", "--train-dirs", train_dir, "--patch", 16, "--batch", 2,
                                "--channels", 8, "--depth", 3, "--val-every", 0, "--device", "cpu",
                                "--checkpoint-minutes", interval_s / 60, "--run-dir", run_dir),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = run_dir / "checkpoint.pt"
    deadline = time.time() + 120
    while time.time() < deadline and not (ckpt.exists() and time.time() - ckpt.stat().st_mtime < 0.5
                                          and load_checkpoint(ckpt)["step"] >= 3):
        time.sleep(0.1)
    time.sleep(0.4)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = time.time()
    state = load_checkpoint(ckpt)  # never a half-written file: atomic rename
    assert killed_at - ckpt.stat().st_mtime <= interval_s + 1.0  # slack: one step and the poll
    logged = [json.loads(l)["step"] for l in (run_dir / "log.jsonl").read_text().splitlines()] if (
        run_dir / "log.jsonl").exists() else []
    assert state["step"] >= 3 and (not logged or max(logged) >= state["step"] - 50)
    # --resume takes the run's saved config: only what changes (here the step count) is given again
    rc = subprocess.run(cli("train", "pretrain", "--run-dir", run_dir, "--steps", state["step"] + 2, "--resume"),
                        capture_output=True, text=True)
    assert rc.returncode == 0, rc.stderr[-2000:]
    assert load_checkpoint(ckpt)["step"] == state["step"] + 2
    assert load_checkpoint(ckpt)["net"]["convs.0.weight"].shape[0] == 8  # the run's 8 channels, not the default
    rc = subprocess.run(cli("train", "pretrain", "--run-dir", tmp_path / "none", "--resume"),
                        capture_output=True, text=True)
    assert rc.returncode == 2 and "no run to resume there" in rc.stderr


def test_time_budget_and_sigterm_stop_cleanly(train_dir, tmp_path):
    t0 = time.time()
    run_pretrain(pre_cfg(train_dir, tmp_path / "t", steps=10 ** 6, time_budget="2s"))
    assert time.time() - t0 < 60
    assert load_checkpoint(tmp_path / "t/checkpoint.pt")["step"] >= 1
    proc = subprocess.Popen(cli("train", "pretrain", "--train-dirs", train_dir, "--patch", 16, "--batch", 2,
                                "--channels", 8, "--depth", 3, "--val-every", 0, "--device", "cpu",
                                "--run-dir", tmp_path / "s"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (tmp_path / "s/run.json").exists():
        time.sleep(0.1)
    time.sleep(1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    assert load_checkpoint(tmp_path / "s/checkpoint.pt")["step"] >= 1


def single_and_ddp(args: list, tmp_path):
    """Checkpoints after the same run in one process and in two gloo processes under torchrun.

    ``--standalone`` rendezvous on a free port: a fixed one can still be held by an earlier run."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = subprocess.run(cli(*args, "--run-dir", tmp_path / "one"), capture_output=True, text=True, env=env)
    assert single.returncode == 0, single.stderr[-2000:]
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "mzsr.cli", *map(str, args),
                          "--run-dir", str(tmp_path / "two")], capture_output=True, text=True, env=env)
    assert ddp.returncode == 0, f"exit {ddp.returncode}: {ddp.stderr[-3000:]}"
    return load_checkpoint(tmp_path / "one/checkpoint.pt"), load_checkpoint(tmp_path / "two/checkpoint.pt")


def assert_same_update(one: dict, two: dict, init: dict) -> None:
    assert any(not torch.allclose(one[k], init[k]) for k in init)  # the step did move the weights
    for k in one:
        assert torch.allclose(one[k], two[k], atol=1e-6), k


def test_meta_ddp_gloo_two_processes_equal_single_process(train_dir, tmp_path, tiny_model):
    from mzsr.models import load_model

    one, two = single_and_ddp(["train", "meta", "--init", tiny_model, "--train-dirs", train_dir, "--patch", 16,
                               "--meta-batch", 2, "--n-train", 2, "--n-test", 2, "--kernel-size", 7,
                               "--inner-steps", 2, "--steps", 1, "--val-every", 0, "--device", "cpu",
                               "--learn-step-lrs", "true", "--meta-lr", "1e-3"], tmp_path)
    assert_same_update(one["net"], two["net"], load_model(tiny_model).params)
    assert not torch.allclose(one["step_lrs"], torch.full_like(one["step_lrs"], 0.01))
    assert torch.allclose(one["step_lrs"], two["step_lrs"], atol=1e-7)  # the learned rates are averaged too


def test_pretrain_ddp_gloo_two_processes_equal_single_process(train_dir, tmp_path):
    one, two = single_and_ddp(["train", "pretrain", "--train-dirs", train_dir, "--patch", 16, "--batch", 4,
                               "--channels", 8, "--depth", 3, "--steps", 1, "--val-every", 0, "--device", "cpu"],
                              tmp_path)
    torch.manual_seed(0)  # the seed the run uses (config default): its initial weights
    assert_same_update(one["net"], two["net"], SRNet(8, 3).state_dict())


def test_validation_kernels_are_chosen_by_name(tiny_model, data):
    from mzsr.train.meta import tune_step_lrs

    cfg = MetaConfig(val_limit=1, val_crop=32, val_steps=[0, 1], val_kernels=["iso0.2", "iso2.0"], device="cpu")
    scores = tune_step_lrs(tiny_model, cfg, {})[0][2]
    assert set(scores) == {"iso0.2_mzsr0", "iso0.2_mzsr1", "iso2.0_mzsr0", "iso2.0_mzsr1", "score", "min_gain"}
    assert scores["score"] == pytest.approx((scores["iso0.2_mzsr1"] + scores["iso2.0_mzsr1"]) / 2, abs=1e-3)
    assert scores["min_gain"] == pytest.approx(min(scores[f"{k}_mzsr1"] - scores[f"{k}_mzsr0"]
                                                   for k in ("iso0.2", "iso2.0")), abs=1e-3)
    with pytest.raises(ValueError, match="val_kernels: iso9.9: choose from iso2.0, ani4-1, iso0.2"):
        tune_step_lrs(tiny_model, MetaConfig(val_kernels=["iso9.9"], device="cpu"), {})


def test_selection_puts_weights_that_adapting_improves_first():
    from mzsr.train.meta import selection_value

    helps, hurts = {"score": 30.0, "min_gain": 0.3}, {"score": 30.5, "min_gain": -0.1}
    assert selection_value(hurts, 0.0) < selection_value(helps, 0.0) == 30.0
    assert selection_value(helps, 0.5) < selection_value(hurts, 0.0)  # a 0.3 dB gain is short of 0.5
    assert selection_value(hurts, -math.inf) > selection_value(helps, -math.inf)  # no rule: the score alone
    assert selection_value(hurts, 0.0) > selection_value({"score": 30.4, "min_gain": -0.1}, 0.0)
    assert selection_value({"score": 30.5}, 0.0) == 30.5  # MZSR(0) not validated: nothing to compare


def test_tune_step_lrs_ranks_candidates_on_validation(tiny_model, data):
    from mzsr.train.meta import tune_step_lrs

    cfg = MetaConfig(val_limit=1, val_crop=32, val_steps=[1, 2], device="cpu")
    rows = tune_step_lrs(tiny_model, cfg, {"zero": [0.0], "big": [0.5]})
    assert {r[0] for r in rows} == {"zero", "big", "card", "card×0.75", "card×1.25", "card, then ×0.5",
                                    "card, then ×1.5", "card, then ×2"}  # the model's own compete
    lrs = dict((r[0], r[1]) for r in rows)
    assert lrs["card×1.25"] == [0.0125]  # the tiny model's card has [0.01]
    assert lrs["card, then ×2"] == [0.01, 0.02]  # its first step kept, the rest doubled
    scores = [r[2]["score"] for r in rows]
    assert scores == sorted(scores, reverse=True)
    by_name = dict((r[0], r[2]) for r in rows)
    assert by_name["zero"]["iso2.0_mzsr1"] == by_name["zero"]["iso2.0_mzsr2"]  # a zero step leaves the weights
    assert by_name["card, then ×2"]["iso2.0_mzsr1"] == by_name["card"]["iso2.0_mzsr1"]
    assert by_name["card, then ×2"]["iso2.0_mzsr2"] != by_name["card"]["iso2.0_mzsr2"]
