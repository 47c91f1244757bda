"""The before/after picture of a real JPEG (docs/models.md, Real photos): matplotlib's ``grace_hopper.jpg`` ×2
with ``--kernel estimate``, three crops side by side: bicubic | the paper's MZSR(10) with a clean son (it learns
to make the input's blocks and noise) | the default (``--steps auto``, the son given the input's noise and JPEG).
Prints what ``auto`` read and chose for the image.

    python benchmarks/real_photo_picture.py [--out docs/results/real-photo/grace-hopper-x2.png]
                                            [--box LEFT TOP SIZE]
"""
import argparse
import time
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image

from mzsr.api import Upscaler
from mzsr.io import read_image

SAMPLE = Path(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("docs/results/real-photo/grace-hopper-x2.png"))
    p.add_argument("--box", type=int, nargs=3, default=(384, 300, 256), metavar=("LEFT", "TOP", "SIZE"),
                   help="the crop, in output pixels (default: the eyes and nose)")
    args = p.parse_args()
    image = read_image(SAMPLE)
    left, top, size = args.box
    print(f"{SAMPLE.name} {image.shape[1]}×{image.shape[0]}, ×2, --kernel estimate")
    panels = []
    for label, opts in (("bicubic", {"method": "bicubic"}),
                        ("MZSR(10), clean son", {"steps": 10, "noise": 0.0, "jpeg": None}),
                        ("default", {})):
        t0 = time.perf_counter()
        up = Upscaler(2, None if label == "bicubic" else "estimate", **opts)
        result = up.upscale(image, path=SAMPLE)
        read = "" if result.model is None else (f", model {result.model}, son σ {result.noise:.2f} JPEG "
                                                f"{result.jpeg}, {result.steps} steps")
        print(f"{label} ({up.describe()}): {time.perf_counter() - t0:.1f} s{read}", flush=True)
        panels.append(result.image[top: top + size, left: left + size])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(panels, axis=1)).save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
