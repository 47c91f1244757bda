import numpy as np
import pytest
from PIL import Image
from scipy.io import loadmat, savemat

from mzsr.kernels import (KernelError, check_kernel, gaussian_kernel, load_kernel, parse_kernel_spec,
                          random_kernel)


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


def test_even_size_rejected():
    with pytest.raises(KernelError):
        gaussian_kernel(2.0, size=20)


@pytest.mark.parametrize("bad,problem", [(np.zeros((0, 0)), "non-empty"), (np.full((3, 3), np.nan), "NaN"),
                                         (-np.eye(3), "negative"), (np.zeros((3, 3)), "sums to 0")])
def test_bad_kernels_are_refused(bad, problem):
    with pytest.raises(KernelError, match=problem):
        check_kernel(bad, "k.mat")


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
