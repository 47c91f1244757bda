import numpy as np
import pytest

import mzsr
from mzsr.kernels import gaussian_kernel
from mzsr.metrics import psnr_rgb
from mzsr.models import ModelError


def test_bicubic_method_equals_imresize(rng):
    img = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
    out = mzsr.upscale(img, 2, method="bicubic")
    assert out.shape == (24, 20, 3) and out.dtype == np.uint8


def test_layouts_and_dtypes_are_kept(tiny_model, rng):
    base = rng.integers(0, 256, (16, 14, 3), dtype=np.uint8)
    k = gaussian_kernel(1.0, size=9)
    for img in (base, base[..., 0], np.dstack([base, base[..., :1]]), np.dstack([base[..., 0]] * 2),
                base.astype(np.uint16) * 257, base / 255.0):
        out = mzsr.upscale(img, 2, kernel=k, steps=1, model=str(tiny_model))
        assert out.shape[:2] == (32, 28) and out.shape[2:] == img.shape[2:] and out.dtype == img.dtype


def test_alpha_is_upscaled_bicubically_and_kept(tiny_model):
    img = np.zeros((16, 16, 4), np.uint8)
    img[..., 3] = 255
    img[:8, :, 3] = 0
    out = mzsr.upscale(img, 2, kernel="iso:1", steps=0, model=str(tiny_model))
    assert out[:14, :, 3].max() == 0 and out[18:, :, 3].min() == 255


def test_methods_differ_and_steps_change_the_result(tiny_model, rng):
    img = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
    zero = mzsr.upscale(img, 2, kernel="iso:1.5", steps=0, model=str(tiny_model))
    three = mzsr.upscale(img, 2, kernel="iso:1.5", steps=3, model=str(tiny_model))
    fine = mzsr.upscale(img, 2, kernel="iso:1.5", steps=3, method="finetune", model=str(tiny_model))
    assert not np.array_equal(zero, three) and not np.array_equal(three, fine)


def test_errors(tiny_model, rng):
    img = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="unknown method"):
        mzsr.upscale(img, method="magic")
    with pytest.raises(ModelError, match="unknown model"):
        mzsr.upscale(img, model="no-such-model")
    with pytest.raises(ValueError, match="×2 model"):
        mzsr.upscale(img, 4, kernel="iso:1", model=str(tiny_model))


def test_back_projection_makes_the_output_reproduce_the_input(tiny_model, rng):
    hr = np.clip(128 + 90 * np.sin(np.mgrid[:48, :44][1] / 2.5)[..., None] + rng.normal(0, 10, (48, 44, 3)), 0, 255)
    lr = mzsr.degrade_image(hr.astype(np.uint8), "iso:1.5", 2)
    plain = mzsr.upscale(lr, 2, kernel="iso:1.5", steps=1, model=str(tiny_model))
    bp = mzsr.upscale(lr, 2, kernel="iso:1.5", steps=1, model=str(tiny_model), back_projection=3)
    # degrading the output again should give back the input: more so after back-projection
    assert psnr_rgb(mzsr.degrade_image(bp, "iso:1.5", 2), lr, 2) > psnr_rgb(mzsr.degrade_image(plain, "iso:1.5", 2),
                                                                             lr, 2) + 1
    with pytest.raises(ValueError, match="back_projection applies to mzsr and finetune"):
        mzsr.upscale(lr, 2, method="bicubic", back_projection=2)


def test_degrade_image_matches_cli_recipe(rng):
    img = rng.integers(0, 256, (20, 22, 3), dtype=np.uint8)
    lr = mzsr.degrade_image(img, "iso:2", 2)
    assert lr.shape == (10, 11, 3) and lr.dtype == np.uint8
    assert psnr_rgb(mzsr.degrade_image(img, "bicubic", 2), lr, 0) < 60  # blur changes the result


def test_sixteen_bit_keeps_its_precision(tiny_model):
    ramp = np.linspace(0, 65535, 40 * 40).reshape(40, 40).astype(np.uint16)
    out = mzsr.upscale(ramp, 2, kernel="iso:1", steps=0, model=str(tiny_model))
    assert out.dtype == np.uint16 and len(np.unique(out)) > 1000
