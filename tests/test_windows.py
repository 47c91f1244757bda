"""The busiest window: where the report crops and the kernel estimator look."""
import numpy as np

from mzsr.estimate.mzsr_search import _busiest_crop
from mzsr.windows import busiest_window


def test_busiest_window_finds_the_textured_patch(rng):
    luma = np.full((60, 80), 100.0)
    luma[30:46, 50:66] += rng.normal(0, 40, (16, 16))
    assert busiest_window(luma, 16) == (30, 50)
    top, left = busiest_window(luma, 16, step=4)  # corners on a grid of 4
    assert top % 4 == left % 4 == 0 and abs(top - 30) < 4 and abs(left - 50) < 4


def test_the_estimator_searches_the_busy_part_of_the_image(rng):
    img = np.full((200, 300, 3), 0.5)
    img[150:190, 10:60] = rng.random((40, 50, 3))
    crop = _busiest_crop(img, 128)
    assert crop.shape == (128, 128, 3) and crop.std() > 0.1  # the texture is inside
    narrow = np.zeros((100, 300, 3))
    assert _busiest_crop(narrow, 128).shape == (100, 128, 3)  # narrower than the crop: centred, as before
