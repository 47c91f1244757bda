import numpy as np
import pytest
import scipy.ndimage
from PIL import Image
from scipy.io import loadmat, savemat

from mzsr.degrade import blur, degrade
from mzsr.kernels import (KernelError, check_kernel, gaussian_kernel, kernel_variances, kernelgan_to_mzsr,
                          load_kernel, parse_kernel_spec, random_kernel)
from mzsr.metrics import psnr_rgb
from mzsr.resize import imresize


def test_isotropic_matches_official_g20(data):
    official = loadmat(data / "kernels/MZSR/g20/kernel.mat")["kernel"]
    assert np.abs(gaussian_kernel(2.0, size=21) - official).max() < 1e-12


def test_anisotropic_covariance_is_r_diag_rt():
    l1, l2, theta = 4.0, 1.0, 0.7
    k = gaussian_kernel(l1, l2, theta, size=41)
    r = np.arange(41) - 20
    xx, yy = np.meshgrid(r, r)
    cov = np.array([[np.sum(k * xx * xx), np.sum(k * xx * yy)], [np.sum(k * xx * yy), np.sum(k * yy * yy)]])
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    # sampling a Gaussian on the integer grid keeps its second moments to within ~1e-3 at these widths
    assert np.allclose(cov, rot @ np.diag([l1, l2]) @ rot.T, atol=5e-3)
    assert k.sum() == pytest.approx(1.0)


def test_random_kernels_follow_the_spec_ranges():
    rng = np.random.default_rng(1)
    for _ in range(20):
        k = random_kernel(rng, scale=2)
        assert k.shape == (15, 15) and k.sum() == pytest.approx(1.0)
        assert k.argmax() == 15 * 7 + 7  # centred


def test_kernel_min_var_admits_sharper_kernels():
    # the sharpest kernel the paper's range allows, λ1 = λ2 = 1, has the largest centre weight
    peak = gaussian_kernel(1.0, size=15)[7, 7]
    paper = [random_kernel(np.random.default_rng(s), scale=2).max() for s in range(50)]
    wider = [random_kernel(np.random.default_rng(s), scale=2, min_var=0.2).max() for s in range(50)]
    assert max(paper) <= peak < max(wider)
    assert max(wider) <= gaussian_kernel(0.2, size=15)[7, 7]
    for bad in (0.0, -1.0, 5.5):  # 5.5 > 2.5·s would draw λ1 from a reversed range
        with pytest.raises(KernelError, match="min_var"):
            random_kernel(np.random.default_rng(0), scale=2, min_var=bad)


def test_kernel_minor_max_caps_the_smaller_variance():
    draws = [kernel_variances(random_kernel(np.random.default_rng(s), scale=2, size=21, min_var=0.2, minor_max=0.85))
             for s in range(40)]
    assert max(small for small, _ in draws) < 0.86 and max(large for _, large in draws) > 2  # wide along one axis
    with pytest.raises(KernelError, match="minor_max"):
        random_kernel(np.random.default_rng(0), scale=2, min_var=1.0, minor_max=0.85)


def test_even_size_rejected():
    with pytest.raises(KernelError):
        gaussian_kernel(2.0, size=20)


@pytest.mark.parametrize("bad,problem", [(np.zeros((0, 0)), "non-empty"), (np.full((3, 3), np.nan), "NaN"),
                                         (-np.eye(3), "negative"), (np.zeros((3, 3)), "sums to 0"),
                                         (np.eye(3) - 0.05, "negative")])
def test_bad_kernels_are_refused(bad, problem):
    with pytest.raises(KernelError, match=problem):
        check_kernel(bad, "k.mat")


def test_small_negative_tails_are_clipped_with_warning(data):
    """54 of DIV2KRK's 100 ground-truth kernels dip slightly below 0 (kernel_2: −0.00056)."""
    import scipy.io
    raw = scipy.io.loadmat(data / "benchmark/DIV2KRK/gt_k_x2/kernel_2.mat")["Kernel"]
    assert raw.min() < 0
    with pytest.warns(UserWarning) as caught:
        k = check_kernel(raw, "kernel_2.mat")
    assert any("small negative values" in str(w.message) for w in caught)
    assert k.min() == 0 and k.sum() == pytest.approx(1.0) and np.array_equal(k > 0, raw > 0)


def test_unnormalised_kernel_is_normalised_with_warning():
    with pytest.warns(UserWarning, match="normalised"):
        k = check_kernel(np.ones((3, 3)), "k")
    assert k.sum() == pytest.approx(1.0)


