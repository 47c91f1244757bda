"""Kernel estimation (``--kernel estimate``): the registry, the mzsr_search estimator, the API and CLI plumbing."""
import numpy as np
import pytest
import scipy.ndimage
import torch
from PIL import Image
from scipy.io import loadmat

import mzsr
from mzsr.degrade import degrade
from mzsr.estimate import (DEFAULT_ESTIMATOR, ESTIMATORS, estimate_kernel, get_estimator, kernelgan, mzsr_search,
                           predictor)
from mzsr.kernels import gaussian_kernel
from mzsr.models import load_model

from conftest import run_cli, load_rgb, need_data


@pytest.fixture
def texture(rng):
    """A 48×48 RGB texture in [0, 1]: smoothed noise, so that blur is visible at every scale."""
    return scipy.ndimage.gaussian_filter(rng.random((48, 48, 3)), (0.7, 0.7, 0))


def size(k: np.ndarray) -> float:
    """The kernel's variance, averaged over its two axes (half the covariance's trace)."""
    r = np.arange(k.shape[0]) - k.shape[0] // 2
    xx, yy = np.meshgrid(r, r)
    return float(np.sum(k * (xx ** 2 + yy ** 2)) / 2)


def test_registry():
    assert "mzsr_search" in ESTIMATORS and DEFAULT_ESTIMATOR in ESTIMATORS
    assert get_estimator() is ESTIMATORS[DEFAULT_ESTIMATOR]


def test_auto_uses_the_predictor_where_one_is_shipped(texture, tiny_model, monkeypatch):
    import mzsr.estimate

    calls = []
    jpeg = np.tile(texture, (2, 2, 1))
    monkeypatch.setattr(mzsr.estimate, "reads_as_corrupted", lambda img: img is jpeg)  # measured on real images
    # in test_noisy_and_jpeg_images_read_as_corrupted
    monkeypatch.setattr(predictor, "estimate", lambda *a, weights=None, **k: calls.append(
        "predictor" + ("-real" if weights is not None else "")) or gaussian_kernel(1.0))
    monkeypatch.setattr(mzsr_search, "estimate", lambda *a, **k: calls.append("search") or gaussian_kernel(1.0))
    estimate_kernel(texture, 2, load_model(tiny_model))  # a direct ×2 model: the predictor is shipped
    big = np.tile(texture, (2, 2, 1))
    assert min(texture.shape[:2]) < mzsr_search.smallest_side(4) <= min(big.shape[:2])
    estimate_kernel(big, 4, load_model("direct-x4"))  # at ×4 the search measured closer
    estimate_kernel(texture, 4, load_model("direct-x4"))  # too small for it: the ×4 predictor
    assert calls == ["predictor", "search", "predictor"]
    estimate_kernel(jpeg, 2, load_model(tiny_model))  # the ×2 predictor trained on noisy JPEG patches too
    assert calls[3:] == ["predictor-real"]
    assert predictor.weights_path(2, "direct", real=True).is_file()
    with pytest.raises(ValueError, match="unknown estimator 'magic'"):
        get_estimator("magic")


def test_noisy_and_jpeg_images_read_as_corrupted():
    import io

    from mzsr.estimate import reads_as_corrupted

    lr = degrade(load_rgb(need_data() / "benchmark/Set14/HR/img_003_SRF_2_HR.png"), gaussian_kernel(2.0), 2)
    clean = np.clip(np.round(lr), 0, 255)
    noisy = np.clip(np.round(lr + np.random.default_rng(0).normal(0, 3, lr.shape)), 0, 255)
    buf = io.BytesIO()
    Image.fromarray(clean.astype(np.uint8)).save(buf, "JPEG", quality=80)
    jpeg = np.asarray(Image.open(buf), dtype=np.float64)
    assert [reads_as_corrupted(x / 255) for x in (clean, noisy, jpeg)] == [False, True, True]


