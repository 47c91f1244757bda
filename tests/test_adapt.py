import numpy as np
import pytest
import torch

from mzsr.adapt import (adapt, back_project, forward_tiled, holdout_blocks, holdout_mask, holdout_pair, l1_grad_tiled,
                        make_son, son_sampler, super_resolve, to_image, to_tensor, upsample, zero_shot)
from mzsr.degrade import degrade_torch
from mzsr.ensemble import kernel_symmetries, undo_dihedral
from mzsr.runtime import has_fast_bf16
from mzsr.schedules import AUTO_CHECK_EVERY, AUTO_PATIENCE
from mzsr.kernels import gaussian_kernel
from mzsr.net import SRNet


@pytest.fixture
def net():
    torch.manual_seed(0)
    n = SRNet(channels=8, depth=8)
    for conv in n.convs:  # a non-trivial last layer, so that tiles really differ from an identity map
        torch.nn.init.normal_(conv.weight, std=0.1)
    return n


def params_of(net):
    return {k: v.detach() for k, v in net.named_parameters()}


def test_tiled_forward_equals_whole_image(net):
    x = torch.rand(1, 3, 70, 53)
    whole = forward_tiled(net, params_of(net), x, tile=None)
    for tile in (16, 25, 64):
        assert (forward_tiled(net, params_of(net), x, tile=tile) - whole).abs().max() < 1e-5


def test_tiled_gradient_equals_whole_image(net):
    x, y = torch.rand(1, 3, 40, 33), torch.rand(1, 3, 40, 33)
    p = {k: v.clone().requires_grad_(True) for k, v in params_of(net).items()}
    loss_w, g_w = l1_grad_tiled(net, p, x, y, tile=None)
    loss_t, g_t = l1_grad_tiled(net, p, x, y, tile=12)
    assert loss_t == pytest.approx(loss_w, rel=1e-5)
    for k in g_w:
        assert torch.allclose(g_t[k], g_w[k], atol=1e-6, rtol=1e-4)


def test_son_follows_the_model_convention():
    lr = torch.rand(1, 3, 20, 22)
    k = torch.ones(3, 3) / 9
    assert torch.equal(make_son(lr, k, 2, "direct"), degrade_torch(lr, k, 2, "direct"))
    assert make_son(lr, None, 2, "bicubic").shape[-2:] == (10, 11)
    with pytest.raises(ValueError, match="too small"):
        make_son(torch.rand(1, 3, 6, 6), None, 2, "direct")


def test_adaptation_lowers_the_son_loss(net):
    lr = torch.rand(1, 3, 24, 24)
    k = torch.ones(3, 3) / 9
    losses = []
    adapt(net, params_of(net), lr, k, 2, "direct", 5, [0.05], callback=lambda i, l: losses.append(l))
    assert len(losses) == 5 and losses[-1] < losses[0]


def test_zero_steps_and_split_steps(net):
    lr, k = torch.rand(1, 3, 24, 24), torch.ones(3, 3) / 9
    p0 = params_of(net)
    assert adapt(net, p0, lr, k, 2, "direct", 0, [0.01]) is p0
    lrs = [0.03, 0.02, 0.01]
    ten = adapt(net, p0, lr, k, 2, "direct", 4, lrs)
    one = adapt(net, p0, lr, k, 2, "direct", 1, lrs)
    rest = adapt(net, one, lr, k, 2, "direct", 3, lrs, first_step=1)
    for name in ten:
        assert torch.allclose(ten[name], rest[name], atol=1e-6)


def test_per_layer_step_lrs(net):
    lr, k = torch.rand(1, 3, 24, 24), torch.ones(3, 3) / 9
    p0 = params_of(net)
    frozen = "convs.3.weight"
    per_layer = [{name: (0.0 if name == frozen else 0.02) for name in p0}, {name: 0.01 for name in p0}]
    got = adapt(net, p0, lr, k, 2, "direct", 3, per_layer)
    want = adapt(net, p0, lr, k, 2, "direct", 3, [0.02, 0.01])  # same rates, but every layer moves
    assert torch.equal(adapt(net, p0, lr, k, 2, "direct", 1, per_layer)[frozen], p0[frozen])
    assert not torch.equal(got[frozen], p0[frozen])  # steps 2 and 3 move it (the last entry repeats)
    same_rates = [{name: 0.02 for name in p0}, {name: 0.01 for name in p0}]
    for name, value in adapt(net, p0, lr, k, 2, "direct", 3, same_rates).items():
        assert torch.allclose(value, want[name], atol=1e-7)


