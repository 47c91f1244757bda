"""``kernelgan``: KernelGAN (Bell-Kligler, Shocher & Irani, NeurIPS 2019), the kernel of an internal GAN.

A generator G downscales crops of the LR image ×2; a patch discriminator D learns to tell G's output from crops
of the LR image itself. If the scene looks alike across scales, the downscaling whose output D cannot tell from
the image is the one that made the image, so G's kernel is the image's blur. G is a deep *linear* net (filters
7, 5, 3, 1, 1, 1, no biases, stride 2 in the last), so it *is* one 13×13 kernel followed by keeping every second
pixel; many layers only make it easier to train than one filter. Its kernel is kept plausible by priors: sum
to 1, nothing on the outer ring, sparse, centred; and at first by a loss tying G to MATLAB-bicubic downscaling,
whose weight decays away once G is close to it. Crops are drawn where the image has strong gradients: flat
regions look alike at every scale and carry no blur information.

Settings are the paper's and its release's (``KERNELGAN_*`` in ``mzsr.schedules``), with D's GAN loss L1 as in
the paper's Eq. 2 and the release. Deliberate simplifications: D keeps PyTorch's initialisation (spectral norm
makes its scale moot), the same noise level goes onto D's real and fake inputs, and there is no 10-pixel edge
shave for synthetic images. ×4: the paper estimates the ×2 kernel and derives the ×4 one
(:func:`x4_from_x2`). G's kernel is in KernelGAN's convention (centred on the 2×2 block it samples) and is
re-centred into MZSR's by :func:`mzsr.kernels.kernelgan_to_mzsr`. The model is not used, only its device.
"""
from __future__ import annotations

import numpy as np
import scipy.ndimage
import scipy.signal
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..kernels import kernelgan_to_mzsr
from ..models import Model
from ..resize import imresize
from ..schedules import (ESTIMATE_KERNEL_SIZE, KERNELGAN_BETAS, KERNELGAN_BICUBIC_CLOSE,
                         KERNELGAN_BICUBIC_CLOSE_TIMES, KERNELGAN_BICUBIC_DECAY, KERNELGAN_BICUBIC_DECAY_EVERY,
                         KERNELGAN_BICUBIC_MIN, KERNELGAN_BOUNDARY_SCALE, KERNELGAN_BOUNDARY_WIDTH,
                         KERNELGAN_D_CHANNELS, KERNELGAN_D_KERNEL, KERNELGAN_D_LAYERS, KERNELGAN_D_LR,
                         KERNELGAN_G_CHANNELS, KERNELGAN_G_CROP, KERNELGAN_G_INIT_GAIN, KERNELGAN_G_LAYERS,
                         KERNELGAN_G_LR, KERNELGAN_GRAD_TOP, KERNELGAN_GRAD_WINDOW, KERNELGAN_ITERATIONS,
                         KERNELGAN_KEEP_FRACTION, KERNELGAN_KEEP_LARGEST, KERNELGAN_LR_DECAY,
                         KERNELGAN_LR_DECAY_EVERY, KERNELGAN_NOISE, KERNELGAN_PRIORS_BELOW, KERNELGAN_SPARSITY_POWER,
                         KERNELGAN_W_BICUBIC, KERNELGAN_W_BOUNDARIES, KERNELGAN_W_CENTRALISATION,
                         KERNELGAN_W_SPARSITY, KERNELGAN_W_SUM_TO_ONE, KERNELGAN_X4_KERNEL_SIZE)

SCALE = 2  # G's factor; ×4 kernels are derived from ×2 ones
_GRAY = np.array([0.299, 0.587, 0.114])


class Generator(nn.Module):
    """G: linear convolutions, valid borders, stride 2 in the last; each colour channel is one batch item."""

    def __init__(self, layers=KERNELGAN_G_LAYERS, channels: int = KERNELGAN_G_CHANNELS):
        super().__init__()
        widths = [1] + [channels] * (len(layers) - 1) + [1]
        last = len(layers) - 1
        self.convs = nn.ModuleList(nn.Conv2d(c_in, c_out, k, stride=SCALE if i == last else 1, bias=False)
                                   for i, (c_in, c_out, k) in enumerate(zip(widths, widths[1:], layers)))
        self.support = sum(k - 1 for k in layers) + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = conv(x)
        return x

    def kernel(self) -> torch.Tensor:
        """The ``(support, support)`` kernel k with G(x) = (x correlated with k, valid borders)[::2, ::2]."""
        pad = self.support - 1
        x = F.pad(torch.ones(1, 1, 1, 1, dtype=self.convs[0].weight.dtype, device=self.convs[0].weight.device),
                  (pad, pad, pad, pad))
        for conv in self.convs:  # the same layers at stride 1: subsampling comes after the linear filtering
            x = F.conv2d(x, conv.weight)
        return x[0, 0].flip(0, 1)  # a correlation's impulse response is its kernel reversed


