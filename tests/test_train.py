"""Training: exact MAML meta-gradient, loss-weight schedule, exact resume, SIGKILL, time budget, DDP (gloo), and
what a run refuses before it touches its folder."""
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
from mzsr.schedules import multi_step_weights
from mzsr.train.loop import Clock, load_checkpoint
from mzsr.train.maml import card_step_lrs, init_step_lrs, l1, meta_backward, task_losses
from mzsr.train.meta import MetaConfig, MetaStage, batching_tasks, val_sets
from mzsr.train.meta import run as run_meta
from mzsr.train.pretrain import PretrainConfig, PretrainStage
from mzsr.train.pretrain import run as run_pretrain
from mzsr.train.validate import selection_value, validate


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
    rates = (torch.rand(2, len(list(net.parameters())), dtype=torch.float64) * 0.5 + 0.2).requires_grad_(True)
    grads, totals = [], []
    for batched in (False, True):
        net.zero_grad(set_to_none=True)
        rates.grad = None
        totals.append(meta_backward(net, tasks, [0.4, 0.6], 2, rates, second_order, "cpu", start_weight,
                                    batched=batched))
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
        total = meta_backward(net, tasks, [0.4, 0.6], 2, 0.01, True, "cpu", start_weight=w)
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


def test_blind_pairs_give_each_patch_its_own_kernel_and_a_camera_lr(rng):
    from mzsr.degrade import degrade_torch
    from mzsr.kernels import random_kernel
    from mzsr.resize import imresize
    from mzsr.train.data import blind_pair

    hr = torch.from_numpy(rng.random((3, 3, 32, 32))).float()
    x = blind_pair(hr, np.random.default_rng(5), 2, "direct", kernel_size=7, kernel_min_var=0.35)
    draw = np.random.default_rng(5)  # clean pairs draw the kernels alone, one per patch, in order
    kernels = torch.from_numpy(np.stack([random_kernel(draw, 2, 7, 0.35) for _ in range(3)])).float()
    lr = degrade_torch(hr, kernels, 2, "direct").mul(255).round().clamp(0, 255).div(255)  # rounded as a file is
    assert x.shape == hr.shape and torch.allclose(x, imresize(lr, out_shape=(32, 32)), atol=1e-5)
    noisy = blind_pair(hr, np.random.default_rng(5), 2, "direct", kernel_size=7, noise=10.0)
    assert (noisy - x).abs().mean() > 1e-3


def test_a_blind_pretrain_validates_clean_and_corrupted_and_makes_a_real_photo_card(train_dir, tmp_path, data):
    run_pretrain(pre_cfg(train_dir, tmp_path / "b", steps=2, val_every=2, val_limit=1, degradation="blind",
                         task_noise=5.0, task_jpeg=70, clean_share=0.3))
    card = json.loads((tmp_path / "b/best.json").read_text())
    assert card["name"] == "real-x2" and card["downsample"] == "direct" and card["stage"] == "pretrain-blind"
    assert set(card["metrics"]) == {"set14_iso2.0_psnr", "set14_ani4-1_psnr", "set14_iso2.0+n3q80_psnr"}
    assert all(v > 15 for v in card["metrics"].values())
    with pytest.raises(ValueError, match="task_noise applies to degradation blind"):
        pre_cfg(train_dir, tmp_path / "c", task_noise=5.0).check()


def meta_args(init, run_dir, **kw):
    args = dict(init=init, train_dirs=None, patch=16, meta_batch=2, n_train=2, n_test=2, kernel_size=7,
                inner_steps=2, steps=1, val_every=0, device="cpu", run_dir=run_dir)
    return {**args, **kw}


