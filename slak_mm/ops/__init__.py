"""Large-kernel depthwise convolution: torch, FFT and Triton
implementations, chosen per shape by measurement (``impl='auto'``)."""
from .depthwise_conv import (IMPL_ENV, IMPLS, MAX_KERNEL,
                             cross_depthwise_conv2d, depthwise_conv2d,
                             multi_depthwise_conv2d, resolve_impl,
                             triton_available)
from .dispatch import (CACHE_ENV, MAX_TUNED_ENV, TUNE_ENV, bucket, cache_path)
from .fft_depthwise import (fft_cross_depthwise_conv2d,
                            fft_multi_depthwise_conv2d, fft_size)
from .memory_format import CPU_LAYOUT_ENV, to_preferred_layout

__all__ = [
    'CACHE_ENV', 'CPU_LAYOUT_ENV', 'IMPL_ENV', 'IMPLS', 'MAX_KERNEL',
    'MAX_TUNED_ENV', 'TUNE_ENV', 'bucket', 'cache_path',
    'cross_depthwise_conv2d', 'depthwise_conv2d', 'fft_cross_depthwise_conv2d',
    'fft_multi_depthwise_conv2d', 'fft_size', 'multi_depthwise_conv2d',
    'resolve_impl', 'to_preferred_layout', 'triton_available'
]
