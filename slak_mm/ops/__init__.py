"""Large-kernel depthwise convolution (Triton on GPU, torch fallback)."""
from .depthwise_conv import (IMPL_ENV, MAX_KERNEL, cross_depthwise_conv2d,
                             depthwise_conv2d, multi_depthwise_conv2d,
                             resolve_impl, triton_available)

__all__ = [
    'IMPL_ENV', 'MAX_KERNEL', 'cross_depthwise_conv2d', 'depthwise_conv2d',
    'multi_depthwise_conv2d', 'resolve_impl', 'triton_available'
]
