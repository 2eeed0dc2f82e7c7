"""Memory layout the depthwise convolutions run in.

On the CPU, PyTorch's (oneDNN) depthwise convolution is much faster on
channels-last tensors: measured on this project's 2-core CI machine for the
three SLaK-T branch convs at 512x512 input, batch 1, 2.7x (stage 1) to 4.8x
(stage 3) faster than on NCHW (``tools/benchmark.py op --device cpu``). On
CUDA the layout is left alone (the Triton kernels and cuDNN choose their
own). The CPU layout is ``$SLAK_MM_CPU_LAYOUT``
(:func:`slak_mm.ops.settings.cpu_layout`).
"""
import torch

from .settings import cpu_layout


def to_preferred_layout(x: torch.Tensor) -> torch.Tensor:
    """Return ``x`` in the layout its device runs depthwise convs fastest
    (a no-op when it already is).

    Args:
        x (Tensor): A 4-D (N, C, H, W) tensor.

    Returns:
        Tensor: ``x``, channels-last on the CPU (unless
        ``SLAK_MM_CPU_LAYOUT=nchw``), unchanged elsewhere.

    Raises:
        ValueError: If ``$SLAK_MM_CPU_LAYOUT`` is neither ``channels_last``
            nor ``nchw``.
    """
    if x.device.type != 'cpu':
        return x
    if cpu_layout() == 'channels_last':
        return x.contiguous(memory_format=torch.channels_last)
    return x.contiguous()
