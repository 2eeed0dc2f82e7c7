"""SLaK in OpenMMLab: the backbone (a thin adapter over
:mod:`slak_mm.network`), the mmpretrain classifier parts, and building
the model a config describes."""
from .backbones import SLaK
from .builder import build_model

__all__ = ['SLaK', 'build_model']
