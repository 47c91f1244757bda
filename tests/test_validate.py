import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mzsr import validate
from mzsr.errors import ImageError, InputError, KernelError, ModelError, MzsrError, OptionError
from mzsr.net import RECEPTIVE_RADIUS

FAST = settings(max_examples=60, deadline=None)


def test_every_error_type_is_an_mzsr_error_and_a_value_error():
    for kind in (ImageError, KernelError, ModelError, InputError, OptionError):
        assert issubclass(kind, MzsrError) and issubclass(kind, ValueError)
    from mzsr.io import ImageError as io_image_error
    from mzsr.kernels import KernelError as kernels_kernel_error
    from mzsr.models import ModelError as models_model_error

    assert (io_image_error, kernels_kernel_error, models_model_error) == (ImageError, KernelError, ModelError)


@pytest.mark.parametrize("img", [np.zeros((3, 4), np.uint8), np.zeros((3, 4, 1), np.uint16),
                                 np.ones((1, 1, 2), np.float32), np.zeros((2, 5, 3), np.float64),
                                 np.full((3, 3, 4), 65535, np.uint16), np.linspace(0, 1, 6).reshape(2, 3)])
def test_images_taken(img):
    assert validate.image(img) is img


@pytest.mark.parametrize("img,problem", [
    (np.full((3, 3), 200.0), r"spans 200..200; it looks like 0..255: pass uint8, or divide by 255"),
    (np.full((3, 3), 1000.0, np.float32), "looks like 0..65535"),
    (np.full((3, 3), -0.5), "spans -0.5"),
    (np.full((3, 3), 7, np.int64), r"dtype int64 is not taken .* values 7..7: use .astype\(np.uint8\)"),
    (np.full((3, 3), 4000, np.int32), r"use .astype\(np.uint16\)"),
    (np.full((3, 3), -4, np.int16), "rescale"),
    (np.array([[np.nan, 0.5]]), "NaN or infinite"),
    (np.array([[np.inf, 0.5]], np.float32), "NaN or infinite"),
    (np.zeros((3, 3), bool), "bool image is ambiguous"),
    (np.zeros((3, 3), complex), "dtype complex128 is not an image dtype"),
    (np.zeros(5, np.uint8), r"shape \(H, W\) or \(H, W, C\) with C in 1..4, got \(5,\)"),
    (np.zeros((2, 2, 2, 2), np.uint8), "got \\(2, 2, 2, 2\\)"),
    (np.array(3, np.uint8), r"got \(\)"),
    (np.zeros((4, 4, 5), np.uint8), r"got \(4, 4, 5\)"),
    (np.zeros((0, 4), np.uint8), "empty"),
    (np.zeros((4, 4), object), "not an image dtype"),
])
def test_images_refused(img, problem):
    with pytest.raises(InputError, match=f"^image.*{problem}"):
        validate.image(img)


def test_image_pixel_limit_and_name():
    with pytest.raises(InputError, match="^lr is 10×10 px, over the limit of 99 pixels"):
        validate.image(np.zeros((10, 10), np.uint8), "lr", max_pixels=99)
    with pytest.raises(InputError, match="not an array"):
        validate.image([[1, 2], [3]])


@pytest.mark.parametrize("func,good,bad", [
    (validate.scale, {2: 2, 3: 3, np.int64(4): 4}, [1, 5, 2.0, True, "2", None]),
    (validate.steps, {0: 0, 10: 10, "auto": "auto", validate.MAX_STEPS: validate.MAX_STEPS},
     [-1, 1.5, "10", "Auto", None, True, validate.MAX_STEPS + 1]),
    (validate.tile, {None: None, validate.MIN_TILE: validate.MIN_TILE, 512: 512},
     [-5, 0, 1, validate.MIN_TILE - 1, 64.0, "64"]),
    (validate.back_projection, {0: 0, 8: 8}, [-1, 0.5, validate.MAX_BACK_PROJECTION + 1, False]),
    (validate.noise, {0: 0.0, 2.5: 2.5, 50: 50.0}, [-0.1, 50.1, math.nan, math.inf, "1", True]),
    (validate.jpeg_quality, {None: None, 1: 1, 95: 95}, [0, 96, 100, 50.0, "high"]),
    (validate.max_pixels, {None: None, 1: 1, 10**9: 10**9}, [0, -1, 1e6, math.inf]),
])
def test_options(func, good, bad):
    for value, normal in good.items():
        out = func(value)
        assert out == normal and type(out) is type(normal), value
    option = func.__name__
    for value in bad:
        with pytest.raises(OptionError, match=f"^--{option} must be"):
            func(value, f"--{option}")


def test_tile_minimum_covers_the_receptive_margin():
    assert validate.MIN_TILE >= 4 * RECEPTIVE_RADIUS


def test_time_limits_and_choices():
    assert validate.time_limit(None, "--time-limit") is None
    assert validate.time_limit(0.5, "--time-limit") == 0.5
    for bad in (0, -1, math.nan, math.inf, "5"):
        with pytest.raises(OptionError, match="^--time-limit must be"):
            validate.time_limit(bad, "--time-limit")
    assert validate.choice("mzsr", "method", ("mzsr", "zssr")) == "mzsr"
    with pytest.raises(OptionError, match="^method must be one of mzsr, zssr, got 'x'"):
        validate.choice("x", "method", ("mzsr", "zssr"))


image_arrays = hnp.arrays(
    dtype=st.sampled_from([np.uint8, np.uint16, np.int8, np.int32, np.int64, np.float16, np.float32, np.float64,
                           np.bool_, np.complex64]),
    shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6))


@FAST
@given(image_arrays)
def test_any_array_is_taken_or_refused_with_our_error(arr):
    try:
        out = validate.image(arr)
    except InputError:
        return
    assert out.ndim in (2, 3) and out.dtype in (np.uint8, np.uint16) or (
        out.dtype.kind == "f" and np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1)


@FAST
@given(st.one_of(st.integers(), st.floats(allow_nan=True), st.text(max_size=5), st.none(), st.booleans()))
def test_any_option_value_is_taken_or_refused_with_our_error(value):
    for func in (validate.scale, validate.steps, validate.tile, validate.back_projection, validate.noise,
                 validate.jpeg_quality, validate.max_pixels):
        try:
            func(value)
        except OptionError:
            pass
