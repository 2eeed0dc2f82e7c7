"""Memory layout the depthwise convolutions run in.

On the CPU, PyTorch's (oneDNN) depthwise convolution is much faster on
channels-last tensors: measured on this project's 2-core CI machine for the
three SLaK-T branch convs at 512x512 input, batch 1, 2.7x (stage 1) to 4.8x
(stage 3) faster than on NCHW (``tools/benchmark.py op --device cpu``). On
CUDA the layout is left alone (the Triton kernels and cuDNN choose their
own). The CPU layout is the ``cpu_layout`` setting
(``$SLAK_MM_CPU_LAYOUT``, or ``slak_mm.ops.use(cpu_layout='nchw')``;
:mod:`slak_mm.ops.settings`).
"""
import torch

from . import settings


def to_preferred_layout(x: torch.Tensor) -> torch.Tensor:
    """Return ``x`` in the layout its device runs depthwise convs fastest
    (a no-op when it already is).

    Args:
        x (Tensor): A 4-D (N, C, H, W) tensor.

    Returns:
        Tensor: ``x``, channels-last on the CPU (unless the ``cpu_layout``
        setting is ``'nchw'``), unchanged elsewhere.

    Raises:
        ValueError: If ``$SLAK_MM_CPU_LAYOUT`` is neither ``channels_last``
            nor ``nchw`` (:func:`slak_mm.ops.settings.current`).
    """
    if x.device.type != 'cpu':
        return x
    if settings.current().cpu_layout == 'channels_last':
        return x.contiguous(memory_format=torch.channels_last)
    return x.contiguous()
