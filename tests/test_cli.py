"""The command line: normal runs and every bad input of the issue — one line, non-zero exit, nothing half-written."""
import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat


from conftest import run_cli
from mzsr.kernels import gaussian_kernel


@pytest.fixture
def images(tmp_path, rng):
    d = tmp_path / "in"
    d.mkdir()
    for name in ("a", "b"):
        Image.fromarray(rng.integers(0, 256, (20, 18, 3), dtype=np.uint8)).save(d / f"{name}.png")
    return d




def one_error_line(err: str) -> str:
    lines = [l for l in err.splitlines() if l.startswith("mzsr: error:")]
    assert lines and "Traceback" not in err
    return lines[0]


def test_upscale_folder_with_kernel_folder_and_save_kernel(images, tmp_path, tiny_model, capsys):
    kdir = tmp_path / "k"
    kdir.mkdir()
    for name in ("a", "b"):
        savemat(kdir / f"{name}_kernel_x2.mat", {"Kernel": gaussian_kernel(1.0, size=11)})
    rc, out, err = run_cli(capsys, "upscale", images, "-o", tmp_path / "out", "--kernel", kdir, "--steps", "2",
                       "--model", tiny_model, "--save-kernel")
    assert rc == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "a.png", "a_kernel_x2.mat", "a_kernel_x2.png", "b.png", "b_kernel_x2.mat", "b_kernel_x2.png"]
    assert np.asarray(Image.open(tmp_path / "out/a.png")).shape == (40, 36, 3)
    assert "2/2 images" in out


def test_gt_reports_psnr(images, tmp_path, capsys):
    rc, out, err = run_cli(capsys, "upscale", images / "a.png", "-o", tmp_path / "o", "--method", "bicubic",
                           "--gt", images)
    # the GT is LR-sized here: a clear size warning; the output itself is written and counts as done
    assert rc == 0 and "differ in size" in err and "not scored" in err and (tmp_path / "o/a.png").is_file()
    rc, _, err = run_cli(capsys, "upscale", images / "a.png", "-o", tmp_path / "o3", "--method", "bicubic",
                         "--gt", tmp_path / "nowhere")
    assert rc == 2 and "--gt" in one_error_line(err) and not (tmp_path / "o3").exists()
    gt = tmp_path / "gt"
    gt.mkdir()
    Image.fromarray(np.zeros((40, 36, 3), np.uint8)).save(gt / "a.png")
    rc, out, _ = run_cli(capsys, "upscale", images / "a.png", "-o", tmp_path / "o2", "--method", "bicubic", "--gt", gt)
    assert rc == 0 and "mean PSNR" in out


@pytest.mark.parametrize("content,problem", [(b"", "cannot"), (b"\x89PNG\r\n\x1a\n" + b"0" * 30, "cannot"),
                                              (b"plain text", "not an image")])
def test_unreadable_images(tmp_path, capsys, content, problem):
    bad = tmp_path / "bad.png"
    bad.write_bytes(content)
    rc, _, err = run_cli(capsys, "upscale", bad, "-o", tmp_path / "out", "--method", "bicubic")
    assert rc != 0
    line = one_error_line(err)
    assert "bad.png" in line and (problem in line or "decode" in line)
    assert not (tmp_path / "out" / "bad.png").exists()


def test_too_small_for_a_son(tmp_path, tiny_model, capsys):
    Image.fromarray(np.zeros((5, 5, 3), np.uint8)).save(tmp_path / "small.png")
    rc, _, err = run_cli(capsys, "upscale", tmp_path / "small.png", "-o", tmp_path / "out", "--kernel", "iso:1",
                     "--model", tiny_model)
    assert rc != 0 and "small" in one_error_line(err) and "too small" in err
    assert not any((tmp_path / "out").glob("*.png"))


@pytest.mark.parametrize("kernel,problem", [(np.zeros((0, 0)), "non-empty"), (-np.ones((3, 3)), "negative"),
                                            (np.full((3, 3), np.nan), "NaN")])
def test_bad_kernel_files(images, tmp_path, capsys, kernel, problem):
    savemat(tmp_path / "k.mat", {"kernel": kernel})
    rc, _, err = run_cli(capsys, "upscale", images, "-o", tmp_path / "out", "--kernel", tmp_path / "k.mat")
    assert rc == 2 and problem in one_error_line(err) and "k.mat" in err


@pytest.mark.filterwarnings("always::UserWarning")
def test_unnormalised_kernel_warns_in_one_line(images, tmp_path, tiny_model, capsys):
    savemat(tmp_path / "k.mat", {"kernel": np.ones((3, 3))})
    rc, _, err = run_cli(capsys, "upscale", images / "a.png", "-o", tmp_path / "out", "--kernel", tmp_path / "k.mat",
                     "--model", tiny_model, "--steps", "1")
    assert rc == 0 and "mzsr: warning:" in err and "normalised" in err


