"""What the benchmarks share: the medians of the one timing loop and the
environment the numbers were taken on. Torch only (no mm packages).
"""
import platform
from typing import Callable, Dict, Optional

import torch

from slak_mm.ops.timing import median, time_interleaved

__all__ = ['environment', 'time_medians']


def time_medians(fns: Dict[str, Callable[[], object]],
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
    times = time_interleaved(fns, rounds, min_block_time=min_round_time)
    return {name: median(t) for name, t in times.items()}


def environment() -> Dict[str, Optional[str]]:
    """Versions and hardware the numbers were taken on.

    Returns:
        dict: torch, python, cpu, threads, cuda, gpu, cudnn and triton
        (None where absent).
    """
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
