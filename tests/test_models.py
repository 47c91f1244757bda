import json

import pytest
import torch

from mzsr.models import fingerprint
from mzsr.kernels import gaussian_kernel
from mzsr.models import ModelError, available, load_model, model_for_kernel, read_card, save_model
from mzsr.net import SRNet

REQUIRED = {"name", "scale", "downsample", "step_lrs", "arch", "training", "metrics"}


def test_roundtrip(tmp_path):
    net = SRNet(8, 3)
    save_model(tmp_path / "m.safetensors", net.state_dict(), {"scale": 2, "downsample": "direct",
                                                             "step_lrs": [0.01], "arch": {"channels": 8, "depth": 3}})
    m = load_model(tmp_path / "m.safetensors")
    assert m.scale == 2 and m.step_lrs == [0.01]
    for k, v in net.state_dict().items():
        assert torch.equal(m.params[k], v)


def test_bad_model_files(tmp_path, tiny_model):
    with pytest.raises(ModelError, match="unknown model 'x9'"):
        load_model("x9")
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(tiny_model.read_bytes()[:100])
    broken.with_suffix(".json").write_text(tiny_model.with_suffix(".json").read_text())
    with pytest.raises(ModelError, match="cannot load weights"):
        load_model(broken)
    lonely = tmp_path / "lonely.safetensors"
    lonely.write_bytes(tiny_model.read_bytes())
    with pytest.raises(ModelError, match="card missing"):
        load_model(lonely)


def test_shipped_models_load_with_complete_cards():
    names = available()
    assert "direct-x2" in names
    for name in names:
        card = read_card(name)
        assert REQUIRED <= set(card), name
        assert card["name"] == name
        m = load_model(name)
        assert sum(v.numel() for v in m.params.values()) == 225_091
        if "base" in card:
            assert load_model(card["base"]).scale == m.scale
        json.dumps(card)


def test_export_ships_weights_with_card(tmp_path, tiny_model, monkeypatch, capsys):
    from mzsr import models
    from mzsr.cli import main

    monkeypatch.setattr(models, "WEIGHTS_DIR", tmp_path / "weights")
    assert main(["train", "export", str(tiny_model), "--name", "mine-x2", "--base", "basic",
                 "--notes", "a test", "--step-lrs", "0.02", "0.01"]) == 0
    card = models.read_card("mine-x2")
    assert card["name"] == "mine-x2" and card["base"] == "basic" and card["step_lrs"] == [0.02, 0.01]
    assert models.available() == ["mine-x2"]


def test_export_records_benchmark_scores_in_the_card(tmp_path, tiny_model, monkeypatch, capsys):
    import json

    from mzsr import models
    from mzsr.cli import main

    monkeypatch.setattr(models, "WEIGHTS_DIR", tmp_path / "weights")
    cell = {"set": "Set5", "scenario": "gd2.0", "method": "mzsr1", "label": "MZSR(1)", "status": "done",
            "psnr": 30.123456, "ssim": 0.9, "n_images": 5, "paper": {"psnr": 35.2, "ssim": 0.94}}
    other = {**cell, "scenario": "gb1.3", "psnr": 20.0}
    earlier = {**cell, "scenario": "gd0.2", "psnr": 25.0}  # same name, other weights: not this model's
    before = {**cell, "scenario": "gdani", "psnr": 28.0}  # these weights under their run's file name: this model's
    mine = {"model": "mine-x2", "digests": {"model": fingerprint(models.load_model(tiny_model))["sha256"]}}
    results = {"benchmark": {"scale": 2}, "cells": [cell, other, earlier, before],
               "scenarios": {"gd2.0": mine, "gb1.3": {"model": "someone-else"}, "gdani": {**mine, "model": "best"},
                             "gd0.2": {"model": "mine-x2", "digests": {"model": "0123456789abcdef"}}}}
    (tmp_path / "results.json").write_text(json.dumps(results))
    assert main(["train", "export", str(tiny_model), "--name", "mine-x2", "--results",
                 str(tmp_path / "results.json")]) == 0
    expected = {"MZSR(1)": {"psnr": 30.1235, "ssim": 0.9, "images": 5, "paper_psnr": 35.2, "paper_ssim": 0.94}}
    assert models.read_card("mine-x2")["benchmark"] == {
        "Set5 gd2.0 x2": expected, "Set5 gdani x2": {"MZSR(1)": {**expected["MZSR(1)"], "psnr": 28.0}}}
    assert main(["train", "export", str(tiny_model), "--name", "x", "--results", str(tmp_path / "nope.json")]) == 2
    assert "nope.json: not a readable benchmark results.json" in capsys.readouterr().err


def test_a_sharp_kernel_picks_the_narrow_kernel_model():
    assert model_for_kernel(2, "direct", gaussian_kernel(0.5)) == "direct-x2-sharp"
    assert model_for_kernel(2, "direct", gaussian_kernel(4.0, 0.5, 1.0)) == "direct-x2-sharp"  # narrow along one axis
    for k in (gaussian_kernel(1.0), gaussian_kernel(2.0), None):
        assert model_for_kernel(2, "direct", k) == "direct-x2"
    assert model_for_kernel(4, "direct", gaussian_kernel(0.5)) == "direct-x4"  # no narrow-kernel ×4 model
    assert model_for_kernel(2, "bicubic", gaussian_kernel(0.5)) == "bicubic-x2"


