from .backbones import SLaK, SLaKBlock
from .layers import ConvBN, LargeKernelConv
from . import classifiers  # noqa: F401,E402  (mmpretrain parts if installed)

__all__ = ['SLaK', 'SLaKBlock', 'ConvBN', 'LargeKernelConv']
