"""Image files in and out: reading every common mode, discovering inputs, writing atomically."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError


def atomic_write(path, write) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
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


class ImageError(ValueError):
    """An image that cannot be used; the message names the file and the problem."""


def read_image(path) -> np.ndarray:
    """Read any common image as an array that keeps what matters for writing it back.

    Returns ``(H, W)`` (grayscale), ``(H, W, 2)`` (grayscale + alpha), ``(H, W, 3)`` (RGB) or ``(H, W, 4)``
    (RGBA); ``uint8``, or ``uint16`` for 16-bit files. Palette images become RGB(A); EXIF orientation is applied.
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            im.load()
            if im.width == 0 or im.height == 0:
                raise ImageError(f"{path}: image is empty (0 pixels)")
            mode = im.mode
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.int64)
                return np.clip(arr, 0, 65535).astype(np.uint16)
            if mode == "P":
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            elif mode == "PA":
                im = im.convert("RGBA")
            elif mode == "1" or mode == "F":
                im = im.convert("L")
            elif mode not in ("L", "LA", "RGB", "RGBA"):
                im = im.convert("RGB")
            return np.asarray(im).copy()
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image or an unsupported format") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"{path}: cannot decode image ({str(e).splitlines()[0] if str(e) else e.__class__.__name__})") from None


def write_image(path, img: np.ndarray) -> None:
    """Write an array as returned by :func:`read_image` to PNG, atomically (temporary file, then rename)."""
    img = np.asarray(img)
    if img.dtype == np.uint16:
        if img.ndim != 2:  # Pillow writes 16-bit PNGs only for single-channel images
            img = (img.astype(np.float64) / 257.0).round().astype(np.uint8)
    elif img.dtype != np.uint8:
        raise TypeError(f"write_image expects uint8 or uint16, got {img.dtype}")
    im = Image.fromarray(img)
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
