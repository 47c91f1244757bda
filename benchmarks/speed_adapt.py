"""Seconds and peak memory of upscaling one LR image ×2 at three sizes: bicubic, ZSSR, MZSR(1), MZSR(10) and
MZSR(auto); inference throughput against the machine's matmul peak (fp32 and bf16).

    OMP_NUM_THREADS=1 python benchmarks/speed_adapt.py [--sizes 256x256 1024x768 2000x1500] [--zssr-iters 60] \\
        [--zssr-everywhere]

Each measurement runs in a fresh process, so its peak RSS is its own (a fresh torch process's baseline is the
bicubic row). ZSSR runs once, at the smallest size (at every size with ``--zssr-everywhere``): to its end with
``--zssr-iters 0`` (its own learning-rate policy stops it), else for ``--zssr-iters`` iterations. Run once, its
per-iteration time and fixed cost (the 8-frame self-ensemble and back-projection) are extrapolated to the larger
sizes — per iteration × its iteration count (the count of the run to the end; else the range ZSSR_MIN_ITERS
to ZSSR_MAX_ITERS), the fixed cost and the periodic whole-image checks × the pixel count. MZSR(N) paper: the
paper's recipe (N plain-SGD steps on the whole image, fp32); tail: our schedule (the model's SGD steps, then Adam,
crops above the pixel budget) on the machine's fast path; auto: the default of ``mzsr upscale``
(``mzsr.Upscaler``: noise and JPEG estimates, our schedule until held-out blocks stop improving within the time
limit, self-ensemble, back-projection, guard).
"""
import argparse
import multiprocessing as mp
import resource
import time

import numpy as np
import torch
from PIL import Image

from mzsr.runtime import cpu_flags, cpu_model, describe_path, fast_precision
from mzsr.schedules import AUTO_TIME_LIMIT, ZSSR_MAX_ITERS, ZSSR_MIN_ITERS, ZSSR_TEST_EVERY

from _common import sample_image

SCALE = 2
KERNEL = "iso:2.0"
PAPER_RUN_MAX = 60  # seconds of MZSR(1) above which the paper's MZSR(10) (ten whole-image steps) is not run


def lr_image(size: tuple[int, int]) -> np.ndarray:
    w, h = size
    return np.asarray(Image.fromarray(sample_image()).resize((w, h), Image.LANCZOS))


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def _measure(job: dict, out) -> None:
    """In a fresh process: run one method once, send back (seconds, peak RSS GiB, extra)."""
    torch.set_num_threads(job["threads"])
    from mzsr.adapt import super_resolve, to_tensor, zero_shot
    from mzsr.kernels import parse_kernel_spec
    from mzsr.models import load_model
    from mzsr.resize import imresize

    lr = lr_image(job["size"])
    k = parse_kernel_spec(KERNEL).kernel
    extra = {}
    if job["method"] == "bicubic":
        t0 = time.perf_counter()
        imresize(lr / 255.0, SCALE)
    elif job["method"] == "default":
        from mzsr.api import Upscaler

        up = Upscaler(SCALE, k, downsample="direct")
        t0 = time.perf_counter()
        extra = {"steps": up.upscale(lr).steps}
    elif job["method"] == "zssr":
        from mzsr.zssr import zssr

        stamps = []
        t0 = time.perf_counter()
        zssr(lr / 255.0, SCALE, k, "direct", "cpu", lambda i, loss: stamps.append(time.perf_counter()),
             job["zssr_iters"] or None)
        extra = {"start": stamps[0] - t0, "per_iter": (stamps[-1] - stamps[0]) / (len(stamps) - 1),
                 "final": time.perf_counter() - stamps[-1], "iters": len(stamps), "to_end": not job["zssr_iters"]}
    else:
        model = load_model("direct-x2", "cpu")
        if job["method"] == "infer":
            x = to_tensor(lr)
            super_resolve(model.net, model.params, x[..., :64, :64], SCALE, precision=job["precision"])  # warm-up
            t0 = time.perf_counter()
            super_resolve(model.net, model.params, x, SCALE, precision=job["precision"])
        else:
            steps = []
            t0 = time.perf_counter()
            zero_shot(model.net, model.params, lr.astype(np.float64), k, SCALE, "direct", job["steps"],
                      model.step_lrs, schedule=job["schedule"], precision=job["precision"],
                      callback=lambda i, loss: steps.append(i))
            extra = {"steps": len(steps)}
    out.send((time.perf_counter() - t0, peak_gib(), extra))


def measure(job: dict) -> tuple[float, float, dict]:
    ctx = mp.get_context("spawn")
    a, b = ctx.Pipe()
    p = ctx.Process(target=_measure, args=(job, b))
    p.start()
    result = a.recv()
    p.join()
    return result


def matmul_peak(dtype, n: int = 2048, reps: int = 5) -> float:
    """GFLOP/s of the fastest of ``reps`` n³ products: a mean over them read under the convolutions' own rate
    while the clock was still ramping up."""
    a = torch.rand(n, n).to(dtype)
    a @ a
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


def conv_flops_per_pixel() -> float:
    """FLOPs of one forward of the shipped net per output pixel: 2 × Σ c_in·c_out·9 over its convolutions."""
    from mzsr.models import load_model

    net = load_model("direct-x2", "cpu").net
    return 2.0 * sum(c.weight.numel() for c in net.convs)


