"""Which depthwise conv implementation runs: forced, measured or guessed.

``impl='torch' | 'fft' | 'triton'`` (argument, or ``$SLAK_MM_DWCONV_IMPL``)
forces one. ``impl='auto'`` (the default) measures: the first call with a
new :func:`tuning_key` runs every candidate available for the tensor
(:data:`CANDIDATES`: ``torch`` everywhere, ``fft`` for floating-point
inputs, ``triton`` on CUDA only), checks each one's outputs (and, when
training, its gradients) against the torch conv at the dtype's tolerance,
times the correct ones (a few synchronised repeats, interleaved; the
fastest repeat counts, since load from other processes only ever adds
time, and more rounds are run while the two best are within 15%)
and keeps the fastest for that key, in memory and in a JSON file
(:func:`cache_path`). A candidate that raises or computes a wrong result
is dropped for that key with one warning that names it and the
implementation used instead.

Keys round the map size up to the next ``{4, 5, 6, 7} x 2**k`` (steps of
at most 25%; :func:`bucket`), so detection's variable image sizes share a
few keys; at most ``$SLAK_MM_DWCONV_MAX_TUNED`` (default 32) keys are tuned
per process, later new keys use the heuristic. Calls with little work
(below :data:`MIN_TUNE_WORK` multiply-adds) are not worth timing and use
the heuristic too.

``$SLAK_MM_DWCONV_TUNE=0`` turns tuning off: stored choices are still
used, new keys get :func:`heuristic` (CPU training: FFT for kernels of
side >= 17 on maps of at least 24 x 24, else torch; CPU inference: torch;
CUDA: torch, i.e. cuDNN, because the Triton kernels have not been timed on
a GPU). While ``torch.compile`` traces, nothing is timed: the
stored choice or the heuristic is used; ``torch.jit`` tracing (FLOP
counters) always gets torch.

The file is ``$SLAK_MM_DWCONV_CACHE`` if set, else
``$XDG_CACHE_HOME/slak_mm/dwconv_tune.json`` (``~/.cache/...``). It holds
the versions it was measured with (torch, Triton, CUDA, cuDNN; device
names are part of the keys); a file from other versions, or one that does
not parse, is ignored (a corrupt one with a warning) and replaced on the
next write. Writes merge with the file's current entries and are atomic
(temporary file + rename). Nothing here imports mm packages.
"""
import functools
import json
import os
import os.path as osp
import tempfile
import time
import warnings
from dataclasses import dataclass
from importlib import metadata
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

#: Forces an implementation (``auto`` | ``torch`` | ``fft`` | ``triton``).
IMPL_ENV = 'SLAK_MM_DWCONV_IMPL'
#: ``0`` turns the measurement off (stored choices, then the heuristic).
TUNE_ENV = 'SLAK_MM_DWCONV_TUNE'
#: Path of the JSON file of measured choices.
CACHE_ENV = 'SLAK_MM_DWCONV_CACHE'
#: How many keys one process may tune (default 32).
MAX_TUNED_ENV = 'SLAK_MM_DWCONV_MAX_TUNED'
IMPLS = ('auto', 'torch', 'fft', 'triton')
#: Multiply-adds (N C H W x kernel taps) below which nothing is timed.
MIN_TUNE_WORK = 1 << 24
#: Timed calls per candidate (more, up to :data:`MAX_REPEATS`, while the
#: two fastest are within :data:`CLOSE` of each other).
REPEATS = 3
MAX_REPEATS = 7
CLOSE = 1.15
#: Version of the cache file's layout.
CACHE_FORMAT = 1


@dataclass
class Candidate:
    """One implementation of the two ops.

    Args:
        available (Callable): ``available(x)`` -> bool: can it run on this
            input (device, dtype)?
        multi (Callable): ``multi(x, weights)`` -> tuple of outputs.
        cross (Callable): ``cross(x, weight_v, weight_h, bias)`` -> output.
    """
    available: Callable[[torch.Tensor], bool]
    multi: Callable[..., Tuple[torch.Tensor, ...]]
    cross: Callable[..., torch.Tensor]


