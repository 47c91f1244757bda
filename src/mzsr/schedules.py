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


def step_lr(step_lrs: list, i: int, name: str) -> float:
    """Learning rate of parameter ``name`` at test-time step ``i``. Each entry of ``step_lrs`` is one rate for
    every parameter, or a ``{name: rate}`` dict (learned per layer, MAML++'s LSLR); the last entry repeats
    beyond the list's end."""
    rate = step_lrs[min(i, len(step_lrs) - 1)]
    return float(rate[name]) if isinstance(rate, dict) else float(rate)


# Stage 3 beyond the meta-learned steps (mzsr.adapt, schedule "tail"): the card's SGD steps, then Adam at this
# rate. Plain SGD with the last meta-learned rate stalls (Set5 g^d_ani, direct-x2: 33.39 → 33.75 dB from 10 to 40
# steps), Adam on the whole image keeps improving (33.45 → 34.37 dB from 10 to 80 steps). Chosen on Set14.
TAIL_ADAM_LR = 1e-4

# Cost per step: an LR image of up to ADAPT_CROPS crops' pixels adapts on the whole image; a larger one on
# ADAPT_CROPS crops per step, drawn where the image has texture, each of ADAPT_SON_CROP² son pixels (64² LR
# pixels at ×2, 128² at ×4). At ×2 small crops beat the whole image within the same time: more, cheaper steps
# on the detailed parts (Set14's first 7, MZSR(auto), true kernel, 15 s per image: g^d_2.0 29.75 dB on the
# whole image, 29.81 on 4 × 64², 29.79 on 2 × 64², 29.77 on 4 × 48²; g^d_ani 28.93, 29.15, 29.13, 29.11; the
# whole image in 60 s: 29.78, 29.07). At ×4 64² LR crops (16² sons) lost 0.10 dB (one image −2.7 dB).
ADAPT_CROPS = 4
ADAPT_SON_CROP = 32


def adapt_crop(scale: int) -> int:
    """Side, in LR pixels, of one adaptation crop at ``scale``."""
    return ADAPT_SON_CROP * scale


ADAPT_TEXTURE_FLOOR = 0.1  # crop-sampling weight of a flat crop, relative to the image's mean texture

