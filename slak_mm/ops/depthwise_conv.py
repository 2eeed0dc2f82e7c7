"""Depthwise "same" convolution with odd rectangular kernels, stride 1.

The public functions run one of three implementations:

- ``'torch'``: ``torch.nn.functional.conv2d`` with ``groups=C`` (cuDNN,
  oneDNN);
- ``'fft'``: :mod:`slak_mm.ops.fft_depthwise` (any device, floating-point
  inputs);
- ``'triton'``: the Triton kernels of :mod:`slak_mm.ops.triton_depthwise`
  (CUDA tensors; also CPU tensors under ``TRITON_INTERPRET=1``, which is how
  CI tests them, but only when forced).

``impl=None`` reads ``SLAK_MM_DWCONV_IMPL`` (``auto`` | ``torch`` |
``fft`` | ``triton``, default ``auto``); ``auto`` measures which is fastest
for each shape (:mod:`slak_mm.ops.dispatch`).

Nothing here imports mm packages.
"""
import functools
import os
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from . import dispatch
from .dispatch import IMPL_ENV, IMPLS  # noqa: F401 (re-exported)
from .fft_depthwise import (fft_cross_depthwise_conv2d,
                            fft_multi_depthwise_conv2d)

#: Largest kernel side the Triton kernels support.
MAX_KERNEL = 63
#: Input dtypes the Triton kernels support (float64, e.g. for gradcheck,
#: never goes there).
TRITON_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


@functools.lru_cache(maxsize=None)
def triton_available() -> bool:
    """Whether the Triton kernels can be imported (checked once: every
    forward asks)."""
    try:
        from . import triton_depthwise  # noqa: F401
    except ImportError:
        return False
    return True


def _interpreting() -> bool:
    return os.environ.get('TRITON_INTERPRET', '0') == '1'


def _triton_usable(x: torch.Tensor) -> bool:
    # Under the interpreter CPU tensors work too, but only forced: the
    # measuring dispatcher never offers Triton for CPU tensors
    return (triton_available() and (x.is_cuda or _interpreting())
            and x.dtype in TRITON_DTYPES)


def resolve_impl(x: torch.Tensor,
                 impl: Optional[str] = None,
                 weights: Optional[Sequence[torch.Tensor]] = None,
                 op: str = 'multi') -> str:
    """The implementation used for ``x`` (and ``weights``).

    Args:
        x (Tensor): The input.
        impl (str, optional): ``'auto'``, ``'torch'``, ``'fft'`` or
            ``'triton'``; None reads ``SLAK_MM_DWCONV_IMPL`` (default
            ``'auto'``).
        weights (Sequence[Tensor], optional): The kernels (for ``'cross'``:
            tall, wide, bias). ``'auto'`` without them gives torch.
        op (str): ``'multi'`` or ``'cross'``.

    Returns:
        str: ``'torch'``, ``'fft'`` or ``'triton'``; for ``'auto'`` the
        measured (or stored, or heuristic) choice, see
        :func:`slak_mm.ops.dispatch.choose`.

    Raises:
        RuntimeError: If a forced implementation cannot run on ``x``.
    """
    if weights is None and dispatch._forced(impl) == 'auto':
        return 'torch'
    return dispatch.choose(op, x, list(weights or ()), impl)


def check_kernel(x: torch.Tensor, weight: torch.Tensor) -> Tuple[int, int]:
    """Validate a depthwise weight ``(C, 1, kh, kw)`` against ``x`` and
    return ``(kh, kw)``."""
    if x.dim() != 4:
        raise ValueError(f'expected (N, C, H, W) input, got shape '
                         f'{tuple(x.shape)}')
    channels = x.shape[1]
    if weight.dim() != 4 or weight.shape[:2] != (channels, 1):
        raise ValueError(
            f'depthwise weight must have shape ({channels}, 1, kh, kw) for '
            f'{channels} input channels, got {tuple(weight.shape)}')
    kh, kw = weight.shape[-2:]
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f'kernel sides must be odd for "same" padding, got '
                         f'{kh}x{kw}')
    return kh, kw


