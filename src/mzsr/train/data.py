"""Training data: HR images decoded once into memory, patch sampling, and the pairs and tasks built from them."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..degrade import corrupt_torch, degrade_torch
from ..io import IMAGE_SUFFIXES
from ..kernels import random_kernel
from ..resize import imresize




def list_images(folders) -> list[Path]:
    files = []
    for folder in folders:
        files += sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no training images in {', '.join(map(str, folders))}")
    return files


def load_images(files) -> list[np.ndarray]:
    """Decode every file to uint8 RGB once; patches are cut from memory afterwards."""
    out = []
    for f in files:
        with Image.open(f) as im:
            out.append(np.asarray(im.convert("RGB")))
    return out


def is_flat(patch: np.ndarray) -> bool:
    """Spec §3: drop patches whose log mean squared gradient (on [0, 1]) is below −6."""
    g = patch.astype(np.float32).mean(axis=-1) / 255.0
    gy, gx = np.diff(g, axis=0), np.diff(g, axis=1)
    msg = (np.mean(gy ** 2) + np.mean(gx ** 2)) / 2
    return msg <= 0 or np.log(msg) < -6


def dihedral(patch: np.ndarray, k: int) -> np.ndarray:
    """One of the 8 rotations/flips of an (H, W, C) patch."""
    patch = np.rot90(patch, k % 4)
    return patch[:, ::-1] if k >= 4 else patch


class PatchSampler:
    """Random HR patches (uint8 → float in [0, 1], NCHW) with the flat-patch filter and dihedral augmentation."""

    def __init__(self, images: list[np.ndarray], patch: int, rng: np.random.Generator):
        self.images = [im for im in images if min(im.shape[:2]) >= patch]
        if not self.images:
            raise ValueError(f"no training image is at least {patch}×{patch}")
        self.patch, self.rng = patch, rng

    def one(self) -> np.ndarray:
        for _ in range(20):  # a few tries for a textured patch, then accept what comes
            im = self.images[self.rng.integers(len(self.images))]
            y = self.rng.integers(im.shape[0] - self.patch + 1)
            x = self.rng.integers(im.shape[1] - self.patch + 1)
            p = im[y: y + self.patch, x: x + self.patch]
            if not is_flat(p):
                break
        return dihedral(p, int(self.rng.integers(8)))

    def batch(self, n: int) -> torch.Tensor:
        arr = np.stack([self.one() for _ in range(n)]).astype(np.float32) / 255.0
        return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


def bicubic_pair(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """Stage-1 input: MATLAB-bicubic ↓s then ↑s of the HR batch."""
    return imresize(imresize(hr, 1.0 / scale), out_shape=hr.shape[-2:])


def task_input(hr: torch.Tensor, kernel: torch.Tensor, scale: int, downsample: str, noise: float = 0.0,
               jpeg: int | None = None, rng: np.random.Generator | None = None) -> torch.Tensor:
    """Stage-2 input: blur, subsample (direct or bicubic), with ``noise``/``jpeg`` the camera's corruption
    (:func:`mzsr.degrade.corrupt_torch`), bicubic ↑ back to the HR size."""
    lr = degrade_torch(hr, kernel, scale, downsample)
    if noise or jpeg is not None:
        lr = corrupt_torch(lr, noise, jpeg, rng)
    return imresize(lr, out_shape=hr.shape[-2:])


def blind_pair(hr: torch.Tensor, rng: np.random.Generator, scale: int, downsample: str, kernel_size: int = 15,
               kernel_min_var: float = 1.0, noise: float = 0.0, jpeg: int = 0,
               clean_share: float = 0.0) -> torch.Tensor:
    """A blind prior's input: each HR patch blurred by a random kernel of its own (the meta-tasks' family,
    :func:`mzsr.kernels.random_kernel`), subsampled, corrupted as a camera's LR (:func:`task_corruption`, drawn
    per patch; rounded to uint8 at least), bicubic ↑ back to the HR size."""
    kernels = torch.from_numpy(np.stack([random_kernel(rng, scale, kernel_size, kernel_min_var)
                                         for _ in range(hr.shape[0])])).float().to(hr.device)
    lr = degrade_torch(hr, kernels, scale, downsample)
    lr = torch.cat([corrupt_torch(x[None], *task_corruption(rng, noise, jpeg, clean_share), rng) for x in lr])
    return imresize(lr, out_shape=hr.shape[-2:])


def task_corruption(rng: np.random.Generator, noise: float = 0.0, jpeg: int = 0,
                    clean_share: float = 0.0) -> tuple[float, int | None]:
    """A task's camera corruption (σ in grey levels, JPEG quality or ``None``): none in ``clean_share`` of the
    tasks; in the others σ ~ U[0, ``noise``] and quality ~ U{``jpeg``..95}, one of the two alone in a third of
    them each when both are on (so that noise-only and JPEG-only photos are met too). 0 turns either off."""
    if (not noise and not jpeg) or rng.random() < clean_share:
        return 0.0, None
    kind = int(rng.integers(3)) if noise and jpeg else 2  # 0: noise only, 1: JPEG only, 2: what is on
    sigma = float(rng.uniform(0, noise)) if noise and kind != 1 else 0.0
    quality = int(rng.integers(jpeg, 96)) if jpeg and kind != 0 else None
    return sigma, quality


def sample_task(sampler: PatchSampler, rng: np.random.Generator, scale: int, downsample: str,
                n_train: int = 8, n_test: int = 8, kernel_size: int = 15, kernel_min_var: float = 1.0,
                kernel_minor_max: float | None = None, noise: float = 0.0, jpeg: int = 0,
                clean_share: float = 0.0):
    """One meta-learning task (spec §4): a random kernel; (input, label) for its D_tr and D_te.

    With a corruption (:func:`task_corruption`) the task mirrors a real photo's meta-test: D_te's input is the
    corrupted LR of clean HR labels, and D_tr, the inner steps' pairs, is (corrupted son, corrupted label), as
    the son of a noisy JPEG LR is made and corrupted again and the LR it is fitted to is itself noisy.
    """
    kernel = torch.from_numpy(random_kernel(rng, scale, kernel_size, kernel_min_var, kernel_minor_max)).float()
    hr = sampler.batch(n_train + n_test)
    sigma, quality = task_corruption(rng, noise, jpeg, clean_share)
    if not sigma and quality is None:
        x = task_input(hr, kernel, scale, downsample)
        return (x[:n_train], hr[:n_train]), (x[n_train:], hr[n_train:])
    hr_tr = corrupt_torch(hr[:n_train], sigma, quality, rng)
    x_tr = task_input(hr_tr, kernel, scale, downsample, sigma, quality, rng)
    x_te = task_input(hr[n_train:], kernel, scale, downsample, sigma, quality, rng)
    return (x_tr, hr_tr), (x_te, hr[n_train:])
