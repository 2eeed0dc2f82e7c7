"""Depthwise "same" convolution with odd rectangular kernels, stride 1.

The public functions choose an implementation per call:

- ``'triton'``: the Triton kernels of :mod:`slak_mm.ops.triton_depthwise`
  (CUDA tensors; also CPU tensors under ``TRITON_INTERPRET=1``, which is how
  CI tests them);
- ``'torch'``: ``torch.nn.functional.conv2d`` with ``groups=C``.

``impl=None`` reads the environment variable ``SLAK_MM_DWCONV_IMPL``
(``auto`` | ``triton`` | ``torch``, default ``auto``); ``auto`` picks
Triton for CUDA tensors when Triton imports, else torch.

Nothing here imports mm packages.
"""
import functools
import os
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

#: Environment variable that forces an implementation.
IMPL_ENV = 'SLAK_MM_DWCONV_IMPL'
IMPLS = ('auto', 'triton', 'torch')
#: Largest kernel side the Triton kernels support.
MAX_KERNEL = 63
#: Input dtypes the Triton kernels support; ``auto`` uses torch for others
#: (e.g. float64 for gradcheck).
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


def resolve_impl(x: torch.Tensor, impl: Optional[str] = None) -> str:
    """The implementation (``'triton'`` or ``'torch'``) used for ``x``.

    Args:
        x (Tensor): The input.
        impl (str, optional): ``'auto'``, ``'triton'`` or ``'torch'``; None
            reads ``SLAK_MM_DWCONV_IMPL`` (default ``'auto'``).

    Returns:
        str: ``'triton'`` or ``'torch'``.
    """
    impl = impl or os.environ.get(IMPL_ENV, 'auto')
    if impl not in IMPLS:
        raise ValueError(f'Unknown depthwise conv implementation {impl!r} '
                         f'(argument or ${IMPL_ENV}); choose one of {IMPLS}')
    if impl == 'torch':
        return 'torch'
    usable = (
        triton_available() and (x.is_cuda or _interpreting())
        and x.dtype in TRITON_DTYPES)
    if impl == 'triton' and not usable:
        raise RuntimeError(
            'impl="triton" needs Triton and a CUDA tensor (or '
            'TRITON_INTERPRET=1 for CPU tensors) of dtype float32, float16 '
            f'or bfloat16; got a {x.device.type} {x.dtype} tensor, Triton '
            f'{"available" if triton_available() else "not importable"}. '
            f'Use impl="auto" or set {IMPL_ENV}=auto.')
    return 'triton' if usable else 'torch'


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

    The Triton path reads each input tile once for all kernels.

    Args:
        x (Tensor): Input (N, C, H, W).
        weights (Sequence[Tensor]): Kernels (C, 1, kh_i, kw_i), odd sides.
        impl (str, optional): See :func:`resolve_impl`.

    Returns:
        tuple[Tensor]: One (N, C, H, W) output per kernel.
    """
    for weight in weights:
        check_kernel(x, weight)
    if resolve_impl(x, impl) == 'triton':
        from .triton_depthwise import triton_multi_depthwise_conv2d
        return triton_multi_depthwise_conv2d(x, tuple(weights))
    return tuple(_torch_conv(x, w) for w in weights)


def cross_depthwise_conv2d(x: torch.Tensor,
                           weight_v: torch.Tensor,
                           weight_h: torch.Tensor,
                           bias: Optional[torch.Tensor] = None,
                           impl: Optional[str] = None) -> torch.Tensor:
    """Sum of a tall ``(M, n)`` and a wide ``(n, M)`` depthwise conv plus a
    per-channel bias: a cross-shaped kernel without the dense ``M x M``.

    This is the merged (deploy) form of SLaK's decomposed kernel; the
    Triton path computes it in one pass over the input.

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
    if resolve_impl(x, impl) == 'triton':
        from .triton_depthwise import triton_cross_depthwise_conv2d
        return triton_cross_depthwise_conv2d(x, weight_v, weight_h, bias)
    out = _torch_conv(x, weight_v) + _torch_conv(x, weight_h)
    if bias is not None:
        out = out + bias.to(out.dtype).view(1, -1, 1, 1)
    return out
