"""Which depthwise conv implementation runs: forced, measured or guessed.

Implementations register themselves here (:func:`register`: ``torch`` in
:mod:`.torch_depthwise`, ``fft`` in :mod:`.fft_depthwise`, ``triton`` in
:mod:`.triton_depthwise` when triton imports); ``torch`` is the reference
and the fallback. :func:`choose` picks one per call:

- forced (``impl='torch' | 'fft' | 'triton'``, argument or
  ``$SLAK_MM_DWCONV_IMPL``): that one, or an error naming what it needs;
- ``impl='auto'`` (the default) measures: the first call with a new
  :class:`TuningKey` runs every candidate ``auto`` may offer for the tensor
  (:func:`auto_candidates`: ``torch`` everywhere, ``fft`` for
  floating-point inputs, ``triton`` for CUDA tensors only), one at a time,
  checks each one's outputs (and, when training, its gradients) against
  the torch conv at the dtype's tolerance, times the correct ones
  (:func:`slak_mm.ops.timing.time_interleaved`: a few synchronised
  repeats, interleaved; the fastest repeat counts, since load from other
  processes only ever adds time, and more rounds are run while the two best
  are within 15%) and keeps the fastest for that key, with the times, in
  memory and in a JSON file (:mod:`.tuning_cache`; :func:`tuning_record`
  returns a key's record).

Tuning never raises into training. A candidate that raises (out of
memory, a launch or compilation error), in its check or while timed, or
computes a wrong result is dropped for that key with one warning that names
it and the implementation used instead. A candidate slower than
:data:`SLOW` times the reference in a timed call is not timed further (its
one time is kept in the record). Each candidate's outputs are dropped
before the next runs, and on CUDA the allocator's cache is emptied after
each check and each failure. If the reference itself fails (out of memory,
say, with the tuning's extra copies alive), the key gets the heuristic, with
one warning, and nothing is written to the file.

Keys round the map size up to the next ``{4, 5, 6, 7} x 2**k`` (steps of
at most 25%; :func:`bucket`), so detection's variable image sizes share a
few keys; at most ``$SLAK_MM_DWCONV_MAX_TUNED`` (default 32) keys are tuned
per process, later new keys use the heuristic. Calls with little work
(below :data:`MIN_TUNE_WORK` multiply-adds) are not worth timing and use
the heuristic too. The time the measurements stalled the calls is reported
once per process, in one warning (keys tuned, seconds in all): when the
count of tuned keys reaches its cap, else when the process exits;
:func:`tuning_stall` returns the same numbers at any time.

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
training. Only rank 0 writes the file. Fill it beforehand in one process
with the run's batch per GPU, dtype and image sizes (``tools/benchmark.py
model CONFIG --backward ...``, ``docs/kernels.md``); ranks on other
machines need the same file (copy it, or point ``$SLAK_MM_DWCONV_CACHE``
at a shared path).

A choice measured under load (CPU timing while DataLoader workers start is
the known bad moment) is measured again with ``$SLAK_MM_DWCONV_RETUNE=1``
or :func:`retune`: the file's records are ignored, each key is measured
once more in this process and its new record replaces the old one (not
under DDP, which measures nothing).

``$SLAK_MM_DWCONV_TUNE=0`` turns tuning off: stored choices are still
used, new keys get :func:`heuristic` (CPU training: FFT for kernels of
side >= 17 on maps of at least 24 x 24, else torch; CPU inference: torch;
CUDA: torch, i.e. cuDNN, because the Triton kernels have not been timed on
a GPU). While ``torch.compile`` traces, nothing is timed: the
stored choice or the heuristic is used; ``torch.jit`` tracing (FLOP
counters) always gets torch. The settings are read through
:mod:`.settings`. Nothing here imports mm packages.
"""
import atexit
import copy
import functools
import time
import warnings
from dataclasses import dataclass
from typing import (Callable, Dict, List, NamedTuple, Optional, Sequence,
                    Tuple, Union)

import torch

from . import settings, tuning_cache
from .timing import time_interleaved

#: Multiply-adds (N C H W x kernel taps) below which nothing is timed.
MIN_TUNE_WORK = 1 << 24
#: Timed calls per candidate (more, up to :data:`MAX_REPEATS`, while the
#: two fastest are within :data:`CLOSE` of each other).
REPEATS = 3
MAX_REPEATS = 7
CLOSE = 1.15
#: A candidate slower than this times the reference in a timed call is not
#: timed further.
SLOW = 4.0
#: The implementation the others are checked against, and the fallback.
REFERENCE = 'torch'