def _torch_conv(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    kh, kw = weight.shape[-2:]
    return F.conv2d(
        x, weight.to(x.dtype), padding=(kh // 2, kw // 2), groups=x.shape[1])


def _torch_multi(x, weights):
    return tuple(_torch_conv(x, w) for w in weights)


def _torch_cross(x, weight_v, weight_h, bias=None):
    out = _torch_conv(x, weight_v) + _torch_conv(x, weight_h)
    if bias is not None:
        out = out + bias.to(out.dtype).view(1, -1, 1, 1)
    return out


def _triton_multi(x, weights):
    from .triton_depthwise import triton_multi_depthwise_conv2d
    return triton_multi_depthwise_conv2d(x, tuple(weights))


def _triton_cross(x, weight_v, weight_h, bias=None):
    from .triton_depthwise import triton_cross_depthwise_conv2d
    return triton_cross_depthwise_conv2d(x, weight_v, weight_h, bias)


# 'torch' first: the dispatcher's reference
dispatch.CANDIDATES.update(
    torch=dispatch.Candidate(lambda x: True, _torch_multi, _torch_cross),
    fft=dispatch.Candidate(lambda x: x.is_floating_point(),
                           fft_multi_depthwise_conv2d,
                           fft_cross_depthwise_conv2d),
    triton=dispatch.Candidate(_triton_usable, _triton_multi, _triton_cross))


def depthwise_conv2d(x: torch.Tensor,
                     weight: torch.Tensor,
                     impl: Optional[str] = None) -> torch.Tensor:
    """Depthwise conv, stride 1, "same" padding, no bias.

    Args:
        x (Tensor): Input (N, C, H, W).
        weight (Tensor): Kernel (C, 1, kh, kw), kh and kw odd.
        impl (str, optional): See :func:`resolve_impl`.

    Returns:
        Tensor: Output (N, C, H, W).
    """
    return multi_depthwise_conv2d(x, (weight, ), impl)[0]


def multi_depthwise_conv2d(
        x: torch.Tensor,
        weights: Sequence[torch.Tensor],
        impl: Optional[str] = None) -> Tuple[torch.Tensor, ...]:
    """Several depthwise convs of the same input (SLaK's ``M x N``,
    ``N x M`` and ``N x N`` branches), one output each.

    The Triton path reads each input tile once for all kernels; the FFT
    path transforms the input once for all of them.

    Args:
        x (Tensor): Input (N, C, H, W).
        weights (Sequence[Tensor]): Kernels (C, 1, kh_i, kw_i), odd sides.
        impl (str, optional): See :func:`resolve_impl`.

    Returns:
        tuple[Tensor]: One (N, C, H, W) output per kernel.
    """
    weights = list(weights)
    for weight in weights:
        check_kernel(x, weight)
    name = resolve_impl(x, impl, weights)
    return tuple(dispatch.CANDIDATES[name].multi(x, weights))


def cross_depthwise_conv2d(x: torch.Tensor,
                           weight_v: torch.Tensor,
                           weight_h: torch.Tensor,
                           bias: Optional[torch.Tensor] = None,
                           impl: Optional[str] = None) -> torch.Tensor:
    """Sum of a tall ``(M, n)`` and a wide ``(n, M)`` depthwise conv plus a
    per-channel bias: a cross-shaped kernel without the dense ``M x M``.

    This is the merged (deploy) form of SLaK's decomposed kernel; the
    Triton path computes it in one pass over the input, the FFT path with
    one kernel spectrum (the two kernels summed).

    Args:
        x (Tensor): Input (N, C, H, W).
        weight_v (Tensor): Tall kernel (C, 1, M, n).
        weight_h (Tensor): Wide kernel (C, 1, n, M).
        bias (Tensor, optional): Per-channel bias (C,).
        impl (str, optional): See :func:`resolve_impl`.

    Returns:
        Tensor: Output (N, C, H, W).
    """
    check_kernel(x, weight_v)
    check_kernel(x, weight_h)
    name = resolve_impl(x, impl, [weight_v, weight_h, bias], op='cross')
    return dispatch.CANDIDATES[name].cross(x, weight_v, weight_h, bias)
