"""SLaK's large depthwise kernel as parallel conv+norm branches.

The attribute names ``LoRA1``, ``LoRA2``, ``small_conv``, ``lkb_origin`` and
the children ``conv`` / ``bn`` are the official SLaK checkpoint's names: they
are part of the file format, so the published weights load without renaming.
"""
from typing import Callable, Iterator, Tuple

import torch
import torch.nn as nn


class ConvBN(nn.Sequential):
    """Depthwise convolution without bias, then a norm layer.

    Padding is ``(kh // 2, kw // 2)`` so the spatial size is kept for odd
    kernels.

    Args:
        channels (int): Input and output channels (one group per channel).
        kernel_size (tuple[int, int]): Odd kernel height and width.
        norm_layer (Callable[[int], nn.Module]): Builds the norm for
            ``channels`` features (BatchNorm in SLaK).
    """

    def __init__(self, channels: int, kernel_size: Tuple[int, int],
                 norm_layer: Callable[[int], nn.Module]):
        super().__init__()
        kh, kw = kernel_size
        self.conv = nn.Conv2d(
            channels,
            channels,
            kernel_size=(kh, kw),
            padding=(kh // 2, kw // 2),
            groups=channels,
            bias=False)
        self.bn = norm_layer(channels)


class LargeKernelConv(nn.Module):
    """Sum of depthwise conv+norm branches that together form a large kernel.

    With ``decompose=True`` (SLaK) an ``M x M`` kernel is approximated by an
    ``M x N`` branch (``LoRA1``), an ``N x M`` branch (``LoRA2``) and an
    ``N x N`` branch (``small_conv``). With ``decompose=False`` (RepLKNet)
    one dense ``M x M`` branch (``lkb_origin``) plus the ``N x N`` branch are
    used. Each branch has its own norm, which the paper found essential.

    Args:
        channels (int): Number of channels.
        kernel_size (int): The large side ``M`` (odd).
        small_kernel (int): The short side ``N`` (odd, smaller than ``M``).
        decompose (bool): Use the three-branch decomposition. Default: True.
        norm_layer (Callable[[int], nn.Module]): Builds each branch's norm.
            Default: ``nn.BatchNorm2d``.
    """

    def __init__(self,
                 channels: int,
                 kernel_size: int,
                 small_kernel: int = 5,
                 decompose: bool = True,
                 norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d):
        super().__init__()
        self.kernel_size = kernel_size
        self.small_kernel = small_kernel
        self.decompose = decompose
        if decompose:
            self.LoRA1 = ConvBN(channels, (kernel_size, small_kernel),
                                norm_layer)
            self.LoRA2 = ConvBN(channels, (small_kernel, kernel_size),
                                norm_layer)
        else:
            self.lkb_origin = ConvBN(channels, (kernel_size, kernel_size),
                                     norm_layer)
        self.small_conv = ConvBN(channels, (small_kernel, small_kernel),
                                 norm_layer)

    def branches(self) -> Iterator[ConvBN]:
        """Yield the conv+norm branches whose outputs are summed."""
        if self.decompose:
            yield self.LoRA1
            yield self.LoRA2
        else:
            yield self.lkb_origin
        yield self.small_conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = self.branches()
        out = next(branches)(x)
        for branch in branches:
            out = out + branch(x)
        return out

    def extra_repr(self) -> str:
        return (f'kernel_size={self.kernel_size}, '
                f'small_kernel={self.small_kernel}, '
                f'decompose={self.decompose}')