# --- cards and weights validated, devices told apart (issue 25) ---

def _copy(tiny_model, tmp_path, card=None, params=None):
    """A copy of the tiny model under tmp_path/m/, with its card or weights replaced."""
    from safetensors.torch import load_file, save_file

    dest = tmp_path / "m" / "copy.safetensors"
    dest.parent.mkdir(exist_ok=True)
    tensors = load_file(str(tiny_model)) if params is None else params
    save_file(tensors, str(dest))
    text = json.dumps(card) if card is not None else tiny_model.with_suffix(".json").read_text()
    dest.with_suffix(".json").write_text(text)
    return dest


GOOD = {"scale": 2, "downsample": "direct", "step_lrs": [0.01], "arch": {"channels": 8, "depth": 3, "bias": True}}


@pytest.mark.parametrize("card,problem", [
    ({}, "model card lacks 'scale', 'downsample', 'step_lrs'"),
    ([], "must be a JSON object, got list"),
    ({**GOOD, "scale": "2"}, "'scale' must be an integer 2..4"),
    ({**GOOD, "scale": 8}, "'scale' must be an integer 2..4, got 8"),
    ({**GOOD, "downsample": "nearest"}, "'downsample' must be one of direct, bicubic"),
    ({**GOOD, "step_lrs": []}, "'step_lrs' must be a non-empty list"),
    ({**GOOD, "step_lrs": 0.01}, "'step_lrs' must be a non-empty list"),
    ({**GOOD, "step_lrs": [-0.01]}, r"'step_lrs'\[0\] must be a number ≥ 0"),
    ({**GOOD, "step_lrs": [0.01, "fast"]}, r"'step_lrs'\[1\] must be a finite number"),
    ({**GOOD, "step_lrs": [{"convs.0.weight": 0.1}]}, r"'step_lrs'\[0\] must name every parameter"),
    ({**GOOD, "arch": {"channels": 10**9}}, "'arch.channels' must be an integer 1..1024"),
    ({**GOOD, "arch": {"depth": 2.5}}, "'arch.depth' must be an integer"),
    ({**GOOD, "arch": {"bias": "yes"}}, "'arch.bias' must be true or false"),
    ({**GOOD, "arch": [8, 3]}, "'arch' must be an object"),
    ({**GOOD, "base": 3}, "'base' must be a string"),
])
def test_bad_cards_are_one_line_naming_the_card(tiny_model, tmp_path, card, problem):
    path = _copy(tiny_model, tmp_path, card=card)
    with pytest.raises(ModelError, match=f"copy.json: .*{problem}") as e:
        load_model(path)
    assert "\n" not in str(e.value)


def test_unreadable_card_json(tiny_model, tmp_path):
    path = _copy(tiny_model, tmp_path)
    path.with_suffix(".json").write_text("{not json")
    with pytest.raises(ModelError, match="copy.json: model card is not readable JSON"):
        load_model(path)
    path.with_suffix(".json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ModelError, match="copy.json: model card is not readable JSON"):
        load_model(path)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_weights_with_nan_or_inf_are_refused(tiny_model, tmp_path, value):
    from safetensors.torch import load_file

    params = load_file(str(tiny_model))
    params["convs.1.weight"][0, 0, 0, 0] = value
    with pytest.raises(ModelError, match="copy.safetensors: convs.1.weight contains NaN or infinite values"):
        load_model(_copy(tiny_model, tmp_path, params=params))


def test_mismatched_weights_say_everything_in_one_line(tiny_model, tmp_path):
    card = {**GOOD, "arch": {"channels": 16, "depth": 3, "bias": True}}
    with pytest.raises(ModelError) as e:
        load_model(_copy(tiny_model, tmp_path, card=card))
    message = str(e.value)
    assert "\n" not in message and "copy.safetensors: weights do not fit the card's net (channels 16" in message
    assert "convs.0.weight is [8, 3, 3, 3], expected [16, 3, 3, 3]" in message
    assert "convs.2.weight is [3, 8, 3, 3], expected [3, 16, 3, 3]" in message
    with pytest.raises(ModelError, match=r"missing convs.3.bias, convs.3.weight"):
        load_model(_copy(tiny_model, tmp_path, card={**GOOD, "arch": {"channels": 8, "depth": 4}}))
    with pytest.raises(ModelError, match=r"unexpected convs.0.bias, convs.1.bias, convs.2.bias"):
        load_model(_copy(tiny_model, tmp_path, card={**GOOD, "arch": {"channels": 8, "depth": 3, "bias": False}}))


def test_an_unavailable_device_is_not_blamed_on_the_weights(tiny_model):
    from mzsr.errors import OptionError
    from mzsr.runtime import pick_device

    for name in ("mps", "cuda:7", "xpu") if not torch.cuda.is_available() else ("mps", "cuda:99"):
        with pytest.raises(OptionError, match=f"^--device {name}: (not available|no CUDA)"):
            pick_device(name)
    for name in ("gpu", "meta", "cpu:x"):
        with pytest.raises(OptionError, match=f"^--device {name}: not a device"):
            pick_device(name)
    with pytest.raises(OptionError, match="^device mps: not available") as e:
        load_model(tiny_model, device="mps")
    assert "tiny" not in str(e.value)


def test_shipped_cards_pass_the_check():
    from mzsr.models import check_card

    for name in available():
        assert check_card(read_card(name), f"{name}.json") is not None