def test_estimate_returns_a_valid_kernel(texture, tiny_model, one_torch_thread):
    k = estimate_kernel(texture, 2, load_model(tiny_model), "mzsr_search", max_evals=6)
    assert k.ndim == 2 and k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1
    assert k.min() >= 0 and k.sum() == pytest.approx(1.0)
    assert np.allclose(scipy.ndimage.center_of_mass(k), k.shape[0] // 2)


def test_estimate_refuses_what_it_cannot_do(texture, tiny_model):
    model = load_model(tiny_model)
    with pytest.raises(ValueError, match="too small to estimate"):
        estimate_kernel(texture[:12, :12], 2, model, "mzsr_search")
    with pytest.raises(ValueError, match="×2 model"):
        estimate_kernel(texture, 4, model, "mzsr_search")


def test_wide_and_narrow_blur_are_told_apart(one_torch_thread):
    """On a real texture (a 128² HR crop of Set14's img_005, so a 64² LR), the shipped direct-x2 model ranks a
    clearly wide blur (λ = 4) above a clearly narrow one (λ = 0.4)."""
    hr = load_rgb(need_data() / "benchmark/Set14/HR/img_005_SRF_2_HR.png").astype(np.float64)[116:244, 60:188]
    model = load_model("direct-x2")
    found = {}
    for var in (0.4, 4.0):
        lr = np.round(degrade(hr, gaussian_kernel(var), 2)) / 255.0
        found[var] = size(estimate_kernel(lr, 2, model, "mzsr_search", max_evals=12))
    assert found[4.0] > 2 * found[0.4], found


@pytest.fixture
def texture64(rng):
    """A 64×64 RGB texture in [0, 1]: the smallest image KernelGAN's 64-pixel crops fit."""
    return scipy.ndimage.gaussian_filter(rng.random((64, 64, 3)), (0.7, 0.7, 0))


def assert_centred_kernel(k: np.ndarray, side: int) -> None:
    assert k.shape == (side, side) and np.all(np.isfinite(k))
    assert k.min() >= 0 and k.sum() == pytest.approx(1.0)
    assert np.abs(np.array(scipy.ndimage.center_of_mass(k)) - side // 2).max() < 0.5


def test_kernelgan_is_selectable_and_returns_a_centred_kernel(texture64, tiny_model, one_torch_thread):
    model = load_model(tiny_model)
    assert "kernelgan" in ESTIMATORS
    assert get_estimator("kernelgan") is kernelgan.estimate
    k = estimate_kernel(texture64, 2, model, estimator="kernelgan", iterations=3)
    assert_centred_kernel(k, 21)
    with pytest.raises(ValueError, match="too small"):
        estimate_kernel(texture64[:60], 2, model, estimator="kernelgan")
    with pytest.raises(ValueError, match="not ×3"):
        estimate_kernel(texture64, 3, model, estimator="kernelgan")


def test_kernelgan_is_repeatable(texture64, tiny_model, one_torch_thread):
    model = load_model(tiny_model)

    def run(seed):
        return get_estimator("kernelgan")(texture64, 2, model, iterations=3, seed=seed)

    assert np.array_equal(run(0), run(0))
    assert not np.array_equal(run(0), run(1))


def test_kernelgan_generator_is_its_kernel():
    """G (its 64-channel layers) equals correlating with the extracted 13×13 kernel, keeping every second pixel
    from the first full window; so does the shortcut the training takes (the kernel applied per channel)."""
    torch.manual_seed(0)
    g = kernelgan.Generator().double()
    with torch.no_grad():  # well-scaled weights, so that the comparison is not between tiny numbers
        for conv in g.convs:
            conv.weight.normal_(0, conv.weight[0].numel() ** -0.5)
    x = torch.rand(3, 1, 40, 43, dtype=torch.float64)
    k = g.kernel().detach()
    assert k.shape == (13, 13) and g.support == 13
    with torch.no_grad():
        out = g(x).numpy()
        via_kernel = kernelgan._KernelGAN.downscale(x.transpose(0, 1), k).transpose(0, 1).numpy()
    half = 13 // 2  # scipy centres the kernel: the first full window is centred on pixel 6
    expected = np.stack([scipy.ndimage.correlate(c[0], k.numpy())[half:-half:2, half:-half:2] for c in x.numpy()])
    assert out.shape == (3, 1, 14, 16) and np.abs(out).max() > 0.1
    assert np.allclose(out[:, 0], expected, rtol=0, atol=1e-12)
    assert np.allclose(via_kernel, out, rtol=0, atol=1e-12)


def test_x4_kernel_is_two_x2_degradations(rng):
    k2 = rng.random((5, 5))  # asymmetric: a flipped or transposed derivation fails
    k2 /= k2.sum()
    img = rng.random((96, 96))
    twice = degrade(degrade(img, k2, 2), k2, 2)
    k4 = kernelgan.x4_from_x2(k2)
    assert k4.shape == (13, 13) and k4.sum() == pytest.approx(1.0)
    assert np.allclose(degrade(img, k4, 4)[3:-3, 3:-3], twice[3:-3, 3:-3], rtol=0, atol=1e-12)


def test_kernelgan_x4_is_the_wider_derived_kernel(texture64, tiny_model, one_torch_thread):
    model = load_model(tiny_model)
    k2 = estimate_kernel(texture64, 2, model, estimator="kernelgan", iterations=3)
    k4 = estimate_kernel(texture64, 4, model, estimator="kernelgan", iterations=3)
    assert_centred_kernel(k4, 41)
    assert np.allclose(k4, kernelgan.fit(kernelgan.x4_from_x2(k2), 41))
    assert size(k4) > 2 * size(k2)


def test_upscale_estimate_equals_upscale_with_the_resolved_kernel(texture, tiny_model, one_torch_thread):
    img = np.round(texture * 255).astype(np.uint8)
    k = mzsr.resolve_kernel(img, "estimate", 2, str(tiny_model))
    assert k.shape == (21, 21)
    via_spec = mzsr.upscale(img, 2, "estimate", steps=1, model=str(tiny_model))
    assert np.array_equal(via_spec, mzsr.upscale(img, 2, k, steps=1, model=str(tiny_model)))
    with pytest.raises(ValueError, match="given kernel"):
        mzsr.degrade_image(img, "estimate")




def error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("mzsr: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def image_file(tmp_path, texture):
    path = tmp_path / "in" / "tex.png"
    path.parent.mkdir()
    Image.fromarray(np.round(texture * 255).astype(np.uint8)).save(path)
    return path


def test_cli_saves_the_estimated_kernel(image_file, tmp_path, tiny_model, capsys, one_torch_thread):
    out = tmp_path / "out"
    rc, _, err = run_cli(capsys, "upscale", image_file, "-o", out, "--kernel", "estimate", "--estimator", "mzsr_search",
                     "--save-kernel", "--steps", "1", "--model", tiny_model)
    assert rc == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["tex.png", "tex_kernel_x2.mat", "tex_kernel_x2.png"]
    saved = loadmat(out / "tex_kernel_x2.mat")["kernel"]
    assert saved.shape == (21, 21) and saved.sum() == pytest.approx(1.0)
    expected = mzsr.resolve_kernel(load_rgb(image_file), "estimate", 2, str(tiny_model), "mzsr_search")
    assert np.allclose(saved, expected)


@pytest.mark.parametrize("argv,problem", [
    (("--kernel", "estimate", "--estimator", "magic"), "unknown estimator 'magic'"),
    (("--kernel", "iso:1", "--estimator", "mzsr_search"), "only used with kernel 'estimate'"),
])
def test_cli_estimator_errors_are_one_line(image_file, tmp_path, tiny_model, capsys, argv, problem):
    rc, _, err = run_cli(capsys, "upscale", image_file, "-o", tmp_path / "out", "--model", tiny_model, *argv)
    assert rc == 2 and problem in error_line(err)
    assert not (tmp_path / "out").exists()


def test_cli_degrade_refuses_to_estimate(image_file, tmp_path, capsys):
    rc, _, err = run_cli(capsys, "degrade", image_file, "-o", tmp_path / "out", "--kernel", "estimate")
    assert rc == 2 and "degrading needs a given kernel" in error_line(err)
