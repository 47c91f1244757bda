"""Peak memory (RSS) and seconds of upscaling large images ×2, each size in a fresh process so that its peak is
its own: by default 1, 12 and 50 Mpx outputs (500×500, 2000×1500 and 5000×2500 LR).

    python benchmarks/memory_large.py [--sizes 500x500 2000x1500 5000x2500] [--steps 0|N|auto] [--tile PX]

``--steps 0`` (the default) measures the data path alone: reading, bicubic upsampling, the tiled forward and
writing back, which is what the pixel count drives; adaptation adds a bounded amount on top (crops above the
pixel budget with ``auto``).
"""
import argparse
import multiprocessing as mp
import resource
import time

import numpy as np
from PIL import Image

from mzsr.runtime import cpu_flags, cpu_model, describe_path

from _common import sample_image


def _one(size: str, steps, tile, queue) -> None:
    import mzsr

    w, h = (int(v) for v in size.split("x"))
    lr = np.asarray(Image.fromarray(sample_image()).resize((w, h), Image.LANCZOS))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    t0 = time.perf_counter()
    sr = mzsr.upscale(lr, 2, kernel="iso:2.0", steps=steps, tile=tile, device="cpu")
    queue.put((sr.shape, time.perf_counter() - t0, before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20))


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sizes", nargs="+", default=["500x500", "2000x1500", "5000x2500"], metavar="WxH")
    p.add_argument("--steps", default="0", help="0 (default), N or auto")
    p.add_argument("--tile", type=int)
    args = p.parse_args()
    steps = args.steps if args.steps == "auto" else int(args.steps)
    import torch

    flags = " ".join(sorted(f for f in cpu_flags() if f.startswith(("avx", "amx"))))
    print(f"{cpu_model()} [{flags}], {torch.get_num_threads()} threads, path {describe_path('cpu')}")
    ctx = mp.get_context("spawn")
    for size in args.sizes:
        queue = ctx.Queue()
        proc = ctx.Process(target=_one, args=(size, steps, args.tile, queue))
        proc.start()
        shape, seconds, before, peak = queue.get()
        proc.join()
        mpx = shape[0] * shape[1] / 1e6
        print(f"{size} -> {shape[1]}x{shape[0]} ({mpx:.1f} Mpx), steps {args.steps}: {seconds:.1f} s, "
              f"peak RSS {peak:.2f} GiB (a fresh process with torch loaded: {before:.2f} GiB)")


if __name__ == "__main__":
    main()