def print_zssr(zssr_ref, px: int, zssr_iters: int) -> None:
    """The ZSSR row: measured at the reference size, extrapolated to ``px`` pixels."""
    ref_px, z, zmem, zs = zssr_ref
    if z["to_end"] and px == ref_px:
        print(f"| ZSSR, run to its end | {zs:.0f} | {zmem:.2f} | {z['iters']} iterations × "
              f"{z['per_iter'] * 1e3:.0f} ms |", flush=True)
        return
    # the checks every ZSSR_TEST_EVERY iterations run on the whole image: inside per_iter, scaled by pixels
    per_iter, fixed = z["per_iter"], (z["start"] + z["final"]) * px / ref_px
    counts = (z["iters"],) if z["to_end"] else (ZSSR_MIN_ITERS, ZSSR_MAX_ITERS)
    seconds = [fixed + n * per_iter * (1 + (px / ref_px - 1) / ZSSR_TEST_EVERY) for n in counts]
    ran = "to its end" if z["to_end"] else f"{zssr_iters} iterations"
    how = "measured" if px == ref_px else f"extrapolated from {ref_px} px"
    print(f"| ZSSR (estimate) | {' – '.join(f'{t:.0f}' for t in seconds)} | "
          f"{zmem if px == ref_px else float('nan'):.2f} | {'–'.join(map(str, counts))} iterations × "
          f"{per_iter * 1e3:.0f} ms (run {ran}), fixed cost {fixed:.0f} s, {how} |", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=["256x256", "1024x768", "2000x1500"])
    p.add_argument("--zssr-iters", type=int, default=60, help="ZSSR iterations to time; 0: run it to its end")
    p.add_argument("--zssr-everywhere", action="store_true",
                   help="run ZSSR at every size instead of extrapolating from the smallest")
    p.add_argument("--skip", nargs="*", default=[], help="rows to leave out, by the start of their name")
    args = p.parse_args()
    sizes = [tuple(map(int, s.split("x"))) for s in args.sizes]
    threads = torch.get_num_threads()
    fast = fast_precision("cpu")
    flags = sorted(f for f in cpu_flags() if f.startswith(("avx512", "amx", "avx2", "fma")))
    print(f"CPU: {cpu_model()}; torch {torch.__version__}, {threads} thread(s), capability "
          f"{torch.backends.cpu.get_cpu_capability()}; fast path: {describe_path('cpu')}")
    print(f"flags: {' '.join(flags)}")
    # without native bf16 the 2048³ probe takes minutes; a 512³ one tells as much
    bf16_side = 2048 if fast == "bf16" else 512
    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16, bf16_side)}
    print(f"matmul peak: fp32 (2048³) {peaks['fp32']:.0f} GFLOP/s, bf16 ({bf16_side}³) {peaks['bf16']:.0f} GFLOP/s")
    fpp = conv_flops_per_pixel()
    rows = [("bicubic", {"method": "bicubic"}),
            ("MZSR(1) paper, fp32", {"method": "mzsr", "steps": 1, "schedule": "paper", "precision": "fp32"}),
            ("MZSR(10) paper, fp32", {"method": "mzsr", "steps": 10, "schedule": "paper", "precision": "fp32"}),
            (f"MZSR(10) tail, {fast}", {"method": "mzsr", "steps": 10, "schedule": "tail", "precision": fast}),
            (f"MZSR(auto) as `mzsr upscale` runs it, {fast}", {"method": "default", "steps": "auto"})]
    zssr_ref = None
    for size in sizes:
        w, h = size
        px = w * h
        print(f"\n### LR {w}×{h} → {w * SCALE}×{h * SCALE}\n")
        print("| method | seconds | peak RSS GiB | note |\n|---|---|---|---|")
        one_step = None
        for name, job in rows:
            if name.startswith(tuple(args.skip)):
                continue
            if job.get("schedule") == "paper" and job["steps"] > 1 and one_step and one_step > PAPER_RUN_MAX:
                print(f"| {name} | not run | | MZSR(1) took {one_step:.0f} s, so about {job['steps']}× that |")
                continue
            s, mem, extra = measure({**job, "size": size, "threads": threads})
            if job.get("schedule") == "paper" and job["steps"] == 1:
                one_step = s
            note = f"{extra['steps']} steps" if "steps" in extra else ""
            if job.get("steps") == "auto":
                note += f" (limit {AUTO_TIME_LIMIT:g} s)"
            print(f"| {name} | {s:.1f} | {mem:.2f} | {note} |", flush=True)
        if (zssr_ref is None or args.zssr_everywhere) and "ZSSR" not in args.skip:
            s, mem, extra = measure({"method": "zssr", "size": size, "threads": threads,
                                     "zssr_iters": args.zssr_iters})
            zssr_ref = (px, extra, mem, s)
        if zssr_ref is not None:
            print_zssr(zssr_ref, px, args.zssr_iters)
        print("\n| inference | seconds | GFLOP/s | of matmul peak |\n|---|---|---|---|")
        for precision in ("fp32", "bf16"):
            if precision != fast and precision != "fp32":
                print(f"| {precision} | — | — | not native here (emulated, ~10× slower than fp32) |")
                continue
            s, _, _ = measure({"method": "infer", "precision": precision, "size": size, "threads": threads})
            rate = fpp * px * SCALE ** 2 / s / 1e9
            print(f"| {precision} | {s:.2f} | {rate:.0f} | {rate / peaks[precision]:.0%} |", flush=True)


if __name__ == "__main__":
    main()
