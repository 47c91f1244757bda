"""``mzsr benchmark``: names, the paper's bicubic cell, scores re-checked independently, resume, skips, the report."""
import json
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from mzsr import runtime
from mzsr.bench import runner
from mzsr.bench.methods import parse_method
from mzsr.bench.scenarios import default_scenarios, get_scenario, paper_value
from mzsr.cli import main
from mzsr.kernels import gaussian_kernel
from mzsr.runtime import device_label

from conftest import SET5_NAMES, load_rgb

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def toy_data(tmp_path, monkeypatch, rng):
    """$MZSR_DATA with a small stand-in 'Set5' of three textured 40×34 images, the second one grayscale."""
    hr = tmp_path / "data" / "benchmark" / "Set5" / "HR"
    hr.mkdir(parents=True)
    yy, xx = np.mgrid[:40, :34]
    pattern = 128 + 60 * np.sin(xx / 3.0) * np.cos(yy / 5.0)
    for i in range(3):
        img = np.clip(pattern[..., None] + rng.normal(0, 8, (40, 34, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img[..., 0] if i == 1 else img).save(hr / f"img_{i}.png")
    monkeypatch.setenv("MZSR_DATA", str(tmp_path / "data"))
    return hr


def bench(capsys, out, *argv):
    rc = main(["benchmark", "--out", str(out), *map(str, argv)])
    _, err = capsys.readouterr()
    return rc, err


def load_results(out):
    return json.loads((out / "results.json").read_text())


def independent_psnr_y(sr, gt, shave):
    """Spec §6 written out again: rounded BT.601 luma, ``shave`` px off each border, peak 255."""
    def y(img):
        img = img.astype(np.float64)
        return np.round(16 + (65.481 * img[..., 0] + 128.553 * img[..., 1] + 24.966 * img[..., 2]) / 255)

    d = (y(sr) - y(gt))[shave:-shave, shave:-shave]
    return 10 * np.log10(255.0 ** 2 / np.mean(d ** 2))


def test_method_names_scenarios_and_paper_lookup(monkeypatch):
    m = parse_method("mzsr7")
    assert (m.kind, m.steps, m.paper_name) == ("mzsr", 7, "MZSR(7)")
    assert not parse_method("finetune10").adam and parse_method("finetune100").adam
    assert parse_method("finetune100").paper_name is None and parse_method("zssr").paper_name == "ZSSR"
    bp = parse_method("mzsr10bp2")
    assert (bp.kind, bp.steps, bp.back_projection, bp.paper_name, bp.label) == ("mzsr", 10, 2, None, "MZSR(10)+BP2")
    x8 = parse_method("mzsr10x8")
    assert (x8.steps, x8.back_projection, x8.ensemble, x8.paper_name, x8.label) == (10, 0, True, None, "MZSR(10)+x8")
    assert parse_method("mzsr1bp2x8").label == "MZSR(1)+x8+BP2" and not bp.ensemble
    auto = parse_method("mzsrauto")
    assert (auto.kind, auto.steps, auto.paper_name, auto.label) == ("mzsr", "auto", None, "MZSR(auto)")
    assert "held-out" in auto.describe()
    monkeypatch.setattr(runtime, "cpu_flags", lambda: {"avx512_bf16"})  # only our schedule takes the fast path
    assert auto.path("cpu") == "bf16+channels_last" and parse_method("zssr").path("cpu") == "fp32"
    real = parse_method("zssrreal")
    assert (real.kind, real.son_noise, real.paper_name, real.label) == ("zssr", pytest.approx(3.1875), None,
                                                                        "ZSSR, real-image setting")
    for bad in ("mzsr", "srcnn", "finetune-1", "mzsr1x", "finetune10bp2", "mzsrbp2", "finetune10x8", "mzsr1x4",
                "mzsrautox8", "mzsrautobp2", "finetuneauto"):
        with pytest.raises(ValueError, match="unknown method"):
            parse_method(bad)
    ani = get_scenario("gdani")
    assert np.array_equal(ani.kernel(), gaussian_kernel(4.0, 1.0, -0.5, size=21)) and ani.downsample == "direct"
    assert get_scenario("gb1.3").downsample == "bicubic" and default_scenarios(4) == ["gd2.0"]
    assert paper_value(2, get_scenario("gd2.0"), "Set5", "MZSR(1)") == {"psnr": 35.2, "ssim": 0.9398}
    assert paper_value(4, get_scenario("gd2.0"), "Urban100", "Bicubic")["psnr"] == 21.16
    assert paper_value(2, get_scenario("gd2.0"), "Set14", "Bicubic") is None


def test_bicubic_on_set5_gd20_is_the_papers_28_73(data, tmp_path, capsys):
    out = tmp_path / "b"
    rc, err = bench(capsys, out, "--sets", "Set5", "--scenarios", "gd2.0", "--methods", "bicubic",
                    "--curve-steps", "0")
    assert rc == 0, err
    (cell,) = load_results(out)["cells"]
    assert cell["psnr"] == pytest.approx(28.7297, abs=1e-3) and cell["complete"]
    assert cell["paper"]["psnr"] == 28.73 and abs(cell["delta"]["psnr"]) <= 0.01
    for i, name in enumerate(SET5_NAMES):  # the generated inputs are the official ones
        ours = load_rgb(out / f"inputs/Set5/gd2.0-x2/img_00{i + 1}_SRF_2_HR.png")
        assert np.array_equal(ours, load_rgb(data / f"benchmark/Set5/LR_MZSR_g20_x2/{name}.png"))


def test_scores_agree_with_an_independent_scorer_and_runs_resume(toy_data, tiny_model, tmp_path, capsys,
                                                                 monkeypatch):
    out = tmp_path / "b"
    argv = ["--sets", "Set5", "--scenarios", "gd2.0", "--model", tiny_model, "--limit", 2,
            "--methods", "bicubic", "zssr", "finetune1", "finetune100", "mzsr1", "mzsr10", "--zssr-iters", 2,
            "--repeats", 2, "--curve-steps", 2]
    rc, err = bench(capsys, out, *argv)
    assert rc == 0, err
    results = load_results(out)
    assert [c["status"] for c in results["cells"]] == ["done"] * 6
    for cell in results["cells"]:
        assert cell["n_images"] == 2 and not cell["complete"]
        scores = []
        for rec in cell["images"]:
            gt = load_rgb(toy_data / f"{rec['image']}.png")
            scores.append(independent_psnr_y(load_rgb(out / rec["sr"]), gt, 2))
            assert scores[-1] == pytest.approx(rec["psnr"], abs=1e-9) and len(rec["seconds"]) == 2
        assert np.mean(scores) == pytest.approx(cell["psnr"], abs=1e-9)
    gray_lr = load_rgb(out / "inputs/Set5/gd2.0-x2/img_1.png")
    assert np.array_equal(gray_lr[..., 0], gray_lr[..., 2])
    bicubic, zssr, _, adam, _, mzsr10 = results["cells"]
    assert bicubic["delta"]["psnr"] == pytest.approx(bicubic["psnr"] - 28.73) and adam["paper"] is None
    speed = results["speed"][0]
    assert speed["zssr_over_mzsr10"] == pytest.approx(zssr["seconds"] / mzsr10["seconds"])
    assert len(results["curve"]["mzsr"]) == len(results["curve"]["finetune"]) == 3

    calls = []

    def counting(method, lr, scale, *args):
        calls.append(method.name)
        return np.zeros((lr.shape[0] * scale, lr.shape[1] * scale, 3), np.uint8)

    monkeypatch.setattr(runner, "run_method", counting)
    assert bench(capsys, out, *argv)[0] == 0  # everything comes from the cache
    assert calls == [] and load_results(out)["cells"] == results["cells"]
    shipped = tiny_model.with_name("shipped.safetensors")  # the same weights under another name: cached too
    for suffix in (".safetensors", ".json"):
        shutil.copy(tiny_model.with_suffix(suffix), shipped.with_suffix(suffix))
    assert bench(capsys, out, *[shipped if a == tiny_model else a for a in argv])[0] == 0
    assert calls == [] and load_results(out)["scenarios"]["gd2.0"]["model"] == "shipped"
    assert bench(capsys, out, *argv, "--seed", 1)[0] == 0  # the seed is ZSSR's alone
    assert calls == ["zssr"] * 2 * 2  # 2 images, 2 repeats

    # ZSSR cells computed on a GPU join this CPU run; its time is marked, and not set against MZSR(10)'s
    for js in (out / "cells/Set5/gd2.0-x2/zssr").glob("*.json"):
        js.write_text(json.dumps({**json.loads(js.read_text()), "device": "cuda (H100)"}))
    assert bench(capsys, out, *argv, "--seed", 1)[0] == 0
    assert calls == ["zssr"] * 4
    results = load_results(out)
    zssr = results["cells"][1]
    assert zssr["device"] == "cuda (H100)"
    assert results["cells"][0]["device"] == results["benchmark"]["device"] == device_label("cpu")
    assert results["speed"][0]["zssr_over_mzsr10"] is None
    table = (out / "table.md").read_text()
    assert "; Bicubic, ZSSR, Fine-tune(1), Fine-tune(100, Adam), MZSR(1), MZSR(10) in fp32." in table
    assert f"{zssr['seconds']:.3g} ± {zssr['seconds_std']:.2g} (cuda (H100))" in table


def test_a_report_grows_run_by_run_in_one_folder(toy_data, tmp_path, capsys):
    out = tmp_path / "b"
    assert bench(capsys, out, "--sets", "Set5", "--scenarios", "gd2.0", "--methods", "bicubic", "--limit", 1)[0] == 0
    assert bench(capsys, out, "--sets", "Set5", "--scenarios", "gdani", "--methods", "bicubic", "--limit", 1)[0] == 0
    results = load_results(out)
    assert [(c["scenario"], c["n_images"]) for c in results["cells"]] == [("gd2.0", 1), ("gdani", 1)]
    assert results["benchmark"]["limit"] == 1
    assert bench(capsys, out, "--sets", "Set5", "--scenarios", "gd0.2", "--methods", "bicubic")[0] == 0
    results = load_results(out)
    assert [(c["scenario"], c["n_images"]) for c in results["cells"]] == [("gd2.0", 1), ("gdani", 1), ("gd0.2", 3)]
    assert results["benchmark"]["limit"] == "mixed" and "the images column's count" in (out / "table.md").read_text()
    # a later run of more images of a cell pools with the images it already has
    assert bench(capsys, out, "--sets", "Set5", "--scenarios", "gd2.0", "--methods", "bicubic", "--limit", 2)[0] == 0
    assert [c["n_images"] for c in load_results(out)["cells"]] == [2, 1, 3]
    assert bench(capsys, out, "--sets", "Set5", "--scenarios", "gd2.0", "-s", 4, "--methods", "bicubic")[0] == 0
    assert [c["scenario"] for c in load_results(out)["cells"]] == ["gd2.0"]  # another scale starts afresh


def test_shards_run_apart_pool_into_the_whole_set(toy_data, tmp_path, capsys):
    whole, parts = tmp_path / "whole", [tmp_path / f"shard{k}" for k in range(2)]
    argv = ("--sets", "Set5", "--scenarios", "gd2.0", "--methods", "bicubic", "mzsr0", "--curve-steps", 0)
    assert bench(capsys, whole, *argv)[0] == 0
    for k, part in enumerate(parts):
        assert bench(capsys, part, *argv, "--shard", f"{k}/2")[0] == 0
    assert [i["image"] for i in load_results(parts[0])["cells"][0]["images"]] == ["img_0", "img_2"]
    assert bench(capsys, tmp_path / "pooled", "--merge", *parts)[0] == 0
    pooled, ref = load_results(tmp_path / "pooled"), load_results(whole)
    assert pooled["benchmark"]["limit"] is None
    for got, want in zip(pooled["cells"], ref["cells"]):
        assert got["complete"] and [i["image"] for i in got["images"]] == ["img_0", "img_1", "img_2"]
        assert got["psnr"] == pytest.approx(want["psnr"], abs=1e-9)
    assert (tmp_path / "pooled" / "grid-gd2.0.png").is_file()
    assert (tmp_path / "pooled" / pooled["cells"][1]["images"][1]["sr"]).is_file()


def test_pooled_shards_count_the_whole_set_here(toy_data, tmp_path, capsys, monkeypatch):
    part = tmp_path / "part" / "benchmark" / "Set5" / "HR"
    part.mkdir(parents=True)
    shutil.copy(toy_data / "img_2.png", part)
    monkeypatch.setenv("MZSR_DATA", str(tmp_path / "part"))  # a machine that holds one image of the set
    assert bench(capsys, tmp_path / "s", "--sets", "Set5", "--scenarios", "gd2.0", "--methods", "bicubic")[0] == 0
    assert load_results(tmp_path / "s")["cells"][0]["complete"]
    monkeypatch.setenv("MZSR_DATA", str(toy_data.parents[2]))
    assert bench(capsys, tmp_path / "pooled", "--merge", tmp_path / "s")[0] == 0
    cell = load_results(tmp_path / "pooled")["cells"][0]
    assert (cell["n_images"], cell["set_size"], cell["complete"]) == (1, 3, False)
    assert load_results(tmp_path / "pooled")["benchmark"]["limit"] == "mixed"
    assert "1 (part)" in (tmp_path / "pooled" / "table.md").read_text()


def test_runs_with_other_settings_do_not_pool(toy_data, tmp_path, capsys):
    out = tmp_path / "b"
    argv = ("--sets", "Set5", "--scenarios", "gd2.0", "--methods", "bicubic")
    assert bench(capsys, out, *argv, "--shard", "0/2")[0] == 0
    assert bench(capsys, out, *argv, "--shard", "1/2", "--repeats", 2)[0] == 0
    assert [i["image"] for i in load_results(out)["cells"][0]["images"]] == ["img_1"]


def test_bad_shards_are_one_line_errors(toy_data, tmp_path, capsys):
    rc, err = bench(capsys, tmp_path / "b", "--methods", "bicubic", "--shard", "2/2")
    assert rc == 2 and "0 ≤ K < N" in err and "Traceback" not in err
    with pytest.raises(SystemExit):
        bench(capsys, tmp_path / "b", "--methods", "bicubic", "--shard", "1-2")
    assert "expected K/N such as 0/4, got '1-2'" in capsys.readouterr().err


@pytest.mark.parametrize("argv,problem", [(["--methods", "srcnn"], "unknown method 'srcnn'"),
                                          (["--sets", "Set6"], "no such test set"),
                                          (["--scenarios", "gd9"], "unknown scenario 'gd9'"),
                                          (["--limit", "0"], "limit must be ≥ 1")])
def test_bad_arguments_are_one_line_errors(toy_data, tmp_path, capsys, argv, problem):
    rc, err = bench(capsys, tmp_path / "b", "--methods", "bicubic", *argv)
    assert rc == 2 and err.startswith("mzsr: error:") and problem in err and "Traceback" not in err
    assert not (tmp_path / "b").exists()


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed")
def test_report_renders_in_headless_chromium(toy_data, tiny_model, tmp_path, capsys):
    out = tmp_path / "b"
    rc, err = bench(capsys, out, "--sets", "Set5", "--scenarios", "gd2.0", "--model", tiny_model, "--limit", 1,
                    "--methods", "bicubic", "mzsr1", "--curve-steps", 2)
    assert rc == 0, err
    shot = tmp_path / "shot.png"
    browser = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--no-first-run", "--disable-sync",
               f"--user-data-dir={tmp_path / 'profile'}"]
    url = (out / "index.html").as_uri()
    dom = subprocess.run(browser + ["--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    for name in ("steps.png", "grid-gd2.0.png"):
        assert f'<img src="{name}"' in dom and (out / name).is_file()
    assert "MZSR(1)" in dom and 'href="results.json"' in dom
    subprocess.run(browser + [f"--screenshot={shot}", "--window-size=1200,2000", url], capture_output=True,
                   timeout=120)
    pixels = load_rgb(shot).astype(int)
    assert pixels.std() > 10
    # matplotlib's first line colour (#1f77b4) shows only if the steps plot was drawn on the page
    assert (np.abs(pixels - [31, 119, 180]).max(axis=-1) < 30).sum() > 50


def test_mzsr_rows_keep_the_papers_recipe_and_auto_runs(tiny_model, rng):
    import torch

    from mzsr.adapt import adapt, super_resolve, to_image, to_tensor
    from mzsr.bench.methods import run_method
    from mzsr.models import load_model

    model = load_model(tiny_model, "cpu")
    lr = rng.integers(0, 256, (30, 26, 3)).astype(np.uint8)
    k = gaussian_kernel(2.0, size=11)
    t, kt = to_tensor(lr), torch.as_tensor(k, dtype=torch.float32)
    params = adapt(model.net, model.params, t, kt, 2, "direct", 3, model.step_lrs)  # plain SGD, whole image
    want = to_image(super_resolve(model.net, params, t, 2))
    assert np.array_equal(run_method(parse_method("mzsr3"), lr, 2, k, "direct", model, None, "cpu"), want)
    auto = run_method(parse_method("mzsrauto"), lr, 2, k, "direct", model, None, "cpu")
    assert auto.shape == want.shape and auto.dtype == np.uint8
    # the row is what a user gets by default: the recipe's own self-ensemble and back-projection included
    import mzsr
    assert np.array_equal(auto, mzsr.upscale(lr, 2, kernel=k, model=model, device="cpu"))
    assert not np.array_equal(auto, mzsr.upscale(lr, 2, kernel=k, model=model, device="cpu", back_projection=0,
                                                 ensemble=False))


def test_paper_rows_take_a_clean_son_on_a_noisy_input(tiny_model):
    import torch

    import mzsr
    from mzsr.adapt import adapt, super_resolve, to_image, to_tensor
    from mzsr.bench.methods import run_method
    from mzsr.models import load_model

    model = load_model(tiny_model, "cpu")
    yy, xx = np.mgrid[0:40, 0:44]
    smooth = 128 + 60 * np.sin(xx / 6.0)[..., None] * np.cos(yy / 9.0)[..., None] * np.ones(3)
    lr = np.clip(smooth + np.random.default_rng(3).normal(0, 8, smooth.shape), 0, 255).round().astype(np.uint8)
    k = gaussian_kernel(2.0, size=11)
    assert mzsr.Upscaler(2, k, steps=2, model=model, device="cpu").son_corruption(
        lr / 255.0, k, *mzsr.Upscaler(2, k, model=model, device="cpu").measure(lr / 255.0))[0] > 5  # auto would
    t, kt = to_tensor(lr), torch.as_tensor(k, dtype=torch.float32)
    want = to_image(super_resolve(model.net, adapt(model.net, model.params, t, kt, 2, "direct", 2, model.step_lrs),
                                  t, 2))
    assert np.array_equal(run_method(parse_method("mzsr2"), lr, 2, k, "direct", model, None, "cpu"), want)
    weights = runner.Weights(model, model)
    assert runner.Options().key(parse_method("mzsr2"), weights)["son"] == "clean"
    assert "son" not in runner.Options().key(parse_method("mzsrauto"), weights)


def test_real_photo_scenarios_corrupt_the_lr_with_the_image_named_seed(data, tmp_path):
    from mzsr.bench.scenarios import SCENARIOS, degraded_input, div2krk_kernel, ground_truth
    from mzsr.io import hr_files
    from mzsr.kernels import load_kernel

    assert {"gd2.0+n3", "gd2.0+q75", "krk+n10q90", "krk+n5q75", "gb1.3+n5"} <= set(SCENARIOS)
    s = get_scenario("krk+n5q75")
    assert (s.noise, s.jpeg, s.kernels, s.downsample, s.paper_key) == (5.0, 75, "DIV2KRK", "direct", "")
    assert paper_value(2, s, "Set5", "Bicubic") is None
    hr = hr_files("Set5")[2]
    with pytest.warns(UserWarning):  # DIV2KRK's kernels have small negative tails; the scenario loads them quietly
        raw = load_kernel(data / "benchmark/DIV2KRK/gt_k_x4/kernel_3.mat")
    assert np.array_equal(s.kernel(hr, 4), raw) and np.array_equal(div2krk_kernel(hr, 4), raw)
    with pytest.raises(ValueError, match="depends on the image"):
        s.kernel()
    clean = degraded_input(hr, get_scenario("krk"), 2, tmp_path / "clean")
    noisy = degraded_input(hr, s, 2, tmp_path / "noisy")
    again = degraded_input(hr, s, 2, tmp_path / "again")
    assert np.array_equal(noisy, again) and noisy.shape == clean.shape
    assert 3 < np.std(noisy.astype(float) - clean) < 8
    assert ground_truth(hr, 2).shape[0] == 2 * noisy.shape[0]


def test_blind_methods_parse():
    m = parse_method("mzsr10blind")
    assert (m.kind, m.steps, m.blind, m.paper_name, m.label) == ("mzsr", 10, True, None, "MZSR(10), blind")
    assert not parse_method("mzsr10").blind and parse_method("mzsr10x8blind").ensemble
    with pytest.raises(ValueError, match="unknown method"):
        parse_method("finetune10blind")
