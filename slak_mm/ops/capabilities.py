"""What each depthwise conv implementation can run: the facts that the
implementations register with, that the dispatcher checks and that the
backbone's argument checks quote. Nothing here imports mm packages.
"""
from typing import Sequence

import torch

from . import settings
from .settings import TRITON_INTERPRET_ENV

#: Largest kernel side of the Triton kernels (the tile halo and the
#: Toeplitz product are sized for it; tested up to 63). The torch and FFT
#: implementations take any odd size; the SLaK backbone still refuses larger
#: kernels (the paper goes up to 61), so that a config runs with every
#: implementation, Triton included.
MAX_KERNEL = 63
#: Input dtypes the Triton kernels support (float64, e.g. for gradcheck,
#: never goes there).
TRITON_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

#: What each implementation needs, for the error of a forced one that cannot
#: run.
TORCH_NEEDS = 'torch runs everything'
FFT_NEEDS = 'FFT needs a floating-point input'
TRITON_NEEDS = (
    f'Triton needs the triton package and a CUDA tensor, or '
    f'{TRITON_INTERPRET_ENV}=1 for CPU tensors, of dtype float32, float16 or '
    f'bfloat16, with kernel sides <= {MAX_KERNEL}')


def torch_runs(x: torch.Tensor, weights: Sequence[torch.Tensor]) -> bool:
    """``F.conv2d`` runs every input (always True).

    Args:
        x (Tensor): The input.
        weights (Sequence[Tensor]): The kernels.

    Returns:
        bool: True.
    """
    return True


def fft_runs(x: torch.Tensor, weights: Sequence[torch.Tensor]) -> bool:
    """Whether the FFT implementation runs ``x``: floating-point inputs, any
    device, any kernel size.

    Args:
        x (Tensor): The input.
        weights (Sequence[Tensor]): The kernels.

    Returns:
        bool: Whether it can run.
    """
    return x.is_floating_point()


def triton_runs(x: torch.Tensor, weights: Sequence[torch.Tensor]) -> bool:
    """Whether the Triton kernels run ``x`` with ``weights`` (given that
    triton imports): CUDA tensors, or CPU tensors under
    ``TRITON_INTERPRET=1`` (the ``triton_interpret`` setting);
    :data:`TRITON_DTYPES`; sides up to
    :data:`MAX_KERNEL`.

    Args:
        x (Tensor): The input.
        weights (Sequence[Tensor]): The kernels.

    Returns:
        bool: Whether they can run.
    """
    return ((x.is_cuda or settings.current().triton_interpret)
            and x.dtype in TRITON_DTYPES
            and all(max(w.shape[-2:]) <= MAX_KERNEL for w in weights))


def triton_offered_to_auto(x: torch.Tensor) -> bool:
    """Whether ``impl='auto'`` may choose Triton for ``x``: CUDA tensors only
    (the interpreter runs CPU tensors, but only when forced: it is a test
    mode, far too slow to measure).

    Args:
        x (Tensor): The input.

    Returns:
        bool: Whether ``auto`` may time it.
    """
    return x.is_cuda
