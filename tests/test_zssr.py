"""ZSSR baseline: pipeline contract, lr policy, augmentation mix, self-ensemble, back-projection, learning."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import mzsr.zssr as Z
from mzsr.adapt import to_tensor
from mzsr.degrade import degrade
from mzsr.kernels import gaussian_kernel
from mzsr.resize import imresize
from mzsr.schedules import ZSSR_REAL_NOISE


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def smooth_image(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    return np.stack([0.5 + 0.4 * np.sin(2 * np.pi * (1.5 * xx + yy)),
                     0.5 + 0.4 * np.cos(2 * np.pi * (xx - 2 * yy)),
                     0.1 + 0.8 * xx * yy], axis=-1)


def checker_image(h: int, w: int, cell: int = 5) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    board = ((yy // cell + xx // cell) % 2) * 0.8 + 0.1
    return np.stack([board, smooth_image(h, w)[..., 0], 1 - board], axis=-1)


@pytest.fixture(scope="module")
def blurred():
    """(HR, LR, kernel): a smooth 48×48 image degraded ×2 by an isotropic Gaussian with direct subsampling."""
    hr = smooth_image(48, 48)
    k = gaussian_kernel(2.0, size=11)
    return hr, degrade(hr, k, 2), k


def as_tensor(img: np.ndarray) -> torch.Tensor:
    return to_tensor(img * 255.0)


@pytest.mark.parametrize("scale, kernel, downsample, shape", [
    (3, None, "bicubic", (15, 21)),
    (2, gaussian_kernel(1.5, size=9), "direct", (18, 13)),
])
def test_output_shape_and_range(scale, kernel, downsample, shape):
    lr = checker_image(*shape)
    sr = Z.zssr(lr, scale, kernel, downsample, max_iters=3)
    assert sr.shape == (shape[0] * scale, shape[1] * scale, 3)
    assert np.issubdtype(sr.dtype, np.floating)
    assert np.isfinite(sr).all() and sr.min() >= 0.0 and sr.max() <= 1.0


def test_same_seed_same_result_other_seed_differs():
    lr = checker_image(16, 16)
    a = Z.zssr(lr, 2, None, "bicubic", max_iters=5, seed=3)
    b = Z.zssr(lr, 2, None, "bicubic", max_iters=5, seed=3)
    c = Z.zssr(lr, 2, None, "bicubic", max_iters=5, seed=4)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-4


def test_seed_alone_fixes_the_initial_weights():
    a = Z._fresh_net(5, "cpu")
    torch.rand(10)  # whatever the global RNG did in between must not matter
    b, c = Z._fresh_net(5, "cpu"), Z._fresh_net(6, "cpu")
    for pa, pb, pc in zip(a.parameters(), b.parameters(), c.parameters()):
        torch.testing.assert_close(pa, pb, rtol=0, atol=0)
        assert not torch.equal(pa, pc)


def test_seed_leaves_global_torch_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    Z.zssr(checker_image(12, 12), 2, None, "bicubic", max_iters=1)
    torch.testing.assert_close(torch.rand(3), expected)


def test_callback_gets_every_iteration_and_its_loss():
    calls = []
    Z.zssr(checker_image(16, 16), 2, None, "bicubic", max_iters=7, callback=lambda i, loss: calls.append((i, loss)))
    assert [i for i, _ in calls] == list(range(7))
    assert all(isinstance(loss, float) and 0 < loss < 1 for _, loss in calls)


def test_lr_policy_drops_on_a_flat_noisy_curve():
    rng = np.random.default_rng(0)
    iters = np.arange(50, 301, 50)
    assert Z.should_drop_lr(iters, 0.02 + 1e-4 * rng.standard_normal(iters.size))


def test_lr_policy_keeps_rate_while_errors_fall_steeply():
    rng = np.random.default_rng(0)
    iters = np.arange(50, 301, 50)
    falling = 0.05 - 1e-4 * iters + 1e-5 * rng.standard_normal(iters.size)  # 1.5 × slope = 1.5e-4 ≫ noise
    assert not Z.should_drop_lr(iters, falling)


def test_lr_policy_weighs_slope_against_scatter():
    # the same decline is judged "still learning" or "stalled" by the factor alone: the comparison is live
    iters = np.arange(6.0)
    errors = 1.0 - 0.1 * iters + np.array([0.02, -0.02, 0.02, -0.02, 0.02, -0.02])
    assert not Z.should_drop_lr(iters, errors, factor=1.5)
    assert Z.should_drop_lr(iters, errors, factor=0.1)


def test_lr_policy_needs_three_points():
    assert not Z.should_drop_lr([50, 100], [0.02, 0.02])


def test_training_stops_after_three_lr_drops(monkeypatch):
    # shrink the policy's clock so its wiring runs in a few iterations; a drop is forced at each check
    for name, value in [("ZSSR_TEST_EVERY", 1), ("ZSSR_LR_CHECK_EVERY", 2), ("ZSSR_MIN_ITERS", 4),
                        ("ZSSR_LR_SLOPE_RANGE", 4)]:
        monkeypatch.setattr(Z, name, value)
    monkeypatch.setattr(Z, "should_drop_lr", lambda iters, errors: True)
    calls = []
    Z.zssr(checker_image(12, 12), 2, None, "bicubic", max_iters=50, callback=lambda i, loss: calls.append(i))
    assert len(calls) == 12  # drops at 4, 8, 12: 1e-3 → 1e-6 < ZSSR_MIN_LR


def test_training_runs_to_max_iters_without_lr_drops(monkeypatch):
    monkeypatch.setattr(Z, "ZSSR_TEST_EVERY", 1)
    monkeypatch.setattr(Z, "ZSSR_LR_CHECK_EVERY", 2)
    monkeypatch.setattr(Z, "ZSSR_MIN_ITERS", 4)
    monkeypatch.setattr(Z, "should_drop_lr", lambda iters, errors: False)
    calls = []
    Z.zssr(checker_image(12, 12), 2, None, "bicubic", max_iters=15, callback=lambda i, loss: calls.append(i))
    assert len(calls) == 15


def test_fathers_mix_exact_and_affine_crops():
    lr = as_tensor(checker_image(20, 30))
    exact = [Z.dihedral(lr, i) for i in range(Z.N_DIHEDRAL)]
    rng = np.random.default_rng(0)
    n, hits = 200, 0
    for _ in range(n):
        father = Z.make_father(lr, rng)
        assert father.shape[-2:] in ((20, 30), (30, 20))
        assert father.min() >= 0 and father.max() <= 1
        hits += any(f.shape == father.shape and torch.equal(f, father) for f in exact)
    assert 0.38 < hits / n < 0.62  # 5% untouched + 45% dihedral are exact; the affine half is resampled


def test_fathers_are_crops_of_at_most_128():
    lr = as_tensor(checker_image(150, 140))
    rng = np.random.default_rng(1)
    for _ in range(12):
        assert Z.make_father(lr, rng).shape[-2:] == (128, 128)


def test_affine_father_stays_close_to_the_image_statistics():
    # a modest affine keeps content: the crop's colour means stay those of the (smooth, symmetric) image
    lr = as_tensor(checker_image(24, 24, cell=4))
    fathers = [Z._affine_crop(lr, np.random.default_rng(s)) for s in range(20)]
    means = torch.stack([f.mean(dim=(-2, -1)) for f in fathers])
    torch.testing.assert_close(means.mean(0), lr.mean(dim=(-2, -1)).expand_as(means.mean(0)), atol=0.06, rtol=0)


def test_training_reduces_whole_image_reconstruction_error():
    lr = as_tensor(checker_image(24, 24))
    k = torch.as_tensor(gaussian_kernel(2.0, size=11), dtype=torch.float32)
    net = Z._fresh_net(0, "cpu")
    x = Z._net_input(lr, k, 2, "direct")
    before = Z._reconstruction_error(net, x, lr)
    Z.train(net, lr, k, 2, "direct", 30, np.random.default_rng(0))
    assert Z._reconstruction_error(net, x, lr) < 0.85 * before


def test_short_run_is_more_consistent_and_closer_than_bicubic(blurred):
    hr, lr, k = blurred
    sr = Z.zssr(lr, 2, k, "direct", max_iters=30)
    bicubic = imresize(lr, 2)

    def consistency(img):
        return np.abs(degrade(img, k, 2) - lr).mean()

    assert consistency(sr) < 0.5 * consistency(bicubic)
    assert np.abs(sr - hr).mean() < np.abs(bicubic - hr).mean()


@pytest.mark.parametrize("scale, downsample, shift", [(2, "direct", 1), (4, "direct", 3), (2, "bicubic", 0)])
def test_self_ensemble_is_realigned_for_direct_subsampling(monkeypatch, scale, downsample, shift):
    """ZSSR's ensemble must move flipped frames back by s − 1 px under direct subsampling (mzsr.ensemble)."""
    seen = []
    monkeypatch.setattr(Z, "self_ensemble", lambda forward, x, s: seen.append(s) or forward(x))
    Z.zssr(checker_image(24, 24), scale, gaussian_kernel(1.0, size=5), downsample, max_iters=1)
    assert seen == [shift]


def test_real_image_setting_puts_seeded_noise_on_the_sons_only(monkeypatch):
    seen = []
    real_upsample = Z.upsample
    monkeypatch.setattr(Z, "upsample", lambda son, shape: seen.append(son.clone()) or real_upsample(son, shape))
    img = as_tensor(checker_image(24, 24))
    clean = Z._net_input(img, None, 2, "bicubic")
    noisy = Z._net_input(img, None, 2, "bicubic", 8.0, np.random.default_rng(0))
    assert torch.equal(noisy, Z._net_input(img, None, 2, "bicubic", 8.0, np.random.default_rng(0)))
    assert (seen[1] - seen[0]).mul(255).std().item() == pytest.approx(8.0, rel=0.15)  # σ in grey levels
    assert not torch.equal(clean, noisy)
    lr = checker_image(16, 16)
    a = Z.zssr(lr, 2, None, "bicubic", max_iters=5, seed=3)
    b = Z.zssr(lr, 2, None, "bicubic", max_iters=5, seed=3, noise=ZSSR_REAL_NOISE)
    assert a.shape == b.shape and np.abs(a - b).max() > 1e-4  # same seed, the sons' noise changes what it learns
