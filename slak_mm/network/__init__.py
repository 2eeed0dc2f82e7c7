"""SLaK, the network, in torch and timm (no OpenMMLab).

Importing it registers ``slak_tiny``, ``slak_small``, ``slak_base`` (and
the official names ``SLaK_tiny``, ``SLaK_small``, ``SLaK_base``) in timm::

    import timm, slak_mm
    model = timm.create_model('slak_tiny', pretrained=True,
                              pretrained_cfg_overlay=dict(file=PATH))
    maps = timm.create_model('slak_tiny', features_only=True)(images)

- :mod:`.slak`: the arch table (:func:`resolve_arch`), the block, the model
  and its timm registration;
- :mod:`.large_kernel_conv`: the decomposed large kernel and its merged
  (deploy) form.
"""
from .large_kernel_conv import ConvBN, LargeKernelConv, MergedLargeKernel
from .slak import ARCH_SETTINGS, SLaK, SLaKBlock, resolve_arch

__all__ = [
    'ARCH_SETTINGS', 'ConvBN', 'LargeKernelConv', 'MergedLargeKernel', 'SLaK',
    'SLaKBlock', 'resolve_arch'
]
