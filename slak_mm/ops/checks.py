"""Argument checks of the depthwise convs, made once per call by the public
functions (:mod:`.depthwise_conv`, and the implementations' own public
functions); the implementations the dispatcher runs check nothing again.
Nothing here imports mm packages.
"""
from typing import Optional, Sequence

import torch


def check_inputs(x: torch.Tensor,
                 weights: Sequence[torch.Tensor],
                 bias: Optional[torch.Tensor] = None) -> None:
    """Validate an input, its depthwise kernels and an optional bias.

    Args:
        x (Tensor): Input (N, C, H, W).
        weights (Sequence[Tensor]): Kernels (C, 1, kh, kw), odd sides, on
            ``x``'s device.
        bias (Tensor, optional): Per-channel bias (C,).

    Raises:
        ValueError: If a shape, a side or a device does not fit.
    """
    if x.dim() != 4:
        raise ValueError(f'expected (N, C, H, W) input, got shape '
                         f'{tuple(x.shape)}')
    channels = x.shape[1]
    for weight in weights:
        if weight.dim() != 4 or weight.shape[:2] != (channels, 1):
            raise ValueError(
                f'depthwise weight must have shape ({channels}, 1, kh, kw) '
                f'for {channels} input channels, got {tuple(weight.shape)}')
        kh, kw = weight.shape[-2:]
        if kh % 2 == 0 or kw % 2 == 0:
            raise ValueError(f'kernel sides must be odd for "same" padding, '
                             f'got {kh}x{kw}')
        if weight.device != x.device:
            raise ValueError(f'weight on {weight.device}, input on '
                             f'{x.device}')
    if bias is not None and bias.shape != (channels, ):
        raise ValueError(f'bias must have shape ({channels},), got '
                         f'{tuple(bias.shape)}')
