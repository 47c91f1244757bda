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


# --- limits, modes and bit depths, temporary files (issue 25) ---

def png_bytes(width: int, height: int, idat: bytes, bit_depth: int = 8, colour: int = 0) -> bytes:
    """A PNG from its parts: any header, whatever the data holds (how decompression bombs are made)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def flat_png(path, side: int) -> None:
    """A real side × side black grayscale PNG, compressed row by row (a few hundred KB for 9000 px)."""
    import zlib

    z = zlib.compressobj(1)
    row = bytes(1 + side)  # filter byte + pixels
    path.write_bytes(png_bytes(side, side, b"".join(z.compress(row) for _ in range(side)) + z.flush()))


def test_oversized_images_are_refused_from_the_header(tmp_path):
    import time
    import zlib

    from mzsr.io import DEFAULT_MAX_PIXELS, image_size

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_bytes(100_000, 100_000, zlib.compress(bytes(64)), colour=2))
    big = tmp_path / "big.png"
    flat_png(big, 9000)
    for path, side in ((bomb, 100_000), (big, 9000)):
        start = time.perf_counter()
        with pytest.raises(ImageError, match=rf"{path.name}: {side}×{side} px .* over the limit"):
            read_image(path)
        assert time.perf_counter() - start < 1.0
        assert image_size(path) == (side, side)  # the header alone, for the caller's output-size check
    assert 9000 * 9000 > DEFAULT_MAX_PIXELS
    with pytest.raises(ImageError, match="over the limit of 100"):
        image_size(tmp_path / "big.png", max_pixels=100)
    assert read_image(big, max_pixels=None).shape == (9000, 9000)  # the limit is the caller's to lift


def test_refusing_a_bomb_takes_little_memory(tmp_path):
    """In a fresh process: refusing both files raises the peak memory by well under 1 GiB (by ~0 in fact)."""
    import subprocess
    import sys
    import zlib

    (tmp_path / "bomb.png").write_bytes(png_bytes(100_000, 100_000, zlib.compress(bytes(64)), colour=6))
    flat_png(tmp_path / "big.png", 9000)
    script = """
import resource, sys
from mzsr.io import ImageError, read_image
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for name in ("bomb.png", "big.png"):
    try:
        read_image(sys.argv[1] + "/" + name)
    except ImageError:
        pass
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, check=True)
    assert int(out.stdout) < 100 * 1024  # KiB


@pytest.mark.filterwarnings("error")
def test_pillow_never_warns_or_raises_about_bombs_itself(tmp_path):
    """Above 89 Mpx Pillow would warn (DecompressionBombWarning), above 179 Mpx raise: our check replaces it."""
    flat_png(tmp_path / "big.png", 9500)  # 90.25 Mpx
    with pytest.raises(ImageError, match="over the limit"):
        read_image(tmp_path / "big.png")
    assert read_image(tmp_path / "big.png", max_pixels=None).shape == (9500, 9500)


@pytest.mark.parametrize("channels", [2, 3, 4])
def test_sixteen_bit_colour_pngs_round_trip_at_16_bits(tmp_path, rng, channels):
    img = rng.integers(0, 65536, (7, 5, channels), dtype=np.uint16)
    write_image(tmp_path / "a.png", img)
    back = read_image(tmp_path / "a.png")
    assert back.dtype == np.uint16 and np.array_equal(back, img)


def test_written_images_keep_dtype_and_channels(tmp_path, rng):
    for dtype, top in ((np.uint8, 256), (np.uint16, 65536)):
        for shape in ((4, 3), (4, 3, 1), (4, 3, 2), (4, 3, 3), (4, 3, 4)):
            img = rng.integers(0, top, shape, dtype=dtype)
            write_image(tmp_path / "o.png", img)
            back = read_image(tmp_path / "o.png")
            assert back.dtype == dtype and np.array_equal(back, img.reshape(back.shape)), (dtype, shape)
    write_image(tmp_path / "f.png", np.linspace(0, 1, 12).reshape(4, 3))  # float in [0, 1]: 16 bits
    assert read_image(tmp_path / "f.png").max() == 65535


@pytest.mark.parametrize("bad", [np.full((3, 3), 0.5, np.float64) * 255, np.zeros((3, 3), np.int64),
                                 np.zeros((3, 3, 5), np.uint8), np.zeros((3,), np.uint8)])
def test_unwritable_arrays_are_refused_before_writing(tmp_path, bad):
    from mzsr.errors import MzsrError

    with pytest.raises(MzsrError, match="o.png"):
        write_image(tmp_path / "o.png", bad)
    assert list(tmp_path.iterdir()) == []


def test_float_tiffs_are_read_by_their_range(tmp_path, rng):
    unit = rng.random((6, 4)).astype(np.float32)
    save(tmp_path, "unit.tif", Image.fromarray(unit))
    back = read_image(tmp_path / "unit.tif")
    assert back.dtype == np.float32 and np.array_equal(back, unit)
    save(tmp_path, "grey.tif", Image.fromarray(unit * 255))
    with pytest.raises(ImageError, match=r"grey.tif: float image with values .*only \[0, 1\]"):
        read_image(tmp_path / "grey.tif")
    nan = unit.copy()
    nan[0, 0] = np.nan
    save(tmp_path, "nan.tif", Image.fromarray(nan))
    with pytest.raises(ImageError, match="nan.tif: .*NaN"):
        read_image(tmp_path / "nan.tif")