@pytest.mark.parametrize("learn", [False, True])
def test_meta_resume_is_exact(train_dir, tmp_path, tiny_model, learn):
    cfg = lambda d, steps: MetaConfig(**meta_args(str(tiny_model), str(tmp_path / d), steps=steps,  # noqa: E731
                                                  train_dirs=[str(train_dir)], learn_step_lrs=learn))
    run_meta(cfg("a", 3))
    run_meta(cfg("b", 2))
    run_meta(cfg("b", 3), resume=True)
    a, b = load_checkpoint(tmp_path / "a/checkpoint.pt"), load_checkpoint(tmp_path / "b/checkpoint.pt")
    for k in a["net"]:
        assert torch.equal(a["net"][k], b["net"][k]), k
    if learn:
        assert torch.equal(a["step_lrs"], b["step_lrs"])


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
    assert card_step_lrs(net, None, [0.02]) == [0.02]
    lrs = card_step_lrs(net, torch.full((1, 6), 0.03), [0.01, 0.005, 0.002])
    assert isinstance(lrs[0], dict) and lrs[1:] == [0.005, 0.002]  # learned step first, then the schedule
    # going on from these weights starts from their learned rates; steps they lack, and scalar schedules, from
    # the inner rate
    going_on = init_step_lrs(net, 3, 0.05, model.step_lrs)
    assert torch.equal(going_on[:2], torch.tensor([list(r.values()) for r in model.step_lrs]))
    assert torch.equal(going_on[2], torch.full_like(going_on[2], 0.05))
    fresh = init_step_lrs(net, 2, 0.05, [0.02, 0.01])
    assert torch.equal(fresh, torch.full_like(fresh, 0.05)) and fresh.requires_grad
    from mzsr import upscale
    from mzsr.cli import _describe_step_lrs

    assert _describe_step_lrs(model.step_lrs).startswith("learned per layer, mean per step [")
    img = (np.random.default_rng(0).random((24, 20, 3)) * 255).astype(np.uint8)
    assert upscale(img, 2, kernel="iso:1.0", steps=3, model=model, device="cpu").shape == (48, 40, 3)


@pytest.mark.parametrize("bad, message", [({"kernel_min_var": 6.0}, r"kernel_min_var must be in \(0, 5\]"),
                                          ({"kernel_min_var": 0.0}, "kernel_min_var must be > 0"),
                                          ({"kernel_minor_max": 0.85}, "kernel_minor_max must exceed"),
                                          ({"val_kernels": ["iso9.9"]}, "val_kernels iso9.9: choose from iso2.0")])
def test_meta_rejects_configs_that_cannot_train(train_dir, tmp_path, tiny_model, bad, message):
    with pytest.raises(ValueError, match=message):
        run_meta(MetaConfig(**meta_args(str(tiny_model), str(tmp_path / "g"), train_dirs=[str(train_dir)], **bad)))
    assert not (tmp_path / "g").exists()  # rejected before the run folder is made


def cli(*args):
    return [sys.executable, "-m", "mzsr.cli", *map(str, args)]


class Killed(Exception):
    """What a SIGKILL is to an in-process run: it ends mid-way, with no last checkpoint."""


@pytest.fixture
def fake_time(monkeypatch):
    """An injected clock on which every training step takes one second, and a kill at a given step (``kill_at``:
    the number of steps done before the one that never finishes)."""
    t = {"now": 0.0, "kill_at": None}

    def timed(train_step):
        def step(self, i):
            if i == t["kill_at"]:
                raise Killed
            t["now"] += 1.0
            return train_step(self, i)
        return step

    monkeypatch.setattr(PretrainStage, "train_step", timed(PretrainStage.train_step))
    monkeypatch.setattr(MetaStage, "train_step", timed(MetaStage.train_step))
    t["clock"] = lambda budget_s=None, checkpoint_s=600.0: Clock(budget_s, checkpoint_s, now=lambda: t["now"])
    return t


def test_time_budget_stops_cleanly_on_the_clock(train_dir, tmp_path, fake_time):
    run_pretrain(pre_cfg(train_dir, tmp_path / "t", steps=10 ** 6), clock=fake_time["clock"](budget_s=5.0))
    state = load_checkpoint(tmp_path / "t/checkpoint.pt")
    assert state["step"] == 5 and state["wall"] == 5.0


