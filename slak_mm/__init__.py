"""slak_mm: SLaK (Sparse Large Kernel Network) for OpenMMLab 2.x.

Importing the package registers the SLaK backbone and its helpers in the
mmseg and mmdet registries (``custom_imports=dict(imports=['slak_mm'])``).
"""
from . import engine, models, utils  # noqa: F401
from .version import __version__

__all__ = ['__version__']
