"""Which shipped model adapts best to a kernel of a given width: the measurement behind ``NARROW_KERNEL_VAR``.

MZSR(0), (1) and (10) Y-PSNR of each model, with its own test-time rates, on the Set14 validation crops (the
validation set, not a test set) degraded by Gaussian kernels from sharp to wide, and which model
``mzsr.models.model_for_kernel`` picks for each. A row takes ~3.5 minutes on one CPU core for two models.

    python benchmarks/kernel_width.py [--models direct-x2 direct-x2-sharp] [--limit 14]
"""
import argparse

from mzsr.kernels import gaussian_kernel, kernel_variances
from mzsr.models import load_model, model_for_kernel
from mzsr.runtime import pick_device
from mzsr.train.validate import psnr_after_steps, set14_pairs

# (λ1, λ2, θ): isotropic from below the paper's training range (λ ≥ 1) to inside it, and anisotropic kernels
# that are sharp along one axis only
KERNELS = [(0.2, 0.2, 0.0), (0.35, 0.35, 0.0), (0.5, 0.5, 0.0), (0.7, 0.7, 0.0), (1.0, 1.0, 0.0),
           (1.5, 1.5, 0.0), (2.0, 2.0, 0.0), (4.0, 0.5, 0.5), (2.0, 0.3, 1.0), (3.0, 1.0, 2.0)]
STEPS = [0, 1, 10]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["direct-x2", "direct-x2-sharp"])
    p.add_argument("--limit", type=int, default=14, help="Set14 images (centred 256-px crops)")
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    device = pick_device(args.device)
    models = {name: load_model(name, device) for name in args.models}
    print(f"MZSR(0) / (1) / (10) Y-PSNR dB on Set14's first {args.limit} crops, direct ×2 ({device})")
    print("| kernel (λ1, λ2, θ) | smaller variance | " + " | ".join(models) + " | picked |")
    print("|---" * (len(models) + 3) + "|")
    for l1, l2, theta in KERNELS:
        k = gaussian_kernel(l1, l2, theta, size=21)
        pairs = set14_pairs(2, k, "direct", args.limit, 256)
        cells = []
        for m in models.values():
            r = psnr_after_steps(m.net, m.params, pairs, k, 2, "direct", STEPS, m.step_lrs, device)
            cells.append(" / ".join(f"{r[n]:.2f}" for n in STEPS))
        print(f"| {l1:g}, {l2:g}, {theta:g} | {kernel_variances(k)[0]:.2f} | " + " | ".join(cells)
              + f" | {model_for_kernel(2, 'direct', k)} |", flush=True)


if __name__ == "__main__":
    main()