#: Implementations by name, filled by :mod:`.depthwise_conv`; ``torch``
#: is the reference and the fallback.
CANDIDATES: Dict[str, Candidate] = {}

_choices: Dict[str, str] = {}  # key -> implementation, this process
_disk: Optional[Dict[str, str]] = None  # the file's entries, read once
_tuned = 0  # keys tuned by this process


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


def _device_name(device: torch.device) -> str:
    return _named_device(device.type, device.index, torch.get_num_threads())


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


def tuning_key(op: str, x: torch.Tensor,
               weights: Sequence[torch.Tensor]) -> Tuple:
    """What a measured choice is valid for.

    Args:
        op (str): ``'multi'`` or ``'cross'``.
        x (Tensor): The input (N, C, H, W).
        weights (Sequence[Tensor]): The kernels.

    Returns:
        tuple: op, device type and index, compute dtype, N, C, bucketed H
        and W, memory layout, kernel shapes and ``'train'`` (gradients
        wanted) or ``'infer'``.
    """
    n, c, h, w = x.shape
    train = torch.is_grad_enabled() and (x.requires_grad
                                         or any(wt.requires_grad
                                                for wt in weights))
    layout = ('cl' if not x.is_contiguous() and x.is_contiguous(
        memory_format=torch.channels_last) else 'nchw')
    return (op, x.device.type, x.device.index, str(_compute_dtype(x)), int(n),
            int(c), bucket(h), bucket(w), layout,
            tuple(tuple(int(s) for s in wt.shape[-2:])
                  for wt in weights), 'train' if train else 'infer')


def _key_string(key: Tuple) -> str:
    op, dev_type, dev_index, *rest = key
    device = torch.device(dev_type, dev_index) if dev_index is not None \
        else torch.device(dev_type)
    return '|'.join(map(str, [op, _device_name(device), *rest]))


def heuristic(key: Tuple) -> str:
    """The untuned choice for a :func:`tuning_key`.

    CPU, training: FFT for kernels with a side >= 17 on maps of at least
    24 x 24, else torch; CPU inference: torch (oneDNN's channels-last
    forward beat the FFT at every SLaK-T stage, batch 1, 512x512, measured
    on this project's CPU, ``docs/benchmarks.md``). Other devices: torch.

    Args:
        key (tuple): From :func:`tuning_key`.

    Returns:
        str: An implementation name.
    """
    op, dev_type, _, dtype, n, c, h, w, _, shapes, mode = key
    if dev_type != 'cpu' or mode != 'train' or 'fft' not in CANDIDATES:
        return 'torch'
    large = max(max(s) for s in shapes) >= 17
    return 'fft' if large and h * w >= 24 * 24 else 'torch'


def cache_path() -> str:
    """The JSON file of measured choices (see the module doc).

    Returns:
        str: ``$SLAK_MM_DWCONV_CACHE``, else
        ``$XDG_CACHE_HOME/slak_mm/dwconv_tune.json`` (``~/.cache`` when
        unset).
    """
    path = os.environ.get(CACHE_ENV)
    if path:
        return path
    root = os.environ.get('XDG_CACHE_HOME') or osp.join(
        osp.expanduser('~'), '.cache')
    return osp.join(root, 'slak_mm', 'dwconv_tune.json')


def _version(package: str) -> Optional[str]:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def fingerprint() -> Dict[str, Optional[str]]:
    """Versions a stored measurement depends on.

    Returns:
        dict: format, torch, triton, CUDA and cuDNN versions.
    """
    cudnn = torch.backends.cudnn.version() if torch.cuda.is_available() \
        else None
    return dict(
        format=str(CACHE_FORMAT),
        torch=torch.__version__,
        triton=_version('triton'),
        cuda=torch.version.cuda,
        cudnn=None if cudnn is None else str(cudnn))


