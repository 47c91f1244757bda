import numpy as np
import pytest
import torch

from mzsr.cli import main
from mzsr.degrade import blur, blur_torch, degrade, degrade_torch, pad_symmetric
from mzsr.kernels import gaussian_kernel

from conftest import SET5_NAMES, load_rgb


def test_cli_degrade_reproduces_official_set5_g20_bit_exactly(data, tmp_path):
    rc = main(["degrade", str(data / "benchmark/Set5/HR"), "-o", str(tmp_path), "-s", "2",
               "--kernel", str(data / "kernels/MZSR/g20/kernel.mat"), "--downsample", "direct"])
    assert rc == 0
    for i, name in enumerate(SET5_NAMES):
        ours = load_rgb(tmp_path / f"img_00{i + 1}_SRF_2_HR.png").astype(int)
        ref = load_rgb(data / f"benchmark/Set5/LR_MZSR_g20_x2/{name}.png").astype(int)
        assert ours.shape == ref.shape
        assert np.abs(ours - ref).max() == 0


def test_symmetric_padding_repeats_the_edge():
    x = torch.arange(4.0).reshape(1, 1, 1, 4)
    assert pad_symmetric(x, 2)[0, 0, 2].tolist() == [1, 0, 0, 1, 2, 3, 3, 2]


@pytest.mark.parametrize("downsample", ["direct", "bicubic"])
def test_torch_path_matches_numpy(downsample, rng):
    img = rng.random((30, 26, 3))
    kernels = [gaussian_kernel(1.3, size=15), gaussian_kernel(3.0, 1.0, 0.4, size=15)]
    batch = torch.from_numpy(np.stack([img, img[::-1].copy()])).permute(0, 3, 1, 2)
    out = degrade_torch(batch, torch.from_numpy(np.stack(kernels)), 2, downsample)
    for i, (im, k) in enumerate(zip([img, img[::-1]], kernels)):
        ref = degrade(im, k, 2, downsample)
        assert np.abs(out[i].permute(1, 2, 0).numpy() - ref).max() < 1e-10


def test_blur_matches_between_paths_and_is_differentiable(rng):
    img = rng.random((12, 10, 3))
    k = gaussian_kernel(2.0, 1.0, 0.3, size=7)
    t = torch.from_numpy(img).permute(2, 0, 1)[None].requires_grad_(True)
    out = blur_torch(t, torch.from_numpy(k))
    assert np.abs(out[0].permute(1, 2, 0).detach().numpy() - blur(img, k)).max() < 1e-12
    out.sum().backward()
    assert t.grad is not None


def test_noise_is_seeded_and_has_the_right_sigma():
    img = np.full((200, 200), 128.0)
    a = degrade(img, None, 1, noise=0.05, rng=np.random.default_rng(3))
    b = degrade(img, None, 1, noise=0.05, rng=np.random.default_rng(3))
    assert np.array_equal(a, b)
    assert (a - 128).std() == pytest.approx(0.05 * 255, rel=0.05)


def test_corrupt_adds_seeded_noise_in_grey_levels_then_jpeg(rng):
    from mzsr.degrade import corrupt, corrupt_torch

    flat = np.full((64, 64, 3), 128.0)
    noisy = corrupt(flat, noise=5.0, rng=np.random.default_rng(1))
    assert noisy.dtype == np.uint8 and abs(noisy.astype(float).std() - 5.0) < 0.3
    assert np.array_equal(noisy, corrupt(flat, noise=5.0, rng=np.random.default_rng(1)))
    img = (rng.random((32, 40, 3)) * 255).round()
    jpg = corrupt(img, jpeg=75)
    assert jpg.shape == img.shape and 1 < np.abs(jpg - img).mean() < 60
    t = torch.from_numpy(img / 255.0).permute(2, 0, 1)[None].float()
    back = corrupt_torch(t, jpeg=75)[0].permute(1, 2, 0).numpy() * 255
    assert np.abs(back - jpg).max() < 1e-3
