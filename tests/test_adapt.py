import numpy as np
import pytest
import torch

from mzsr.adapt import (adapt, back_project, forward_tiled, l1_grad_tiled, make_son, super_resolve, to_image,
                        to_tensor, upsample)
from mzsr.degrade import degrade_torch
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
