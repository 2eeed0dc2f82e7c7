from .backbones import SLaK, SLaKBlock
from .builder import build_model
from .layers import ConvBN, LargeKernelConv

__all__ = ['SLaK', 'SLaKBlock', 'ConvBN', 'LargeKernelConv', 'build_model']
