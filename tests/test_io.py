import numpy as np
import pytest
from PIL import Image

from mzsr.io import ImageError, atomic_write, discover_inputs, hr_files, portable_path, read_image, write_image
from mzsr.train.validate import set14_pairs


def save(tmp_path, name, im, **kw):
    p = tmp_path / name
    im.save(p, **kw)
    return p


def test_modes(tmp_path, rng):
    rgb = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    assert read_image(save(tmp_path, "a.png", Image.fromarray(rgb))).shape == (6, 5, 3)
    assert read_image(save(tmp_path, "b.png", Image.fromarray(rgb[..., 0]))).shape == (6, 5)
    assert read_image(save(tmp_path, "c.png", Image.fromarray(rgb).convert("LA"))).shape == (6, 5, 2)
    assert read_image(save(tmp_path, "d.png", Image.fromarray(rgb).convert("RGBA"))).shape == (6, 5, 4)
    assert read_image(save(tmp_path, "e.png", Image.fromarray(rgb).convert("P"))).shape == (6, 5, 3)
    sixteen = read_image(save(tmp_path, "f.png", Image.fromarray((rgb[..., 0].astype(np.uint16) * 257))))
    assert sixteen.dtype == np.uint16 and sixteen.max() > 255


def test_exif_orientation_is_applied(tmp_path):
    im = Image.new("RGB", (8, 4))
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    p = tmp_path / "r.jpg"
    im.save(p, exif=exif)
    assert read_image(p).shape[:2] == (8, 4)


def test_bad_files(tmp_path):
    (tmp_path / "junk.png").write_bytes(b"hello")
    with pytest.raises(ImageError, match="junk.png"):
        read_image(tmp_path / "junk.png")
    good = save(tmp_path, "t.png", Image.fromarray(np.zeros((64, 64, 3), np.uint8) + 7))
    (tmp_path / "trunc.png").write_bytes(good.read_bytes()[:60])
    with pytest.raises(ImageError, match="trunc.png"):
        read_image(tmp_path / "trunc.png")
    with pytest.raises(ImageError, match="no such file"):
        read_image(tmp_path / "nope.png")


def test_write_is_atomic(tmp_path):
    target = tmp_path / "out.png"
    def half_then_fail(tmp):
        with open(tmp, "wb") as f:
            f.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, half_then_fail)
    assert list(tmp_path.iterdir()) == []
    write_image(target, np.zeros((3, 3), np.uint16))
    assert read_image(target).dtype == np.uint16


def test_discover(tmp_path):
    for n in ("b.png", "a.jpg", "notes.txt"):
        (tmp_path / n).write_bytes(b"")
    assert [p.name for p in discover_inputs([tmp_path])] == ["a.jpg", "b.png"]
    with pytest.raises(ImageError, match="no such file"):
        discover_inputs([tmp_path / "x.png"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageError, match="no images"):
        discover_inputs([tmp_path / "empty"])


def test_outputs_are_not_private(tmp_path):
    import os
    import stat

    write_image(tmp_path / "o.png", np.zeros((2, 2), np.uint8))
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "o.png").stat().st_mode) == 0o666 & ~umask


def test_test_sets_take_any_image_format(tmp_path, monkeypatch, rng):
    """Benchmark sets and the Set14 validation read every image format (data carried to a GPU as WebP)."""
    hr = tmp_path / "benchmark" / "Set14" / "HR"
    hr.mkdir(parents=True)
    rgb = rng.integers(0, 256, (20, 18, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(hr / "b.webp", lossless=True)
    Image.fromarray(rgb).save(hr / "a.png")
    (hr / "notes.txt").write_text("not an image")
    monkeypatch.setenv("MZSR_DATA", str(tmp_path))
    assert [p.name for p in hr_files("Set14")] == ["a.png", "b.webp"]
    (lr_a, gt_a), (lr_b, gt_b) = set14_pairs(2, None, "direct")
    assert np.array_equal(gt_a, gt_b) and np.array_equal(lr_a, lr_b)  # lossless WebP: the same pixels
    with pytest.raises(ImageError, match="no such test set"):
        hr_files("Set5")


def test_portable_path_names_data_relative_to_mzsr_data(tmp_path, monkeypatch):
    monkeypatch.setenv("MZSR_DATA", str(tmp_path / "data"))
    (tmp_path / "data/train/T91").mkdir(parents=True)
    assert portable_path(tmp_path / "data/train/T91") == "$MZSR_DATA/train/T91"
    assert portable_path(tmp_path / "elsewhere") == str(tmp_path / "elsewhere")  # outside: as given
