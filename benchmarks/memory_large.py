"""Peak memory of upscaling a large image (default: 2000x1500 LR → 4000x3000 at x2) with tiling.

    python benchmarks/memory_large.py [--steps 1] [--tile PX]
"""
import argparse
import resource
import time

import numpy as np
from PIL import Image

import mzsr

from _common import sample_image


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--width", type=int, default=2000)
    p.add_argument("--height", type=int, default=1500)
    p.add_argument("--steps", type=int, default=1)
    p.add_argument("--tile", type=int)
    args = p.parse_args()
    lr = np.asarray(Image.fromarray(sample_image()).resize((args.width, args.height), Image.LANCZOS))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    t0 = time.perf_counter()
    sr = mzsr.upscale(lr, 2, kernel="iso:2.0", steps=args.steps, tile=args.tile)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    print(f"{args.width}x{args.height} -> {sr.shape[1]}x{sr.shape[0]}, MZSR({args.steps}): "
          f"{time.perf_counter() - t0:.1f} s, peak RSS {peak:.2f} GiB (before: {before:.2f} GiB)")


if __name__ == "__main__":
    main()
