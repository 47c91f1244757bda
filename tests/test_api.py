import numpy as np
import pytest

import mzsr
from conftest import load_rgb
from mzsr.kernels import gaussian_kernel
from mzsr.metrics import psnr_rgb, psnr_y
from mzsr.models import ModelError
from mzsr.resize import imresize


def test_bicubic_method_equals_imresize(rng):
    img = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
    out = mzsr.upscale(img, 2, method="bicubic")
    assert out.shape == (24, 20, 3) and out.dtype == np.uint8
    assert np.array_equal(out, np.round(np.clip(imresize(img / 255.0, 2), 0, 1) * 255).astype(np.uint8))


def test_layouts_and_dtypes_are_kept(tiny_model, rng):
    base = rng.integers(0, 256, (16, 14, 3), dtype=np.uint8)
    k = gaussian_kernel(1.0, size=9)
    for img in (base, base[..., 0], np.dstack([base, base[..., :1]]), np.dstack([base[..., 0]] * 2),
                base.astype(np.uint16) * 257, base / 255.0):
        out = mzsr.upscale(img, 2, kernel=k, steps=1, model=str(tiny_model))
        assert out.shape[:2] == (32, 28) and out.shape[2:] == img.shape[2:] and out.dtype == img.dtype


def test_alpha_is_upscaled_bicubically_and_kept(tiny_model):
    img = np.zeros((16, 16, 4), np.uint8)
    img[..., 3] = 255
    img[:8, :, 3] = 0
    out = mzsr.upscale(img, 2, kernel="iso:1", steps=0, model=str(tiny_model))
    assert out[:14, :, 3].max() == 0 and out[18:, :, 3].min() == 255


def test_methods_differ_and_steps_change_the_result(tiny_model, rng):
    img = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
    zero = mzsr.upscale(img, 2, kernel="iso:1.5", steps=0, model=str(tiny_model))
    three = mzsr.upscale(img, 2, kernel="iso:1.5", steps=3, model=str(tiny_model))
    fine = mzsr.upscale(img, 2, kernel="iso:1.5", steps=3, method="finetune", model=str(tiny_model))
    assert not np.array_equal(zero, three) and not np.array_equal(three, fine)


def test_errors(tiny_model, rng):
    img = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="method must be one of"):
        mzsr.upscale(img, method="magic")
    with pytest.raises(ModelError, match="unknown model"):
        mzsr.upscale(img, model="no-such-model")
    with pytest.raises(ValueError, match="×2 model"):
        mzsr.upscale(img, 4, kernel="iso:1", model=str(tiny_model))


def test_back_projection_makes_the_output_reproduce_the_input(tiny_model, rng):
    hr = np.clip(128 + 90 * np.sin(np.mgrid[:48, :44][1] / 2.5)[..., None] + rng.normal(0, 10, (48, 44, 3)), 0, 255)
    lr = mzsr.degrade_image(hr.astype(np.uint8), "iso:1.5", 2)
    plain = mzsr.upscale(lr, 2, kernel="iso:1.5", steps=1, model=str(tiny_model))
    bp = mzsr.upscale(lr, 2, kernel="iso:1.5", steps=1, model=str(tiny_model), back_projection=3)
    # degrading the output again should give back the input: more so after back-projection
    assert psnr_rgb(mzsr.degrade_image(bp, "iso:1.5", 2), lr, 2) > psnr_rgb(mzsr.degrade_image(plain, "iso:1.5", 2),
                                                                             lr, 2) + 1
    with pytest.raises(ValueError, match="back_projection applies to mzsr and finetune"):
        mzsr.upscale(lr, 2, method="bicubic", back_projection=2)


def test_self_ensemble_stays_aligned_under_direct_subsampling(data):
    """The shipped direct-x2 model on a crop of an official g^d_2.0 input: the ensemble must not lose to the
    single pass (unaligned, the flipped frames' outputs sit one pixel off and cost ~4.5 dB on Set5)."""
    lr = load_rgb(data / "benchmark/Set5/LR_MZSR_g20_x2/bird.png")[40:104, 40:104]
    gt = load_rgb(data / "benchmark/Set5/HR/img_002_SRF_2_HR.png")[80:208, 80:208]
    plain = mzsr.upscale(lr, 2, kernel="iso:2", steps=1, model="direct-x2", device="cpu")
    ens = mzsr.upscale(lr, 2, kernel="iso:2", steps=1, model="direct-x2", device="cpu", ensemble=True)
    assert psnr_y(ens, gt, 2) > psnr_y(plain, gt, 2) - 0.05
    with pytest.raises(ValueError, match="ensemble applies to mzsr and finetune"):
        mzsr.upscale(lr, 2, method="zssr", ensemble=True)


