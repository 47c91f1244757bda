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
