"""Image files in and out: reading every common mode within a pixel limit checked before decoding, discovering
inputs, writing atomically (and cleaning up after interrupted writes)."""
from __future__ import annotations

import contextlib
import os
import re
import signal
import tempfile
import warnings
from pathlib import Path

import numpy as np
import png
from PIL import Image, ImageOps, UnidentifiedImageError

from . import validate
from .errors import ImageError, MzsrError, describe


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread by :func:`install_signal_handlers` so that cleanups run
    (:func:`atomic_write` removes its temporary file). A ``KeyboardInterrupt``, so code that stops on Ctrl-C
    stops on these too; ``signum`` says which signal (exit status 128 + signum by convention)."""

    def __init__(self, signum: int):
        super().__init__(f"terminated by {signal.Signals(signum).name}")
        self.signum = signum


def _raise_terminated(signum, frame):
    raise Terminated(signum)


def install_signal_handlers() -> dict:
    """Turn SIGTERM and SIGHUP into :class:`Terminated`; returns the previous handlers by signal number.

    Call from the main thread (Python runs signal handlers there only). Without it those signals end the
    process at once and leave :func:`atomic_write`'s temporary file behind.
    """
    signums = [getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]
    return {signum: signal.signal(signum, _raise_terminated) for signum in signums}


# Temporary files are ".NAME.PID-XXXXXXXX.tmp": the writer's process id tells a sweep which ones are stale.
_TEMP_NAME = re.compile(r"^\..+\.(\d+)-[A-Za-z0-9_]+\.tmp$")


def atomic_write(path, write) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it into place.

    On any exception (including :class:`Terminated` and Ctrl-C) the temporary file is removed and ``path`` is
    left as it was; a process killed outright leaves one for :func:`sweep_temp_files`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would make every output private
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except PermissionError:  # another user's process
        return True
    except (ProcessLookupError, OverflowError):  # gone, or no pid at all
        return False
    return True


def sweep_temp_files(folder) -> list[Path]:
    """Remove the temporary files that :func:`atomic_write` left in ``folder`` from processes no longer running
    (killed before they could clean up); returns what was removed. Other files, and the temporary files of
    running processes (this one included), are left alone. A missing folder has nothing to sweep."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for p in folder.iterdir():
        m = _TEMP_NAME.match(p.name)
        if m and p.is_file() and not p.is_symlink() and int(m.group(1)) != os.getpid() and not _alive(int(m.group(1))):
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def data_root() -> Path:
    """Where the benchmark and training data live: ``$MZSR_DATA``, else ``shared/data`` beside the checkout."""
    env = os.environ.get("MZSR_DATA")
    if env:
        return Path(env)
    beside_checkout = Path(__file__).resolve().parents[3] / "shared" / "data"
    return beside_checkout if beside_checkout.is_dir() else Path("../shared/data")


def portable_path(path) -> str:
    """``path`` as ``$MZSR_DATA/…`` when it lies in the data folder, so that a model card names its training data
    the same way on every machine; other paths as given."""
    path, root = Path(path), data_root()
    try:
        return "$MZSR_DATA/" + path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
# The default pixel limit of read_image: 50 Mpx holds the largest camera photos (45 Mpx) while refusing
# decompression bombs and images whose upscaling could not fit in memory anyway. Pillow's own limit is off
# (MAX_IMAGE_PIXELS = None): ours runs on the header, before any decoding, and names the file and the limit.
DEFAULT_MAX_PIXELS = 50_000_000
Image.MAX_IMAGE_PIXELS = None
# EXIF orientation 2..8 → the transposition that displays the image (as ImageOps.exif_transpose)
_ORIENT = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
           5: lambda a: a.swapaxes(0, 1), 6: lambda a: np.rot90(a, -1), 7: lambda a: np.rot90(a, 2).swapaxes(0, 1),
           8: lambda a: np.rot90(a, 1)}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@contextlib.contextmanager
def _opened(path: Path):
    """``Image.open`` (lazy: only the header is read), with every failure turned into one :class:`ImageError`."""
    try:
        with Image.open(path) as im:
            yield im
    except MzsrError:
        raise
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a folder, not an image") from None
    except PermissionError:
        raise ImageError(f"{path}: permission denied") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image or an unsupported format") from None
    except MemoryError:
        raise ImageError(f"{path}: not enough memory to decode the image") from None
    except Exception as e:  # noqa: BLE001 - a damaged file makes Pillow's decoders raise about anything
        raise ImageError(f"{path}: cannot decode image ({describe(e)})") from None


def _orientation(im) -> int:
    try:
        return int(im.getexif().get(0x0112, 1))
    except Exception:  # noqa: BLE001 - damaged EXIF: display as stored, as viewers do
        return 1


def _checked_size(im, path: Path, max_pixels: int | None) -> tuple[int, int]:
    w, h = im.size
    if w <= 0 or h <= 0:
        raise ImageError(f"{path}: image is empty (0 pixels)")
    if max_pixels is not None and w * h > max_pixels:
        raise ImageError(f"{path}: {w}×{h} px is {w * h:,} pixels, over the limit of {max_pixels:,} (max_pixels)")
    return (h, w) if _orientation(im) in (5, 6, 7, 8) else (w, h)


def image_size(path, max_pixels: int | None = None) -> tuple[int, int]:
    """``(width, height)`` of an image as displayed (EXIF orientation applied), from its header alone: nothing is
    decoded, so it is instant even for huge files. Refuses (:class:`ImageError`) above ``max_pixels``."""
    path = Path(path)
    with _opened(path) as im:
        return _checked_size(im, path, max_pixels)