def test_int32_tiffs_are_kept_within_16_bits(tmp_path):
    ok = np.array([[0, 65535], [300, 7]], np.int32)
    save(tmp_path, "ok.tif", Image.fromarray(ok))
    back = read_image(tmp_path / "ok.tif")
    assert back.dtype == np.uint16 and np.array_equal(back, ok)
    for name, values in (("neg.tif", [[-1, 0]]), ("wide.tif", [[0, 70000]])):
        save(tmp_path, name, Image.fromarray(np.array(values, np.int32)))
        with pytest.raises(ImageError, match=rf"{name}: 32-bit integer image .*only 0..65535"):
            read_image(tmp_path / name)


@pytest.mark.parametrize("name,kw", [("a.gif", {}), ("a.webp", {"lossless": True}), ("a.png", {}),
                                     ("a.tif", {})])
def test_multi_frame_files_give_the_first_frame_with_a_warning(tmp_path, name, kw):
    frames = [Image.fromarray(np.full((4, 6, 3), v, np.uint8)) for v in (10, 200)]
    frames[0].save(tmp_path / name, save_all=True, append_images=frames[1:], **kw)
    with pytest.warns(UserWarning, match=rf"{name}: has several frames; only the first is used"):
        img = read_image(tmp_path / name)
    assert img.shape[:2] == (4, 6) and abs(int(img.mean()) - 10) <= 2


@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (2, 2), (2, 1)])
def test_tiny_images_read_and_write(tmp_path, rng, shape):
    img = rng.integers(0, 256, shape + (3,), dtype=np.uint8)
    write_image(tmp_path / "t.png", img)
    assert np.array_equal(read_image(tmp_path / "t.png"), img)


def test_exif_orientation_of_16_bit_colour_pngs(tmp_path, rng):
    """Rotated the way Pillow's exif_transpose rotates the 8-bit version of the same file."""
    img = rng.integers(0, 65536, (3, 5, 3), dtype=np.uint16)
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        eight = Image.fromarray((img >> 8).astype(np.uint8))
        eight.save(tmp_path / "e8.png", exif=exif)
        write_image(tmp_path / "e16.png", img)
        data = (tmp_path / "e16.png").read_bytes()  # the same eXIf chunk, after the 16-bit file's IHDR
        (tmp_path / "e16.png").write_bytes(data[:33] + _chunk(tmp_path / "e8.png", b"eXIf") + data[33:])
        want = read_image(tmp_path / "e8.png")
        got = read_image(tmp_path / "e16.png")
        assert np.array_equal((got >> 8).astype(np.uint8), want), orientation


def _chunk(path, kind: bytes) -> bytes:
    """The whole chunk ``kind`` (length, type, data, CRC) of a PNG file."""
    data = path.read_bytes()
    i = data.index(kind) - 4
    length = int.from_bytes(data[i:i + 4], "big")
    return data[i:i + 12 + length]


def test_sweep_removes_only_stale_temporary_files_of_ours(tmp_path):
    import os
    import subprocess
    import sys

    from mzsr.io import sweep_temp_files

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead_pid = int(dead.stdout)
    names = {"stale": f".out.png.{dead_pid}-abc123_x.tmp", "mine": f".out.png.{os.getpid()}-q1w2e3r4.tmp",
             "parent": f".b.png.{os.getppid()}-zzzzzzzz.tmp", "user": "out.png", "other": ".hidden.tmp",
             "old-style": ".out.png.k3j4h5g6.tmp"}
    for name in names.values():
        (tmp_path / name).write_bytes(b"x")
    assert sweep_temp_files(tmp_path) == [tmp_path / names["stale"]]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(n for k, n in names.items() if k != "stale")
    assert sweep_temp_files(tmp_path / "missing") == []


def test_atomic_write_names_its_temporary_file_for_the_sweep(tmp_path):
    import os

    seen = []
    atomic_write(tmp_path / "o.bin", lambda tmp: seen.append(os.path.basename(tmp)) or open(tmp, "wb").close())
    assert seen[0].startswith(f".o.bin.{os.getpid()}-") and seen[0].endswith(".tmp")


def test_sigterm_or_sighup_during_a_write_leaves_no_temporary_file(tmp_path):
    import signal
    import subprocess
    import sys

    script = """
import sys, time
from mzsr.io import Terminated, atomic_write, install_signal_handlers
install_signal_handlers()
def slow(tmp):
    with open(tmp, "wb") as f:
        f.write(b"half")
        f.flush()
        print("writing", flush=True)
        time.sleep(30)
for _ in range(2):
    try:
        atomic_write(sys.argv[1], slow)
    except Terminated as e:
        print(128 + e.signum, flush=True)
        sys.stdin.readline()  # the test has looked: the next write may begin
"""
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "o.png")], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        for signum in (signal.SIGHUP, signal.SIGTERM):
            assert proc.stdout.readline().strip() == "writing"
            assert len(list(tmp_path.iterdir())) == 1  # the temporary file, mid-write
            proc.send_signal(signum)
            assert proc.stdout.readline().strip() == str(128 + signum)
            assert list(tmp_path.iterdir()) == []
            proc.stdin.write("\n")
            proc.stdin.flush()
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
        proc.stdin.close()
        proc.stdout.close()