def test_missing_kernel_in_folder(images, tmp_path, tiny_model, capsys):
    kdir = tmp_path / "k"
    kdir.mkdir()
    savemat(kdir / "a.mat", {"kernel": gaussian_kernel(1.0, size=9)})
    rc, _, err = run_cli(capsys, "upscale", images, "-o", tmp_path / "out", "--kernel", kdir, "--model", tiny_model,
                     "--steps", "1")
    assert rc == 1 and "no kernel for image 'b'" in one_error_line(err)
    assert (tmp_path / "out/a.png").exists() and not (tmp_path / "out/b.png").exists()


def test_output_folder_equal_to_input_folder(images, capsys):
    before = sorted(p.read_bytes() for p in images.iterdir())
    rc, _, err = run_cli(capsys, "upscale", images, "-o", images, "--method", "bicubic")
    assert rc == 2 and "output folder is an input folder" in one_error_line(err)
    assert sorted(p.read_bytes() for p in images.iterdir()) == before


def test_existing_output_needs_overwrite(images, tmp_path, capsys):
    assert run_cli(capsys, "upscale", images / "a.png", "-o", tmp_path / "o", "--method", "bicubic")[0] == 0
    rc, _, err = run_cli(capsys, "upscale", images / "a.png", "-o", tmp_path / "o", "--method", "bicubic")
    assert rc == 2 and "--overwrite" in one_error_line(err)
    assert run_cli(capsys, "upscale", images / "a.png", "-o", tmp_path / "o", "--method", "bicubic", "--overwrite")[0] == 0


def test_unknown_model_and_corrupt_weights(images, tmp_path, tiny_model, capsys):
    rc, _, err = run_cli(capsys, "upscale", images, "-o", tmp_path / "out", "--model", "nonesuch", "--kernel", "iso:1")
    assert rc == 2 and "unknown model 'nonesuch'" in one_error_line(err)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage" * 10)
    bad.with_suffix(".json").write_text(tiny_model.with_suffix(".json").read_text())
    rc, _, err = run_cli(capsys, "upscale", images, "-o", tmp_path / "out", "--model", bad, "--kernel", "iso:1")
    assert rc == 2 and "bad.safetensors" in one_error_line(err)


def test_missing_input(tmp_path, capsys):
    rc, _, err = run_cli(capsys, "upscale", tmp_path / "none.png", "-o", tmp_path / "out")
    assert rc == 2 and "none.png: no such file" in one_error_line(err)


def test_degrade_with_noise_is_seeded(images, tmp_path, capsys):
    for d in ("n1", "n2"):
        assert run_cli(capsys, "degrade", images, "-o", tmp_path / d, "--kernel", "iso:1", "--noise", "0.02",
                   "--seed", "5")[0] == 0
    a, b = (np.asarray(Image.open(tmp_path / d / "a.png")) for d in ("n1", "n2"))
    assert a.shape == (10, 9, 3) and np.array_equal(a, b)


def test_models_lists_cards(capsys):
    rc, out, _ = run_cli(capsys, "models")
    assert rc == 0 and "direct-x2" in out


def test_models_sum_the_steps_of_continued_runs():
    from mzsr.cli import _describe_steps

    pretrained = {"stage": "pretrain", "training": {"steps": 4000}}
    first = {"stage": "meta", "training": {"steps": 849}, "base_card": pretrained}
    assert _describe_steps(first) == "849"
    assert _describe_steps({"stage": "meta", "training": {"steps": 126}, "base_card": first}) == "975 (849 + 126)"


