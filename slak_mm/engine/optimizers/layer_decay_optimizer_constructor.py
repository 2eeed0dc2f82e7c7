"""Layer-wise learning-rate decay for SLaK, reusing mmseg's and mmdet's.

Both frameworks' ``LearningRateDecayOptimizerConstructor`` assign layer ids
with ``get_layer_id_for_convnext`` / ``get_stage_id_for_convnext``, which
match on ConvNeXt's parameter names (``backbone.downsample_layers.*``,
``backbone.stages.*``) -- the names SLaK keeps. They only refuse SLaK because
they dispatch on the backbone *class name* containing ``ConvNeXt``. The
subclasses below hand them a view of the model whose backbone answers to
that name; the grouping logic itself is not copied. Each installed
framework gets its constructor.
"""
import torch.nn as nn

from slak_mm.registry import (DET_OPTIM_WRAPPER_CONSTRUCTORS, FRAMEWORKS,
                              SEG_OPTIM_WRAPPER_CONSTRUCTORS)

__all__ = ['convnext_layout_view']


class ConvNeXtLayoutBackbone:
    """Stands in for ``model.backbone`` in the mm constructors' class-name
    check; only its name is read."""


class _ConvNeXtLayoutView:
    """The parts of a model the mm layer-decay constructors read."""

    def __init__(self, model: nn.Module):
        self._model = model
        self.backbone = ConvNeXtLayoutBackbone()

    def named_parameters(self, *args, **kwargs):
        return self._model.named_parameters(*args, **kwargs)


def convnext_layout_view(model: nn.Module):
    """Return ``model`` as the ConvNeXt rules expect it.

    Args:
        model (nn.Module): A segmentor/detector whose ``backbone`` uses
            ConvNeXt parameter names (SLaK does).

    Returns:
        object: A view with ``named_parameters()`` and a ``backbone`` whose
        class name contains ``ConvNeXt``.
    """
    if not hasattr(model, 'backbone'):
        raise TypeError('SLaK layer-decay constructors need a model with a '
                        f'`backbone`, got {type(model).__name__}')
    return _ConvNeXtLayoutView(model)


if 'mmseg' in FRAMEWORKS:
    from mmseg.engine.optimizers import \
        LearningRateDecayOptimizerConstructor as _SegConstructor

    @SEG_OPTIM_WRAPPER_CONSTRUCTORS.register_module()
    class SLaKLearningRateDecayOptimizerConstructor(_SegConstructor):
        """mmseg's layer/stage-wise lr decay, for SLaK backbones.

        Same ``paramwise_cfg`` as mmseg's constructor: ``num_layers``,
        ``decay_rate``, ``decay_type`` (``'layer_wise'`` or
        ``'stage_wise'``).
        """

        def add_params(self, params, module, **kwargs):
            super().add_params(params, convnext_layout_view(module), **kwargs)

    __all__.append('SLaKLearningRateDecayOptimizerConstructor')

if 'mmdet' in FRAMEWORKS:
    from mmdet.engine.optimizers import \
        LearningRateDecayOptimizerConstructor as _DetConstructor

    @DET_OPTIM_WRAPPER_CONSTRUCTORS.register_module(
        name='SLaKLearningRateDecayOptimizerConstructor')
    class DetSLaKLearningRateDecayOptimizerConstructor(_DetConstructor):
        """mmdet's layer/stage-wise lr decay, for SLaK backbones (registered
        in mmdet as ``SLaKLearningRateDecayOptimizerConstructor``)."""

        def add_params(self, params, module, **kwargs):
            super().add_params(params, convnext_layout_view(module), **kwargs)

    __all__.append('DetSLaKLearningRateDecayOptimizerConstructor')
