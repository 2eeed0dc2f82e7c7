"""SLaK's backbone on torch, timm and :mod:`slak_mm.ops` alone, for the
self-check's training step.

:class:`slak_mm.models.SLaK` builds its branch norms with mmcv and is an
mmengine ``BaseModule`` registered in the mmseg / mmdet registries, so it
does not import on a bare GPU box (torch, Triton, timm), where the
self-check is meant to run. This is the same network for that step: the
same layers, parameter names and state dict (the official checkpoint's;
``tests/test_selfcheck.py`` loads a :class:`~slak_mm.models.SLaK` state
dict into it and compares the outputs), with plain ``nn.BatchNorm2d``
branch norms and without what a timing step does not use (sparsity, frozen
stages, checkpoint loading, deploy, drop path).
"""
from collections import OrderedDict
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from timm.layers import LayerNorm2d

from slak_mm.ops import resolve_impl, run_multi, to_preferred_layout

__all__ = ['TorchSLaK']


def _conv_bn(channels: int, kernel: Tuple[int, int]) -> nn.Sequential:
    # the official names (LoRA1.conv.weight, LoRA1.bn.running_mean, ...)
    return nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(
                channels,
                channels,
                kernel,
                padding=(kernel[0] // 2, kernel[1] // 2),
                groups=channels,
                bias=False),
            bn=nn.BatchNorm2d(channels)))


class _LargeKernel(nn.Module):
    """The decomposed large kernel: ``M x N``, ``N x M`` and ``N x N``
    depthwise branches, each with its BatchNorm, run in one call of the
    implementation :func:`slak_mm.ops.resolve_impl` chooses (as
    :class:`slak_mm.models.LargeKernelConv` runs them), which it keeps in
    ``last_impl``."""

    def __init__(self, channels: int, kernel: int, small: int,
                 impl: Optional[str]):
        super().__init__()
        self.LoRA1 = _conv_bn(channels, (kernel, small))
        self.LoRA2 = _conv_bn(channels, (small, kernel))
        self.small_conv = _conv_bn(channels, (small, small))
        self.impl = impl
        self.last_impl: Optional[str] = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = (self.LoRA1, self.LoRA2, self.small_conv)
        x = to_preferred_layout(x)
        weights = [b.conv.weight for b in branches]
        self.last_impl = resolve_impl(x, self.impl, weights)
        outs = run_multi(self.last_impl, x, weights)
        return sum(b.bn(out) for b, out in zip(branches, outs))


class _Block(nn.Module):
    """Large kernel, then ConvNeXt's MLP with layer scale and residual."""

    def __init__(self, dim: int, kernel: int, small: int, impl: Optional[str]):
        super().__init__()
        self.large_kernel = _LargeKernel(dim, kernel, small, impl)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim, ), 1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.large_kernel(x).permute(0, 2, 3, 1)
        y = self.gamma * self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        return x + y.permute(0, 3, 1, 2)


class TorchSLaK(nn.Module):
    """SLaK's backbone (decomposed kernels, training form) without mm.

    Args:
        depths (Sequence[int]): Blocks per stage. Default: SLaK-T's.
        dims (Sequence[int]): Channels per stage, after the width factor.
            Default: SLaK-T's (124, 249, 499, 998).
        kernels (Sequence[int]): Large kernel side per stage. Default:
            (51, 49, 47, 13).
        small (int): Short kernel side. Default: 5.
        impl (str, optional): Depthwise conv implementation, as
            :class:`slak_mm.models.SLaK`'s ``conv_impl``. Default: None
            (``$SLAK_MM_DWCONV_IMPL``, else ``auto``).
    """

    def __init__(self,
                 depths: Sequence[int] = (3, 3, 9, 3),
                 dims: Sequence[int] = (124, 249, 499, 998),
                 kernels: Sequence[int] = (51, 49, 47, 13),
                 small: int = 5,
                 impl: Optional[str] = None):
        super().__init__()
        self.downsample_layers = nn.ModuleList([
            nn.Sequential(
                nn.Conv2d(3, dims[0], kernel_size=4, stride=4),
                LayerNorm2d(dims[0], eps=1e-6))
        ] + [
            nn.Sequential(
                LayerNorm2d(dims[i - 1], eps=1e-6),
                nn.Conv2d(dims[i - 1], dims[i], kernel_size=2, stride=2))
            for i in range(1, 4)
        ])
        self.stages = nn.ModuleList(
            nn.Sequential(*[
                _Block(dims[i], kernels[i], small, impl)
                for _ in range(depths[i])
            ]) for i in range(4))
        for i in range(4):
            self.add_module(f'norm{i}', LayerNorm2d(dims[i], eps=1e-6))

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        outs = []
        for i in range(4):
            x = self.stages[i](self.downsample_layers[i](x))
            outs.append(getattr(self, f'norm{i}')(x))
        return outs
