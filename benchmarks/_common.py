"""Shared by the benchmark scripts: a natural test image that ships with a dependency (matplotlib)."""
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image


def sample_image() -> np.ndarray:
    with Image.open(Path(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")) as im:
        return np.asarray(im.convert("RGB"))
