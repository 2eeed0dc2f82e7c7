"""Measuring one key: which implementation is fastest and correct on this
call's inputs (:func:`tune`).

Every candidate ``auto`` may offer for the tensor runs one at a time; each
one's outputs (and, when training, its gradients) are checked against the
reference (:data:`slak_mm.ops.registry.REFERENCE`, the torch conv) at the
dtype's tolerance (:func:`tolerance`); the correct ones are timed
(:func:`slak_mm.ops.timing.time_interleaved`: a few synchronised repeats,
interleaved; the fastest repeat counts, since load from other processes
only ever adds time, and more rounds are run while the two best are within
15%) and the fastest wins.

Measuring never raises into training. A candidate that raises (out of
memory, a launch or compilation error), in its check or while timed, or
computes a wrong result is dropped for that key with one warning that names
it and the implementation used instead. A candidate slower than
:data:`SLOW` times the reference in a timed call is not timed further (its
one time is kept in the record). Each candidate's outputs are dropped
before the next runs, and on CUDA the allocator's cache is emptied after
each check and each failure. If the reference itself fails (out of memory,
say, with the tuning's extra copies alive), the key gets the heuristic,
with one warning, and its record is not to be written to the file.

Nothing here decides whether a key is measured (:mod:`.tuning_state`) nor
stores the result (:mod:`.tuning_cache`). Nothing here imports mm packages.
"""
import functools
import time
import warnings
from typing import Callable, Dict, List, Optional, Sequence

import torch

from .heuristic import heuristic
from .keys import TuningKey, compute_dtype
from .registry import REFERENCE
from .timing import time_interleaved

#: Timed calls per candidate (more, up to :data:`MAX_REPEATS`, while the
#: two fastest are within :data:`CLOSE` of each other).
REPEATS = 3
MAX_REPEATS = 7
CLOSE = 1.15
#: A candidate slower than this times the reference in a timed call is not
#: timed further.
SLOW = 4.0


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    """Max absolute difference over the reference's max magnitude (0 for
    empty tensors).

    Args:
        out (Tensor): A result.
        ref (Tensor): The reference.

    Returns:
        float: The relative error.
    """
    ref = ref.detach().double()
    scale = ref.abs().max().item() if ref.numel() else 0.0
    diff = (out.detach().double() - ref).abs().max().item() \
        if ref.numel() else 0.0
    return diff / (scale or 1.0)


def tolerance(dtype: torch.dtype, device_type: str) -> float:
    """Largest relative error (max abs difference / max abs reference) a
    candidate may have against the torch conv.

    Args:
        dtype (torch.dtype): The compute dtype.
        device_type (str): ``'cpu'``, ``'cuda'``, ...

    Returns:
        float: 1e-9 (fp64), 1e-4 (fp32; 1e-2 on CUDA, where TF32 is the
        default for convs and Triton alike), 1e-2 (fp16), 4e-2 (bf16).
    """
    if dtype == torch.float64:
        return 1e-9
    if dtype == torch.float32:
        return 1e-2 if device_type == 'cuda' else 1e-4
    return 1e-2 if dtype == torch.float16 else 4e-2


def _trial(run: Callable[..., List[torch.Tensor]], x: torch.Tensor,
           tensors: Sequence[Optional[torch.Tensor]], train: bool,
           grads: List[torch.Tensor]) -> List[torch.Tensor]:
    """One call of ``run(x, *tensors)`` on detached copies; when training
    also its backward with ``grads`` (filled with fixed random output
    gradients on the first call): the outputs and all gradients."""
    x = x.detach().requires_grad_(train)
    tensors = [
        None if t is None else t.detach().requires_grad_(train)
        for t in tensors
    ]
    outs = list(run(x, *tensors))
    if not train:
        return outs
    if not grads:
        gen = torch.Generator(x.device).manual_seed(0)
        grads.extend(
            torch.randn(o.shape, generator=gen, device=o.device).to(o.dtype)
            for o in outs)
    torch.autograd.backward(outs, grads)
    return outs + [x.grad] + [t.grad for t in tensors if t is not None]