@dataclass(frozen=True)
class Candidate:
    """One implementation of the two ops, as it registers itself.

    The functions get inputs that :func:`slak_mm.ops.check_inputs` has
    validated and that ``available`` accepted; they check nothing again.

    Args:
        available (Callable): ``available(x, weights)`` -> bool: can it run
            on this input (device, dtype) with these kernels?
        multi (Callable): ``multi(x, weights)`` -> tuple of outputs.
        cross (Callable): ``cross(x, weight_v, weight_h, bias)`` -> output.
        needs (str): What it needs, for the error of a forced call that
            cannot run.
        offered_to_auto (Callable): ``offered_to_auto(x)`` -> bool: may
            ``impl='auto'`` time it for ``x``? Default: whenever available.
    """
    available: Callable[[torch.Tensor, Sequence[torch.Tensor]], bool]
    multi: Callable[..., Tuple[torch.Tensor, ...]]
    cross: Callable[..., torch.Tensor]
    needs: str
    offered_to_auto: Callable[[torch.Tensor], bool] = lambda x: True


#: Implementations by name, in registration order.
CANDIDATES: Dict[str, Candidate] = {}

_tuned = 0  # keys tuned by this process
_stall = 0.0  # seconds their tuning took
_stall_reported = False
_retune_all = False  # retune() was called


def register(name: str, candidate: Candidate) -> None:
    """Make an implementation available under ``name`` (called by each
    implementation's module when it is imported).

    Args:
        name (str): One of :data:`slak_mm.ops.settings.IMPLS` but
            ``'auto'`` (tests register more).
        candidate (Candidate): The implementation.
    """
    CANDIDATES[name] = candidate


