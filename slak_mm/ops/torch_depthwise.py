"""The ``torch`` implementation: ``F.conv2d`` with ``groups=C`` (cuDNN,
oneDNN), the dispatcher's reference and fallback. Registers itself with
:mod:`.registry` on import. Nothing here imports mm packages.
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from .capabilities import TORCH_NEEDS, torch_runs
from .registry import REFERENCE, Candidate, register


def torch_depthwise_conv2d(x: torch.Tensor,
                           weight: torch.Tensor) -> torch.Tensor:
    """Depthwise "same" conv, stride 1, no bias, through ``F.conv2d``.

    Args:
        x (Tensor): Input (N, C, H, W).
        weight (Tensor): Kernel (C, 1, kh, kw), odd sides; cast to the
            input's dtype, as ``F.conv2d`` requires.

    Returns:
        Tensor: Output (N, C, H, W).
    """
    kh, kw = weight.shape[-2:]
    return F.conv2d(
        x, weight.to(x.dtype), padding=(kh // 2, kw // 2), groups=x.shape[1])


def _multi(x: torch.Tensor,
           weights: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, ...]:
    return tuple(torch_depthwise_conv2d(x, w) for w in weights)


def _cross(x: torch.Tensor,
           weight_v: torch.Tensor,
           weight_h: torch.Tensor,
           bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    out = torch_depthwise_conv2d(x, weight_v) + torch_depthwise_conv2d(
        x, weight_h)
    if bias is not None:
        out = out + bias.to(out.dtype).view(1, -1, 1, 1)
    return out


register(REFERENCE, Candidate(torch_runs, _multi, _cross, TORCH_NEEDS))
