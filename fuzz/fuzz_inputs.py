"""Fuzz the file readers (images, kernels, model cards): any bytes give a result or one of mzsr's own errors.

``make fuzz`` writes valid seed inputs (``--seeds runs/fuzz-corpus``), then runs it under atheris
(coverage-guided, libFuzzer) for 60 s: ``python fuzz/fuzz_inputs.py -max_total_time=60
-artifact_prefix=tests/fuzz_corpus/ runs/fuzz-corpus tests/fuzz_corpus``; a crasher is saved in
tests/fuzz_corpus/, which tests/test_fuzz_regressions.py replays (with the seeds). Without atheris installed
it falls back to hypothesis' random bytes for the same time (``--seconds N``).

An input's first byte picks the reader (:data:`TARGETS`), the rest is the file's content.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path


def _read_image(path: Path) -> None:
    from mzsr.io import image_size, read_image

    image_size(path)
    read_image(path, max_pixels=1 << 20)  # small: a fuzz input must not decode a 50-Mpx image each time


def _load_kernel(path: Path) -> None:
    from mzsr.kernels import load_kernel

    load_kernel(path)


def _check_card(path: Path) -> None:
    from mzsr.errors import ModelError
    from mzsr.models import check_card

    try:
        card = json.loads(path.read_bytes())
    except (ValueError, RecursionError):  # not JSON: load_model reports it as such (tests/test_models.py)
        raise ModelError("not JSON") from None
    check_card(card, path)


# (suffix of the temporary file, reader)
TARGETS = [(".png", _read_image), (".jpg", _read_image), (".gif", _read_image), (".tif", _read_image),
           (".webp", _read_image), (".bmp", _read_image), (".npy", _load_kernel), (".mat", _load_kernel),
           (".png", _load_kernel), (".json", _check_card)]


def one_input(data: bytes) -> None:
    """Run the reader ``data[0]`` picks on a file holding ``data[1:]``; mzsr's errors are the expected outcome,
    anything else escapes (a crash)."""
    from mzsr.errors import MzsrError

    if not data:
        return
    suffix, reader = TARGETS[data[0] % len(TARGETS)]
    fd, name = tempfile.mkstemp(suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data[1:])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # warnings (several frames, a normalised kernel) are fine
            reader(Path(name))
    except MzsrError:
        pass
    finally:
        os.unlink(name)


def write_seeds(folder) -> None:
    """Small valid inputs for every target (the fuzzer mutates from these): images of each mode and format,
    kernels in each format, a model card."""
    import io

    import numpy as np
    from PIL import Image
    from scipy.io import savemat

    from mzsr.io import write_image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (5, 4, 3), dtype=np.uint8)

    def seed(index: int, name: str, content: bytes) -> None:
        (folder / f"seed-{name}").write_bytes(bytes([index]) + content)

    def saved(im, fmt, **kw) -> bytes:
        buf = io.BytesIO()
        im.save(buf, format=fmt, **kw)
        return buf.getvalue()

    index = {suffix + reader.__name__: i for i, (suffix, reader) in enumerate(TARGETS)}
    img = index[".png_read_image"]
    for mode in ("RGB", "RGBA", "L", "LA", "P", "1", "I;16"):
        seed(img, f"{mode.replace(';', '')}.png", saved(Image.fromarray(rgb).convert(mode), "PNG"))
    with tempfile.TemporaryDirectory() as tmp:
        write_image(Path(tmp) / "a.png", rng.integers(0, 65536, (3, 4, 3), dtype=np.uint16))
        seed(img, "rgb16.png", (Path(tmp) / "a.png").read_bytes())
    frames = [Image.fromarray(rgb), Image.fromarray(255 - rgb)]
    seed(index[".gif_read_image"], "anim.gif", saved(frames[0], "GIF", save_all=True, append_images=frames[1:]))
    seed(index[".jpg_read_image"], "a.jpg", saved(Image.fromarray(rgb), "JPEG"))
    seed(index[".webp_read_image"], "a.webp", saved(Image.fromarray(rgb), "WEBP", lossless=True))
    seed(index[".bmp_read_image"], "a.bmp", saved(Image.fromarray(rgb), "BMP"))
    tif = index[".tif_read_image"]
    seed(tif, "float.tif", saved(Image.fromarray(rng.random((3, 4)).astype(np.float32)), "TIFF"))
    seed(tif, "int.tif", saved(Image.fromarray(rng.integers(0, 70000, (3, 4)).astype(np.int32)), "TIFF"))
    kernel = np.outer([1, 2, 1], [1, 2, 1]) / 16.0
    buf = io.BytesIO()
    np.save(buf, kernel)
    seed(index[".npy_load_kernel"], "k.npy", buf.getvalue())
    buf = io.BytesIO()
    savemat(buf, {"Kernel": kernel})
    seed(index[".mat_load_kernel"], "k.mat", buf.getvalue())
    seed(index[".png_load_kernel"], "k.png", saved(Image.fromarray((kernel * 1000).astype(np.uint8)), "PNG"))
    card = {"name": "m", "scale": 2, "downsample": "direct", "step_lrs": [0.01, {"convs.0.weight": 0.1}],
            "arch": {"channels": 8, "depth": 3, "bias": True}, "base": "b"}
    seed(index[".json_check_card"], "card.json", json.dumps(card).encode())


def _with_hypothesis(seconds: float) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    deadline = time.monotonic() + seconds
    runs = 0
    while time.monotonic() < deadline:
        @settings(max_examples=200, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(st.binary(max_size=4096))
        def check(data):
            one_input(data)

        check()
        runs += 200
    print(f"fuzz_inputs: {runs} random inputs in {seconds:g} s (hypothesis), no crash")


def main(argv: list[str]) -> None:
    if "--seeds" in argv:
        write_seeds(argv[argv.index("--seeds") + 1])
        return
    seconds = 60.0
    if "--seconds" in argv:  # ours, not libFuzzer's: taken out before atheris sees the arguments
        i = argv.index("--seconds")
        seconds, argv = float(argv[i + 1]), argv[:i] + argv[i + 2:]
    try:
        import atheris
    except ImportError:
        _with_hypothesis(seconds)
        return
    with atheris.instrument_imports(include=["mzsr", "PIL", "png"]):
        import mzsr.io  # noqa: F401 - instrumented for coverage
        import mzsr.kernels  # noqa: F401
        import mzsr.models  # noqa: F401
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    main(sys.argv)
