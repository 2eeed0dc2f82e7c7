"""Framework-free building blocks (torch and timm only)."""
from .large_kernel_conv import ConvBN, LargeKernelConv, MergedLargeKernel

__all__ = ['ConvBN', 'LargeKernelConv', 'MergedLargeKernel']
