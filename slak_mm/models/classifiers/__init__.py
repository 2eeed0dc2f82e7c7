"""SLaK as an mmpretrain image classifier: the official ImageNet model.

The modules are registered in mmpretrain's ``MODELS`` only when mmpretrain
is installed (``pip install -e .[cls]``); without it this package imports
and registers nothing, and the rest of slak_mm works as before. The
checkpoint mapping (:mod:`slak_mm.checkpoint.classifier`) needs no
mmpretrain.
"""
try:
    import mmpretrain  # noqa: F401
except ModuleNotFoundError as err:
    if err.name != 'mmpretrain':  # a broken install must not pass silently
        raise
    HAS_MMPRETRAIN = False
else:
    HAS_MMPRETRAIN = True
    from .slak_classifier import SLaKClsBackbone, SLaKClsHead  # noqa: F401

__all__ = ['HAS_MMPRETRAIN']
if HAS_MMPRETRAIN:
    __all__ += ['SLaKClsBackbone', 'SLaKClsHead']
