"""Timing of the large-kernel depthwise convs, every implementation side
by side.

Torch (and Triton) only, so it runs on a bare GPU box. Implementations are
timed interleaved (round after round, each one once per round, median per
implementation), so that load from other processes hits all of them alike;
every ratio is taken between timings of the same run.
"""
import platform
import time
from typing import Callable, Dict, List, Optional, Sequence, Union

import torch

from . import dispatch
from .depthwise_conv import multi_depthwise_conv2d, resolve_impl
from .memory_format import to_preferred_layout

#: Stage channels (width x1.3) and kernel sides of SLaK-T.
SLAK_T_DIMS = (124, 249, 499, 998)
SLAK_T_KERNELS = (51, 49, 47, 13)
DTYPES = {'fp32': torch.float32, 'fp16': torch.float16, 'bf16': torch.bfloat16}


def environment() -> Dict[str, Optional[str]]:
    """Versions and hardware the numbers were taken on."""
    info = {
        'torch': torch.__version__,
        'python': platform.python_version(),
        'cpu': platform.processor() or platform.machine(),
        'threads': str(torch.get_num_threads()),
        'cuda': torch.version.cuda,
        'gpu': None,
        'cudnn': None,
        'triton': None,
    }
    if torch.cuda.is_available():
        info['gpu'] = torch.cuda.get_device_name()
        info['cudnn'] = str(torch.backends.cudnn.version())
    try:
        import triton
        info['triton'] = triton.__version__
    except ImportError:
        pass
    return info


def slak_stage_shapes(size: Union[int, Sequence[int]] = 512,
                      dims: Sequence[int] = SLAK_T_DIMS,
                      kernels: Sequence[int] = SLAK_T_KERNELS) -> List[dict]:
    """``(C, H, W, M)`` of each stage's large kernel for an input of
    ``size`` (one side, or ``(H, W)``)."""
    height, width = (size, size) if isinstance(size, int) else size
    return [
        dict(
            channels=c,
            height=height // 2**(i + 2),
            width=width // 2**(i + 2),
            kernel=m) for i, (c, m) in enumerate(zip(dims, kernels))
    ]


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def time_interleaved(fns: Dict[str, Callable[[], object]],
                     rounds: int = 5,
                     min_round_time: float = 0.2) -> Dict[str, float]:
    """Median seconds per call of each function, measured interleaved.

    Each function is warmed up once (compilation, tuning, allocator), then
    every round times each function once, as a block of calls long enough
    to take about ``min_round_time`` (CUDA work synchronised).

    Args:
        fns (dict): Name -> function of no arguments.
        rounds (int): Rounds; the median over them is reported.
        min_round_time (float): Seconds a block of calls should take.

    Returns:
        dict: Name -> median seconds per call.
    """
    number = {}
    for name, fn in fns.items():
        _sync()
        start = time.perf_counter()
        fn()
        _sync()
        once = time.perf_counter() - start
        number[name] = max(1, int(min_round_time / max(once, 1e-6)))
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            _sync()
            start = time.perf_counter()
            for _ in range(number[name]):
                fn()
            _sync()
            times[name].append((time.perf_counter() - start) / number[name])
    return {name: sorted(t)[len(t) // 2] for name, t in times.items()}


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
            (:func:`slak_mm.ops.dispatch.auto_candidates`).
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
    names = list(impls or dispatch.auto_candidates(x))

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
            errors[name] = max(
                dispatch.relative_error(o, r) for o, r in zip(out, ref))
        ms = {
            name: t * 1e3
            for name, t in time_interleaved(
                {n: run(None if n == 'auto' else n)
                 for n in names + ['auto']}, rounds, min_round_time).items()
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
