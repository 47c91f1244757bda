"""Geometric self-ensemble: run a net on the 8 rotations/flips of its input, map each output back, take the median.

Direct subsampling keeps the top-left sample of each s×s block, so it is not symmetric under flips: the LR of a
flipped HR image is the flipped LR sampled at the *bottom-right* of each block. A net adapted to (or trained on)
top-left sampling therefore returns, in a frame whose axis runs backwards, an image displaced by s − 1 HR pixels
along that axis. Averaging such outputs unaligned blurs the result by several dB; shifted back, the ensemble
gains (docs/models.md). Bicubic downsampling is centred and needs no shift.

A rotated or mirrored image is also blurred by the rotated or mirrored kernel, which a net adapted to the
image's own kernel does not undo: with an anisotropic kernel the 8-way ensemble loses to the single pass.
:func:`kernel_symmetries` keeps the frames that leave the kernel unchanged (all 8 for an isotropic
kernel, 2 for a generic Gaussian, whose kernel is symmetric about its centre).
"""
from __future__ import annotations

from collections.abc import Callable

import torch

N_DIHEDRAL = 8  # 4 rotations × (flipped or not)


def dihedral(x: torch.Tensor, i: int) -> torch.Tensor:
    """The ``i``-th of the 8 rotations/flips of the last two dims; 0 is the identity."""
    if i >= 4:
        x = x.flip(-1)
    return torch.rot90(x, i % 4, (-2, -1))


def undo_dihedral(y: torch.Tensor, i: int) -> torch.Tensor:
    """Inverse of :func:`dihedral`: rotate back first, then flip, since the flip came first."""
    y = torch.rot90(y, -(i % 4), (-2, -1))
    return y.flip(-1) if i >= 4 else y


def reversed_axes(i: int) -> tuple[bool, bool]:
    """Whether :func:`dihedral` ``i`` runs the original rows / columns backwards.

    Read off where the original corners land: the transformed frame's first pixel is the original pixel
    (rows reversed ? last row : first row, columns reversed ? last column : first column).
    """
    corner = dihedral(torch.arange(4).view(1, 1, 2, 2), i)[0, 0, 0, 0].item()
    return corner >= 2, corner % 2 == 1


def kernel_symmetries(kernel: torch.Tensor | None, tol: float = 1e-3) -> list[int]:
    """The transforms ``i`` under which ``kernel`` (``(k, k)``) stays the same to ``tol`` of its peak; ``None``
    (no blur: the bicubic degradation, itself symmetric) keeps all 8."""
    if kernel is None:
        return list(range(N_DIHEDRAL))
    k = kernel.detach().float()
    return [i for i in range(N_DIHEDRAL) if (dihedral(k, i) - k).abs().max() <= tol * k.abs().max()]


def alignment_shift(scale: int, downsample: str) -> int:
    """HR pixels by which a reversed axis displaces a net's output: s − 1 for direct (top-left) subsampling."""
    return scale - 1 if downsample == "direct" else 0


def _advance(y: torch.Tensor, dim: int, shift: int) -> torch.Tensor:
    """``y`` moved ``shift`` pixels towards the origin along ``dim``, its last pixel repeated to fill the end."""
    n = y.shape[dim]
    shift = min(shift, n - 1)
    return torch.cat([y.narrow(dim, shift, n - shift), y.narrow(dim, n - 1, 1).expand_as(y.narrow(dim, 0, shift))],
                     dim)


def self_ensemble(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, shift: int = 0,
                  frames: list[int] | None = None) -> torch.Tensor:
    """Per-pixel median of ``forward`` over the rotations/flips ``frames`` of ``x`` (default all 8), each mapped
    back and, along axes the transform reversed, moved back by ``shift`` pixels (:func:`alignment_shift`).

    The median of an even count is the mean of the middle two (NumPy's convention), not torch's lower median: a
    biased pick would skew every pixel the same way.
    """
    frames = list(range(N_DIHEDRAL)) if frames is None else frames
    outs = []
    for i in frames:
        y = undo_dihedral(forward(dihedral(x, i)), i)
        for dim, rev in zip((-2, -1), reversed_axes(i)):
            if rev and shift:
                y = _advance(y, dim, shift)
        outs.append(y)
    n = len(outs)
    return torch.stack(outs).sort(dim=0).values[(n - 1) // 2: n // 2 + 1].mean(dim=0)