def test_load_formats(tmp_path):
    k = gaussian_kernel(1.5, size=9)
    savemat(tmp_path / "a.mat", {"Kernel": k})
    np.save(tmp_path / "b.npy", k)
    Image.fromarray(np.round(k / k.max() * 255).astype(np.uint8)).save(tmp_path / "c.png")
    assert np.allclose(load_kernel(tmp_path / "a.mat"), k)
    assert np.allclose(load_kernel(tmp_path / "b.npy"), k)
    with pytest.warns(UserWarning):
        assert np.abs(load_kernel(tmp_path / "c.png") - k).max() < 1e-2
    savemat(tmp_path / "d.mat", {"other": k})
    with pytest.raises(KernelError, match="no 'kernel'"):
        load_kernel(tmp_path / "d.mat")
    (tmp_path / "e.mat").write_bytes(b"not a mat file")
    with pytest.raises(KernelError, match="cannot read"):
        load_kernel(tmp_path / "e.mat")


def test_specs_and_folders(tmp_path):
    assert parse_kernel_spec("bicubic").kind == "bicubic"
    assert np.allclose(parse_kernel_spec("iso:2").kernel, gaussian_kernel(2.0))
    assert np.allclose(parse_kernel_spec("aniso:4,1,-0.5").kernel, gaussian_kernel(4, 1, -0.5))
    with pytest.raises(KernelError):
        parse_kernel_spec("iso:abc")
    with pytest.raises(KernelError, match="not a file"):
        parse_kernel_spec(str(tmp_path / "missing.mat"))
    savemat(tmp_path / "im_1_kernel_x2.mat", {"Kernel": gaussian_kernel(1.0, size=11)})
    spec = parse_kernel_spec(str(tmp_path))
    assert spec.for_image("im_1", 2).shape == (11, 11)
    with pytest.raises(KernelError, match="no kernel for image 'im_2'"):
        spec.for_image("im_2", 2)


def kernelgan_convention(k: np.ndarray, scale: int) -> np.ndarray:
    """What KernelGAN saves for a centred kernel ``k`` (its kernel_shift, re-derived from spec §9): the centre
    of mass moved (s−1)/2 px right and down by a cubic-spline shift, so that its correlation followed by keeping
    rows/cols 0, s, 2s, … (ZSSR's imresize with a kernel) samples the centre of each s×s block."""
    shifted = np.clip(scipy.ndimage.shift(np.pad(k, 1), ((scale - 1) / 2,) * 2, order=3), 0, None)
    return shifted / shifted.sum()


def centre_of_mass(img: np.ndarray) -> np.ndarray:
    return np.array(scipy.ndimage.center_of_mass(img))