def test_degrade_image_matches_cli_recipe(rng):
    img = rng.integers(0, 256, (20, 22, 3), dtype=np.uint8)
    lr = mzsr.degrade_image(img, "iso:2", 2)
    assert lr.shape == (10, 11, 3) and lr.dtype == np.uint8
    assert psnr_rgb(mzsr.degrade_image(img, "bicubic", 2), lr, 0) < 60  # blur changes the result


def test_sixteen_bit_keeps_its_precision(tiny_model):
    ramp = np.linspace(0, 65535, 40 * 40).reshape(40, 40).astype(np.uint16)
    out = mzsr.upscale(ramp, 2, kernel="iso:1", steps=0, model=str(tiny_model))
    assert out.dtype == np.uint16 and len(np.unique(out)) > 1000


def test_the_default_model_follows_the_kernel(rng):
    img = rng.integers(0, 256, (16, 14, 3), dtype=np.uint8)
    for spec, model in (("iso:0.3", "direct-x2-sharp"), ("iso:2", "direct-x2")):
        auto = mzsr.upscale(img, 2, kernel=spec, steps=1)
        assert np.array_equal(auto, mzsr.upscale(img, 2, kernel=spec, steps=1, model=model)), spec
    # an explicit model is kept whatever the kernel
    assert not np.array_equal(mzsr.upscale(img, 2, kernel="iso:0.3", steps=1, model="direct-x2"),
                              mzsr.upscale(img, 2, kernel="iso:0.3", steps=1))


CLI_API_MATRIX = [  # (CLI options, the same request through the API)
    (["--model", "bicubic-x2", "--kernel", "iso:1.3", "--steps", "2"],
     dict(model="bicubic-x2", kernel="iso:1.3", steps=2)),
    (["-s", "4", "--kernel", "bicubic", "--steps", "1"], dict(scale=4, kernel="bicubic", steps=1)),
    (["--kernel", "iso:0.3", "--steps", "1"], dict(kernel="iso:0.3", steps=1)),
    (["--kernel", "iso:2.0", "--steps", "1", "--downsample", "bicubic"],
     dict(kernel="iso:2.0", steps=1, downsample="bicubic")),
    (["--kernel", "aniso:4,1,-0.5", "--steps", "2", "--method", "finetune"],
     dict(kernel="aniso:4,1,-0.5", steps=2, method="finetune")),
    (["--steps", "1"], dict(steps=1)),
    (["-s", "4", "--kernel", "iso:2.0", "--steps", "1", "--back-projection", "1"],
     dict(scale=4, kernel="iso:2.0", steps=1, back_projection=1)),
    (["-s", "4", "--method", "bicubic"], dict(scale=4, method="bicubic")),
    (["--kernel", "estimate", "--steps", "1"], dict(kernel="estimate", steps=1)),
    (["--model", "direct-x2", "--kernel", "iso:0.3", "--steps", "1", "--downsample", "bicubic"],
     dict(model="direct-x2", kernel="iso:0.3", steps=1, downsample="bicubic")),
]


@pytest.mark.filterwarnings("ignore:model '.*' was meta-trained for")
@pytest.mark.parametrize("options,request_", CLI_API_MATRIX, ids=[" ".join(o) for o, _ in CLI_API_MATRIX])
def test_cli_and_api_give_identical_pixels(options, request_, tmp_path, capsys, one_torch_thread):
    from PIL import Image

    from conftest import run_cli

    img = np.random.default_rng(3).integers(0, 256, (24, 20, 3), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "x.png")
    rc, _, err = run_cli(capsys, "upscale", tmp_path / "x.png", "-o", tmp_path / "out", "--device", "cpu", *options)
    assert rc == 0, err
    cli = np.asarray(Image.open(tmp_path / "out/x.png"))
    api = mzsr.upscale(img, device="cpu", **request_)
    assert cli.shape == api.shape and np.array_equal(cli, api)


def test_a_model_for_another_subsampling_is_said(rng):
    img = rng.integers(0, 256, (16, 14, 3), dtype=np.uint8)
    with pytest.warns(UserWarning, match="direct-x4' was meta-trained for direct subsampling"):
        mzsr.upscale(img, 4, kernel="bicubic", steps=1)


def test_the_benchmark_adapts_the_model_upscale_picks():
    from mzsr.bench.runner import default_weights
    from mzsr.bench.scenarios import SCENARIOS

    for sid, scale in (("gd0.2", 2), ("gd2.0", 2), ("gb1.3", 2), ("gd2.0", 4)):
        s = SCENARIOS[sid]
        picked = mzsr.Upscaler(scale, s.kernel(), downsample=s.downsample).model_for(s.kernel()).name
        assert default_weights(scale, s, "cpu", {}).model.name == picked
    assert default_weights(2, SCENARIOS["gd0.2"], "cpu", {}).model.name == "direct-x2-sharp"