def test_super_resolve_size_and_conversions(net):
    img = np.random.default_rng(0).integers(0, 256, (9, 7, 3)).astype(np.uint8)
    t = to_tensor(img)
    assert np.array_equal(to_image(t), img)
    sr = super_resolve(net, params_of(net), t, 2)
    assert sr.shape == (1, 3, 18, 14) and sr.min() >= 0 and sr.max() <= 1
    assert upsample(t, (18, 14)).shape == sr.shape


@pytest.mark.parametrize("kernel, downsample", [(gaussian_kernel(2.0, size=11), "direct"), (None, "bicubic")])
def test_back_projection_reduces_reconstruction_error(kernel, downsample):
    yy, xx = np.mgrid[0:16, 0:20]
    board = ((yy // 5 + xx // 5) % 2) * 0.8 + 0.1
    lr = torch.from_numpy(np.stack([board, 1 - board, 0.5 + 0 * board])).float()[None]
    k = None if kernel is None else torch.as_tensor(kernel, dtype=torch.float32)
    sr = upsample(lr, (32, 40))

    def error(img):
        return (degrade_torch(img, k, 2, downsample) - lr).abs().mean().item()

    before = error(sr)
    after_two = error(back_project(sr, lr, k, 2, downsample, 2))
    after_ten = error(back_project(sr, lr, k, 2, downsample, 10))
    assert after_two < 0.7 * before
    assert after_ten < after_two


def test_paper_schedule_is_todays_and_tail_starts_with_the_meta_learned_steps(net):
    lr, k = torch.rand(1, 3, 24, 24), torch.ones(3, 3) / 9
    p0, lrs = params_of(net), [0.03, 0.02]
    son = upsample(make_son(lr, k, 2, "direct"), lr.shape[-2:])
    want = {n: v.clone().requires_grad_(True) for n, v in p0.items()}
    for i in range(2):  # the paper's recipe written out: plain SGD on the whole son pair
        _, g = l1_grad_tiled(net, want, son, lr)
        want = {n: (v - lrs[i] * g[n]).detach().requires_grad_(True) for n, v in want.items()}
    paper = adapt(net, p0, lr, k, 2, "direct", 2, lrs, schedule="paper")
    tail = adapt(net, p0, lr, k, 2, "direct", 2, lrs, schedule="tail", augment=False)
    for n in p0:
        assert torch.equal(paper[n], want[n].detach()) and torch.equal(tail[n], paper[n])
    longer = adapt(net, p0, lr, k, 2, "direct", 6, lrs, schedule="tail")
    assert not torch.equal(longer["convs.0.weight"], adapt(net, p0, lr, k, 2, "direct", 6, lrs)["convs.0.weight"])
    with pytest.raises(ValueError, match="schedule"):
        adapt(net, p0, lr, k, 2, "direct", 1, lrs, schedule="nonesuch")


def _find(lr, crop, frames):
    """(frame, y, x) such that ``crop`` is the turned LR window there, or None."""
    side = crop.shape[-1]
    for f in frames:
        back = undo_dihedral(crop, f)
        for y in range(lr.shape[-2] - side + 1):
            for x in range(lr.shape[-1] - side + 1):
                if torch.equal(lr[..., y:y + side, x:x + side], back):
                    return f, y, x
    return None


def test_crops_keep_the_kernel_and_grid_and_prefer_texture():
    torch.manual_seed(0)
    lr = torch.full((1, 3, 24, 40), 0.5)
    lr[..., 20:] = torch.rand(1, 3, 24, 20)  # texture on the right half only
    k = torch.as_tensor(gaussian_kernel(2.0, 0.5, 0.3, size=7), dtype=torch.float32)
    frames = kernel_symmetries(k)
    assert frames == [0, 2]  # an anisotropic Gaussian keeps only the half turn
    draw = son_sampler(lr, k, 2, "direct", frames=frames, crops=6, crop=8)
    rng = np.random.default_rng(0)
    right = 0
    for _ in range(5):
        pair = draw(rng)
        assert pair.y.shape == pair.x.shape == (6, 3, 8, 8)
        for c in range(6):
            found = _find(lr, pair.y[c:c + 1], frames)
            assert found is not None
            right += found[2] >= 16
        # the son is made from the turned crop, so the pair follows the model exactly
        assert torch.equal(pair.x, upsample(degrade_torch(pair.y, k, 2, "direct"), (8, 8)))
    assert right > 20  # of 30 crops, against ~10 if drawn uniformly
    whole = son_sampler(lr, k, 2, "direct")(rng)
    assert torch.equal(whole.x, upsample(make_son(lr, k, 2, "direct"), lr.shape[-2:]))


def test_corrupted_sons_are_fresh_per_draw_and_seeded():
    lr = torch.rand(1, 3, 16, 16)
    a, b = (son_sampler(lr, None, 2, "bicubic", noise=5.0, jpeg=80) for _ in range(2))
    ra, rb = np.random.default_rng(3), np.random.default_rng(3)
    first, second = a(ra), a(ra)
    assert not torch.equal(first.x, second.x)
    assert torch.equal(first.x, b(rb).x) and torch.equal(second.x, b(rb).x)


def test_held_out_targets_do_not_train(net):
    lr = torch.rand(1, 3, 60, 60)
    corners = holdout_blocks(lr, np.random.default_rng(0), block=8, fraction=0.05)
    assert corners
    keep = holdout_mask(lr, corners, block=8)
    assert keep.sum() == 60 * 60 - 64 * len(corners)
    x, p = upsample(lr, (60, 60)), {k: v.clone().requires_grad_(True) for k, v in params_of(net).items()}
    changed = lr.clone()
    y, x0 = corners[0]
    changed[..., y:y + 8, x0:x0 + 8] = 1 - changed[..., y:y + 8, x0:x0 + 8]
    _, g1 = l1_grad_tiled(net, p, x, lr, mask=keep)
    _, g2 = l1_grad_tiled(net, p, x, changed, mask=keep)
    for n in g1:
        assert torch.equal(g1[n], g2[n])
    held = holdout_pair(lr, None, 2, "bicubic", corners, block=8)
    assert held.x.shape == (len(corners), 3, 24, 24) and held.mask.sum() == 64 * len(corners)


class Clock:
    """Each reading is ``tick`` seconds after the last: time that tests control."""

    def __init__(self, tick):
        self.now, self.tick = 0.0, tick

    def __call__(self):
        self.now += self.tick
        return self.now


def test_auto_stops_within_the_time_limit_and_by_held_out_loss(net):
    lr, k = torch.rand(1, 3, 96, 96), torch.ones(3, 3) / 9  # room for one held-out block
    steps = []
    adapt(net, params_of(net), lr, k, 2, "direct", "auto", [0.01], schedule="tail", time_limit=20.0,
          clock=Clock(1.0), callback=lambda i, loss: steps.append(i))
    # each step reads the clock three times (check, start, end): 1 s ticks allow ~6 steps in 20 s
    assert 3 <= len(steps) <= 7
    steps.clear()
    # a tail rate that wrecks the weights: the held-out loss never beats its first check after the SGD step
    p0 = params_of(net)
    got = adapt(net, p0, lr, k, 2, "direct", "auto", [0.01], schedule="tail", time_limit=1e9, clock=Clock(0.0),
                callback=lambda i, loss: steps.append(i), tail_lr=0.5)
    assert len(steps) == 1 + AUTO_PATIENCE * AUTO_CHECK_EVERY
    one = adapt(net, p0, lr, k, 2, "direct", 1, [0.01])
    assert all((got[n] - one[n]).abs().max() < 0.01 for n in p0)  # the best: close to one SGD step
    steps.clear()
    late = adapt(net, p0, lr, k, 2, "direct", "auto", [0.01, 0.01], time_limit=0.5, clock=Clock(1.0),
                 callback=lambda i, loss: steps.append(i))
    # no time left: the meta-learned steps are taken all the same, nothing after them
    assert steps == [0, 1] and any(not torch.equal(late[n], p0[n]) for n in p0)


def test_auto_without_a_tail_takes_the_meta_learned_steps_on_every_pixel(net):
    img = np.random.default_rng(4).integers(0, 256, (96, 96, 3)).astype(np.float64)  # room for a held-out block
    steps, report = [], {}
    zero_shot(net, params_of(net), img, np.ones((3, 3)) / 9, 2, "direct", "auto", [0.01, 0.01], time_limit=1e9,
              clock=Clock(0.0), callback=lambda i, loss: steps.append(i), guard=True, tail=False, report=report)
    assert steps == [0, 1] and report["steps"] == 2
    assert "held_loss" not in report and report["guard"] == 1.0  # no held-out loss: nothing for the guard to judge


def test_the_guard_gives_bicubic_where_the_adapted_net_is_worse_on_the_held_out_blocks(net):
    img = np.random.default_rng(5).integers(0, 256, (96, 96, 3)).astype(np.float64)  # room for a held-out block
    broken = params_of(net)
    broken["convs.7.bias"] = torch.full_like(broken["convs.7.bias"], 0.5)  # a grey veil no few steps can lift
    report = {}
    sr = zero_shot(net, broken, img, np.ones((3, 3)) / 9, 2, "direct", "auto", [0.0], time_limit=1e9,
                   clock=Clock(0.0), guard=True, report=report)
    assert report["held_loss"] > report["bicubic_loss"] and report["guard"] == 0.0
    bicubic = upsample(to_tensor(img), (192, 192)).clamp(0, 1)[0].permute(1, 2, 0).numpy()
    assert np.abs(sr - bicubic).max() < 1e-6


def test_a_slow_inference_leaves_the_adaptation_its_share_of_the_limit(net, monkeypatch):
    from mzsr import adapt as adapt_module

    # an inference predicted to take an hour would leave no time for steps after the meta-learned one
    monkeypatch.setattr(adapt_module, "forward_seconds_per_pixel", lambda *a, **k: 1.0)
    img = np.random.default_rng(2).integers(0, 256, (96, 96, 3)).astype(np.float64)
    report = {}
    zero_shot(net, params_of(net), img, np.ones((3, 3)) / 9, 2, "direct", "auto", [0.01], time_limit=20.0,
              clock=Clock(1.0), report=report)
    # 1 s ticks, three readings a step: ~3 steps in the half of 20 s the adaptation keeps
    assert 2 <= report["steps"] <= 4


@pytest.mark.parametrize("seconds_per_pass, frames", [(1.0, 4), (100.0, 1)])
def test_zero_shot_reports_the_ensemble_frames_the_limit_affords(net, monkeypatch, seconds_per_pass, frames):
    from mzsr import adapt as adapt_module

    img = np.random.default_rng(3).integers(0, 256, (24, 24, 3)).astype(np.float64)
    monkeypatch.setattr(adapt_module, "forward_seconds_per_pixel", lambda *a, **k: seconds_per_pass / 48 ** 2)
    report = {}
    zero_shot(net, params_of(net), img, np.ones((3, 3)) / 9, 2, "direct", "auto", [0.01], ensemble=True,
              time_limit=16.0, clock=Clock(0.0), report=report)
    assert report["frames"] == frames  # 1 s a pass: 4 of the 8 fit in a quarter of 16 s


def test_zero_shot_auto_with_noise_runs_and_keeps_the_size(net):
    img = np.random.default_rng(1).integers(0, 256, (40, 36, 3)).astype(np.float64)
    out = zero_shot(net, params_of(net), img, np.ones((3, 3)) / 9, 2, "direct", "auto", [0.01],
                    noise=2.0, jpeg=90, time_limit=12.0, clock=Clock(1.0))
    assert out.shape == (80, 72, 3) and 0 <= out.min() and out.max() <= 1


def test_fast_path_follows_the_cpu_flags(monkeypatch):
    from mzsr import runtime

    monkeypatch.setattr(runtime, "cpu_flags", lambda: {"avx2", "avx512f"})
    assert runtime.fast_precision("cpu") == "fp32" and runtime.describe_path("cpu") == "fp32"
    monkeypatch.setattr(runtime, "cpu_flags", lambda: {"avx512f", "avx512_bf16"})
    assert runtime.fast_precision("cpu") == "bf16" and runtime.describe_path("cpu") == "bf16+channels_last"
    monkeypatch.setattr(runtime, "cpu_model", lambda: "AMD EPYC")
    assert runtime.device_label("cpu") == "cpu (AMD EPYC, bf16+channels_last)"  # reports tell the paths apart


@pytest.mark.skipif(not has_fast_bf16("cpu"), reason="bf16 is not native on this CPU")
def test_bf16_is_within_005_db_of_fp32(data):
    from PIL import Image

    from mzsr.metrics import psnr_y
    from mzsr.models import load_model

    model = load_model("direct-x2", "cpu")
    with Image.open(data / "benchmark/Set5/LR_MZSR_g20_x2/butterfly.png") as im:
        lr = np.asarray(im.convert("RGB"))[32:96, 32:96].astype(np.float64)
    with Image.open(data / "benchmark/Set5/HR/img_003_SRF_2_HR.png") as im:
        gt = np.asarray(im.convert("RGB"))[64:192, 64:192]
    k = gaussian_kernel(2.0, size=21)
    scores = [psnr_y(to_image(torch.from_numpy(zero_shot(model.net, model.params, lr, k, 2, "direct", 5,
                                                         model.step_lrs, precision=p)).permute(2, 0, 1)[None]),
                     gt, 2) for p in ("fp32", "bf16")]
    assert abs(scores[0] - scores[1]) < 0.05
    assert scores[0] > psnr_y(to_image(upsample(to_tensor(lr), (128, 128))), gt, 2) + 1  # adaptation did work


def test_auto_keeps_only_the_ensemble_frames_its_time_affords():
    from mzsr.adapt import affordable_frames

    frames = list(range(8))
    assert affordable_frames(frames, 1.0, 8.0) == frames
    assert affordable_frames(frames, 1.0, 5.0) == [0, 1, 2, 3]
    assert affordable_frames(frames, 1.0, 2.5) == [0, 1]
    assert affordable_frames(frames, 1.0, 1.5) is None
    assert affordable_frames([0, 4], 10.0, 1.0) is None
