"""This process's tuning: whether a new key may be measured, how many keys
were measured and how long that stalled their calls, and whether stored
choices are measured again.

A new key is measured unless tuning is off (``tune=False``,
``$SLAK_MM_DWCONV_TUNE=0``), several processes train together, the
process has tuned ``max_tuned`` keys already (default 32,
``$SLAK_MM_DWCONV_MAX_TUNED``) or the call has little work (below
:data:`MIN_TUNE_WORK` multiply-adds: not worth timing); then it gets the
heuristic (:func:`why_not_measured` says why).

Several processes training together (``torch.distributed`` initialised with
a world size > 1, or a launcher's ``$WORLD_SIZE`` > 1 before that) measure
nothing: each rank uses the stored choice (memory, then the file), else the
heuristic, so all ranks choose alike without talking. Ranks measuring alone
would pick differently (timings differ per rank: different numerics per
rank, the stall paid N times, N writers of one file), and rank 0 measuring
and broadcasting needs a collective that every rank joins at the same call,
which nothing guarantees: detection ranks see different image sizes and so
meet new keys at different calls, and some code runs the model on one rank
only (visualisation, FLOP counting); a collective per new key could hang
training. Fill the file beforehand in one process with the run's batch per
GPU, dtype and image sizes (``tools/benchmark.py model CONFIG --backward
...``, ``docs/kernels.md``).

The time the measurements stalled the calls is reported once per process,
in one warning (keys tuned, seconds in all): when the count of tuned keys
reaches its cap, else when the process exits; :func:`tuning_stall` returns
the same numbers at any time.

A choice measured under load (CPU timing while DataLoader workers start is
the known bad moment) is measured again with ``retune=True``
(``$SLAK_MM_DWCONV_RETUNE=1``) or :func:`retune`: the file's records are
ignored, each key is measured once more in this process and its new record
replaces the old one (not under DDP, which measures nothing).

The settings are read through :func:`slak_mm.ops.settings.current`. Nothing
here imports mm packages.
"""
import atexit
import warnings
from typing import Dict, Optional

from slak_mm.utils.dist import rank_and_world
from . import settings, tuning_cache

#: Multiply-adds (N C H W x kernel taps) below which nothing is timed.
MIN_TUNE_WORK = 1 << 24

_tuned = 0  # keys tuned by this process
_stall = 0.0  # seconds their tuning took
_stall_reported = False
_retune_all = False  # retune() was called


def retuning() -> bool:
    """Whether the file's records are to be measured again (never under
    DDP, which measures nothing).

    Returns:
        bool: :func:`retune` was called or the ``retune`` setting is on,
        and this process trains alone.
    """
    return ((_retune_all or settings.current().retune)
            and rank_and_world()[1] == 1)


def why_not_measured(work: int) -> Optional[str]:
    """Why a new key gets the heuristic instead of a measurement.

    Args:
        work (int): The call's multiply-adds.

    Returns:
        str | None: The reason (for the key's record), or None: measure it.
    """
    current = settings.current()
    if not current.tune:
        return (f'${settings.TUNE_ENV}=0'
                if 'tune' in current.from_environment else 'tune=False')
    world = rank_and_world()[1]
    if world > 1:
        return f'{world} processes train together; they measure nothing'
    if _tuned >= current.max_tuned:
        return (f'{_tuned} keys tuned already '
                f'({current.source("max_tuned")})')
    if work < MIN_TUNE_WORK:
        return 'too little work to time'
    return None


def count(seconds: float) -> None:
    """Count one measured key and the seconds it stalled its call; warn
    about the stall once the process reaches its cap of tuned keys.

    Args:
        seconds (float): How long the measurement took.
    """
    global _tuned, _stall
    _tuned += 1
    _stall += seconds
    if _tuned >= settings.current().max_tuned:
        _report_stall()


def _report_stall() -> None:
    """Warn once per process how long tuning stalled the calls (at the cap
    of tuned keys, else at exit)."""
    global _stall_reported
    if not _tuned or _stall_reported:
        return
    _stall_reported = True
    current = settings.current()
    warnings.warn(
        f'slak_mm: impl="auto" measured the depthwise conv implementations '
        f'for {_tuned} new shape(s) in this process, stalling their first '
        f'calls {_stall:.1f} s in all (at most {current.max_tuned} '
        f'shapes per process: ${settings.MAX_TUNED_ENV}; '
        f'${settings.TUNE_ENV}=0 or slak_mm.ops.use(tune=False) turns '
        f'measuring off); the choices are stored in {current.cache}')


atexit.register(_report_stall)


def tuning_stall() -> Dict[str, float]:
    """How much this process has tuned so far.

    Returns:
        dict: ``keys`` (number of keys measured) and ``seconds`` (the time
        their measurement took, in all).
    """
    return dict(keys=_tuned, seconds=_stall)


def retune() -> None:
    """Measure every key again in this process, as ``retune=True``
    (``$SLAK_MM_DWCONV_RETUNE=1``) does: this process's choices are
    forgotten, the file's are ignored from now on, and each key is measured
    on its next call (within the cap of tuned keys) and its new record
    replaces the file's. Under DDP nothing is measured, and the stored
    choices stay in use.
    """
    global _retune_all
    tuning_cache.clear()
    _retune_all = True


def clear_memory() -> None:
    """Forget this process's choices and the file's entries read so far
    (the next call reads the file again), its count of tuned keys, their
    stall (reported or not) and :func:`retune`; for tests and
    benchmarks."""
    global _tuned, _stall, _stall_reported, _retune_all
    tuning_cache.clear()
    _tuned, _stall, _stall_reported, _retune_all = 0, 0.0, False, False
