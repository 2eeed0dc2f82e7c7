"""The OpenMMLab registries slak_mm adds its modules to.

SLaK serves both mmsegmentation and mmdetection, so every public part is
registered in both frameworks' registries: a config whose ``default_scope``
is ``mmseg`` or ``mmdet`` then finds it by ``type`` alone.
"""
from mmdet.registry import HOOKS as DET_HOOKS
from mmdet.registry import MODELS as DET_MODELS
from mmdet.registry import \
    OPTIM_WRAPPER_CONSTRUCTORS as DET_OPTIM_WRAPPER_CONSTRUCTORS
from mmseg.registry import HOOKS as SEG_HOOKS
from mmseg.registry import MODELS as SEG_MODELS
from mmseg.registry import \
    OPTIM_WRAPPER_CONSTRUCTORS as SEG_OPTIM_WRAPPER_CONSTRUCTORS

__all__ = [
    'DET_HOOKS', 'DET_MODELS', 'DET_OPTIM_WRAPPER_CONSTRUCTORS', 'SEG_HOOKS',
    'SEG_MODELS', 'SEG_OPTIM_WRAPPER_CONSTRUCTORS', 'register_hook',
    'register_model'
]


def _register_in(*registries):

    def register(cls):
        for registry in registries:
            registry.register_module(module=cls)
        return cls

    return register


#: Class decorator: register a model part in the mmseg and mmdet ``MODELS``.
register_model = _register_in(SEG_MODELS, DET_MODELS)
#: Class decorator: register a runner hook in the mmseg and mmdet ``HOOKS``.
register_hook = _register_in(SEG_HOOKS, DET_HOOKS)
