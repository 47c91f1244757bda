"""How well ``--jpeg auto`` finds a JPEG's quality in decoded pixels (:func:`mzsr.realphoto.quality_from_pixels`),
the path of a PNG or an array that was a JPEG once.

Each image is taken twice: the HR and its LR (×2 direct, g^d_2.0, as the benchmark makes its inputs). Each is
read as it is (should give none: none of the LRs was ever compressed; a HR may be a JPEG of its own), then
saved by Pillow at each quality and decoded (should give that quality).

    python benchmarks/jpeg_detection.py [--sets Set14 BSD100] [--limit 14]
"""
import argparse
import io
import time

import numpy as np
from PIL import Image

from mzsr.bench.scenarios import ground_truth
from mzsr.degrade import corrupt, degrade
from mzsr.io import hr_files
from mzsr.kernels import parse_kernel_spec
from mzsr.realphoto import quality_from_pixels

QUALITIES = (30, 50, 70, 75, 80, 85, 90, 95)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sets", nargs="+", default=["Set14", "BSD100"])
    p.add_argument("--limit", type=int, default=14, help="images per set")
    args = p.parse_args()
    kernel = parse_kernel_spec("iso:2.0").kernel
    found = {q: [] for q in QUALITIES}
    as_is = {"HR": [], "LR": []}
    seconds = []
    for set_name in args.sets:
        for hr in hr_files(set_name, args.limit):
            gt = ground_truth(hr, 2)
            for name, img in (("HR", gt), ("LR", corrupt(degrade(gt.astype(np.float64), kernel, 2, "direct")))):
                t0 = time.perf_counter()
                as_is[name].append(quality_from_pixels(img))
                seconds.append(time.perf_counter() - t0)
                for q in QUALITIES:
                    buf = io.BytesIO()
                    Image.fromarray(img).save(buf, format="JPEG", quality=q)
                    with Image.open(buf) as im:
                        found[q].append(quality_from_pixels(np.asarray(im)))
    n = len(as_is["LR"])
    print(f"{', '.join(args.sets)}, first {args.limit} each: {n} HR and {n} LR images")
    for name, got in as_is.items():
        print(f"{name} as it is: {sum(g is not None for g in got)} of {n} read as JPEG "
              f"({', '.join(str(g) for g in got if g is not None) or 'none'})")
    print("\n| saved at | exact | within ±1 | none found | other |\n|---|---|---|---|---|")
    for q, got in found.items():
        exact = sum(g == q for g in got)
        near = sum(g is not None and abs(g - q) <= 1 for g in got)
        none = sum(g is None for g in got)
        print(f"| {q} | {exact}/{len(got)} | {near}/{len(got)} | {none} | {len(got) - near - none} |")
    print(f"\n{np.mean(seconds):.2f} s per image (mean)")


if __name__ == "__main__":
    main()
