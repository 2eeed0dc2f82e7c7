"""Large-kernel depthwise convolution: torch, FFT and Triton
implementations, chosen per shape by measurement (``impl='auto'``).

Layout (each module one concept; none imports mm packages):

- :mod:`.depthwise_conv`: the public functions (check once, choose once,
  run);
- :mod:`.dispatch`: the registry the implementations register with, the
  tuning key, the measurement and the heuristic (:func:`retune`,
  :func:`tuning_record`, :func:`tuning_stall`: measure again, why a key
  got its choice, what tuning cost);
- :mod:`.torch_depthwise`, :mod:`.fft_depthwise`, :mod:`.triton_depthwise`
  (+ :mod:`.triton_depthwise_kernels`): the implementations;
- :mod:`.capabilities`: what each implementation runs (dtypes, kernel
  sides); :mod:`.checks`: the argument checks;
- :mod:`.settings`: every environment variable read here;
- :mod:`.tuning_cache`: the measured choices in memory and on disk;
- :mod:`.timing`: the timing loop (also the benchmarks');
- :mod:`.memory_format`: the CPU layout.
"""
import importlib.util

# The implementations register themselves with the dispatcher when imported
# (triton's below, only where triton imports).
from . import fft_depthwise, torch_depthwise  # noqa: F401
from .capabilities import MAX_KERNEL, TRITON_DTYPES
from .checks import check_inputs
from .depthwise_conv import (cross_depthwise_conv2d, depthwise_conv2d,
                             multi_depthwise_conv2d, resolve_impl, run_cross,
                             run_multi, triton_available)
from .dispatch import (bucket, check_impl_env, retune, tuning_record,
                       tuning_stall)
from .fft_depthwise import (fft_cross_depthwise_conv2d,
                            fft_multi_depthwise_conv2d, fft_size)
from .memory_format import to_preferred_layout
from .settings import (CACHE_ENV, CPU_LAYOUT_ENV, IMPL_ENV, IMPLS,
                       MAX_TUNED_ENV, RETUNE_ENV, TUNE_ENV, cache_path)

if importlib.util.find_spec('triton') is not None:
    try:
        from . import triton_depthwise  # noqa: F401
    except ImportError:  # a triton too old or broken: no 'triton' impl
        pass

__all__ = [
    'CACHE_ENV', 'CPU_LAYOUT_ENV', 'IMPL_ENV', 'IMPLS', 'MAX_KERNEL',
    'MAX_TUNED_ENV', 'RETUNE_ENV', 'TRITON_DTYPES', 'TUNE_ENV', 'bucket',
    'cache_path', 'check_impl_env', 'check_inputs', 'cross_depthwise_conv2d',
    'depthwise_conv2d', 'fft_cross_depthwise_conv2d',
    'fft_multi_depthwise_conv2d', 'fft_size', 'multi_depthwise_conv2d',
    'resolve_impl', 'retune', 'run_cross', 'run_multi', 'to_preferred_layout',
    'triton_available', 'tuning_record', 'tuning_stall'
]