# steps="auto": adapt until the held-out part of the son pair stops improving, within a time limit.
# 15 s: on 64² crops the held-out blocks have mostly stopped improving by then (Set14's first 7, 2 threads
# without bf16: g^d_2.0 29.81 / 29.82 dB, g^d_ani 29.15 / 29.17 at 15 / 30 s per image).
AUTO_TIME_LIMIT = 15.0  # seconds per image, inference included (beyond the model's meta-learned steps)
AUTO_MAX_STEPS = 300
AUTO_CHECK_EVERY = 5  # steps between held-out evaluations
# 10 evaluations without a new best before stopping: where steps are fast (bf16) fewer stopped before the held-out
# blocks were done improving, most on noisy sons, whose held-out loss is noisy too (models.md, "Our schedule")
AUTO_PATIENCE = 10
AUTO_HOLDOUT_BLOCK = 32  # side of a held-out LR block; its target pixels never enter the training loss
AUTO_HOLDOUT_FRACTION = 0.1  # of the LR pixels held out …
AUTO_HOLDOUT_MAX_BLOCKS = 16  # … up to this many blocks, so evaluation stays cheap on large images
# Then, on Set14 after 40 tail steps (g^d_ani / g^d_2.0), the median over the kernel-keeping rotations/flips
# (+0.23 / +0.25 dB) and 2 back-projection iterations (+0.24 / +0.21 dB), both cheap beside the adaptation. At ×4
# 2 is best too (Set14 ×4 g^d_2.0, the default otherwise: 0 / 2 / 4 / 8 iterations 27.38 / 27.47 / 27.42 / 27.32 dB).
AUTO_ENSEMBLE = True
# … but on a large image the ensemble's passes would outlast the adaptation: with steps="auto" it keeps only as
# many frames (halving) as the measured forward speed fits in this share of the time limit, down to one pass.
AUTO_ENSEMBLE_SHARE = 0.25
AUTO_BACK_PROJECTION = 2
# … none where the son is given noise or JPEG: back-projection pulls the output towards reproducing the LR, its
# noise and blocks too (Set14's first 4 centred 256-px crops, MZSR(auto) with the true kernel: g^d_2.0 + σ 5
# 26.95 dB with it, 27.23 without; DIV2KRK kernels + σ 3 + JPEG 80: 26.06, 26.07)
AUTO_BACK_PROJECTION_CORRUPTED = 0
# … and the son's noise (noise="auto") is this share of the σ read on the input: a son a little cleaner than the
# input lets the adaptation learn more detail for a little less denoising (Set14's first 7, g^d_2.0, MZSR(auto),
# true kernel, 30 s per image: σ 3 28.20 / 28.24 dB at shares 1 / 0.8; σ 5 27.39 / 27.48 / 27.46 at 1 / 0.8 / 0.6;
# σ 10 26.21 / 26.34 at 1 / 0.7). On JPEGs the son's σ, matched through the compression, mattered little (DIV2KRK + σ 3 + JPEG 80, BSD100's
# first 5: 27.09 / 27.11 / 27.11 dB at σ 3 / 1.5 / the matched 0).
AUTO_SON_NOISE_SHARE = 0.8
# The guard (mzsr.realphoto.guard_weight) keeps all of the net's SR once its held-out son → LR error is this share
# under bicubic's, and blends towards bicubic below that. On a noisy or JPEG input the corruption in the LR target
# floors both errors, so a large gain reads small: Set14, ×2, MZSR(auto) blind, mean PSNR with 0.1 / 0.05 / 0.02:
# DIV2KRK kernels + σ 3 + JPEG 80 27.824 / 27.868 / 27.868 dB, g^d_2.0 + σ 10 + JPEG 75 27.047 / 27.161 / 27.177
# (0.1 had blended 7 of the 42 images, 1.05 dB of one +3.0 dB gain away; every image stays ≥ +0.33 over bicubic),
# g^d_2.0 + σ 5 29.226 at all three. On clean inputs the held-out error is 33–72 % under bicubic's: never blended.
AUTO_GUARD_MARGIN = 0.02
# The inference is reserved from a forward timed on a small patch, times this: tile margins, the median and
# back-projection took 1.0–1.41× the patch's pace (LR 128² to 1024×768, 1 and 2 frames, fp32, 192² tiles).
AUTO_INFER_MARGIN = 1.5
# … but the adaptation keeps at least this share of the time limit: on a large image the inference alone would
# otherwise leave only the meta-learned steps (a 1024×768 LR's ×2 forward takes 11 s on 2 AVX2 threads in fp32).
# Set14's first 7, ×2, true kernel: the meta-learned steps alone 29.76 / 28.56 dB on g^d_2.0 / g^d_ani, with ~7.5 s
# of steps after them 29.80 / 29.01.
AUTO_ADAPT_MIN_SHARE = 0.5
# Above this scale a clean son takes the meta-learned steps only, no tail: at ×4 each step after them costs the
# output (Set14 ×4 g^d_2.0, plain pass: MZSR(1) 27.10 dB, MZSR(10) 27.05, the Adam tail until the held-out stop
# 26.19), and the held-out blocks cannot stop it (one 32² block on a ~125×90 LR, none on Set5's 64² LRs); the
# meta-learned steps themselves move little there (with the ensemble and back-projection, 0 / 1 / 3 / 6 steps of
# the paper's schedule, fp32: 27.45 / 27.48 / 27.48 / 27.47 dB): at ×4 the weights decide, not the adaptation. A son
# given noise or JPEG still needs the tail: the meta-learned steps alone do not teach the net to denoise.
AUTO_TAIL_MAX_SCALE = 2
# … and above that scale the son takes the input's noise and JPEG (noise="auto", jpeg="auto") only from this σ
# read on, in grey levels. Sharp ×4 LRs read their texture as σ up to 4.2 (clean g^d_2.0, BSD100's first 20), and
# a clean son with the meta-learned steps only beat a corrupted one with the tail below it (15 s per image, true
# kernel; Set14 ×4 g^d_2.0 + σ 3: 27.15 against 26.93 dB, + σ 5: 26.73 / 26.53, clean: 27.42 / 27.25; BSD100's
# first 5 ×4, DIV2KRK kernels + JPEG 75: 24.22 / 24.13, + σ 3 + JPEG 75: 24.14 / 24.05, + σ 2 + JPEG 90:
# 24.49 / 24.37), not above it (+ σ 10: 25.34 / 25.66)
AUTO_LARGE_SCALE_CORRUPT_FROM = 8.0
AUTO_SUMMARY = (f"the model's SGD steps, then Adam lr {TAIL_ADAM_LR:g}, each step on {ADAPT_CROPS} texture-weighted "
                f"crops of ({ADAPT_SON_CROP}·scale)² LR pixels or the whole image if smaller")


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
ZSSR_REAL_NOISE = 0.0125 * 255  # σ (grey levels) of the noise on every son in ZSSR's real-image setting (spec §1)


# Kernel estimation (mzsr.estimate): the mzsr_search estimator's budget and its family of Gaussian kernels.
# Variances are in HR pixels² (spec §1); the search covers meta-training's range up to 2.5·s (spec §4).
ESTIMATE_CROP = 128  # side of the (busiest) LR crop searched: a 32-px grandson at ×2 (cost ∝ its square)
ESTIMATE_STEPS = 1  # adaptation steps per candidate kernel (MZSR's one-step claim)
ESTIMATE_KERNEL_SIZE = 21  # like the paper's test kernels; holds ±4.5σ of the widest candidate at ×2
ESTIMATE_MIN_VAR = 0.2  # the narrowest paper scenario (g^d_0.2)
ESTIMATE_MAX_VAR_PER_SCALE = 2.5  # λ ≤ 2.5·s
ESTIMATE_ISO_WIDTHS = 6  # coarse grid: isotropic variances, geometric from the minimum to the maximum
ESTIMATE_ANISO_VARS = (2.0, 0.5)  # coarse grid: anisotropic (λ1, λ2) per unit of scale, (4, 1) at ×2 like g^d_ani
ESTIMATE_ANISO_ANGLES = 4  # … at θ = 0, π/4, π/2, 3π/4
ESTIMATE_MAX_EVALS = 32  # candidates scored in all (coarse grid + local refinement)
ESTIMATE_LOG_STEP = 0.35  # first refinement step on log-size and log-elongation (×1.42 on the variances)
ESTIMATE_ANGLE_STEP = 3.141592653589793 / 8  # first refinement step on θ
ESTIMATE_MIN_LOG_STEP = 0.05  # refinement stops below this step (variances within ~5%)


