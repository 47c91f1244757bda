import os

import numpy as np
import pytest
from PIL import Image

from mzsr.io import data_root

DATA = data_root()
SET5_NAMES = ["baby", "bird", "butterfly", "head", "woman"]


def need_data():
    """The reference data; CI fails without it (a skipped golden test guards nothing), elsewhere the test skips."""
    if not (DATA / "benchmark").is_dir():
        (pytest.fail if os.environ.get("CI") else pytest.skip)(f"reference data not found at {DATA} (set MZSR_DATA)")
    return DATA


@pytest.fixture
def data():
    return need_data()


def load_rgb(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def tiny_model(tmp_path):
    """A small model file with its card and a 'pretrained' base, as shipped models have."""
    import torch

    from mzsr.models import save_model
    from mzsr.net import SRNet

    torch.manual_seed(0)
    arch = {"channels": 8, "depth": 3, "bias": True}
    base = tmp_path / "models" / "base.safetensors"
    card = {"scale": 2, "downsample": "direct", "step_lrs": [0.01], "arch": arch, "training": {"steps": 0}}
    save_model(base, SRNet(8, 3).state_dict(), {**card, "name": "base", "downsample": "bicubic"})
    path = tmp_path / "models" / "tiny.safetensors"
    save_model(path, SRNet(8, 3).state_dict(), {**card, "name": "tiny", "base": str(base)})
    return path


@pytest.fixture
def one_torch_thread():
    """On tiny images torch's threads mostly wait for each other, badly so on a busy machine; speed is not tested."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run_cli(capsys, *argv):
    """Run ``mzsr`` in-process; returns (exit code, stdout, stderr)."""
    from mzsr.cli import main

    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err