def test_a_kill_loses_at_most_one_checkpoint_interval_and_the_log_does_not_repeat(train_dir, tmp_path, tiny_model,
                                                                                  fake_time):
    """Checkpoints every 3 s of a clock on which a step takes 1 s; killed during step 8: the checkpoint is step
    6's; resumed, the run ends as one that was never killed, and its log names every step once."""
    cfg = lambda d: MetaConfig(**meta_args(str(tiny_model), str(tmp_path / d), steps=9,  # noqa: E731
                                           train_dirs=[str(train_dir)]))
    run_meta(cfg("whole"), clock=fake_time["clock"]())
    fake_time.update(now=0.0, kill_at=7)
    with pytest.raises(Killed):
        run_meta(cfg("killed"), clock=fake_time["clock"](checkpoint_s=3.0))
    assert load_checkpoint(tmp_path / "killed/checkpoint.pt")["step"] == 6
    logged = [json.loads(line)["step"] for line in (tmp_path / "killed/log.jsonl").read_text().splitlines()]
    assert logged == list(range(1, 8))  # steps 7 and 8 were logged, not checkpointed
    fake_time.update(kill_at=None)
    run_meta(cfg("killed"), resume=True, clock=fake_time["clock"]())
    whole, resumed = ([json.loads(line) for line in (tmp_path / d / "log.jsonl").read_text().splitlines()]
                      for d in ("whole", "killed"))
    assert [r["step"] for r in resumed] == list(range(1, 10))
    assert [r["loss"] for r in resumed] == [r["loss"] for r in whole]  # exact resume, no step twice
    a, b = (load_checkpoint(tmp_path / d / "checkpoint.pt")["net"] for d in ("whole", "killed"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_sigkill_leaves_a_whole_checkpoint_to_resume_from(train_dir, tmp_path):
    run_dir = tmp_path / "k"
    proc = subprocess.Popen(cli("train", "pretrain", "--train-dirs", train_dir, "--patch", 16, "--batch", 2,
                                "--channels", 8, "--depth", 3, "--val-every", 0, "--device", "cpu",
                                "--checkpoint-minutes", 0, "--run-dir", run_dir),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = run_dir / "checkpoint.pt"
    deadline = time.time() + 120
    while time.time() < deadline and not (ckpt.exists() and load_checkpoint(ckpt)["step"] >= 60):
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)  # checkpointing every step: most likely while one is being written
    proc.wait()
    state = load_checkpoint(ckpt)  # never a half-written file: atomic rename
    assert state["step"] >= 60
    # --resume takes the run's saved config: only what changes (here the step count) is given again
    rc = subprocess.run(cli("train", "pretrain", "--run-dir", run_dir, "--steps", state["step"] + 2, "--resume"),
                        capture_output=True, text=True)
    assert rc.returncode == 0, rc.stderr[-2000:]
    assert load_checkpoint(ckpt)["step"] == state["step"] + 2
    assert load_checkpoint(ckpt)["net"]["convs.0.weight"].shape[0] == 8  # the run's 8 channels, not the default
    logged = [json.loads(line)["step"] for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert logged == sorted(set(logged)) and 50 in logged  # logged every 50 steps, none twice
    rc = subprocess.run(cli("train", "pretrain", "--run-dir", tmp_path / "none", "--resume"),
                        capture_output=True, text=True)
    assert rc.returncode == 2 and "no run to resume there" in rc.stderr


def test_sigterm_stops_cleanly(train_dir, tmp_path):
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


def folder_state(folder) -> dict:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.iterdir())}


def run_cli(capsys, *args) -> tuple[int, str]:
    from mzsr.cli import main

    rc = main([str(a) for a in args])
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("stage, option, value", [("pretrain", "--steps", -1), ("pretrain", "--checkpoint-minutes", -1),
                                                  ("pretrain", "--batch", 0), ("pretrain", "--patch", 0),
                                                  ("meta", "--patch", 0), ("meta", "--meta-batch", 0),
                                                  ("meta", "--val-steps", -1), ("kernel", "--batch", 0),
                                                  ("pretrain", "--time-budget", "soon")])
def test_an_option_out_of_range_is_named_and_nothing_is_made(train_dir, tmp_path, capsys, stage, option, value):
    rc, err = run_cli(capsys, "train", stage, "--train-dirs", train_dir, "--run-dir", tmp_path / "r", option, value)
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert f"mzsr: error: {option} " in err
    assert not (tmp_path / "r").exists()


def test_a_bad_config_file_is_named(train_dir, tmp_path, capsys):
    path = tmp_path / "cfg.json"
    for text, problem in (('{"steps": 3', "not valid JSON"), ('{"steps": "many"}', "steps must be an integer"),
                          ('[1, 2]', "one JSON object"), ('{"batch": 0}', "batch must be ≥ 1, got 0")):
        path.write_text(text)
        rc, err = run_cli(capsys, "train", "pretrain", "--config", path, "--run-dir", tmp_path / "r")
        assert rc == 2 and err.startswith(f"mzsr: error: {path}: ") and problem in err, err
        assert "Traceback" not in err and not (tmp_path / "r").exists()


def test_a_failed_resume_changes_nothing(train_dir, tmp_path, capsys):
    run_dir = tmp_path / "f"
    run_pretrain(pre_cfg(train_dir, run_dir, steps=2))
    before = folder_state(run_dir)
    rc, err = run_cli(capsys, "train", "pretrain", "--run-dir", run_dir, "--resume", "--steps", -1)
    assert rc == 2 and "--steps must be ≥ 0, got -1" in err
    rc, err = run_cli(capsys, "train", "pretrain", "--run-dir", run_dir, "--resume", "--channels", 16)
    assert rc == 2 and f"{run_dir / 'checkpoint.pt'}: does not fit this run's network" in err
    assert folder_state(run_dir) == before
    ckpt = run_dir / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    before = folder_state(run_dir)
    rc, err = run_cli(capsys, "train", "pretrain", "--run-dir", run_dir, "--resume", "--steps", 4)
    assert rc == 2 and f"{ckpt}: truncated or corrupt checkpoint" in err and "Traceback" not in err
    assert folder_state(run_dir) == before


@pytest.mark.filterwarnings("always::UserWarning")
def test_an_old_run_resumes_without_its_retired_options(train_dir, tmp_path, tiny_model, capsys):
    """A run folder written before ema, meta_lr_warmup, first_order_steps and freeze_weights were retired."""
    run_dir = tmp_path / "old"
    run_meta(MetaConfig(**meta_args(str(tiny_model), str(run_dir), steps=1, train_dirs=[str(train_dir)])))
    record = json.loads((run_dir / "run.json").read_text())
    record["config"].update(ema=0.0, meta_lr_warmup=0, first_order_steps=0, freeze_weights=False)
    (run_dir / "run.json").write_text(json.dumps(record))
    rc, err = run_cli(capsys, "train", "meta", "--run-dir", run_dir, "--resume", "--steps", 2)
    assert rc == 0, err
    assert (f"mzsr: warning: {run_dir}: saved config: ignoring retired options ema, first_order_steps, "
            "freeze_weights, meta_lr_warmup") in err
    assert load_checkpoint(run_dir / "checkpoint.pt")["step"] == 2


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
    from mzsr.models import load_model

    cfg = MetaConfig(val_limit=1, val_crop=32, val_steps=[0, 1], val_kernels=["iso0.2", "iso2.0"], device="cpu")
    model = load_model(tiny_model, "cpu")
    scores = validate(model.net, val_sets(cfg), model.params, 2, "direct", [0, 1], [0.01])
    assert set(scores) == {"iso0.2_mzsr0", "iso0.2_mzsr1", "iso2.0_mzsr0", "iso2.0_mzsr1", "score", "min_gain"}
    assert scores["score"] == pytest.approx((scores["iso0.2_mzsr1"] + scores["iso2.0_mzsr1"]) / 2, abs=1e-3)
    assert scores["min_gain"] == pytest.approx(min(scores[f"{k}_mzsr1"] - scores[f"{k}_mzsr0"]
                                                   for k in ("iso0.2", "iso2.0")), abs=1e-3)
    zero = validate(model.net, val_sets(cfg), model.params, 2, "direct", [0, 1], [0.0])
    assert zero["iso2.0_mzsr1"] == zero["iso2.0_mzsr0"] != scores["iso2.0_mzsr1"]  # a zero step leaves the weights


def test_selection_puts_weights_that_adapting_improves_first():
    helps, hurts = {"score": 30.0, "min_gain": 0.3}, {"score": 30.5, "min_gain": -0.1}
    assert selection_value(hurts, 0.0) < selection_value(helps, 0.0) == 30.0
    assert selection_value(helps, 0.5) < selection_value(hurts, 0.0)  # a 0.3 dB gain is short of 0.5
    assert selection_value(hurts, -math.inf) > selection_value(helps, -math.inf)  # no rule: the score alone
    assert selection_value(hurts, 0.0) > selection_value({"score": 30.4, "min_gain": -0.1}, 0.0)
    assert selection_value({"score": 30.5}, 0.0) == 30.5  # MZSR(0) not validated: nothing to compare