def test_options_are_checked_before_any_image(tmp_path):
    for bad in (dict(steps=-1), dict(steps=1.5), dict(tile=0), dict(tile=-5), dict(scale=1),
                dict(back_projection=-1), dict(downsample="nearest"), dict(estimator="predictor", kernel="iso:1")):
        with pytest.raises(ValueError):
            mzsr.Upscaler(**bad)


def test_a_scenario_with_per_image_kernels_gets_the_default_model():
    from mzsr.bench.runner import default_weights
    from mzsr.bench.scenarios import SCENARIOS

    assert default_weights(2, SCENARIOS["krk+n3q80"], "cpu", {}).model.name == "direct-x2"


def test_zssr_sons_take_the_measured_noise(monkeypatch, rng):
    """method="zssr" gives ZSSR's sons the input's noise (its real-image setting), measured with noise="auto";
    its sons take no JPEG, so a JPEG quality is refused."""
    import mzsr.zssr

    seen = []
    monkeypatch.setattr(mzsr.zssr, "zssr", lambda lr, scale, *a, noise, **k: seen.append(noise) or
                        imresize(lr, scale))
    flat = np.full((96, 96, 3), 128.0)
    noisy = np.clip(flat + rng.normal(0, 8, flat.shape), 0, 255).astype(np.uint8)
    up = mzsr.Upscaler(2, "iso:2", method="zssr", device="cpu")
    assert up.upscale(noisy).noise == seen[-1] and abs(seen[-1] - 8) < 1
    assert up.upscale(flat.astype(np.uint8)).noise == seen[-1] == 0
    assert mzsr.Upscaler(2, "iso:2", method="zssr", noise=3, device="cpu").upscale(noisy).noise == 3
    with pytest.raises(ValueError, match="jpeg applies to mzsr and finetune, not zssr"):
        mzsr.Upscaler(2, method="zssr", jpeg=80)


def test_the_jpeg_is_measured_once_and_routes_the_estimate(monkeypatch, tiny_model, rng):
    """upscale reads the input's JPEG quality once (from the file's tables when it has a path): the kernel
    estimate routes by it (to the predictor trained on noisy JPEG patches) and the son is compressed at it."""
    import mzsr.api
    import mzsr.estimate

    read, routed = [], []
    monkeypatch.setattr(mzsr.api, "son_quality", lambda img, path=None: read.append(path) or 80)
    monkeypatch.setattr(mzsr.estimate, "reads_as_corrupted", lambda img: pytest.fail("the JPEG was measured again"))
    monkeypatch.setattr(mzsr.estimate.predictor, "estimate",
                        lambda *a, weights=None, **k: routed.append(weights.stem) or gaussian_kernel(1.0))
    img = (rng.random((128, 128, 3)) * 255).astype(np.uint8)
    result = mzsr.Upscaler(2, "estimate", steps=1, model=str(tiny_model), device="cpu").upscale(img, path="a.jpg")
    assert read == ["a.jpg"] and routed == ["predictor-direct-x2-real"] and result.jpeg == 80


def _record_zero_shot(monkeypatch, option: str) -> list:
    """Stand bicubic in for the adaptation (mzsr.adapt.zero_shot); the list receives each call's ``option``."""
    import mzsr.adapt

    seen = []

    def zero_shot(net, params, lr, *a, report, **k):
        seen.append(k[option])
        report.update(steps=0, guard=1.0, frames=1)
        return imresize(lr / 255.0, 2)

    monkeypatch.setattr(mzsr.adapt, "zero_shot", zero_shot)
    return seen


def test_auto_back_projects_a_clean_son_only(monkeypatch, tiny_model, rng):
    """Back-projection pulls the output towards the LR, its noise and JPEG blocks too: auto skips it when the son is
    corrupted; asked for, it runs anyway."""
    seen = _record_zero_shot(monkeypatch, "back_projection")
    img = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    mzsr.Upscaler(2, "iso:2", model=str(tiny_model), noise=0, jpeg=None, device="cpu").upscale(img)
    mzsr.Upscaler(2, "iso:2", model=str(tiny_model), noise=3, jpeg=None, device="cpu").upscale(img)
    mzsr.Upscaler(2, "iso:2", model=str(tiny_model), noise=0, jpeg=80, device="cpu").upscale(img)
    mzsr.Upscaler(2, "iso:2", model=str(tiny_model), noise=3, back_projection=2, device="cpu").upscale(img)
    assert seen == [2, 0, 0, 2]