def _discriminator() -> nn.Sequential:
    """D: a 7×7 conv (the patch it judges), 1×1 convs with BatchNorm and ReLU, a per-pixel sigmoid map."""
    sn = nn.utils.parametrizations.spectral_norm
    c = KERNELGAN_D_CHANNELS
    layers = [sn(nn.Conv2d(3, c, KERNELGAN_D_KERNEL))]
    for _ in range(KERNELGAN_D_LAYERS - 2):
        layers += [sn(nn.Conv2d(c, c, 1)), nn.BatchNorm2d(c), nn.ReLU()]
    return nn.Sequential(*layers, sn(nn.Conv2d(c, 1, 1)), nn.Sigmoid())


def _zero_border(a: np.ndarray, width: int) -> np.ndarray:
    out = np.zeros_like(a)
    out[width:-width, width:-width] = a[width:-width, width:-width]
    return out


def gradient_map(img: np.ndarray) -> np.ndarray:
    """Where an ``(H, W, 3)`` image is textured: its strongest gradients along x, y and in magnitude, each
    counted as a set (so that a few extreme edges do not take all the crops), box-averaged."""
    gy, gx = np.gradient(img @ _GRAY)
    total = np.zeros(img.shape[:2])
    for g in (np.abs(gx), np.abs(gy), np.hypot(gx, gy)):
        g = _zero_border(g, KERNELGAN_GRAD_WINDOW)
        strong = (g > np.quantile(g, KERNELGAN_GRAD_TOP)).astype(np.float64)
        if strong.any():
            total += strong / strong.sum()
    return scipy.ndimage.uniform_filter(total, KERNELGAN_GRAD_WINDOW, mode="constant")