def _clear_winner(times: Dict[str, List[float]]) -> bool:
    best = sorted(min(t) for t in times.values())
    return len(best) < 2 or best[1] > CLOSE * best[0]


def _free(device: torch.device) -> None:
    # the outputs are gone by now; CUDA's allocator still holds their blocks
    if device.type == 'cuda':
        torch.cuda.empty_cache()


def _why(e: Exception) -> str:
    """An exception in one line (out-of-memory messages run over
    several)."""
    lines = str(e).strip().splitlines()
    return f'{type(e).__name__}: {lines[0] if lines else ""}'[:300]


def tune(key: TuningKey, x: torch.Tensor,
         tensors: Sequence[Optional[torch.Tensor]],
         runs: Dict[str, Callable[..., List[torch.Tensor]]]) -> dict:
    """Measure ``runs`` (name -> function of ``(x, *tensors)`` returning
    the outputs; :data:`REFERENCE` among them) on this call's inputs, one
    at a time, and choose the fastest correct one. Never raises: a failing
    candidate is dropped with one warning, a failing reference gives the
    heuristic's choice.

    Args:
        key (TuningKey): The call's key (for the mode and the warnings).
        x (Tensor): The input.
        tensors (Sequence[Tensor]): Weights (and bias or None).
        runs (dict): The candidates.

    Returns:
        dict: The key's record (:mod:`.tuning_cache`): ``choice``, ``how``
        (``'measured'``, or ``'heuristic: ...'`` when the reference
        failed), ``times`` (name -> best seconds per call), ``failures``
        (name -> why) and ``seconds`` (how long this took).
    """
    start = time.perf_counter()
    train = key.mode == 'train'
    tol = tolerance(compute_dtype(x), x.device.type)
    grads = []
    failures = {}
    alive = []
    try:
        ref = _trial(runs[REFERENCE], x, tensors, train, grads)
        alive.append(REFERENCE)
    except Exception as e:  # no reference: nothing can be checked
        failures[REFERENCE] = _why(e)
        ref = None
    for name, run in runs.items():
        if name == REFERENCE or ref is None:
            continue
        try:
            got = _trial(run, x, tensors, train, grads)  # also the warm-up
            errors = [relative_error(a, b) for a, b in zip(got, ref)]
            if len(got) != len(ref) or max(errors, default=0.0) > tol:
                failures[name] = (f'wrong result: relative error '
                                  f'{max(errors, default=float("nan")):.2e}'
                                  f' > {tol:.0e}')
            else:
                alive.append(name)
            del got
        except Exception as e:  # any failure drops the candidate
            failures[name] = _why(e)
        _free(x.device)
    del ref

    def guarded(name):
        call = functools.partial(_trial, runs[name], x, tensors, train, grads)

        def run():
            try:
                call()
            except Exception as e:  # e.g. out of memory while timed
                failures[name] = _why(e)
                _free(x.device)

        return run

    def enough(times):  # a failure's quick sample says nothing
        return _clear_winner({
            n: t
            for n, t in times.items() if n not in failures
        })

    def give_up(name, times):
        return (name in failures or REFERENCE in failures
                or min(times[name]) > SLOW * min(times[REFERENCE]))

    times = time_interleaved({name: guarded(name)
                              for name in alive},
                             rounds=REPEATS,
                             max_rounds=MAX_REPEATS,
                             enough=enough,
                             device=x.device,
                             give_up=give_up) if alive else {}
    best = {
        name: min(samples)
        for name, samples in times.items() if name not in failures
    }
    if REFERENCE in failures:
        choice = heuristic(key)
        how = f'heuristic: the reference {REFERENCE!r} failed'
    else:
        choice = min(best, key=best.get)
        how = 'measured'
    for name, why in failures.items():
        warnings.warn(f'slak_mm: depthwise conv implementation {name!r} '
                      f'failed for {key.cache_name()} ({why}); '
                      f'using {choice!r} there')
    return dict(
        choice=choice,
        how=how,
        times=best,
        failures=failures,
        seconds=time.perf_counter() - start)
