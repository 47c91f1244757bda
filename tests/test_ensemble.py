from __future__ import annotations

import pytest
import torch

import mzsr.ensemble as E
from mzsr.adapt import forward_tiled, upsample
from mzsr.degrade import degrade_torch
from mzsr.kernels import gaussian_kernel
from mzsr.net import SRNet


def test_dihedral_transforms_are_distinct_and_undone():
    x = torch.rand(1, 3, 5, 7)
    outs = [E.dihedral(x, i) for i in range(E.N_DIHEDRAL)]
    for i, y in enumerate(outs):
        torch.testing.assert_close(E.undo_dihedral(y, i), x, rtol=0, atol=0)
        for j in range(i):
            assert y.shape != outs[j].shape or not torch.equal(y, outs[j])


def test_reversed_axes_cover_each_case_twice():
    cases = [E.reversed_axes(i) for i in range(E.N_DIHEDRAL)]
    assert cases[0] == (False, False)
    assert sorted(cases) == sorted([(a, b) for a in (False, True) for b in (False, True)] * 2)


def test_self_ensemble_of_identity_is_the_input():
    x = torch.rand(1, 3, 6, 9)
    torch.testing.assert_close(E.self_ensemble(lambda t: t, x), x, rtol=0, atol=0)


def test_self_ensemble_of_identity_net_is_the_input():
    torch.manual_seed(0)
    net = SRNet(bias=False)
    torch.nn.init.zeros_(net.convs[-1].weight)  # body ≡ 0: the net is exactly the identity
    params = {k: v.detach() for k, v in net.named_parameters()}
    x = torch.rand(1, 3, 10, 7)
    torch.testing.assert_close(E.self_ensemble(lambda t: forward_tiled(net, params, t), x), x, rtol=0, atol=0)


def test_self_ensemble_median_averages_the_middle_two():
    offsets = iter(range(E.N_DIHEDRAL))
    x = torch.zeros(1, 3, 4, 4)
    out = E.self_ensemble(lambda t: t + next(offsets), x)
    torch.testing.assert_close(out, torch.full_like(x, 3.5))


def _ramp(h: int, w: int) -> torch.Tensor:
    rows = torch.arange(h, dtype=torch.float64).view(h, 1)
    cols = torch.arange(w, dtype=torch.float64).view(1, w)
    return ((0.2 + 0.004 * rows + 0.007 * cols) * torch.ones(1, 3, 1, 1, dtype=torch.float64)).float()


@pytest.mark.parametrize("scale", [2, 4])
def test_direct_ensemble_realigns_flipped_frames(scale):
    """A 'net' that undoes top-left subsampling exactly (on a ramp) must give the HR image in every frame.

    Bicubic upsampling is centred, so on a ramp it lands (s − 1)/2 HR pixels behind the top-left-sampled truth;
    the 'net' moves its input forward by that much along both axes of *its own* frame. Only with the alignment
    shift do the flipped frames agree with the unflipped one.
    """
    hr = _ramp(24, 32)
    lr = degrade_torch(hr, None, scale, "direct")
    x = upsample(lr, hr.shape[-2:])
    a = (scale - 1) / 2

    def top_left_net(t):
        dy = torch.cat([t[..., 1:, :] - t[..., :-1, :], t[..., -1:, :] - t[..., -2:-1, :]], -2)
        dx = torch.cat([t[..., 1:] - t[..., :-1], t[..., -1:] - t[..., -2:-1]], -1)
        return t + a * (dy + dx)

    m = 2 * scale + 2  # away from the borders, where bicubic's mirrored padding bends the ramp
    inner = (..., slice(m, -m), slice(m, -m))
    torch.testing.assert_close(top_left_net(x)[inner], hr[inner], rtol=0, atol=1e-5)  # the 'net' is right
    aligned = E.self_ensemble(top_left_net, x, E.alignment_shift(scale, "direct"))
    torch.testing.assert_close(aligned[inner], hr[inner], rtol=0, atol=1e-5)
    unaligned = E.self_ensemble(top_left_net, x, 0)
    assert (unaligned[inner] - hr[inner]).abs().mean() > 0.002 * (scale - 1)


def test_bicubic_downsampling_needs_no_shift():
    assert E.alignment_shift(2, "bicubic") == 0
    assert E.alignment_shift(4, "direct") == 3


def test_kernel_symmetries_keep_the_frames_that_leave_the_kernel_unchanged():
    k = lambda *a: torch.as_tensor(gaussian_kernel(*a, size=21))  # noqa: E731
    assert E.kernel_symmetries(None) == E.kernel_symmetries(k(2.0)) == list(range(E.N_DIHEDRAL))
    assert E.kernel_symmetries(k(4.0, 1.0, -0.5)) == [0, 2]  # g^d_ani: only the half-turn
    assert len(E.kernel_symmetries(k(4.0, 1.0, 0.0))) == 4  # axis-aligned: the half-turn and two mirrors
    for i in E.kernel_symmetries(k(4.0, 1.0, 0.0)):
        torch.testing.assert_close(E.dihedral(k(4.0, 1.0, 0.0), i), k(4.0, 1.0, 0.0))


def test_self_ensemble_over_some_frames_takes_their_median():
    offsets = iter([1.0, 5.0, 2.0])
    x = torch.zeros(1, 1, 4, 4)
    torch.testing.assert_close(E.self_ensemble(lambda t: t + next(offsets), x, frames=[0, 2, 5]),
                               torch.full_like(x, 2.0))
    offsets = iter([1.0, 4.0])
    torch.testing.assert_close(E.self_ensemble(lambda t: t + next(offsets), x, frames=[0, 2]),
                               torch.full_like(x, 2.5))
