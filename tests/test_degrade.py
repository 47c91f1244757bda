import numpy as np
import pytest
import scipy.ndimage
import torch

from mzsr.cli import main
from mzsr.degrade import blur, blur_torch, degrade, degrade_torch, pad_symmetric
from mzsr.kernels import gaussian_kernel

from conftest import SET5_NAMES, load_rgb


def test_cli_degrade_reproduces_official_set5_g20_bit_exactly(data, tmp_path):
    rc = main(["degrade", str(data / "benchmark/Set5/HR"), "-o", str(tmp_path), "-s", "2",
               "--kernel", str(data / "kernels/MZSR/g20/kernel.mat"), "--downsample", "direct"])
    assert rc == 0
    for i, name in enumerate(SET5_NAMES):
        ours = load_rgb(tmp_path / f"img_00{i + 1}_SRF_2_HR.png").astype(int)
        ref = load_rgb(data / f"benchmark/Set5/LR_MZSR_g20_x2/{name}.png").astype(int)
        assert ours.shape == ref.shape
        assert np.abs(ours - ref).max() == 0


def test_symmetric_padding_repeats_the_edge():
    x = torch.arange(4.0).reshape(1, 1, 1, 4)
    assert pad_symmetric(x, 2)[0, 0, 2].tolist() == [1, 0, 0, 1, 2, 3, 3, 2]


@pytest.mark.parametrize("downsample", ["direct", "bicubic"])
def test_torch_path_matches_numpy(downsample, rng):
    img = rng.random((30, 26, 3))
    kernels = [gaussian_kernel(1.3, size=15), gaussian_kernel(3.0, 1.0, 0.4, size=15)]
    batch = torch.from_numpy(np.stack([img, img[::-1].copy()])).permute(0, 3, 1, 2)
    out = degrade_torch(batch, torch.from_numpy(np.stack(kernels)), 2, downsample)
    for i, (im, k) in enumerate(zip([img, img[::-1]], kernels)):
        ref = degrade(im, k, 2, downsample)
        assert np.abs(out[i].permute(1, 2, 0).numpy() - ref).max() < 1e-10


def test_blur_matches_between_paths_and_is_differentiable(rng):
    img = rng.random((12, 10, 3))
    k = gaussian_kernel(2.0, 1.0, 0.3, size=7)
    t = torch.from_numpy(img).permute(2, 0, 1)[None].requires_grad_(True)
    out = blur_torch(t, torch.from_numpy(k))
    assert np.abs(out[0].permute(1, 2, 0).detach().numpy() - blur(img, k)).max() < 1e-12
    out.sum().backward()
    assert t.grad is not None


def test_noise_is_seeded_and_has_the_right_sigma():
    img = np.full((200, 200), 128.0)
    a = degrade(img, None, 1, noise=0.05, rng=np.random.default_rng(3))
    b = degrade(img, None, 1, noise=0.05, rng=np.random.default_rng(3))
    assert np.array_equal(a, b)
    assert (a - 128).std() == pytest.approx(0.05 * 255, rel=0.05)


def test_corrupt_adds_seeded_noise_in_grey_levels_then_jpeg(rng):
    from mzsr.degrade import corrupt, corrupt_torch

    flat = np.full((64, 64, 3), 128.0)
    noisy = corrupt(flat, noise=5.0, rng=np.random.default_rng(1))
    assert noisy.dtype == np.uint8 and abs(noisy.astype(float).std() - 5.0) < 0.3
    assert np.array_equal(noisy, corrupt(flat, noise=5.0, rng=np.random.default_rng(1)))
    img = (rng.random((32, 40, 3)) * 255).round()
    jpg = corrupt(img, jpeg=75)
    assert jpg.shape == img.shape and 1 < np.abs(jpg - img).mean() < 60
    t = torch.from_numpy(img / 255.0).permute(2, 0, 1)[None].float()
    back = corrupt_torch(t, jpeg=75)[0].permute(1, 2, 0).numpy() * 255
    assert np.abs(back - jpg).max() < 1e-3


def _write_images(folder, names, seed=0):
    from PIL import Image

    folder.mkdir(parents=True)
    gen = np.random.default_rng(seed)
    for name in names:  # smooth, as photos are: white noise would be all JPEG error
        img = scipy.ndimage.gaussian_filter(gen.random((40, 36, 3)), (3, 3, 0))
        Image.fromarray(np.round(255 * (img - img.min()) / np.ptp(img)).astype(np.uint8)).save(folder / f"{name}.png")
    return folder


