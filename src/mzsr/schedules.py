"""Every schedule in one place: learning rates, step counts and loss weights of all three stages and ZSSR."""
from __future__ import annotations

# Stage 3 — test-time per-step SGD learning rates of the official release (spec §5), step index from 0.
# A shipped model stores its own list in its card; these are the paper's, kept for reference and fallbacks.
RELEASE_STEP_LRS = {
    "direct-x2": [0.02, 0.01, 0.01, 0.01, 0.005],
    "multi-scale": [0.01, 0.01, 0.01, 0.005],
    "bicubic-x2": [0.01, 0.01, 0.01, 0.001],
    "direct-x4": [0.01, 0.005, 0.005, 0.005, 0.005, 0.001],
}


def step_lr(step_lrs: list[float], i: int) -> float:
    """Learning rate of test-time step ``i``: the list's last value repeats beyond its end."""
    return step_lrs[min(i, len(step_lrs) - 1)]


# Benchmark fine-tuning baseline: from this many steps on, Adam on the whole image (SGD with the schedule above
# barely moves pretrained weights: 29.14 → 29.33 dB in 100 steps, against 35.34 dB with Adam; spec §5).
ADAM_FROM_STEPS = 100
FINETUNE_ADAM_LR = 1e-4


def pretrain_lr(step: int, base: float = 4e-4, halve_every: int = 100_000, floor: float = 1e-4) -> float:
    """Stage 1 (spec §3): Adam 4e-4 halved every ``halve_every`` steps, never below ``floor``."""
    return max(base * 0.5 ** (step // halve_every), floor)


def multi_step_weights(step: int, inner_steps: int, anneal_steps: int = 3300,
                       final_min: float = 0.006) -> list[float]:
    """MAML++ multi-step loss weights for meta-iteration ``step`` (spec §4).

    Uniform 1/n at step 0; the non-final weights decay linearly to ``final_min`` and the final one grows to
    1 − (n−1)·final_min over ``anneal_steps``. ``anneal_steps=0`` keeps them uniform (what the release did).
    """
    n = inner_steps
    if anneal_steps <= 0:
        return [1.0 / n] * n
    t = min(step / anneal_steps, 1.0)
    early = (1 - t) / n + t * final_min
    return [early] * (n - 1) + [1 - (n - 1) * early]


# ZSSR (spec §8)
ZSSR_LR = 1e-3
ZSSR_MIN_LR = 9e-6
ZSSR_MAX_ITERS = 3000
ZSSR_MIN_ITERS = 256
ZSSR_LR_CHECK_EVERY = 60
ZSSR_LR_SLOPE_FACTOR = 1.5
ZSSR_CROP = 128  # side of the random "HR father" crop of the LR image
ZSSR_P_UNTOUCHED = 0.05  # fathers used as cropped
ZSSR_P_DIHEDRAL = 0.45  # fathers only rotated by 90°·k and/or flipped (no interpolation); the rest get an affine
ZSSR_AFFINE_MIN_ZOOM = 0.8  # per-axis zoom-out in [this, 1]: modest, since grid_sample does not antialias
ZSSR_AFFINE_MAX_SHEAR = 0.1
ZSSR_TEST_EVERY = 50  # iterations between whole-image reconstruction errors, the lr policy's evidence
ZSSR_LR_SLOPE_RANGE = 256  # iterations of reconstruction errors the lr policy fits its line to
ZSSR_BACKPROJECTION_ITERS_KERNEL = 2
ZSSR_BACKPROJECTION_ITERS_BICUBIC = 10
