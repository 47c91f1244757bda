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
