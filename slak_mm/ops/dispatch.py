"""Which depthwise conv implementation runs a call: forced, stored,
measured or guessed (:func:`choose`).

- forced (``impl='torch' | 'fft' | 'triton'``, the call's argument or the
  ``impl`` setting, :mod:`.settings`): that one, or an error naming what
  it needs;
- ``impl='auto'`` (the default): this process's choice for the call's
  :class:`~slak_mm.ops.keys.TuningKey`, else the file's
  (:mod:`.tuning_cache`), else a measurement of every candidate ``auto``
  may offer for the tensor (:func:`slak_mm.ops.registry.auto_candidates`:
  ``torch`` everywhere, ``fft`` for floating-point inputs, ``triton`` for
  CUDA tensors only; :func:`slak_mm.ops.tuning.tune`) when this process may
  measure it (:func:`slak_mm.ops.tuning_state.why_not_measured`), else the
  heuristic (:func:`slak_mm.ops.heuristic.heuristic`).

While ``torch.compile`` traces, nothing is timed: the stored choice or the
heuristic is used; ``torch.jit`` tracing (FLOP counters) always gets
torch. Nothing here imports mm packages.
"""
from typing import Optional, Sequence

import torch

from . import settings, tuning, tuning_cache, tuning_state
from .heuristic import heuristic
from .keys import TuningKey, tuning_key
from .registry import CANDIDATES, REFERENCE, auto_candidates


@torch.compiler.assume_constant_result
def _choice_while_compiling(fields: tuple) -> str:
    # runs once, eagerly, when torch.compile traces; the result is baked in
    # (every implementation is a custom op or plain torch ops: no breaks).
    # A plain tuple: dynamo hands a NamedTuple over broken
    key = TuningKey(*fields)
    choice = tuning_cache.lookup(key.cache_name())
    return choice if choice in CANDIDATES else heuristic(key)


def _missing_here(impl: str) -> Optional[str]:
    """What this machine lacks to run ``impl`` at all, or None."""
    if impl not in CANDIDATES:
        return f'{impl} is not installed or failed to import'
    if impl == 'triton' and not (torch.cuda.is_available()
                                 or settings.current().triton_interpret):
        return (f'no CUDA GPU (torch.cuda.is_available() is False) for '
                f'Triton, and {settings.TRITON_INTERPRET_ENV} is not 1 (its '
                f'CPU interpreter, a test mode)')
    return None


def _setting_error(missing: str) -> ValueError:
    """The error for an ``impl`` setting that cannot run here (a user
    setting, so one line naming it, not a traceback)."""
    current = settings.current()
    others = ', '.join(i for i in settings.IMPLS if i != current.impl)
    if 'impl' in current.from_environment:
        return ValueError(
            f'{settings.IMPL_ENV}={current.impl} cannot run here: {missing}; '
            f'set {settings.IMPL_ENV} to one of {others} (auto when unset)')
    return ValueError(f'the slak_mm.ops setting impl={current.impl!r} '
                      f'cannot run here: {missing}; use one of {others}')


def check_impl_env() -> None:
    """Refuse, before a run, ops settings this machine cannot run: an
    unknown value in the environment, or ``triton`` without its GPU path
    (no CUDA GPU and no ``TRITON_INTERPRET=1``, or triton not installed).
    The first forward would fail with the same one line.

    Raises:
        ValueError: Naming the variable, what is wrong or missing and the
            values to use.
    """
    impl = settings.current().impl
    missing = _missing_here(impl) if impl != 'auto' else None
    if missing:
        raise _setting_error(missing)


def _forced(impl: str, x: torch.Tensor, weights: Sequence[torch.Tensor],
            from_setting: bool) -> str:
    cand = CANDIDATES.get(impl)
    if cand is not None and cand.available(x, weights):
        return impl
    needs = cand.needs if cand is not None else (
        f'{impl} is not installed or failed to import')
    if from_setting:  # a setting of the user's: one line (ValueError)
        raise _setting_error(
            _missing_here(impl)
            or f'{needs}; got a {x.device.type} {x.dtype} tensor')
    raise RuntimeError(
        f'impl={impl!r} cannot run on a {x.device.type} {x.dtype} tensor '
        f'here ({needs}). Use impl="auto" or set {settings.IMPL_ENV}=auto.')


def _measured(op: str, key: TuningKey, x: torch.Tensor,
              tensors: Sequence[Optional[torch.Tensor]],
              offered: Sequence[str]) -> str:
    """Measure ``offered`` for a new key, count and store the result."""
    runs = {
        n: ((lambda xx, *t, _c=CANDIDATES[n]: _c.multi(xx, t)) if op == 'multi'
            else (lambda xx, *t, _c=CANDIDATES[n]: (_c.cross(xx, *t), )))
        for n in offered
    }
    record = tuning.tune(key, x, tensors, runs)
    tuning_state.count(record['seconds'])
    tuning_cache.remember(
        key.cache_name(), record, persist=record['how'] == 'measured')
    return record['choice']


def choose(op: str,
           x: torch.Tensor,
           tensors: Sequence[Optional[torch.Tensor]],
           impl: Optional[str] = None) -> str:
    """The implementation to run ``op`` with on these inputs.

    Args:
        op (str): ``'multi'`` (``tensors`` = the kernels) or ``'cross'``
            (``tensors`` = tall kernel, wide kernel, bias or None).
        x (Tensor): The input.
        tensors (Sequence[Tensor]): As above; empty: the choice without
            kernels (``'auto'`` then gives :data:`REFERENCE`).
        impl (str, optional): ``'auto'``, ``'torch'``, ``'fft'`` or
            ``'triton'``; None: the ``impl`` setting
            (``$SLAK_MM_DWCONV_IMPL``, default ``'auto'``).

    Returns:
        str: A name in :data:`CANDIDATES` (measured, stored or the
        heuristic's for ``'auto'``).

    Raises:
        ValueError: If ``impl`` (or the setting) names no implementation,
            or the one the setting forces cannot run on ``x`` (Triton
            without a GPU: one line naming the variable, what is missing
            and the values to use).
        RuntimeError: If an implementation forced by ``impl`` cannot run
            on ``x``.
    """
    from_setting = not impl
    impl = impl or settings.current().impl
    if impl not in settings.IMPLS:
        raise ValueError(f'Unknown depthwise conv implementation {impl!r} '
                         f'(argument impl); choose one of '
                         f'{", ".join(settings.IMPLS)}')
    weights = [t for t in tensors if t is not None and t.dim() == 4]
    if impl != 'auto':
        return _forced(impl, x, weights, from_setting)
    if not weights or torch.jit.is_tracing() or torch.jit.is_scripting():
        return REFERENCE  # traced graphs (FLOP counters) see plain convs
    if x.numel() == 0 or not x.is_floating_point():
        return REFERENCE
    key = tuning_key(op, x, weights)
    if torch.compiler.is_compiling():
        return _choice_while_compiling(tuple(key))
    name = key.cache_name()
    offered = auto_candidates(x, weights)
    # this process's choice first: a dict lookup on every call after the
    # first; the file (unless re-tuning) only for a key new to the process
    choice = tuning_cache.lookup(name, file=False)
    if choice is None and not tuning_state.retuning():
        choice = tuning_cache.lookup(name)
    if choice in offered:
        return choice
    taps = sum(wt.shape[-2] * wt.shape[-1] for wt in weights)
    why = tuning_state.why_not_measured(x.numel() * taps)
    if why is None:
        return _measured(op, key, x, tensors, offered)
    choice = heuristic(key)
    tuning_cache.remember(name, dict(choice=choice, how=f'heuristic: {why}'))
    return choice