def test_auto_adapts_past_the_meta_learned_steps_at_x2_or_on_a_corrupted_son_only(monkeypatch, rng):
    """At ×4 every step after the meta-learned ones costs a clean son's output; a noisy or JPEG son needs them."""
    seen = _record_zero_shot(monkeypatch, "tail")
    img = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    smooth = np.repeat(np.linspace(40, 200, 64)[None, :, None], 64, 0).repeat(3, 2).astype(np.uint8)  # reads σ 0
    for scale, noise, jpeg in [(2, 0, None), (4, 0, None), (4, 3, None), (4, 0, 80)]:
        mzsr.Upscaler(scale, f"iso:{scale}", noise=noise, jpeg=jpeg, device="cpu").upscale(img)
    mzsr.Upscaler(4, "iso:4", device="cpu").upscale(smooth)  # noise and jpeg "auto"
    mzsr.Upscaler(4, "iso:4", method="finetune", device="cpu").upscale(smooth)  # pretrained weights need the tail
    assert seen == [True, False, True, True, False, True]


def test_auto_gives_the_son_a_share_of_the_measured_noise(monkeypatch, tiny_model, rng):
    """With steps="auto" the son's noise is AUTO_SON_NOISE_SHARE of the σ read on the input; the paper's MZSR(N)
    takes the σ as read, and a given σ is used as given."""
    from mzsr.schedules import AUTO_SON_NOISE_SHARE

    seen = _record_zero_shot(monkeypatch, "noise")
    flat = np.full((96, 96, 3), 128.0)
    noisy = np.clip(flat + rng.normal(0, 8, flat.shape), 0, 255).astype(np.uint8)
    opts = dict(model=str(tiny_model), jpeg=None, device="cpu")
    read = mzsr.Upscaler(2, "iso:2", steps=1, **opts).upscale(noisy).noise
    auto = mzsr.Upscaler(2, "iso:2", **opts).upscale(noisy).noise
    given = mzsr.Upscaler(2, "iso:2", noise=5, **opts).upscale(noisy).noise
    assert abs(read - 8) < 1 and auto == pytest.approx(AUTO_SON_NOISE_SHARE * read) and given == 5
    assert seen == [read, auto, given]


def test_a_small_jpeg_at_x4_has_a_son_too_small_to_calibrate_on(rng):
    """A 120×80 LR at ×4 has a 30×20 son, too small to measure noise on: the son takes the σ read on the LR
    (this once ended the run with "image too small to estimate its noise")."""
    from mzsr.schedules import AUTO_SON_NOISE_SHARE

    rgb = np.clip(0.5 + rng.normal(0, 9 / 255, (80, 120, 3)), 0, 1)
    sigma, quality = mzsr.Upscaler(4, "iso:4", device="cpu").son_corruption(rgb, gaussian_kernel(4.0), 9.0, 90)
    assert sigma == pytest.approx(9.0 * AUTO_SON_NOISE_SHARE) and quality == 90


def test_at_x4_auto_corrupts_the_son_only_for_strong_noise(rng):
    """A ×4 LR's texture reads as a few grey levels of noise, and a clean son beat a mildly noisy or JPEG one."""
    from mzsr.schedules import AUTO_LARGE_SCALE_CORRUPT_FROM as floor
    from mzsr.schedules import AUTO_SON_NOISE_SHARE as share

    rgb, k = rng.random((80, 120, 3)), gaussian_kernel(4.0)

    def son(scale, sigma, quality, steps="auto", **options):
        return mzsr.Upscaler(scale, f"iso:{scale}", device="cpu", steps=steps, **options).son_corruption(
            rgb, k, sigma, quality)

    assert son(4, floor - 0.5, 75) == (0.0, None)
    assert son(4, 0.0, 75, noise=0) == (0.0, None)  # no noise asked for: the read JPEG goes too
    assert son(4, floor - 0.5, None, jpeg=90) == (0.0, 90)  # a quality asked for is kept
    assert son(4, floor, 75) == (pytest.approx(floor * share), 75)  # the son (20×30) too small to calibrate on
    assert son(4, floor + 1, None) == (pytest.approx((floor + 1) * share), None)
    assert son(2, floor - 0.5, None) == (pytest.approx((floor - 0.5) * share), None)
    assert son(4, floor - 0.5, None, method="finetune") == (pytest.approx((floor - 0.5) * share), None)
    assert son(4, floor - 0.5, None, steps=10) == (floor - 0.5, None)  # MZSR(N) as read