def _crop_corners(grad_map: np.ndarray, side: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` (top, left) corners of ``side``² crops, centres drawn ∝ the gradient mass around them;
    uniform where there is none (a flat image)."""
    h, w = grad_map.shape
    mass = scipy.ndimage.uniform_filter(grad_map, side // 2, mode="constant").clip(0)  # float noise goes < 0
    p = _zero_border(mass, side // 2).ravel()
    p = p / p.sum() if p.sum() > 0 else np.full(p.size, 1.0 / p.size)
    rows, cols = np.divmod(rng.choice(p.size, size=count, p=p), w)
    top = np.clip(rows - side // 2, 0, h - side)
    left = np.clip(cols - side // 2, 0, w - side)
    return np.stack([top - top % 2, left - left % 2], axis=1)  # even corners keep G's sampling phase fixed


def _g_gradient_map(img: np.ndarray) -> np.ndarray:
    """G's crops are chosen where its output, the image downscaled, is textured: the gradient map of the
    bicubic-halved image, each pixel repeated over the 2×2 block it came from."""
    small = gradient_map(imresize(img, 1.0 / SCALE))
    return np.kron(small, np.ones((SCALE, SCALE)))[:img.shape[0], :img.shape[1]]


def _boundary_mask(size: int) -> torch.Tensor:
    """Zero inside, growing with the distance from the middle on the outer ``KERNELGAN_BOUNDARY_WIDTH`` ring."""
    r = np.arange(size) - size // 2
    mask = KERNELGAN_BOUNDARY_SCALE * (1 - np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2.0 * size ** 2)))
    w = KERNELGAN_BOUNDARY_WIDTH
    mask[w:-w, w:-w] = 0
    return torch.as_tensor(mask, dtype=torch.float32)


def _centre_of_mass(k: torch.Tensor) -> torch.Tensor:
    idx = torch.arange(k.shape[0], dtype=k.dtype, device=k.device)
    return torch.stack([k.sum(1) @ idx, k.sum(0) @ idx]) / k.sum()


class _Weights:
    """The loss weights over time: bicubic first; once G has been close to bicubic for a few iterations in a
    row, the bicubic weight decays and sparsity and centralisation join in."""

    def __init__(self):
        self.bicubic, self.sparsity, self.centralisation = KERNELGAN_W_BICUBIC, 0.0, 0.0
        self.close_in_a_row = 0

    def update(self, iteration: int, bicubic_loss: float) -> None:
        if self.close_in_a_row < KERNELGAN_BICUBIC_CLOSE_TIMES:
            self.close_in_a_row = self.close_in_a_row + 1 if bicubic_loss < KERNELGAN_BICUBIC_CLOSE else 0
        elif iteration % KERNELGAN_BICUBIC_DECAY_EVERY == 0 and self.bicubic > KERNELGAN_BICUBIC_MIN:
            self.bicubic = max(self.bicubic / KERNELGAN_BICUBIC_DECAY, KERNELGAN_BICUBIC_MIN)
            if self.bicubic < KERNELGAN_PRIORS_BELOW:
                self.sparsity, self.centralisation = KERNELGAN_W_SPARSITY, KERNELGAN_W_CENTRALISATION


class _KernelGAN:
    """G, D, their optimisers and one iteration of training on a pair of crops (images on [-1, 1])."""

    def __init__(self, device: torch.device):
        self.g = Generator().to(device)
        for conv in self.g.convs:
            nn.init.xavier_normal_(conv.weight, KERNELGAN_G_INIT_GAIN)
        self.d = _discriminator().to(device)
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=KERNELGAN_G_LR, betas=KERNELGAN_BETAS)
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=KERNELGAN_D_LR, betas=KERNELGAN_BETAS)
        self.weights = _Weights()
        self.mask = _boundary_mask(self.g.support).to(device)
        # G's kernel should sample the centre of each 2×2 block, where bicubic downscaling does: else the
        # centralisation and bicubic losses would pull it half a pixel apart
        self.centre = torch.full((2,), (self.g.support - 1) / 2 + (SCALE - 1) / 2, device=device)

    @staticmethod
    def downscale(crop: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """G on an ``(1, 3, H, W)`` crop, each channel alone, given G's kernel ``k``. G being linear, this is
        G's own output and gradient (``Generator.forward``), at a fortieth of the cost of its 64-channel layers."""
        return F.conv2d(crop.transpose(0, 1), k[None, None], stride=SCALE).transpose(0, 1)

    def priors(self, k: torch.Tensor) -> torch.Tensor:
        w = self.weights
        loss = (KERNELGAN_W_SUM_TO_ONE * (1 - k.sum()).abs()
                + KERNELGAN_W_BOUNDARIES * (k * self.mask).abs().mean())
        if w.sparsity:  # only once switched on: |k|^0.2 has an infinite slope at 0
            loss = loss + w.sparsity * k.abs().pow(KERNELGAN_SPARSITY_POWER).mean()
        if w.centralisation:
            loss = loss + w.centralisation * ((_centre_of_mass(k) - self.centre) ** 2).mean()
        return loss

    def train_g(self, g_in: torch.Tensor) -> float:
        """One step of G; returns its bicubic loss (the schedule's evidence)."""
        self.opt_g.zero_grad()
        k = self.g.kernel()
        fake = self.downscale(g_in, k)
        bicubic = F.mse_loss(fake, _centre_crop(imresize(g_in, 1.0 / SCALE), fake.shape[-1]))
        loss = (self.d(fake) - 1).abs().mean() + self.weights.bicubic * bicubic + self.priors(k)
        loss.backward()
        self.opt_g.step()
        return bicubic.item()

    def train_d(self, g_in: torch.Tensor, d_in: torch.Tensor, noise: float) -> None:
        self.opt_d.zero_grad()
        with torch.no_grad():
            fake = self.downscale(g_in, self.g.kernel())
        fake = fake + noise * torch.randn_like(fake)
        loss = ((self.d(d_in) - 1).abs().mean() + self.d(fake).abs().mean()) / 2
        loss.backward()
        self.opt_d.step()

    def decay_learning_rates(self) -> None:
        for opt in (self.opt_g, self.opt_d):
            for group in opt.param_groups:
                group["lr"] /= KERNELGAN_LR_DECAY


def _centre_crop(x: torch.Tensor, side: int) -> torch.Tensor:
    top = (x.shape[-2] - side) // 2
    left = (x.shape[-1] - side) // 2
    return x[..., top:top + side, left:left + side]


def train_kernel(img: np.ndarray, iterations: int, seed: int, device: torch.device) -> np.ndarray:
    """G's raw kernel (KernelGAN's convention) after ``iterations`` of training on an ``(H, W, 3)`` image."""
    rng = np.random.default_rng(seed)
    gan = _KernelGAN(device)
    d_side = (KERNELGAN_G_CROP - gan.g.support) // SCALE + 1  # G's output: D compares it with real crops
    g_corners = _crop_corners(_g_gradient_map(img), KERNELGAN_G_CROP, iterations, rng)
    d_corners = _crop_corners(gradient_map(img), d_side, iterations, rng)
    x = torch.as_tensor(img.transpose(2, 0, 1)[None] * 2 - 1, dtype=torch.float32, device=device)
    noise = 2 * KERNELGAN_NOISE  # on the [-1, 1] scale
    for i in range(iterations):
        (gt, gl), (dt, dl) = g_corners[i], d_corners[i]
        g_in = x[..., gt:gt + KERNELGAN_G_CROP, gl:gl + KERNELGAN_G_CROP]
        d_in = x[..., dt:dt + d_side, dl:dl + d_side]
        bicubic = gan.train_g(g_in)
        gan.train_d(g_in, d_in + noise * torch.randn_like(d_in), noise)
        if i > 0:
            gan.weights.update(i, bicubic)
            if i % KERNELGAN_LR_DECAY_EVERY == 0:
                gan.decay_learning_rates()
    with torch.no_grad():
        return gan.g.kernel().double().cpu().numpy()


def significant(k: np.ndarray) -> np.ndarray:
    """``k`` less ``KERNELGAN_KEEP_FRACTION`` of its (``KERNELGAN_KEEP_LARGEST`` + 1)-th largest value, clipped at
    0 and normalised: the GAN leaves a haze of tiny values, of either sign, around the kernel."""
    floor = KERNELGAN_KEEP_FRACTION * np.sort(k.ravel())[-KERNELGAN_KEEP_LARGEST - 1]
    k = np.clip(k - floor, 0, None)
    return k / k.sum()


def x4_from_x2(k: np.ndarray) -> np.ndarray:
    """The ×4 kernel of two ×2 degradations by ``k`` (blur, keep every second pixel, twice): blurring by ``k``
    convolved with ``k`` dilated by 2, then keeping every fourth pixel. Size 3n − 2; centred if ``k`` is."""
    n = k.shape[0]
    dilated = np.zeros((2 * n - 1, 2 * n - 1))
    dilated[::2, ::2] = k
    return scipy.signal.convolve2d(dilated, k)


def fit(k: np.ndarray, size: int) -> np.ndarray:
    """An odd square ``k`` zero-padded or cropped to ``size``² around its middle pixel, summing to 1."""
    d = size - k.shape[0]
    k = np.pad(k, d // 2) if d >= 0 else k[-d // 2:d // 2, -d // 2:d // 2]
    return k / k.sum()


def _device(model: Model) -> torch.device:
    return next(iter(model.params.values())).device


def estimate(lr_rgb01: np.ndarray, scale: int, model: Model, iterations: int = KERNELGAN_ITERATIONS,
             seed: int = 0) -> np.ndarray:
    """The ``ESTIMATE_KERNEL_SIZE``² (×4: ``KERNELGAN_X4_KERNEL_SIZE``²) kernel of an ``(H, W, 3)`` RGB image in
    [0, 1], in MZSR's convention (module docstring). ``seed`` fixes the crops, the noise and the initialisation."""
    if scale not in (SCALE, SCALE * SCALE):
        raise ValueError(f"kernelgan estimates ×2 and ×4 kernels, not ×{scale}")
    img = np.asarray(lr_rgb01, dtype=np.float64)
    if min(img.shape[:2]) < KERNELGAN_G_CROP:
        raise ValueError(f"image too small to estimate a kernel ({img.shape[0]}×{img.shape[1]} px, needs "
                         f"{KERNELGAN_G_CROP}×{KERNELGAN_G_CROP})")
    device = _device(model)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):  # leave the caller's RNG be
        torch.manual_seed(seed)
        raw = train_kernel(img, iterations, seed, device)
    k = fit(kernelgan_to_mzsr(significant(raw)), ESTIMATE_KERNEL_SIZE)
    return fit(x4_from_x2(k), KERNELGAN_X4_KERNEL_SIZE) if scale == SCALE * SCALE else k
