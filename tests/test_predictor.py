"""The kernel predictor: its kernel parametrisation, tiles, training (exact resume, best kept) and, with the
shipped weights on real images, that it tells blur sizes and directions apart."""
import math

import numpy as np
import pytest
import torch
from PIL import Image

from mzsr.degrade import degrade
from mzsr.ensemble import dihedral
from mzsr.estimate import estimate_kernel, predictor as P
from mzsr.kernels import gaussian_kernel
from mzsr.models import load_model
from mzsr.train.kernel import KernelConfig, run
from mzsr.train.loop import load_checkpoint

from conftest import load_rgb, need_data


@pytest.mark.parametrize("l1,l2,theta", [(4.0, 1.0, -0.5), (2.0, 2.0, 0.0), (0.3, 0.2, 1.3), (5.0, 0.5, 3.0)])
def test_log_covariance_round_trip(l1, l2, theta):
    k = P.kernel_from_log_covariance(P.log_covariance(l1, l2, theta), 2)
    np.testing.assert_allclose(k, gaussian_kernel(l1, l2, theta, 21), atol=1e-12)


@pytest.mark.parametrize("i", range(8))
def test_log_covariance_follows_the_image_through_rotations_and_flips(i):
    """The kernel of ``dihedral(image, i)`` is ``dihedral(kernel, i)``; its log-covariance is the one that
    ``undo_dihedral_log_covariance`` maps back to the original's (the map is its own inverse)."""
    target = torch.tensor(P.log_covariance(4.0, 1.0, 0.4), dtype=torch.float64)
    k_frame = dihedral(torch.from_numpy(gaussian_kernel(4.0, 1.0, 0.4, 21)), i).numpy()
    in_frame = P.undo_dihedral_log_covariance(target, i)
    np.testing.assert_allclose(P.kernel_from_log_covariance(in_frame.tolist(), 2), k_frame, atol=1e-12)
    np.testing.assert_allclose(P.undo_dihedral_log_covariance(in_frame, i), target)


def test_predicted_variances_are_clamped_to_the_family():
    lo, hi = P.variance_range(2)
    np.testing.assert_allclose(P.kernel_from_log_covariance([8.0, 8.0, 0.0], 2), gaussian_kernel(hi, hi, 0, 21))
    np.testing.assert_allclose(P.kernel_from_log_covariance([-9.0, -9.0, 0.0], 2), gaussian_kernel(lo, lo, 0, 21))


def test_random_kernels_match_their_targets():
    kernels, targets = P.random_kernels(np.random.default_rng(0), 20, 2)
    lo, hi = P.variance_range(2)
    for k, t in zip(kernels, targets):
        logs = np.linalg.eigvalsh(np.array([[t[0], t[2]], [t[2], t[1]]], dtype=np.float64))
        assert math.log(lo) - 1e-5 <= logs.min() and logs.max() <= math.log(hi) + 1e-5
        np.testing.assert_allclose(k.numpy(), P.kernel_from_log_covariance(t.tolist(), 2), atol=1e-6)


def test_busiest_tiles_come_from_the_textured_part(rng):
    img = np.full((128, 192, 3), 0.5)
    img[:, 128:] = rng.random((128, 64, 3))  # texture only in the right third
    tiles = P.busiest_tiles(img, 64, 3)
    assert tiles.shape == (3, 3, 64, 64)
    assert all(float(t.std()) > 0.2 for t in tiles)
    assert P.busiest_tiles(img[:40, :50], 64, 3).shape == (1, 3, 40, 50)  # smaller than a tile: itself


@pytest.fixture(scope="module")
def train_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("ktrain")
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (48, 52, 3), dtype=np.uint8)).save(d / f"img{i}.png")
    return d


def cfg(train_dir, run_dir, **kw):
    base = dict(train_dirs=[str(train_dir)], patch=12, batch=4, steps=6, channels=4, val_every=0, device="cpu",
                run_dir=str(run_dir), checkpoint_minutes=10.0)
    return KernelConfig(**{**base, **kw})


def test_training_resumes_exactly(train_dir, tmp_path):
    run(cfg(train_dir, tmp_path / "a"))
    run(cfg(train_dir, tmp_path / "b", steps=3))
    run(cfg(train_dir, tmp_path / "b"), resume=True)
    a, b = load_checkpoint(tmp_path / "a/checkpoint.pt"), load_checkpoint(tmp_path / "b/checkpoint.pt")
    assert a["step"] == b["step"] == 6
    for k in a["net"]:
        assert torch.equal(a["net"][k], b["net"][k]), k


