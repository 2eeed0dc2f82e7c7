"""The OpenMMLab registries slak_mm adds its modules to.

SLaK serves both mmsegmentation and mmdetection, so every public model part
is registered in both frameworks' registries: a config whose
``default_scope`` is ``mmseg`` or ``mmdet`` then finds it by ``type`` alone.
"""
from mmdet.registry import MODELS as DET_MODELS
from mmdet.registry import \
    OPTIM_WRAPPER_CONSTRUCTORS as DET_OPTIM_WRAPPER_CONSTRUCTORS
from mmseg.registry import MODELS as SEG_MODELS
from mmseg.registry import \
    OPTIM_WRAPPER_CONSTRUCTORS as SEG_OPTIM_WRAPPER_CONSTRUCTORS

__all__ = [
    'DET_MODELS', 'SEG_MODELS', 'DET_OPTIM_WRAPPER_CONSTRUCTORS',
    'SEG_OPTIM_WRAPPER_CONSTRUCTORS', 'register_model'
]


def register_model(cls):
    """Class decorator: register ``cls`` in the mmseg and mmdet ``MODELS``.

    Args:
        cls (type): The module class to register under its own name.

    Returns:
        type: ``cls`` unchanged.
    """
    for registry in (SEG_MODELS, DET_MODELS):
        registry.register_module(module=cls)
    return cls
