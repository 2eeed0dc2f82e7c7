"""Depthwise "same" convolution with odd rectangular kernels, stride 1: the
public functions.

Each call validates its arguments once (:func:`slak_mm.ops.checks.
check_inputs`), resolves the implementation once
(:func:`slak_mm.ops.dispatch.choose`) and runs it. The implementations
register themselves (:mod:`slak_mm.ops.registry`):

- ``'torch'``: ``torch.nn.functional.conv2d`` with ``groups=C`` (cuDNN,
  oneDNN; :mod:`slak_mm.ops.torch_depthwise`);
- ``'fft'``: :mod:`slak_mm.ops.fft_depthwise` (any device, floating-point
  inputs);
- ``'triton'``: the Triton kernels of :mod:`slak_mm.ops.triton_depthwise`
  (CUDA tensors; also CPU tensors under ``TRITON_INTERPRET=1``, which is how
  CI tests them, but only when forced), when triton is installed.

``impl=None`` takes the ``impl`` setting (``auto`` | ``torch`` | ``fft``
| ``triton``, default ``auto``; ``$SLAK_MM_DWCONV_IMPL`` or
``slak_mm.ops.use(impl=...)``, :mod:`slak_mm.ops.settings`); ``auto``
measures which is fastest for each shape (:mod:`slak_mm.ops.dispatch`).

Nothing here imports mm packages.
"""
from typing import Optional, Sequence, Tuple

import torch

from . import dispatch
from .checks import check_inputs
from .registry import CANDIDATES


def triton_available() -> bool:
    """Whether the Triton implementation is registered (triton imported).

    Returns:
        bool: True when ``impl='triton'`` can run on suitable tensors.
    """
    return 'triton' in CANDIDATES


def resolve_impl(x: torch.Tensor,
                 impl: Optional[str] = None,
                 weights: Optional[Sequence[Optional[torch.Tensor]]] = None,
                 op: str = 'multi') -> str:
    """Validate the arguments and return the implementation that runs them.

    Args:
        x (Tensor): The input.
        impl (str, optional): ``'auto'``, ``'torch'``, ``'fft'`` or
            ``'triton'``; None: the ``impl`` setting
            (``$SLAK_MM_DWCONV_IMPL``, default ``'auto'``).
        weights (Sequence[Tensor], optional): The kernels (for ``'cross'``:
            tall, wide, bias or None). ``'auto'`` without them gives torch.
        op (str): ``'multi'`` or ``'cross'``.

    Returns:
        str: ``'torch'``, ``'fft'`` or ``'triton'``; for ``'auto'`` the
        measured (or stored, or heuristic) choice, see
        :func:`slak_mm.ops.dispatch.choose`. Run it with
        :func:`run_multi` / :func:`run_cross`.

    Raises:
        ValueError: If the arguments do not fit, or ``impl`` is unknown.
        RuntimeError: If a forced implementation cannot run on ``x``.
    """
    tensors = list(weights or ())
    if tensors:
        if op == 'cross':
            check_inputs(x, tensors[:2],
                         tensors[2] if len(tensors) > 2 else None)
        else:
            check_inputs(x, tensors)
    return dispatch.choose(op, x, tensors, impl)


def run_multi(impl: str, x: torch.Tensor,
              weights: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, ...]:
    """Run the multi-kernel op with a resolved implementation, checking
    nothing again (for callers that resolved it with :func:`resolve_impl`,
    e.g. to record the choice).

    Args:
        impl (str): A name :func:`resolve_impl` returned for these inputs.
        x (Tensor): Input (N, C, H, W).
        weights (Sequence[Tensor]): Kernels (C, 1, kh_i, kw_i).

    Returns:
        tuple[Tensor]: One (N, C, H, W) output per kernel.
    """
    return tuple(CANDIDATES[impl].multi(x, list(weights)))


def run_cross(impl: str,
              x: torch.Tensor,
              weight_v: torch.Tensor,
              weight_h: torch.Tensor,
              bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Run the cross op with a resolved implementation, checking nothing
    again (see :func:`run_multi`).

    Args:
        impl (str): A name :func:`resolve_impl` returned for these inputs
            (``op='cross'``).
        x (Tensor): Input (N, C, H, W).
        weight_v (Tensor): Tall kernel (C, 1, M, n).
        weight_h (Tensor): Wide kernel (C, 1, n, M).
        bias (Tensor, optional): Per-channel bias (C,).

    Returns:
        Tensor: Output (N, C, H, W).
    """
    return CANDIDATES[impl].cross(x, weight_v, weight_h, bias)


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
    check_inputs(x, weights)
    return run_multi(dispatch.choose('multi', x, weights, impl), x, weights)


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
    check_inputs(x, (weight_v, weight_h), bias)
    impl = dispatch.choose('cross', x, [weight_v, weight_h, bias], impl)
    return run_cross(impl, x, weight_v, weight_h, bias)
