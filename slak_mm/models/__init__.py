from .backbones import SLaK, SLaKBlock
from .layers import ConvBN, LargeKernelConv

__all__ = ['SLaK', 'SLaKBlock', 'ConvBN', 'LargeKernelConv']
