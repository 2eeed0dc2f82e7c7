"""Timing of the large-kernel depthwise convs, every implementation side
by side (``tools/benchmark.py op``).

Torch (and Triton) only, so it runs on a bare GPU box. Implementations are
timed interleaved (:func:`slak_mm.benchmark.timing.time_medians`), so that
load from other processes hits all of them alike; every ratio is taken
between timings of the same run.
"""
from typing import List, Optional, Sequence, Union

import torch

from slak_mm.ops import (auto_candidates, multi_depthwise_conv2d,
                         relative_error, resolve_impl, to_preferred_layout)
from .timing import time_medians

__all__ = [
    'DTYPES', 'SLAK_T_DIMS', 'SLAK_T_KERNELS', 'benchmark_stage',
    'slak_stage_shapes'
]

#: Stage channels (width x1.3) and kernel sides of SLaK-T.
SLAK_T_DIMS = (124, 249, 499, 998)
SLAK_T_KERNELS = (51, 49, 47, 13)
DTYPES = {'fp32': torch.float32, 'fp16': torch.float16, 'bf16': torch.bfloat16}


def slak_stage_shapes(size: Union[int, Sequence[int]] = 512,
                      dims: Sequence[int] = SLAK_T_DIMS,
                      kernels: Sequence[int] = SLAK_T_KERNELS) -> List[dict]:
    """The large-kernel shapes of each stage for an input of ``size``.

    Args:
        size (int | Sequence[int]): Input side, or ``(H, W)``.
        dims (Sequence[int]): Channels per stage. Default: SLaK-T's.
        kernels (Sequence[int]): Large kernel side per stage. Default:
            SLaK-T's.

    Returns:
        list[dict]: Per stage ``channels``, ``height``, ``width`` (the map
        at stride 4, 8, 16, 32) and ``kernel``.
    """
    height, width = (size, size) if isinstance(size, int) else size
    return [
        dict(
            channels=c,
            height=height // 2**(i + 2),
            width=width // 2**(i + 2),
            kernel=m) for i, (c, m) in enumerate(zip(dims, kernels))
    ]


def benchmark_stage(channels: int,
                    height: int,
                    width: int,
                    kernel: int,
                    small: int = 5,
                    batch: int = 8,
                    dtype: str = 'fp32',
                    backward: bool = False,
                    device: str = 'cuda',
                    impls: Optional[Sequence[str]] = None,
                    rounds: int = 5,
                    min_round_time: float = 0.2) -> dict:
    """Time SLaK's three branch convs of one stage with every
    implementation and with ``impl='auto'``, as the backbone calls them
    (:func:`slak_mm.ops.multi_depthwise_conv2d` on the layout the device
    prefers: channels-last on the CPU).

    Args:
        channels, height, width (int): Input shape per image.
        kernel (int): Large side ``M``; the branches are M x small,
            small x M and small x small.
        small (int): Short side. Default: 5.
        batch (int): Batch size. Default: 8.
        dtype (str): ``'fp32'``, ``'fp16'`` or ``'bf16'``.
        backward (bool): Time forward + backward (input and weight
            gradients) instead of forward only.
        device (str): ``'cuda'`` or ``'cpu'``.
        impls (Sequence[str], optional): Implementations to time besides
            ``auto``. Default: those auto chooses from
            (:func:`slak_mm.ops.auto_candidates`).
        rounds (int): Interleaved rounds (median).
        min_round_time (float): Seconds per timed block.

    Returns:
        dict: Shape and settings; ``ms`` (name -> time, ``auto``
        included), ``auto_impl`` (what auto chose), ``best_impl``,
        ``speedup`` (torch / auto), ``auto_vs_best`` (auto / best single
        implementation), ``max_rel_diff`` (name -> forward difference to
        torch) and the forward ``gflop``.
    """
    torch.manual_seed(0)
    dt = DTYPES[dtype]
    shapes = [(kernel, small), (small, kernel), (small, small)]
    weights = [(torch.randn(channels, 1, kh, kw, device=device) /
                (kh * kw)**0.5).to(dt).requires_grad_(backward)
               for kh, kw in shapes]
    x = to_preferred_layout(
        torch.randn(batch, channels, height, width, device=device,
                    dtype=dt)).requires_grad_(backward)
    grads = [torch.randn_like(x) for _ in shapes] if backward else None
    names = list(impls or auto_candidates(x, weights))

    def run(impl):

        def step():
            outs = multi_depthwise_conv2d(x, weights, impl=impl)
            if backward:
                torch.autograd.backward(outs, grads)
            return outs

        return step

    with torch.set_grad_enabled(backward):
        auto_impl = resolve_impl(x, None, weights)  # tunes now, untimed
        ref = run('torch')()
        errors = {}
        for name in names:
            out = run(name)()
            errors[name] = max(relative_error(o, r) for o, r in zip(out, ref))
        ms = {
            name: t * 1e3
            for name, t in time_medians(
                {
                    n: run(None if n == 'auto' else n)
                    for n in names + ['auto']
                }, rounds, min_round_time).items()
        }
    best = min(names, key=ms.get)
    taps = kernel * small * 2 + small * small
    return dict(
        channels=channels,
        height=height,
        width=width,
        kernel=kernel,
        small=small,
        batch=batch,
        dtype=dtype,
        mode='fwd+bwd' if backward else 'fwd',
        device=device,
        ms=ms,
        auto_impl=auto_impl,
        best_impl=best,
        speedup=ms['torch'] / ms['auto'],
        auto_vs_best=ms['auto'] / ms[best],
        max_rel_diff=errors,
        gflop=2 * batch * channels * height * width * taps / 1e9)
