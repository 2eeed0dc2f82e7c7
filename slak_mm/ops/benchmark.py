"""Timing of the large-kernel depthwise convs against ``nn.Conv2d``.

Torch (and Triton) only, so it runs on a bare GPU box. Times come from
``torch.utils.benchmark.Timer`` (CUDA-synchronised, median of adaptive
runs); every ratio is taken between timings of the same run.
"""
import platform
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
from torch.utils import benchmark as torch_benchmark

from .depthwise_conv import multi_depthwise_conv2d, resolve_impl
from .memory_format import to_preferred_layout

#: Stage channels (width x1.3) and kernel sides of SLaK-T.
SLAK_T_DIMS = (124, 249, 499, 998)
SLAK_T_KERNELS = (51, 49, 47, 13)
DTYPES = {'fp32': torch.float32, 'fp16': torch.float16, 'bf16': torch.bfloat16}


def time_fn(fn, min_run_time: float = 1.0) -> float:
    """Median seconds per call of ``fn`` (CUDA work synchronised)."""
    fn()  # warm-up: compilation, autotuning, allocator
    timer = torch_benchmark.Timer(stmt='fn()', globals={'fn': fn})
    return timer.blocked_autorange(min_run_time=min_run_time).median


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


def slak_stage_shapes(size: int = 512,
                      dims: Sequence[int] = SLAK_T_DIMS,
                      kernels: Sequence[int] = SLAK_T_KERNELS) -> List[dict]:
    """``(C, H, W, M)`` of each stage's large kernel for a square input."""
    return [
        dict(
            channels=c,
            height=size // 2**(i + 2),
            width=size // 2**(i + 2),
            kernel=m) for i, (c, m) in enumerate(zip(dims, kernels))
    ]


def _branch_convs(channels: int, kernel: int, small: int) -> nn.ModuleList:
    shapes = [(kernel, small), (small, kernel), (small, small)]
    return nn.ModuleList(
        nn.Conv2d(
            channels,
            channels,
            s,
            padding=(s[0] // 2, s[1] // 2),
            groups=channels,
            bias=False) for s in shapes)


def benchmark_stage(channels: int,
                    height: int,
                    width: int,
                    kernel: int,
                    small: int = 5,
                    batch: int = 8,
                    dtype: str = 'fp32',
                    backward: bool = False,
                    device: str = 'cuda',
                    impl: Optional[str] = None,
                    min_run_time: float = 1.0) -> dict:
    """Time SLaK's three branch convs of one stage: ``nn.Conv2d`` on NCHW
    (the baseline) against :func:`slak_mm.ops.multi_depthwise_conv2d` as
    the backbone calls it (Triton on CUDA; channels-last torch on the CPU).

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
        impl (str, optional): Passed to ``multi_depthwise_conv2d``.
        min_run_time (float): Seconds of timing per variant.

    Returns:
        dict: Shape, ``baseline_ms``, ``ours_ms``, ``speedup``
        (baseline / ours), ``impl``, forward ``gflop`` and the relative max
        difference of the forward outputs.
    """
    torch.manual_seed(0)
    dt = DTYPES[dtype]
    convs = _branch_convs(channels, kernel, small).to(device, dt)
    weights = [c.weight for c in convs]
    x = torch.randn(
        batch,
        channels,
        height,
        width,
        device=device,
        dtype=dt,
        requires_grad=backward)
    x_ours = to_preferred_layout(x.detach()).requires_grad_(backward)
    grads = [torch.randn_like(x) for _ in convs] if backward else None

    def baseline():
        outs = [conv(x) for conv in convs]
        if backward:
            torch.autograd.backward(outs, grads)
        return outs

    def ours():
        outs = multi_depthwise_conv2d(x_ours, weights, impl=impl)
        if backward:
            torch.autograd.backward(outs, grads)
        return outs

    with torch.set_grad_enabled(backward):
        ref, out = baseline(), ours()
        error = max(
            float((a.detach().float() - b.detach().float()).abs().max() /
                  a.detach().float().abs().max().clamp_min(1e-12))
            for a, b in zip(ref, out))
        base_s = time_fn(baseline, min_run_time)
        ours_s = time_fn(ours, min_run_time)
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
        impl=resolve_impl(x_ours, impl),
        baseline_ms=base_s * 1e3,
        ours_ms=ours_s * 1e3,
        speedup=base_s / ours_s,
        gflop=2 * batch * channels * height * width * taps / 1e9,
        max_rel_diff=error)