def test_cli_degrade_noise_and_jpeg_are_seeded_by_file_name_not_folder(tmp_path, capsys):
    from conftest import run_cli

    both = _write_images(tmp_path / "both", ["a", "b"])
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "b.png").write_bytes((both / "b.png").read_bytes())
    for src, out in ((both, "o1"), (alone, "o2"), (both, "o3")):
        rc, _, err = run_cli(capsys, "degrade", src, "-o", tmp_path / out, "--kernel", "iso:1", "--noise", "5",
                             "--jpeg", "80", "--seed", "3")
        assert rc == 0, err
    b1, b2, a1 = (load_rgb(tmp_path / o / f"{n}.png").astype(int) for o, n in (("o1", "b"), ("o2", "b"), ("o1", "a")))
    assert np.array_equal(b1, b2) and np.array_equal(b1, load_rgb(tmp_path / "o3/b.png"))
    clean = tmp_path / "clean"
    assert run_cli(capsys, "degrade", alone, "-o", clean, "--kernel", "iso:1")[0] == 0
    assert run_cli(capsys, "degrade", alone, "-o", tmp_path / "n", "--kernel", "iso:1", "--noise", "5")[0] == 0
    noise = load_rgb(tmp_path / "n/b.png").astype(int) - load_rgb(clean / "b.png")
    assert np.std(noise) == pytest.approx(5.0, rel=0.15)  # σ in grey levels, added after the blur
    assert not np.array_equal(b1, load_rgb(tmp_path / "n/b.png"))  # and JPEG on top
    other = tmp_path / "o4"
    assert run_cli(capsys, "degrade", alone, "-o", other, "--kernel", "iso:1", "--noise", "5", "--jpeg", "80",
                   "--seed", "4")[0] == 0
    assert not np.array_equal(b1, load_rgb(other / "b.png"))


@pytest.mark.parametrize("option, value, message", [
    ("--noise", "-1", "--noise"), ("--noise", "nan", "--noise"), ("--noise", "inf", "--noise"),
    ("--jpeg", "0", "--jpeg"), ("--jpeg", "96", "--jpeg")])
def test_cli_degrade_refuses_bad_noise_and_quality_naming_the_option(tmp_path, capsys, option, value, message):
    from conftest import run_cli

    src = _write_images(tmp_path / "in", ["a"])
    rc, _, err = run_cli(capsys, "degrade", src, "-o", tmp_path / "out", "--kernel", "iso:1", option, value)
    lines = [l for l in err.splitlines() if l.startswith("mzsr: error:")]
    assert rc == 2 and len(lines) == 1 and message in lines[0] and "Traceback" not in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_cli_degrade_refuses_a_fractional_quality(tmp_path, capsys):
    from conftest import run_cli

    src = _write_images(tmp_path / "in", ["a"])
    with pytest.raises(SystemExit):  # argparse's own one-line usage error
        run_cli(capsys, "degrade", src, "-o", tmp_path / "out", "--kernel", "iso:1", "--jpeg", "80.5")
    assert "--jpeg" in capsys.readouterr().err


@pytest.mark.parametrize("noise, jpeg", [(-1.0, None), (float("nan"), None), (0.0, 80.5), (0.0, 0), (0.0, True)])
def test_api_degrade_image_refuses_bad_values(noise, jpeg):
    from mzsr.api import degrade_image

    with pytest.raises(ValueError, match="noise" if jpeg is None else "jpeg"):
        degrade_image(np.zeros((16, 16, 3), np.uint8), "iso:1", 2, noise=noise, jpeg=jpeg)


def test_api_degrade_image_clean_is_unchanged_and_name_seeds_the_noise():
    from mzsr.api import degrade_image

    img = (np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)
    clean = degrade_image(img, "iso:1", 2)
    assert np.array_equal(clean, degrade_image(img, "iso:1", 2, noise=0.0, seed=7, name="x"))
    a = degrade_image(img, "iso:1", 2, noise=3.0, seed=1, name="x")
    assert np.array_equal(a, degrade_image(img, "iso:1", 2, noise=3.0, seed=1, name="x"))
    assert not np.array_equal(a, degrade_image(img, "iso:1", 2, noise=3.0, seed=1, name="y"))