def bucket(n: int) -> int:
    """Round a map side up to the next ``m * 2**k`` with ``m`` in 4..7.

    Args:
        n (int): Height or width.

    Returns:
        int: ``n`` itself up to 8, else the bucket (e.g. 200 -> 224).
    """
    n = int(n)
    if n <= 8:
        return n
    e = n.bit_length() - 3
    return -(-n // (1 << e)) << e


@functools.lru_cache(maxsize=None)
def _named_device(dev_type: str, index: Optional[int], threads: int) -> str:
    # cached: every 'auto' call names its key
    if dev_type == 'cuda':
        return torch.cuda.get_device_name(index)
    model = ''
    try:
        with open('/proc/cpuinfo') as f:
            model = next((line.split(':', 1)[1].strip()
                          for line in f if line.startswith('model name')), '')
    except OSError:
        pass
    return f'{dev_type}:{model}:{threads}t'


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype the conv computes in: autocast's, else the input's."""
    if x.is_floating_point() and torch.is_autocast_enabled(x.device.type):
        return torch.get_autocast_dtype(x.device.type)
    return x.dtype


class TuningKey(NamedTuple):
    """What a measured choice is valid for (see :func:`tuning_key`).

    Args:
        op (str): ``'multi'`` or ``'cross'``.
        device_type (str): ``'cpu'``, ``'cuda'``, ...
        device_index (int | None): The device's index.
        dtype (str): The compute dtype, e.g. ``'torch.float32'``.
        batch (int): N.
        channels (int): C.
        height (int): H, bucketed (:func:`bucket`).
        width (int): W, bucketed.
        layout (str): ``'cl'`` (channels-last) or ``'nchw'``.
        kernels (tuple): ``(kh, kw)`` of each kernel.
        mode (str): ``'train'`` (gradients wanted) or ``'infer'``.
    """
    op: str
    device_type: str
    device_index: Optional[int]
    dtype: str
    batch: int
    channels: int
    height: int
    width: int
    layout: str
    kernels: Tuple[Tuple[int, int], ...]
    mode: str

    def cache_name(self) -> str:
        """The key as the cache file stores it: the device by name (and,
        on the CPU, thread count) instead of by index.

        Returns:
            str: The fields joined by ``|``.
        """
        device_name = _named_device(self.device_type, self.device_index,
                                    torch.get_num_threads())
        return '|'.join(map(str, (self.op, device_name) + tuple(self[3:])))


def tuning_key(op: str, x: torch.Tensor,
               weights: Sequence[torch.Tensor]) -> TuningKey:
    """The key of a call.

    Args:
        op (str): ``'multi'`` or ``'cross'``.
        x (Tensor): The input (N, C, H, W).
        weights (Sequence[Tensor]): The kernels.

    Returns:
        TuningKey: Its fields.
    """
    n, c, h, w = x.shape
    train = torch.is_grad_enabled() and (x.requires_grad
                                         or any(wt.requires_grad
                                                for wt in weights))
    layout = ('cl' if not x.is_contiguous() and x.is_contiguous(
        memory_format=torch.channels_last) else 'nchw')
    return TuningKey(
        op=op,
        device_type=x.device.type,
        device_index=x.device.index,
        dtype=str(_compute_dtype(x)),
        batch=int(n),
        channels=int(c),
        height=bucket(h),
        width=bucket(w),
        layout=layout,
        kernels=tuple(tuple(int(s) for s in wt.shape[-2:]) for wt in weights),
        mode='train' if train else 'infer')


def heuristic(key: TuningKey) -> str:
    """The untuned choice for a key.

    CPU, training: FFT for kernels with a side >= 17 on maps of at least
    24 x 24, else torch; CPU inference: torch (oneDNN's channels-last
    forward beat the FFT at every SLaK-T stage, batch 1, 512x512, measured
    on this project's CPU, ``docs/benchmarks.md``). Other devices: torch.

    Args:
        key (TuningKey): From :func:`tuning_key`.

    Returns:
        str: An implementation name.
    """
    if (key.device_type != 'cpu' or key.mode != 'train'
            or 'fft' not in CANDIDATES):
        return REFERENCE
    large = max(max(s) for s in key.kernels) >= 17
    return 'fft' if large and key.height * key.width >= 24 * 24 \
        else REFERENCE


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
    tol = tolerance(_compute_dtype(x), x.device.type)
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


def auto_candidates(
    x: torch.Tensor, weights: Sequence[torch.Tensor] = ()) -> List[str]:
    """The implementations ``'auto'`` may choose for ``x``: those available
    for it (and ``weights``) that offer themselves to ``auto`` (Triton only
    for CUDA tensors: the interpreter runs CPU tensors, but only when
    forced).

    Args:
        x (Tensor): An input.
        weights (Sequence[Tensor]): Its kernels. Default: none.

    Returns:
        list[str]: Names, :data:`REFERENCE` first.
    """
    names = [
        name for name, cand in CANDIDATES.items()
        if cand.offered_to_auto(x) and cand.available(x, weights)
    ]
    return sorted(names, key=lambda name: name != REFERENCE)


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
                                 or settings.triton_interpreting()):
        return (f'no CUDA GPU (torch.cuda.is_available() is False) for '
                f'Triton, and {settings.TRITON_INTERPRET_ENV} is not 1 (its '
                f'CPU interpreter, a test mode)')
    return None


def check_impl_env() -> None:
    """Refuse, before a run, a ``$SLAK_MM_DWCONV_IMPL`` this machine cannot
    run: an unknown name, or ``triton`` without its GPU path (no CUDA GPU
    and no ``TRITON_INTERPRET=1``, or triton not installed). The first
    forward would fail with the same one line.

    Raises:
        ValueError: Naming the variable, what is missing and the values
            to use.
    """
    impl = settings.conv_impl()
    missing = _missing_here(impl) if impl != 'auto' else None
    if missing:
        raise settings.impl_env_error(missing)


def _forced(impl: str, x: torch.Tensor, weights: Sequence[torch.Tensor],
            from_env: bool) -> str:
    cand = CANDIDATES.get(impl)
    if cand is not None and cand.available(x, weights):
        return impl
    needs = cand.needs if cand is not None else (
        f'{impl} is not installed or failed to import')
    if from_env:  # a setting of the user's: one line (ValueError)
        raise settings.impl_env_error(
            _missing_here(impl)
            or f'{needs}; got a {x.device.type} {x.dtype} tensor')
    raise RuntimeError(
        f'impl={impl!r} cannot run on a {x.device.type} {x.dtype} tensor '
        f'here ({needs}). Use impl="auto" or set {settings.IMPL_ENV}=auto.')


def _retuning() -> bool:
    """Whether the file's records are to be measured again (never under
    DDP, which measures nothing)."""
    return ((_retune_all or settings.retune())
            and tuning_cache.rank_and_world()[1] == 1)


def _not_measured(work: int) -> Optional[str]:
    """Why a new key gets the heuristic, or None: measure it."""
    if not settings.tuning_enabled():
        return f'${settings.TUNE_ENV}=0'
    world = tuning_cache.rank_and_world()[1]
    if world > 1:
        return f'{world} processes train together; they measure nothing'
    if _tuned >= settings.max_tuned():
        return f'{_tuned} keys tuned already (${settings.MAX_TUNED_ENV})'
    if work < MIN_TUNE_WORK:
        return 'too little work to time'
    return None


def _report_stall() -> None:
    """Warn once per process how long tuning stalled the calls (at the cap
    of tuned keys, else at exit)."""
    global _stall_reported
    if not _tuned or _stall_reported:
        return
    _stall_reported = True
    warnings.warn(
        f'slak_mm: impl="auto" measured the depthwise conv implementations '
        f'for {_tuned} new shape(s) in this process, stalling their first '
        f'calls {_stall:.1f} s in all (at most {settings.max_tuned()} '
        f'shapes per process: ${settings.MAX_TUNED_ENV}; '
        f'${settings.TUNE_ENV}=0 turns measuring off); the choices are '
        f'stored in {settings.cache_path()}')


atexit.register(_report_stall)


def tuning_stall() -> Dict[str, float]:
    """How much this process has tuned so far.

    Returns:
        dict: ``keys`` (number of keys measured) and ``seconds`` (the time
        their measurement took, in all).
    """
    return dict(keys=_tuned, seconds=_stall)


def tuning_record(key: Union[TuningKey, str]) -> Optional[dict]:
    """Why ``auto`` chose what it chose for a key: its record, this
    process's, else the file's.

    Args:
        key (TuningKey | str): A key (:func:`tuning_key`) or its
            :meth:`TuningKey.cache_name`.

    Returns:
        dict | None: A copy of the record: ``choice``, ``how``
        (``'measured'`` or ``'heuristic: <why>'``) and, when measured,
        ``times`` (name -> best seconds), ``failures`` (name -> why it was
        dropped) and ``seconds`` (the stall); None when the key has none.
    """
    name = key.cache_name() if isinstance(key, TuningKey) else key
    return copy.deepcopy(tuning_cache.record(name))


def retune() -> None:
    """Measure every key again in this process, as
    ``$SLAK_MM_DWCONV_RETUNE=1`` does: this process's choices are
    forgotten, the file's are ignored from now on, and each key is measured
    on its next call (within the cap of tuned keys) and its new record
    replaces the file's. Under DDP nothing is measured, and the stored
    choices stay in use.
    """
    global _retune_all
    tuning_cache.clear()
    _retune_all = True


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
            ``'triton'``; None reads ``$SLAK_MM_DWCONV_IMPL`` (default
            ``'auto'``).

    Returns:
        str: A name in :data:`CANDIDATES` (measured, stored or the
        heuristic's for ``'auto'``).

    Raises:
        ValueError: If ``impl`` (or the environment) names no
            implementation, or the one ``$SLAK_MM_DWCONV_IMPL`` forces
            cannot run on ``x`` (Triton without a GPU: one line naming the
            variable, what is missing and the values to use).
        RuntimeError: If an implementation forced by ``impl`` cannot run
            on ``x``.
    """
    global _tuned, _stall
    from_env, impl = not impl, settings.conv_impl(impl)
    weights = [t for t in tensors if t is not None and t.dim() == 4]
    if impl != 'auto':
        return _forced(impl, x, weights, from_env)
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
    if choice is None and not _retuning():
        choice = tuning_cache.lookup(name)
    if choice in offered:
        return choice
    taps = sum(wt.shape[-2] * wt.shape[-1] for wt in weights)
    why = _not_measured(x.numel() * taps)
    if why is not None:
        choice = heuristic(key)
        tuning_cache.remember(name,
                              dict(choice=choice, how=f'heuristic: {why}'))
        return choice
    runs = {
        n: ((lambda xx, *t, _c=CANDIDATES[n]: _c.multi(xx, t)) if op == 'multi'
            else (lambda xx, *t, _c=CANDIDATES[n]: (_c.cross(xx, *t), )))
        for n in offered
    }
    record = tune(key, x, tensors, runs)
    _tuned += 1
    _stall += record['seconds']
    if _tuned >= settings.max_tuned():
        _report_stall()
    tuning_cache.remember(name, record, persist=record['how'] == 'measured')
    return record['choice']


def clear_memory() -> None:
    """Forget this process's choices and the file's entries read so far
    (the next call reads the file again), its count of tuned keys, their
    stall (reported or not) and :func:`retune`; for tests and
    benchmarks."""
    global _tuned, _stall, _stall_reported, _retune_all
    tuning_cache.clear()
    _tuned, _stall, _stall_reported, _retune_all = 0, 0.0, False, False
