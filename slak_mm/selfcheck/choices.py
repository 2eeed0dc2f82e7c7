"""What ``impl='auto'`` chooses on this machine, and what its first call
costs.

For each key (:func:`choice_keys`: the shapes, dtypes and modes a SLaK-T
training or inference run meets) the dispatcher's memory is cleared
(:func:`slak_mm.ops.clear_memory`) and the op is called once
through ``auto``, forward and, for training keys, backward: that first
call pays the measurement (every candidate's check and timing, and on a
GPU Triton's compilation), its time is the stall a training run sees at
its first step. A second call gives the time without it. On CUDA the
peak memory of the first call above what was allocated before it is
reported too (on the CPU it is not measured).

The dispatcher's record of each key (:func:`slak_mm.ops.tuning_record`:
``measured`` with every candidate's times, or ``heuristic`` and why) gives
the row's ``how`` and times; the measured ones land in the tuning cache
file the self-check points the dispatcher to (the ops' ``cache`` setting,
a temporary file for the run).
"""
import time
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from slak_mm.benchmark.op import SLAK_T_DIMS, slak_stage_shapes
from slak_mm.ops import clear_memory, resolve_impl, tuning_key, tuning_record
from slak_mm.ops.timing import sync
from .correctness import KERNELS_51, MODES, Case, run_op

__all__ = ['choice_keys', 'measure_choices']


def choice_keys(quick: bool) -> List[Tuple[Case, str, bool]]:
    """The calls whose choice is measured: ``(case, mode, train)``.

    Full: SLaK-T's four stages training at 512x512 (batch 2, fp32 and
    bf16 autocast) and at 800x1216 (batch 2, bf16 autocast), and their
    deploy (``cross``) form at inference, 512x512, batch 1, fp32. Quick:
    one stage-like shape above the dispatcher's smallest timed work (16
    channels, 64x64, kernel 51), training and inference, and one below it
    (the heuristic's).

    Args:
        quick (bool): The CPU / CI set.

    Returns:
        list[tuple]: ``(Case, mode name in MODES, training)``.
    """
    if quick:
        return [(Case('multi', 1, 16, 64, 64, 51), 'fp32', True),
                (Case('cross', 1, 16, 64, 64, 51), 'fp32', False),
                (Case('multi', 1, 8, 32, 32, 13), 'fp32', True)]

    def stages(op, size, batch):
        return [
            Case(op, batch, s['channels'], s['height'], s['width'],
                 s['kernel'])
            for s in slak_stage_shapes(size, SLAK_T_DIMS, KERNELS_51)
        ]

    return ([(c, 'fp32', True) for c in stages('multi', 512, 2)] +
            [(c, 'autocast-bf16', True) for c in stages('multi', 512, 2)] +
            [(c, 'autocast-bf16', True)
             for c in stages('multi', (800, 1216), 2)] +
            [(c, 'fp32', False) for c in stages('cross', 512, 1)])


def _inputs(case: Case, mode: str, train: bool,
            device: torch.device) -> Tuple[torch.Tensor, list]:
    """Random channels-last inputs (the layout the backbone runs)."""
    dtype = MODES[mode][0]
    x = torch.randn(
        case.batch, case.channels, case.height, case.width,
        device=device).to(dtype).contiguous(
            memory_format=torch.channels_last).requires_grad_(train)
    tensors = [(torch.randn(case.channels, 1, kh, kw, device=device) /
                (kh * kw)**0.5).to(dtype).requires_grad_(train)
               for kh, kw in case.kernel_shapes()]
    if case.op == 'cross':
        tensors.append(
            torch.zeros(case.channels, device=device,
                        dtype=dtype).requires_grad_(train))
    return x, tensors


def _timed_call(case: Case, x: torch.Tensor, tensors: list, train: bool,
                autocast: Optional[torch.dtype]) -> float:
    """Seconds of one ``auto`` call (forward, and backward if training)."""
    sync(x.device)
    start = time.perf_counter()
    with torch.autocast(
            x.device.type, dtype=autocast, enabled=autocast is not None):
        outs = run_op(case.op, resolve_impl(x, 'auto', tensors, case.op), x,
                      tensors)
    if train:
        sum(o.float().mean() for o in outs).backward()
    sync(x.device)
    return time.perf_counter() - start


def measure_choices(keys: Sequence[Tuple[Case, str, bool]],
                    device: torch.device) -> List[dict]:
    """Clear the dispatcher's memory and make each key's first ``auto``
    call, recording what it chose and what that cost.

    This is the pass to run again to re-measure the choices (with the
    cache file pointed where they should be stored).

    Args:
        keys (Sequence[tuple]): From :func:`choice_keys`.
        device (torch.device): Where to run.

    Returns:
        list[dict]: Per key: ``key`` (the cache's key string), ``op``,
        ``shape``, ``dtype`` (the mode), ``mode`` (``train`` / ``infer``),
        ``choice``, ``how`` (``measured`` or ``heuristic``), ``times``
        (name -> seconds from the stored record, None where it holds only
        the choice), ``first_call_ms``, ``next_call_ms`` and
        ``peak_mib`` (CUDA: memory the first call allocated at its peak
        above what was allocated before; None on the CPU).
    """
    rows = []
    for case, mode, train in keys:
        autocast = MODES[mode][1]
        x, tensors = _inputs(case, mode, train, device)
        clear_memory()
        if device.type == 'cuda':
            torch.cuda.reset_peak_memory_stats(device)
            before = torch.cuda.memory_allocated(device)
        first = _timed_call(case, x, tensors, train, autocast)
        peak = ((torch.cuda.max_memory_allocated(device) - before) /
                2**20 if device.type == 'cuda' else None)
        following = _timed_call(case, x, tensors, train, autocast)
        with torch.autocast(
                device.type, dtype=autocast, enabled=autocast is not None):
            key = tuning_key(case.op, x,
                             tensors[:3 if case.op == 'multi' else 2])
            choice = resolve_impl(x, 'auto', tensors, case.op)
        record = tuning_record(key) or {}
        times: Optional[Dict[str, float]] = record.get('times')
        rows.append(
            dict(
                key=key.cache_name(),
                op=case.op,
                shape=str(case),
                dtype=mode,
                mode=key.mode,
                choice=choice,
                how=record.get('how', 'measured').split(':')[0],
                times=times,
                first_call_ms=first * 1e3,
                next_call_ms=following * 1e3,
                peak_mib=peak))
    return rows