def test_kernel_convention_of_a_kernelgan_file(images, tmp_path, capsys):
    from scipy.io import loadmat
    from scipy.ndimage import center_of_mass, shift

    shifted = shift(np.pad(gaussian_kernel(1.5, size=13), 1), (0.5, 0.5), order=3)  # as KernelGAN saves it at ×2
    savemat(tmp_path / "gan.mat", {"Kernel": shifted / shifted.sum()})
    for convention, centre in (("auto", True), ("mzsr", False)):
        out = tmp_path / convention
        rc, _, err = run_cli(capsys, "upscale", images / "a.png", "-o", out, "--method", "bicubic", "--kernel",
                         tmp_path / "gan.mat", "--kernel-convention", convention, "--save-kernel")
        assert rc == 0, err
        saved = loadmat(out / "a_kernel_x2.mat")["kernel"]
        assert np.allclose(center_of_mass(saved), saved.shape[0] // 2, atol=1e-3) == centre


def test_each_image_gets_the_model_for_its_kernel(images, tmp_path, capsys):
    kdir = tmp_path / "k"
    kdir.mkdir()
    for name, var in (("a", 0.3), ("b", 2.0)):
        savemat(kdir / f"{name}_kernel_x2.mat", {"Kernel": gaussian_kernel(var, size=11)})
    rc, out, err = run_cli(capsys, "upscale", images, "-o", tmp_path / "out", "--kernel", kdir, "--steps", "1")
    assert rc == 0, err
    assert "model direct-x2 ×1, direct-x2-sharp ×1" in out
    rc, out, err = run_cli(capsys, "upscale", images, "-o", tmp_path / "out2", "--kernel", kdir, "--steps", "1",
                           "--model", "direct-x2")
    assert rc == 0 and "model direct-x2" in out and "sharp" not in out, err


def _png_header_only(path, width, height):
    """A PNG whose header claims ``width``×``height`` px with almost no data: a decompression bomb's shape."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) +
                     chunk(b"IEND", b""))


def test_huge_headers_are_refused_and_the_good_files_processed(images, tmp_path, capsys):
    import resource
    import time

    _png_header_only(images / "bomb.png", 100_000, 100_000)
    _png_header_only(images / "big.png", 9000, 9000)
    t0, rss0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rc, out, err = run_cli(capsys, "upscale", images, "-o", tmp_path / "out", "--method", "bicubic")
    assert time.perf_counter() - t0 < 5 and resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0 < 2 ** 20
    assert rc == 1 and "2/4 images" in out
    errors = [l for l in err.splitlines() if l.startswith("mzsr: error:")]
    assert len(errors) == 2 and all("over the limit" in l and "max_pixels" in l for l in errors)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png"]
    rc, out, err = run_cli(capsys, "upscale", images / "big.png", "-o", tmp_path / "o2", "--method", "bicubic",
                           "--max-pixels", "1000")
    assert rc == 1 and "over the limit of 1,000" in err


def test_skip_existing_continues_a_folder_run(images, tmp_path, capsys):
    rc, _, _ = run_cli(capsys, "upscale", images / "a.png", "-o", tmp_path / "out", "--method", "bicubic")
    first = (tmp_path / "out/a.png").stat().st_mtime_ns
    rc, out, err = run_cli(capsys, "upscale", images, "-o", tmp_path / "out", "--method", "bicubic")
    assert rc == 2 and "--skip-existing" in one_error_line(err)
    rc, out, _ = run_cli(capsys, "upscale", images, "-o", tmp_path / "out", "--method", "bicubic", "--skip-existing")
    assert rc == 0 and "1/1 images" in out and (tmp_path / "out/b.png").is_file()
    assert (tmp_path / "out/a.png").stat().st_mtime_ns == first


def test_output_folder_problems_are_found_before_any_work(images, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    rc, _, err = run_cli(capsys, "upscale", images, "-o", tmp_path / "file", "--method", "bicubic")
    assert rc == 2 and "-o" in one_error_line(err) and "not a folder" in err


def test_stale_temporary_files_are_swept(images, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    stale = out / ".a.png.999999999-abcd1234.tmp"  # a process id that cannot be running
    stale.write_bytes(b"half")
    rc, _, _ = run_cli(capsys, "upscale", images, "-o", out, "--method", "bicubic")
    assert rc == 0 and not stale.exists()


def test_sigterm_leaves_no_temporary_file(tmp_path):
    """A real process stopped by SIGTERM mid-run: exit 128 + 15, one line, no temporary or half-written output."""
    import os
    import signal
    import subprocess
    import sys
    import time

    Image.fromarray(np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)).save(tmp_path / "x.png")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "mzsr.cli", "upscale", str(tmp_path / "x.png"), "-o",
                             str(tmp_path / "out"), "--kernel", "iso:2", "--steps", "10000", "--device", "cpu"],
                            stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 60
    while time.time() < deadline and not (tmp_path / "out").is_dir():
        time.sleep(0.1)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM and "Traceback" not in err and "SIGTERM" in err
    assert list((tmp_path / "out").iterdir()) == []


def test_an_unexpected_error_is_one_line_and_counts_as_failed(images, tmp_path, capsys, monkeypatch):
    import mzsr.api

    def broken(*a, **k):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(mzsr.api, "imresize", broken)
    rc, _, err = run_cli(capsys, "upscale", images, "-o", tmp_path / "out", "--method", "bicubic")
    assert rc == 1 and "Traceback" not in err
    assert "unexpected ZeroDivisionError: boom" in one_error_line(err) and "MZSR_DEBUG" in err


def test_the_per_image_note_names_what_the_default_did():
    from mzsr.api import Result
    from mzsr.cli import _realphoto_note

    note = _realphoto_note(Result(None, None, "direct-x2", 2.5, 80, 31, 0.75, 4))
    assert note == "son given noise σ 2.5, JPEG quality 80, 31 steps, median of 4 frames, " \
                   "25% bicubic (the net did no better on held-out parts)"
    assert _realphoto_note(Result(None, None, "direct-x2", steps=10)) == "10 steps"