def _read_cache(path: str) -> Dict[str, str]:
    """The file's entries when it was written by these versions; {} when
    it is missing, stale or corrupt (corrupt: with a warning)."""
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        warnings.warn(f'slak_mm: ignoring the depthwise conv tuning cache '
                      f'{path} ({type(e).__name__}: {e})')
        return {}
    entries = data.get('entries') if isinstance(data, dict) else None
    if not isinstance(entries, dict) or not all(
            isinstance(v, str) for v in entries.values()):
        warnings.warn(f'slak_mm: ignoring the depthwise conv tuning cache '
                      f'{path} (not a tuning cache)')
        return {}
    if data.get('fingerprint') != fingerprint():
        return {}  # other versions: measure again
    return dict(entries)


def _write_cache(path: str, key: str, choice: str) -> None:
    """Merge one entry into the file, atomically; a failure only warns."""
    entries = _read_cache(path)
    entries[key] = choice
    data = dict(fingerprint=fingerprint(), entries=entries)
    try:
        folder = osp.dirname(osp.abspath(path))
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f'.{osp.basename(path)}.', suffix='.tmp', dir=folder)
        try:
            with os.fdopen(fd, 'w') as f:
                json.dump(data, f, indent=1, sort_keys=True)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as e:
        warnings.warn(f'slak_mm: could not write the depthwise conv tuning '
                      f'cache {path} ({e}); choices are kept in memory')


def _stored(key: str) -> Optional[str]:
    global _disk
    if key in _choices:
        return _choices[key]
    if _disk is None:
        _disk = _read_cache(cache_path())
    choice = _disk.get(key)
    return choice if choice in CANDIDATES else None


def clear_memory() -> None:
    """Forget this process's choices and the file's entries read so far
    (the next call reads the file again); for tests and benchmarks."""
    global _disk, _tuned
    _choices.clear()
    _disk = None
    _tuned = 0


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


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


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


def tune(key: Tuple, x: torch.Tensor,
         tensors: Sequence[Optional[torch.Tensor]],
         runs: Dict[str, Callable[..., List[torch.Tensor]]]) -> str:
    """Measure ``runs`` (name -> function of ``(x, *tensors)`` returning
    the outputs; ``'torch'`` first, the reference) on this call's inputs
    and return the fastest correct name.

    Args:
        key (tuple): The :func:`tuning_key` (for the warnings).
        x (Tensor): The input.
        tensors (Sequence[Tensor]): Weights (and bias or None).
        runs (dict): The candidates.

    Returns:
        str: The chosen name.
    """
    train = key[-1] == 'train'
    tol = tolerance(_compute_dtype(x), x.device.type)
    grads = []
    ref = _trial(runs['torch'], x, tensors, train, grads)
    failures = {}
    alive = ['torch']
    for name, run in runs.items():
        if name == 'torch':
            continue
        try:
            got = _trial(run, x, tensors, train, grads)  # also the warm-up
            errors = [relative_error(a, b) for a, b in zip(got, ref)]
            if len(got) != len(ref) or max(errors, default=0.0) > tol:
                failures[name] = (f'wrong result: relative error '
                                  f'{max(errors, default=float("nan")):.2e}'
                                  f' > {tol:.0e}')
                continue
        except Exception as e:  # any failure drops the candidate
            failures[name] = f'{type(e).__name__}: {e}'
            continue
        alive.append(name)
    times = {name: [] for name in alive}
    while True:  # interleaved rounds: load changes hit all alike
        for name in alive:
            _sync(x.device)
            start = time.perf_counter()
            _trial(runs[name], x, tensors, train, grads)
            _sync(x.device)
            times[name].append(time.perf_counter() - start)
        rounds = len(times['torch'])
        best = sorted(min(t) for t in times.values())
        if rounds >= MAX_REPEATS or rounds >= REPEATS and (
                len(best) < 2 or best[1] > CLOSE * best[0]):
            break
    choice = min(alive, key=lambda name: min(times[name]))
    for name, why in failures.items():
        warnings.warn(f'slak_mm: depthwise conv implementation {name!r} '
                      f'failed its check for {_key_string(key)} ({why}); '
                      f'using {choice!r} there')
    return choice