# KernelGAN (mzsr.estimate.kernelgan; Bell-Kligler, Shocher & Irani, NeurIPS 2019): the paper's and its
# release's settings. Images are on KernelGAN's [-1, 1] scale, which the bicubic-closeness threshold assumes.
KERNELGAN_ITERATIONS = 3000
KERNELGAN_G_LR = 2e-4
KERNELGAN_D_LR = 2e-4
KERNELGAN_BETAS = (0.5, 0.999)  # Adam, both nets
KERNELGAN_LR_DECAY_EVERY = 750  # iterations between divisions of both learning rates …
KERNELGAN_LR_DECAY = 10.0  # … by this
KERNELGAN_G_LAYERS = (7, 5, 3, 1, 1, 1)  # G's filter sizes: a deep linear net, so a 13×13 kernel at ×2
KERNELGAN_G_CHANNELS = 64
KERNELGAN_G_INIT_GAIN = 0.1  # Xavier-normal gain: G starts near the zero kernel, the bicubic loss pulls it up
KERNELGAN_D_LAYERS = 7  # D: one 7×7 conv, 5 × (1×1 conv, BatchNorm, ReLU), one 1×1 conv to the sigmoid map
KERNELGAN_D_KERNEL = 7  # D's receptive field: the patch size whose distribution it compares
KERNELGAN_D_CHANNELS = 64
KERNELGAN_G_CROP = 64  # side of G's input crops; G's output (26 px at ×2) sets the side of D's real crops
KERNELGAN_NOISE = 1 / 255  # σ on the [0, 1] scale added to D's inputs, real and fake, so quantisation won't tell
KERNELGAN_GRAD_WINDOW = 5  # crop sampling: gradient maps are box-averaged over this, their edges this wide zeroed
KERNELGAN_GRAD_TOP = 0.97  # … and only the strongest 3% of gradients count
KERNELGAN_W_BICUBIC = 5.0  # loss weights: G's output against MATLAB-bicubic downscaling (the start only) …
KERNELGAN_W_SUM_TO_ONE = 0.5  # … |1 − Σk|
KERNELGAN_W_BOUNDARIES = 0.5  # … mean |k · mask|, the mask non-zero on the outer ring only
KERNELGAN_W_SPARSITY = 5.0  # … mean |k|^0.2, switched on with the next one once the bicubic weight has decayed
KERNELGAN_W_CENTRALISATION = 1.0  # … mean squared offset of k's centre of mass from the block centre
KERNELGAN_SPARSITY_POWER = 0.2
KERNELGAN_BOUNDARY_WIDTH = 2  # pixels of the kernel's outer ring that the boundaries loss penalises …
KERNELGAN_BOUNDARY_SCALE = 30.0  # … with 30·(1 − exp(−r²/2σ²)), σ the kernel's side
KERNELGAN_BICUBIC_CLOSE = 0.4  # G is "close to bicubic" once its bicubic MSE is below this …
KERNELGAN_BICUBIC_CLOSE_TIMES = 3  # … this many iterations in a row; from then on …
KERNELGAN_BICUBIC_DECAY_EVERY = 200  # … every this many iterations …
KERNELGAN_BICUBIC_DECAY = 100.0  # … the bicubic weight is divided by this …
KERNELGAN_BICUBIC_MIN = 5e-6  # … down to this
KERNELGAN_PRIORS_BELOW = 5e-3  # sparsity and centralisation join once the bicubic weight is below this
KERNELGAN_KEEP_LARGEST = 40  # final kernel: values below 0.75 × its 41st largest are noise, zeroed
KERNELGAN_KEEP_FRACTION = 0.75
KERNELGAN_X4_KERNEL_SIZE = 41  # the ×4 kernel k ⊛ k↑2 has 5× k's variance: ±4σ of a ×2 variance of 5

# Kernel estimation, the predictor estimator (mzsr.estimate.predictor): the LR tiles it reads. Its training
# settings are KernelConfig's (mzsr.train.kernel), its learning rate the function below.
PREDICT_TILE = 64  # LR pixels per side, as in training
PREDICT_TILES = 16  # the busiest tiles whose predictions are averaged


def predictor_lr(step: int, base: float, drop_at: int) -> float:
    """The kernel predictor's Adam rate: ``base``, a tenth of it from step ``drop_at`` on (0: never)."""
    return base / 10 if 0 < drop_at <= step else base
