"""Golden tests: each shipped model, run as a user runs it, scores what its card says on a real benchmark cell.

A swapped weights file, a changed card rate or a broken adaptation moves these by far more than the tolerance.
The figures come from the cards (``benchmark``, written by ``mzsr train export --results``), not from here.
"""
import pytest

import mzsr
from mzsr.bench.scenarios import SCENARIOS, ground_truth
from mzsr.io import hr_files
from mzsr.models import read_card

TOLERANCE_DB = 0.01

CELLS = [  # (model, scenario, scale, card label); the model is the one upscale picks for the scenario
    ("direct-x2", "gd2.0", 2, "MZSR(1)"),
    ("bicubic-x2", "gb1.3", 2, "MZSR(1)"),
    ("direct-x2-sharp", "gd0.2", 2, "MZSR(1)"),
    ("direct-x4", "gd2.0", 4, "MZSR(1)"),
]


@pytest.mark.parametrize("name,scenario,scale,label", CELLS, ids=[f"{c[0]} {c[1]}" for c in CELLS])
def test_shipped_model_scores_its_card_figure_on_set5(data, name, scenario, scale, label):
    card = read_card(name)["benchmark"][f"Set5 {scenario} x{scale}"][label]
    s = SCENARIOS[scenario]
    up = mzsr.Upscaler(scale, s.kernel(), steps=1, downsample=s.downsample, device="cpu")
    scores = []
    for hr in hr_files("Set5"):
        gt = ground_truth(hr, scale)
        result = up.upscale(mzsr.degrade_image(gt, s.kernel(), scale, s.downsample))
        assert result.model == name
        scores.append(up.score(result.image, gt)[0])
    assert len(scores) == card["images"]
    assert abs(sum(scores) / len(scores) - card["psnr"]) < TOLERANCE_DB