def auto_candidates(x: torch.Tensor) -> List[str]:
    """The implementations ``'auto'`` may choose for ``x``: those available
    for it, Triton only for CUDA tensors (the interpreter runs CPU tensors,
    but only when forced).

    Args:
        x (Tensor): An input.

    Returns:
        list[str]: Names, ``'torch'`` first.
    """
    return [
        name for name, cand in CANDIDATES.items()
        if cand.available(x) and (name != 'triton' or x.is_cuda)
    ]


def _tracing() -> bool:
    return torch.compiler.is_compiling()


@torch.compiler.assume_constant_result
def _choice_while_compiling(key: Tuple) -> str:
    # runs once, eagerly, when torch.compile traces; the result is baked in
    # (every implementation is a custom op or plain torch ops: no breaks)
    return _stored(_key_string(key)) or heuristic(key)


def _forced(impl: Optional[str]) -> str:
    impl = impl or os.environ.get(IMPL_ENV, 'auto')
    if impl not in IMPLS:
        raise ValueError(f'Unknown depthwise conv implementation {impl!r} '
                         f'(argument or ${IMPL_ENV}); choose one of {IMPLS}')
    return impl


def _max_tuned() -> int:
    try:
        return int(os.environ.get(MAX_TUNED_ENV, 32))
    except ValueError:
        return 32


def choose(op: str,
           x: torch.Tensor,
           tensors: Sequence[Optional[torch.Tensor]],
           impl: Optional[str] = None) -> str:
    """The implementation to run ``op`` with on these inputs.

    Args:
        op (str): ``'multi'`` (``tensors`` = the kernels) or ``'cross'``
            (``tensors`` = tall kernel, wide kernel, bias or None).
        x (Tensor): The input.
        tensors (Sequence[Tensor]): As above.
        impl (str, optional): ``'auto'``, ``'torch'``, ``'fft'`` or
            ``'triton'``; None reads ``$SLAK_MM_DWCONV_IMPL`` (default
            ``'auto'``).

    Returns:
        str: A name in :data:`CANDIDATES` (measured, stored or the
        heuristic's for ``'auto'``).

    Raises:
        RuntimeError: If a forced implementation cannot run on ``x``.
    """
    impl = _forced(impl)
    if impl != 'auto':
        if not CANDIDATES[impl].available(x):
            raise RuntimeError(
                f'impl={impl!r} cannot run on a {x.device.type} {x.dtype} '
                f'tensor here (Triton needs Triton and a CUDA tensor, or '
                f'TRITON_INTERPRET=1 for CPU tensors, of dtype float32, '
                f'float16 or bfloat16; FFT needs a floating-point input). '
                f'Use impl="auto" or set {IMPL_ENV}=auto.')
        return impl
    if torch.jit.is_tracing() or torch.jit.is_scripting():
        return 'torch'  # traced graphs (FLOP counters) see plain convs
    weights = [t for t in tensors if t is not None and t.dim() == 4]
    if x.numel() == 0 or not x.is_floating_point():
        return 'torch'
    key = tuning_key(op, x, weights)
    if _tracing():
        return _choice_while_compiling(key)
    name = _key_string(key)
    choice = _stored(name)
    if choice in auto_candidates(x):
        return choice
    global _tuned
    taps = sum(wt.shape[-2] * wt.shape[-1] for wt in weights)
    if (os.environ.get(TUNE_ENV, '1') == '0' or _tuned >= _max_tuned()
            or x.numel() * taps < MIN_TUNE_WORK):
        choice = heuristic(key)
        _choices[name] = choice
        return choice
    runs = {
        n: ((lambda xx, *t, _c=c: _c.multi(xx, t)) if op == 'multi' else
            (lambda xx, *t, _c=c: (_c.cross(xx, *t), )))
        for n, c in CANDIDATES.items() if n in auto_candidates(x)
    }
    choice = tune(key, x, tensors, runs)
    _tuned += 1
    _choices[name] = choice
    _write_cache(cache_path(), name, choice)
    return choice
