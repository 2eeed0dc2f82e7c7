"""The one timing loop of slak_mm: the dispatcher's measurement
(``impl='auto'``) and the benchmarks (:mod:`slak_mm.benchmark`) both use
:func:`time_interleaved`. Nothing here imports mm packages.

Candidates are timed interleaved, round after round, each once per round,
so that load from other processes hits all of them alike. The loop returns
every round's time; the caller picks the statistic: the dispatcher keeps
the fastest round (load only ever adds time), the benchmarks report the
median.
"""
import time
from typing import Callable, Dict, List, Optional

import torch

__all__ = ['median', 'sync', 'time_interleaved']


def sync(device: Optional[torch.device] = None) -> None:
    """Wait for the CUDA work queued on ``device`` (nothing for other
    devices).

    Args:
        device (torch.device, optional): The device timed; None: the current
            CUDA device when CUDA is available.
    """
    if device is None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
    elif device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_interleaved(
    fns: Dict[str, Callable[[], object]],
    rounds: int = 5,
    min_block_time: float = 0.0,
    max_rounds: Optional[int] = None,
    enough: Optional[Callable[[Dict[str, List[float]]], bool]] = None,
    device: Optional[torch.device] = None,
    give_up: Optional[Callable[[str, Dict[str, List[float]]], bool]] = None
) -> Dict[str, List[float]]:
    """Seconds per call of each function, one sample per round.

    With ``min_block_time > 0`` each function is first called once, untimed
    in the result (its warm-up: compilation, tuning, allocator), and each
    sample is then a block of calls that takes about ``min_block_time``;
    with 0 every sample is one call (warm the functions up beforehand).

    Args:
        fns (dict): Name -> function of no arguments.
        rounds (int): Rounds to run at least.
        min_block_time (float): Seconds one timed block of calls should
            take. Default: 0 (one call per sample, no warm-up).
        max_rounds (int, optional): Rounds to run at most; more than
            ``rounds`` are run while ``enough(times)`` is False. Default:
            ``rounds``.
        enough (Callable, optional): Given the samples so far, whether to
            stop after ``rounds``. Default: always.
        device (torch.device, optional): Synchronised around each block;
            see :func:`sync`.
        give_up (Callable, optional): ``give_up(name, times)``, asked after
            each of ``name``'s samples: True leaves ``name`` out of the
            later rounds (the dispatcher's too slow or failed candidates).
            Default: never.

    Returns:
        dict: Name -> list of seconds per call, one per round it ran in.
    """
    number = {name: 1 for name in fns}
    if min_block_time > 0:
        for name, fn in fns.items():
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            once = time.perf_counter() - start
            number[name] = max(1, int(min_block_time / max(once, 1e-6)))
    max_rounds = max(rounds, max_rounds or rounds)
    times = {name: [] for name in fns}
    running = dict(fns)
    for done in range(1, max_rounds + 1):
        for name, fn in list(running.items()):
            sync(device)
            start = time.perf_counter()
            for _ in range(number[name]):
                fn()
            sync(device)
            times[name].append((time.perf_counter() - start) / number[name])
            if give_up is not None and give_up(name, times):
                del running[name]
        if not running or (done >= rounds and
                           (enough is None or enough(times))):
            break
    return times


def median(samples: List[float]) -> float:
    """The median of one function's samples (the upper one of an even
    count, as the benchmarks have always reported it).

    Args:
        samples (list[float]): Seconds per call.

    Returns:
        float: The median.
    """
    return sorted(samples)[len(samples) // 2]
