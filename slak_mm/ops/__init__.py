"""Large-kernel depthwise convolution: torch, FFT and Triton
implementations, chosen per shape by measurement (``impl='auto'``).

Layout (each module one concept; none imports mm packages):

- :mod:`.depthwise_conv`: the public functions (check once, choose once,
  run);
- :mod:`.settings`: the settings (:class:`OpsSettings`), read from the
  environment once, changed by code with :class:`use` (a block) or
  :func:`configure`; every environment variable of the ops is read there;
- :mod:`.registry`: the implementations, as they register themselves;
- :mod:`.dispatch`: which one runs a call (forced, stored, measured or
  guessed);
- :mod:`.keys`: what a measured choice is valid for (:class:`TuningKey`,
  :func:`bucket`);
- :mod:`.heuristic`: the choice without a measurement;
- :mod:`.tuning`: measuring one key (checks against the reference,
  timing);
- :mod:`.tuning_state`: this process's tuning: whether a new key is
  measured, the stall report (:func:`tuning_stall`), :func:`retune`;
- :mod:`.tuning_cache`: the measured choices in memory and on disk
  (:func:`tuning_record`: why a key got its choice);
- :mod:`.torch_depthwise`, :mod:`.fft_depthwise`, :mod:`.triton_depthwise`
  (+ :mod:`.triton_depthwise_kernels`): the implementations;
- :mod:`.capabilities`: what each implementation runs (dtypes, kernel
  sides); :mod:`.checks`: the argument checks;
- :mod:`.timing`: the timing loop (also the benchmarks');
- :mod:`.memory_format`: the CPU layout.
"""
import importlib.util

# The implementations register themselves when imported (triton's below,
# only where triton imports).
from . import fft_depthwise, torch_depthwise  # noqa: F401
from .capabilities import MAX_KERNEL, TRITON_DTYPES
from .checks import check_inputs
from .depthwise_conv import (cross_depthwise_conv2d, depthwise_conv2d,
                             multi_depthwise_conv2d, resolve_impl, run_cross,
                             run_multi, triton_available)
from .dispatch import check_impl_env
from .fft_depthwise import (fft_cross_depthwise_conv2d,
                            fft_multi_depthwise_conv2d, fft_size)
from .heuristic import heuristic
from .keys import TuningKey, bucket, tuning_key
from .memory_format import to_preferred_layout
from .registry import Candidate, auto_candidates, register
from .settings import (CACHE_ENV, CPU_LAYOUT_ENV, IMPL_ENV, IMPLS,
                       MAX_TUNED_ENV, RETUNE_ENV, TUNE_ENV, OpsSettings,
                       cache_path, configure, use)
from .tuning import relative_error, tolerance
from .tuning_cache import tuning_record
from .tuning_state import clear_memory, retune, tuning_stall

if importlib.util.find_spec('triton') is not None:
    try:
        from . import triton_depthwise  # noqa: F401
    except ImportError:  # a triton too old or broken: no 'triton' impl
        pass

__all__ = [
    'CACHE_ENV', 'CPU_LAYOUT_ENV', 'Candidate', 'IMPL_ENV', 'IMPLS',
    'MAX_KERNEL', 'MAX_TUNED_ENV', 'OpsSettings', 'RETUNE_ENV',
    'TRITON_DTYPES', 'TUNE_ENV', 'TuningKey', 'auto_candidates', 'bucket',
    'cache_path', 'check_impl_env', 'check_inputs', 'clear_memory',
    'configure', 'cross_depthwise_conv2d', 'depthwise_conv2d',
    'fft_cross_depthwise_conv2d', 'fft_multi_depthwise_conv2d', 'fft_size',
    'heuristic', 'multi_depthwise_conv2d', 'register', 'relative_error',
    'resolve_impl', 'retune', 'run_cross', 'run_multi', 'to_preferred_layout',
    'tolerance', 'triton_available', 'tuning_key', 'tuning_record',
    'tuning_stall', 'use'
]
