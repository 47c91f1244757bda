import numpy as np
import pytest

from mzsr.cli import main
from mzsr.metrics import modcrop, psnr_rgb, psnr_y, rgb_to_y, ssim_y

from conftest import SET5_NAMES, load_rgb


def test_bicubic_on_official_g20_inputs_scores_the_papers_28_73(data, tmp_path):
    """The paper's bicubic row: 28.73 dB / 0.8449 (28.7297 / 0.8448 with this protocol)."""
    lr_dir = data / "benchmark/Set5/LR_MZSR_g20_x2"
    assert main(["upscale", str(lr_dir), "-o", str(tmp_path), "--method", "bicubic"]) == 0
    ps, ss = [], []
    for i, name in enumerate(SET5_NAMES):
        gt = modcrop(load_rgb(data / f"benchmark/Set5/HR/img_00{i + 1}_SRF_2_HR.png"), 2)
        sr = load_rgb(tmp_path / f"{name}.png")
        ps.append(psnr_y(sr, gt, 2))
        ss.append(ssim_y(sr, gt, 2))
    assert np.mean(ps) == pytest.approx(28.7297, abs=1e-3)
    assert np.mean(ss) == pytest.approx(0.8448, abs=1e-4)


def test_y_is_rounded_bt601():
    px = np.array([[[255, 255, 255], [0, 0, 0], [255, 0, 0]]], np.uint8)
    assert rgb_to_y(px).tolist() == [[235.0, 16.0, 81.0]]


def test_identical_images(rng):
    img = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    assert psnr_y(img, img, 2) == float("inf")
    assert ssim_y(img, img, 2) == pytest.approx(1.0)
    assert psnr_rgb(img, img, 0) == float("inf")


def test_psnr_and_ssim_fall_with_noise(rng):
    img = rng.integers(30, 220, (64, 64, 3)).astype(np.uint8)
    noisy = np.clip(img + rng.normal(0, 10, img.shape), 0, 255).round().astype(np.uint8)
    noisier = np.clip(img + rng.normal(0, 20, img.shape), 0, 255).round().astype(np.uint8)
    assert psnr_y(noisy, img, 2) > psnr_y(noisier, img, 2) > 20
    assert 0 < ssim_y(noisier, img, 2) < ssim_y(noisy, img, 2) < 1


def test_modcrop():
    assert modcrop(np.zeros((37, 50, 3)), 4).shape == (36, 48, 3)
