"""The OpenMMLab registries slak_mm adds its modules to.

SLaK serves both mmsegmentation and mmdetection, so every public part is
registered in the registries of each framework that is installed: a config
whose ``default_scope`` is ``mmseg`` or ``mmdet`` then finds it by ``type``
alone. One of the two frameworks is enough (an mmseg-only or mmdet-only
environment); a registry of a missing framework is ``None`` here.
"""
import importlib
import importlib.util
from typing import Optional

from mmengine.registry import Registry

__all__ = [
    'DET_HOOKS', 'DET_MODELS', 'DET_OPTIM_WRAPPER_CONSTRUCTORS', 'SEG_HOOKS',
    'SEG_MODELS', 'SEG_OPTIM_WRAPPER_CONSTRUCTORS', 'FRAMEWORKS',
    'framework_installed', 'register_hook', 'register_model'
]


def framework_installed(package: str) -> bool:
    """Whether the OpenMMLab framework ``package`` (``'mmseg'``,
    ``'mmdet'``) can be imported."""
    try:
        return importlib.util.find_spec(package) is not None
    except ModuleNotFoundError:  # an import hook that hides the package
        return False


#: The frameworks slak_mm registers into, of ``('mmseg', 'mmdet')``.
FRAMEWORKS = tuple(p for p in ('mmseg', 'mmdet') if framework_installed(p))
if not FRAMEWORKS:
    raise ImportError(
        'slak_mm needs mmsegmentation or mmdetection: pip install '
        'onedl-mmsegmentation and/or onedl-mmdetection (see the README). '
        'Without them only slak_mm.ops and slak_mm.sparse work.')


def _registry(package: str, name: str) -> Optional[Registry]:
    if package not in FRAMEWORKS:
        return None
    return getattr(importlib.import_module(f'{package}.registry'), name)


SEG_MODELS = _registry('mmseg', 'MODELS')
SEG_HOOKS = _registry('mmseg', 'HOOKS')
SEG_OPTIM_WRAPPER_CONSTRUCTORS = _registry('mmseg',
                                           'OPTIM_WRAPPER_CONSTRUCTORS')
DET_MODELS = _registry('mmdet', 'MODELS')
DET_HOOKS = _registry('mmdet', 'HOOKS')
DET_OPTIM_WRAPPER_CONSTRUCTORS = _registry('mmdet',
                                           'OPTIM_WRAPPER_CONSTRUCTORS')


def _register_in(*registries):
    registries = [r for r in registries if r is not None]

    def register(cls):
        for registry in registries:
            registry.register_module(module=cls)
        return cls

    return register


#: Class decorator: register a model part in the installed frameworks'
#: ``MODELS``.
register_model = _register_in(SEG_MODELS, DET_MODELS)
#: Class decorator: register a runner hook in the installed frameworks'
#: ``HOOKS``.
register_hook = _register_in(SEG_HOOKS, DET_HOOKS)