@pytest.mark.parametrize("scale,var,size", [(2, 3.0, 15), (4, 8.0, 25)])
def test_degraded_dot_lands_where_each_convention_says(scale, var, size):
    # kernels wide enough for the sampled dot's centre of mass to be its true one (to ~1e-4 px)
    kgan = kernelgan_convention(gaussian_kernel(var, size=size), scale)
    dot = np.zeros((64, 64))
    dot[30, 30] = 1.0
    # KernelGAN: LR pixel i sits at the centre of HR block i, s·i + (s−1)/2
    assert np.allclose(scale * centre_of_mass(degrade(dot, kgan, scale)) + (scale - 1) / 2, 30, atol=1e-3)
    # MZSR: LR pixel i sits at HR pixel s·i; the converted kernel puts the dot back there
    mzsr = kernelgan_to_mzsr(kgan)
    assert mzsr.shape[0] % 2 == 1 and np.allclose(centre_of_mass(mzsr), mzsr.shape[0] // 2, atol=1e-3)
    assert np.allclose(scale * centre_of_mass(degrade(dot, mzsr, scale)), 30, atol=1e-3)


def test_converted_kernel_is_the_centred_one():
    k = gaussian_kernel(1.5, size=13)
    back = kernelgan_to_mzsr(kernelgan_convention(k, 2))
    pad = (back.shape[0] - k.shape[0]) // 2
    assert back.sum() == pytest.approx(1.0) and back.min() >= 0
    assert np.abs(back - np.pad(k, pad)).max() < 0.05 * k.max()  # two cubic half-pixel shifts: 2.6% of the peak
    assert np.array_equal(kernelgan_to_mzsr(k), k)  # already centred: untouched


def test_bicubic_upsampling_lines_up_only_in_kernelgans_convention(rng):
    """MATLAB-bicubic ↑ puts LR pixel i at the centre of HR block i: restored without a shift from
    KernelGAN-convention LR, (s−1)/2 px off from MZSR-convention LR (the MZSR network learns that shift)."""
    hr = scipy.ndimage.gaussian_filter(rng.random((96, 96)), 1.0) * 255
    k = gaussian_kernel(1.0, size=13)
    truth = blur(hr, k)

    def best_offset(kernel):
        up = imresize(degrade(hr, kernel, 2), 2.0)
        offsets = (-0.5, 0.0, 0.5)
        scores = [psnr_rgb(up, scipy.ndimage.shift(truth, (d, d), order=3), 12) for d in offsets]
        return offsets[int(np.argmax(scores))]

    kgan = kernelgan_convention(k, 2)
    assert best_offset(kgan) == 0.0
    assert best_offset(k) == 0.5 and best_offset(kernelgan_to_mzsr(kgan)) == 0.5


def test_kernel_convention_auto_follows_the_mat_key(tmp_path):
    kgan = kernelgan_convention(gaussian_kernel(1.5, size=13), 2)
    savemat(tmp_path / "gan.mat", {"Kernel": kgan})
    savemat(tmp_path / "ours.mat", {"kernel": kgan})
    np.save(tmp_path / "gan.npy", kgan)
    centred = lambda k: np.allclose(centre_of_mass(k), k.shape[0] // 2, atol=1e-3)  # noqa: E731
    assert centred(load_kernel(tmp_path / "gan.mat"))
    assert not centred(load_kernel(tmp_path / "ours.mat"))
    assert not centred(load_kernel(tmp_path / "gan.mat", convention="mzsr"))
    assert centred(load_kernel(tmp_path / "gan.npy", convention="kernelgan"))
    assert centred(parse_kernel_spec(str(tmp_path / "gan.mat")).kernel)
    assert centred(parse_kernel_spec(str(tmp_path), convention="kernelgan").for_image("ours", 2))
    with pytest.raises(KernelError, match="convention"):
        load_kernel(tmp_path / "gan.mat", convention="matlab")


def test_estimate_spec_has_no_kernel_of_its_own():
    spec = parse_kernel_spec("estimate")
    assert spec.kind == "estimate"
    with pytest.raises(KernelError, match="estimate"):
        spec.for_image("a", 2)


@pytest.mark.parametrize("l1, l2, theta", [(1.0, 1.0, 0.0), (4.0, 0.5, 0.5), (2.0, 0.35, 2.0), (5.0, 1.5, -1.0)])
def test_kernel_variances_are_the_gaussians_lambdas(l1, l2, theta):
    small, large = kernel_variances(gaussian_kernel(l1, l2, theta, size=31))
    assert (small, large) == (pytest.approx(min(l1, l2), abs=0.01), pytest.approx(max(l1, l2), abs=0.02))
    shifted = np.roll(gaussian_kernel(l1, l2, theta, size=31), (2, -3), axis=(0, 1))  # off-centre: same spread
    assert kernel_variances(shifted) == pytest.approx((small, large), abs=1e-6)


# --- one kernel check for every blur, spec limits, small images (issue 25) ---

@pytest.mark.parametrize("shape", [(4, 4), (3, 6), (1, 2), (6, 1), (2, 5), (5, 5)])
def test_any_kernel_shape_becomes_an_odd_square_on_which_numpy_and_torch_blur_agree(rng, shape):
    import torch

    from mzsr.degrade import blur_torch

    raw = rng.random(shape)
    raw /= raw.sum()
    k = check_kernel(raw)
    assert k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1 and k.sum() == pytest.approx(1)
    img = rng.random((12, 9)) * 255
    raw_blur = scipy.ndimage.correlate(img, raw, mode="reflect")  # scipy's centre: index size // 2 per axis
    assert np.array_equal(blur(img, k), raw_blur) or np.abs(blur(img, k) - raw_blur).max() < 1e-10
    torch_blur = blur_torch(torch.from_numpy(img)[None, None], torch.from_numpy(k))[0, 0].numpy()
    assert np.abs(torch_blur - blur(img, k)).max() < 1e-9


def test_kernel_size_is_capped():
    from mzsr.kernels import MAX_KERNEL_SIZE

    check_kernel(np.ones((MAX_KERNEL_SIZE, 1)) / MAX_KERNEL_SIZE)
    with pytest.raises(KernelError, match=f"k.npy: kernel is 1×{MAX_KERNEL_SIZE + 1}, over the"):
        check_kernel(np.ones((1, MAX_KERNEL_SIZE + 1)), "k.npy")


def test_kernel_files_beyond_the_cap_are_refused_before_reading(tmp_path):
    big = np.lib.format.open_memmap(tmp_path / "big.npy", mode="w+", dtype=np.float64, shape=(20000, 20000))
    del big  # a 3.2 GB sparse file: only its header may be read
    with pytest.raises(KernelError, match="big.npy: kernel is 20000×20000, over the 101-px limit"):
        load_kernel(tmp_path / "big.npy")
    Image.new("L", (500, 3)).save(tmp_path / "wide.png")
    with pytest.raises(KernelError, match="wide.png: kernel is 3×500"):
        load_kernel(tmp_path / "wide.png")
    np.save(tmp_path / "text.npy", np.array([["a"]]))
    with pytest.raises(KernelError, match="text.npy: kernel must be a real-valued array"):
        load_kernel(tmp_path / "text.npy")
    with pytest.raises(KernelError, match="gone.npy: no such file"):
        load_kernel(tmp_path / "gone.npy")


def test_huge_values_are_normalised_not_zeroed():
    with pytest.warns(UserWarning, match="normalised"):
        k = check_kernel(np.full((3, 3), 1e308))
    assert np.allclose(k, 1 / 9)


@pytest.mark.parametrize("spec", ["iso:nan", "iso:inf", "iso:-1", "iso:0", "iso:1e9", "iso:1e-400",
                                  "aniso:1,nan,0", "aniso:4,1,inf", "aniso:200,1,0", "aniso:1,2", "iso:1,2",
                                  "iso:", "aniso:a,b,c"])
def test_bad_gaussian_specs_are_refused_naming_the_option_and_spec(spec):
    with pytest.raises(KernelError, match=f"^--kernel {spec}: "):
        parse_kernel_spec(spec)


def test_generated_kernels_hold_the_gaussian():
    from mzsr.kernels import MAX_KERNEL_SIZE, MAX_VARIANCE

    assert parse_kernel_spec("iso:2").kernel.shape == (21, 21)  # the official g^d_2.0 size, untouched
    for var in (10.0, 50.0, MAX_VARIANCE):
        k = parse_kernel_spec(f"iso:{var}").kernel
        assert k.shape[0] <= MAX_KERNEL_SIZE
        assert kernel_variances(k)[0] == pytest.approx(var, rel=2e-3)  # not cut to a near-box
    k = parse_kernel_spec("aniso:40,1,0.3").kernel
    assert kernel_variances(k)[1] == pytest.approx(40, rel=2e-3)


def test_odd_spec_strings_are_refused_cleanly(tmp_path):
    for spec in ("x" * 5000, "a\x00b", "line\nbreak", ""):
        with pytest.raises(KernelError, match="^--kernel .*not a file, a folder"):
            parse_kernel_spec(spec)
    with pytest.raises(KernelError, match="^kernel must be a string"):
        parse_kernel_spec(2.0, option="kernel")


@pytest.mark.parametrize("shape", [(2, 40), (1, 1), (40, 2), (2, 2, 3), (1, 7)])
@pytest.mark.parametrize("taps", [3, 17, 21, 41])
def test_blur_of_tiny_images_stays_in_range(shape, taps):
    """scipy 1.17's reflect mode read out of bounds here (a constant 100 came back as 5e170)."""
    out = blur(np.full(shape, 100.0), gaussian_kernel(4.0, size=taps))
    assert out.shape == shape and np.allclose(out, 100.0)


def test_blur_of_tiny_images_is_the_repeated_symmetric_extension(rng):
    img = rng.random((2, 3))
    k = rng.random((9, 9))
    padded = np.pad(img, 4, mode="symmetric")
    want = np.array([[np.sum(padded[i:i + 9, j:j + 9] * k) for j in range(3)] for i in range(2)])
    assert np.allclose(blur(img, k), want)


# --- property-based: whatever comes in, a kernel or one of our errors ---

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**6, 10**6).map(str),
                    st.sampled_from(["nan", "inf", "-0", "1e400", "1e-400", "", " ", "0x10", "1_0"]))