def _png16_colour(path: Path) -> bool:
    """Whether a PNG is 16-bit with colour or alpha, which Pillow would cut to 8 bits."""
    with open(path, "rb") as f:
        head = f.read(26)  # signature, IHDR length and type, width, height, bit depth, colour type
    return head[:8] == _PNG_SIGNATURE and head[12:16] == b"IHDR" and head[24] == 16 and head[25] in (2, 4, 6)


def _read_png16(path: Path) -> np.ndarray:
    with open(path, "rb") as f:
        width, height, rows, info = png.Reader(file=f).asDirect()
        arr = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows]).reshape(height, width, info["planes"])
    return arr[..., 0] if info["planes"] == 1 else arr


def _pixels(im, path: Path) -> np.ndarray:
    """The decoded pixels of a Pillow image in read_image's layout and dtype."""
    mode = im.mode
    if mode.startswith("I;16"):
        return np.asarray(im).astype(np.uint16)
    if mode == "I":  # 32-bit integers (TIFF; some 16-bit PNGs): kept when they fit 16 bits
        arr = np.asarray(im)
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi > 65535:
            raise ImageError(f"{path}: 32-bit integer image with values {lo}..{hi}; only 0..65535 is taken")
        return arr.astype(np.uint16)
    if mode == "F":  # float TIFF: taken as a [0, 1] image, its own range checked rather than guessed
        arr = np.asarray(im, dtype=np.float32)
        if not np.isfinite(arr).all():
            raise ImageError(f"{path}: float image contains NaN or infinite values")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0 or hi > 1:
            raise ImageError(f"{path}: float image with values {lo:g}..{hi:g}; only [0, 1] is taken")
        return arr.copy()
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode in ("PA", "RGBa", "La"):
        im = im.convert("LA" if mode == "La" else "RGBA")
    elif mode == "1":
        im = im.convert("L")
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        im = im.convert("RGB")
    return np.asarray(im).copy()


def read_image(path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read any common image as an array that keeps what matters for writing it back.

    Returns ``(H, W)`` (grayscale), ``(H, W, 2)`` (grayscale + alpha), ``(H, W, 3)`` (RGB) or ``(H, W, 4)``
    (RGBA); ``uint8``, ``uint16`` for 16-bit files (PNGs of every colour type; 32-bit integer TIFFs whose
    values fit 16 bits) or ``float32`` for float TIFFs with values in [0, 1] (others are refused). Palette
    images become RGB(A); EXIF orientation is applied. Of a multi-frame file (animated GIF, WebP or PNG,
    multi-page TIFF) the first frame is read, with a warning. The size is checked against ``max_pixels``
    (``None``: no limit) from the header, before decoding. Every failure is an :class:`ImageError` naming the
    file.
    """
    path = Path(path)
    with _opened(path) as im:
        _checked_size(im, path, max_pixels)
        if getattr(im, "is_animated", False):
            warnings.warn(f"{path}: has several frames; only the first is used", stacklevel=2)
        if im.format == "PNG" and _png16_colour(path):
            arr = _read_png16(path)
            orient = _ORIENT.get(_orientation(im))
            return np.ascontiguousarray(orient(arr)) if orient else arr
        return _pixels(ImageOps.exif_transpose(im), path)


def _as_written(img, path) -> np.ndarray:
    """``img`` checked as an image (mzsr.validate.image) and in a dtype PNG holds: floats in [0, 1] go to 16
    bits; a trailing single channel is dropped."""
    arr = validate.image(img, option=str(path))
    if arr.dtype.kind == "f":
        arr = np.round(arr.astype(np.float64) * 65535).astype(np.uint16)
    return arr[..., 0] if arr.ndim == 3 and arr.shape[-1] == 1 else arr


def _write_png16(tmp: str, arr: np.ndarray) -> None:
    h, w, planes = arr.shape
    writer = png.Writer(w, h, greyscale=planes <= 2, alpha=planes in (2, 4), bitdepth=16)
    with open(tmp, "wb") as f:
        writer.write(f, arr.reshape(h, w * planes))


def write_image(path, img: np.ndarray) -> None:
    """Write an image array to PNG, atomically (temporary file, then rename): ``uint8`` or ``uint16`` with 1..4
    channels at its own bit depth, or float in [0, 1] at 16 bits. Arrays :func:`mzsr.validate.image` refuses are
    refused the same way, before anything is written."""
    arr = _as_written(img, path)
    if arr.dtype == np.uint16 and arr.ndim == 3:  # Pillow writes 16-bit PNGs only for single-channel images
        atomic_write(path, lambda tmp: _write_png16(tmp, arr))
        return
    im = Image.fromarray(arr)
    atomic_write(path, lambda tmp: im.save(tmp, format="PNG"))


def discover_inputs(inputs) -> list[Path]:
    """Expand files and folders (their images, sorted, not recursive) into a list of image files."""
    files = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise ImageError(f"{p}: folder has no images ({', '.join(IMAGE_SUFFIXES)})")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise ImageError(f"{p}: no such file or folder")
    return files


def hr_files(set_name: str, limit: int | None = None) -> list[Path]:
    """The first ``limit`` HR images of a test set, sorted by file name."""
    folder = data_root() / "benchmark" / set_name / "HR"
    if not folder.is_dir():
        raise ImageError(f"{folder}: no such test set (set MZSR_DATA to the folder holding benchmark/)")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ImageError(f"{folder}: no images")
    return files[:limit]
