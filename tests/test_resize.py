import numpy as np
import pytest
import torch
from resize_right import resize as rr_resize

from mzsr.degrade import quantize
from mzsr.metrics import psnr_rgb
from mzsr.resize import contributions, imresize

from conftest import load_rgb

# Sizes divisible by every downscale factor: resize-right aligns image centres while MATLAB aligns the
# top-left sample, and the two only agree when in·scale is a whole number.
CASES = [(2, None), (3, None), (4, None), (1 / 2, None), (1 / 3, None), (1 / 4, None), (1.25, None),
         (None, (50, 33))]


@pytest.mark.parametrize("scale,out_shape", CASES)
def test_numpy_matches_resize_right(scale, out_shape, rng):
    x = rng.random((48, 60, 3))
    ours = imresize(x, scale=scale, out_shape=out_shape)
    ref = rr_resize(x, scale_factors=None if out_shape else [scale, scale], out_shape=out_shape,
                    pad_mode="symmetric")
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).max() < 1e-6


@pytest.mark.parametrize("scale,out_shape", CASES)
def test_torch_matches_numpy(scale, out_shape, rng):
    x = rng.random((48, 60, 3))
    ours = imresize(torch.from_numpy(x).permute(2, 0, 1)[None], scale=scale, out_shape=out_shape)
    ref = imresize(x, scale=scale, out_shape=out_shape)
    assert np.abs(ours[0].permute(1, 2, 0).numpy() - ref).max() < 1e-6


def test_output_size_is_matlab_ceil():
    assert imresize(np.zeros((37, 50)), 0.5).shape == (19, 25)
    assert imresize(np.zeros((37, 50)), 1.7).shape == (63, 85)


def test_weights_sum_to_one_and_indices_in_range():
    for in_len, out_len, s in [(10, 20, 2.0), (20, 10, 0.5), (7, 3, 3 / 7)]:
        idx, w = contributions(in_len, out_len, s)
        assert np.allclose(w.sum(1), 1)
        assert idx.min() >= 0 and idx.max() < in_len


def test_torch_path_is_differentiable():
    x = torch.rand(1, 2, 6, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: imresize(t, 0.5), (x,))
    assert torch.autograd.gradcheck(lambda t: imresize(t, out_shape=(9, 11)), (x,))


def test_loose_match_with_matlab_made_set5_lr(data):
    """Huang's LR files were made by MATLAB from slightly different HR files: a loose check only."""
    for hr_path in sorted((data / "benchmark/Set5/HR").glob("*.png")):
        hr = load_rgb(hr_path)
        ref = load_rgb(str(hr_path).replace("/HR/", "/LR_bicubic/X2/").replace("_HR", "_LR"))
        assert psnr_rgb(quantize(imresize(hr, 0.5)), ref, 0) >= 49
