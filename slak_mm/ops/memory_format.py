"""Memory layout the depthwise convolutions run in.

On the CPU, PyTorch's (oneDNN) depthwise convolution is much faster on
channels-last tensors: measured on this project's 2-core CI machine for the
three SLaK-T branch convs at 512x512 input, batch 1, 2.7x (stage 1) to 4.8x
(stage 3) faster than on NCHW (``tools/benchmark.py op --device cpu``). On
CUDA the layout is left alone (the Triton kernels and cuDNN choose their
own).
"""
import os

import torch

#: ``channels_last`` (default) or ``nchw``: the CPU layout of the convs.
CPU_LAYOUT_ENV = 'SLAK_MM_CPU_LAYOUT'
CPU_LAYOUTS = ('channels_last', 'nchw')


def to_preferred_layout(x: torch.Tensor) -> torch.Tensor:
    """Return ``x`` in the layout its device runs depthwise convs fastest
    (a no-op when it already is).

    Args:
        x (Tensor): A 4-D (N, C, H, W) tensor.

    Returns:
        Tensor: ``x``, channels-last on the CPU (unless
        ``SLAK_MM_CPU_LAYOUT=nchw``), unchanged elsewhere.
    """
    if x.device.type != 'cpu':
        return x
    layout = os.environ.get(CPU_LAYOUT_ENV, 'channels_last')
    if layout == 'channels_last':
        return x.contiguous(memory_format=torch.channels_last)
    if layout == 'nchw':
        return x.contiguous()
    raise ValueError(f'${CPU_LAYOUT_ENV}={layout!r}; choose one of '
                     f'{CPU_LAYOUTS}')
