"""Large-kernel depthwise convolution (Triton on GPU, torch fallback)."""
from .depthwise_conv import (IMPL_ENV, MAX_KERNEL, cross_depthwise_conv2d,
                             depthwise_conv2d, multi_depthwise_conv2d,
                             resolve_impl, triton_available)
from .memory_format import CPU_LAYOUT_ENV, to_preferred_layout

__all__ = [
    'CPU_LAYOUT_ENV', 'to_preferred_layout', 'IMPL_ENV', 'MAX_KERNEL', 'cross_depthwise_conv2d', 'depthwise_conv2d',
    'multi_depthwise_conv2d', 'resolve_impl', 'triton_available'
]