specs = st.one_of(
    st.text(max_size=40),
    st.builds(lambda v: f"iso:{v}", numbers),
    st.builds(lambda a, b, c: f"aniso:{a},{b},{c}", numbers, numbers, numbers),
    st.builds(lambda xs: "aniso:" + ",".join(map(str, xs)), st.lists(numbers, max_size=5)),
)


@FAST
@given(specs)
def test_any_spec_string_gives_a_kernel_or_our_error(spec):
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = parse_kernel_spec(spec)
    except KernelError as e:
        assert "\n" not in str(e)
        return
    if parsed.kernel is not None:
        k = parsed.kernel
        assert k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1 and np.isfinite(k).all()
        assert k.sum() == pytest.approx(1.0)


kernel_arrays = hnp.arrays(
    dtype=st.sampled_from([np.float64, np.float32, np.float16, np.int64, np.uint8, np.bool_, np.complex128]),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=9))


@FAST
@given(st.one_of(kernel_arrays, hnp.arrays(np.float64, st.tuples(st.integers(1, 8), st.integers(1, 8)),
                                           elements=st.floats(0, 1e300))))
def test_any_kernel_array_is_checked_into_a_usable_kernel_or_our_error(arr):
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            k = check_kernel(arr)
    except KernelError:
        return
    assert k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1 and k.min() >= 0
    assert np.isfinite(k).all() and k.sum() == pytest.approx(1.0)
    out = blur(np.full((2, 3), 100.0), k)  # and it blurs even a tiny image within range
    assert np.allclose(out, 100.0)