def test_learning_rate_drops_tenfold_from_lr_drop_at(train_dir, tmp_path):
    run(cfg(train_dir, tmp_path / "d", steps=2, lr_drop_at=2))
    assert load_checkpoint(tmp_path / "d/checkpoint.pt")["opt"]["param_groups"][0]["lr"] == pytest.approx(1e-3)
    run(cfg(train_dir, tmp_path / "d", steps=3, lr_drop_at=2), resume=True)
    assert load_checkpoint(tmp_path / "d/checkpoint.pt")["opt"]["param_groups"][0]["lr"] == pytest.approx(1e-4)


def test_validation_keeps_the_best_with_its_card(train_dir, tmp_path, data):
    run(cfg(train_dir, tmp_path / "v", val_every=3, val_size=4))
    best = tmp_path / "v/best.safetensors"
    net = P.load_predictor(best)
    card = P.json.loads(best.with_suffix(".json").read_text())
    curve = load_checkpoint(tmp_path / "v/checkpoint.pt")["curve"]
    assert [c["step"] for c in curve] == [0, 3, 6]
    assert card["scale"] == 2 and card["downsample"] == "direct"
    assert card["metrics"]["set14_val_log_cov_l1"] == min(c["val_log_cov_l1"] for c in curve)
    assert card["training"]["steps"] == card["validation_curve"][-1]["step"]
    assert card["training"]["data"] == [str(train_dir)] and card["training"]["code_version"]  # outside $MZSR_DATA
    assert net(torch.rand(2, 3, 24, 24)).shape == (2, 3)


@pytest.mark.parametrize("scale", [2, 4])
def test_shipped_predictor_card_names_its_data_portably(scale):
    card = P.json.loads(P.weights_path(scale, "direct").with_suffix(".json").read_text())
    assert card["training"]["data"] and all(d.startswith("$MZSR_DATA/") for d in card["training"]["data"])


def test_validation_reads_every_image_format(tmp_path, monkeypatch):
    from mzsr.train.kernel import validation_set

    hr = tmp_path / "benchmark/Set14/HR"
    hr.mkdir(parents=True)
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(hr / "a.jpg")
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(hr / "b.bmp")
    monkeypatch.setenv("MZSR_DATA", str(tmp_path))
    x, y = validation_set(KernelConfig(patch=12, val_size=3))
    assert x.shape == (3, 3, 12, 12) and y.shape == (3, 3)


def test_predictor_is_read_once_per_version_of_its_file(tmp_path):
    from safetensors.torch import save_file
    path = tmp_path / "p.safetensors"
    path.with_suffix(".json").write_text('{"channels": 4}')
    for value in (0.0, 1.0):  # written aside and renamed into place, as training saves its best
        save_file({k: torch.full_like(v, value) for k, v in P.KernelNet(4).state_dict().items()}, str(tmp_path / "t"))
        (tmp_path / "t").replace(path)
        first = P.load_predictor(path)
        assert P.load_predictor(path) is first  # a folder's images share one read
        assert all(float(v.flatten()[0]) == value for v in first.state_dict().values())  # a rewrite is re-read


def test_missing_predictor_is_a_clear_error(rng, tmp_path):
    with pytest.raises(ValueError, match="no kernel predictor for ×4"):
        estimate_kernel(rng.random((64, 64, 3)), 4, load_model("direct-x4"), "predictor",
                        weights=tmp_path / "none.safetensors")


def _predicted(hr: np.ndarray, kernel: np.ndarray, scale: int) -> np.ndarray:
    lr = np.round(degrade(hr, kernel, scale)) / 255.0
    return P.predict(P.load_predictor(P.weights_path(scale, "direct")), P.busiest_tiles(lr)).numpy()


@pytest.mark.parametrize("scale", [2, 4])
def test_shipped_predictor_tells_sizes_and_directions_apart(scale):
    """Set14's comic (a validation image), blurred by known kernels: a wider blur must come out wider, and a
    blur elongated along x must come out longer along x than along y, and the other way round."""
    hr = load_rgb(need_data() / "benchmark/Set14/HR/img_005_SRF_2_HR.png").astype(np.float64)
    narrow, wide = (_predicted(hr, gaussian_kernel(v * scale / 2), scale) for v in (0.5, 4.0))
    assert (wide[0] + wide[1]) / 2 > (narrow[0] + narrow[1]) / 2 + 1.0  # log-variances: e^1 ≈ 2.7× wider
    along_x, along_y = (_predicted(hr, gaussian_kernel(4.0 * scale / 2, 1.0 * scale / 2, t), scale)
                        for t in (0.0, math.pi / 2))
    assert along_x[0] > along_x[1] + 0.5 and along_y[1] > along_y[0] + 0.5
