"""The 8-layer residual CNN shared by MZSR and ZSSR (spec §2), with a functional forward for MAML."""
from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

RECEPTIVE_RADIUS = 8  # eight 3×3 convolutions: a 17×17 receptive field


class SRNet(nn.Module):
    """out = x + body(x); x is the LR image bicubic-upsampled to the output size, RGB in [0, 1].

    The default (64 channels, 8 layers, with biases) has 225,091 parameters; ZSSR uses ``bias=False``.
    """

    def __init__(self, channels: int = 64, depth: int = 8, bias: bool = True, in_channels: int = 3):
        super().__init__()
        widths = [in_channels] + [channels] * (depth - 1) + [in_channels]
        self.convs = nn.ModuleList(
            nn.Conv2d(a, b, 3, padding=1, bias=bias) for a, b in zip(widths[:-1], widths[1:]))
        for conv in self.convs:
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            if bias:
                nn.init.zeros_(conv.bias)
        # a small last layer starts the net near the identity (= bicubic), a sane start for SR
        nn.init.normal_(self.convs[-1].weight, std=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for conv in self.convs[:-1]:
            h = torch.relu(conv(h))
        return x + self.convs[-1](h)


def functional_forward(net: nn.Module, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Run ``net`` with the weights in ``params`` (so gradients can flow through updated weights)."""
    return functional_call(net, params, (x,))


def param_count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
