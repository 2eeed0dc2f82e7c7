"""Layer-wise learning-rate decay for SLaK, reusing mmseg's and mmdet's.

Both frameworks' ``LearningRateDecayOptimizerConstructor`` assign layer ids
with ``get_layer_id_for_convnext`` / ``get_stage_id_for_convnext``, which
match on ConvNeXt's parameter names (``backbone.downsample_layers.*``,
``backbone.stages.*``) -- the names SLaK keeps. They only refuse SLaK because
they dispatch on the backbone *class name* containing ``ConvNeXt``. The
subclasses below hand them a view of the model whose backbone answers to
that name; the grouping logic itself is not copied. Each installed
framework gets its constructor.

The mm constructors read only ``num_layers``, ``decay_rate`` and
``decay_type`` and drop every other ``paramwise_cfg`` option without a word
-- among them ``custom_keys``, which the DETR / Mask2Former bases rely on
(backbone ``lr_mult=0.1``, no weight decay on ``query_embed``). The
subclasses apply ``custom_keys`` on top of the layer-wise groups (the part
written here: neither mm constructor nor mmengine's default composes the
two).

SLaK's recipe is merged into a stock config's ``optim_wrapper`` (the
drop-in base's ``slak_det_optim_wrapper``): the base's wrapper type
(``AmpOptimWrapper``), ``clip_grad``, ``accumulative_counts`` and
``custom_keys`` stay. What the layer-decay rule overrides (mmengine's
``bias_lr_mult``, a non-zero ``norm_decay_mult`` ... of the base) is logged
once, with what was kept, when the optimizer is built; options neither rule
knows are refused.
"""
import logging
from typing import Any, Dict, List, Optional

import torch.nn as nn
from mmengine.logging import print_log

from slak_mm.registry import (DET_OPTIM_WRAPPER_CONSTRUCTORS, FRAMEWORKS,
                              SEG_OPTIM_WRAPPER_CONSTRUCTORS)

__all__ = ['convnext_layout_view']

#: ``paramwise_cfg`` keys of the layer-decay rule itself.
LAYER_DECAY_KEYS = ('num_layers', 'decay_rate', 'decay_type')
#: mmengine's ``paramwise_cfg`` options that the layer-decay rule replaces
#: (it sets every parameter's lr and weight decay): their neutral value
#: (what the rule does anyway: every 1-D parameter -- norm weights and
#: biases, layer scales -- and every ``*.bias`` gets no weight decay) and
#: what the rule does instead of another value.
OVERRIDDEN_OPTIONS = {
    'norm_decay_mult': (0, 'norms get weight decay 0'),
    'bias_decay_mult': (0, 'biases get weight decay 0'),
    'flat_decay_mult': (0, '1-D parameters get weight decay 0'),
    'bias_lr_mult': (1, "biases get their layer's lr"),
    'dcn_offset_lr_mult': (1, "DCN offsets get their layer's lr"),
    'dwconv_decay_mult': (1, "depthwise convs get their layer's weight "
                          'decay'),
}
#: Fields of a ``custom_keys`` entry that would override the layer-wise
#: values instead of scaling them.
CUSTOM_KEY_OVERRIDES = ('params', 'lr', 'weight_decay')


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


def check_layer_decay_paramwise_cfg(paramwise_cfg: dict) -> Dict[str, Any]:
    """Refuse ``paramwise_cfg`` options the SLaK layer-decay constructors
    do not know, and find the mmengine options the layer-decay rule
    overrides (a stock base's ``bias_lr_mult=2.0``).

    Args:
        paramwise_cfg (dict): The optimizer wrapper's ``paramwise_cfg``; an
            empty one means no layer decay (mmengine then builds a plain
            optimizer).

    Returns:
        dict: The overridden options (those of :data:`OVERRIDDEN_OPTIONS`
        not at their neutral value) and their values.

    Raises:
        ValueError: Naming the option, its value and what is supported.
    """
    if not paramwise_cfg:
        return {}
    where = 'optim_wrapper.paramwise_cfg'
    supported = (f'supported: {", ".join(LAYER_DECAY_KEYS)}, custom_keys '
                 '(lr_mult, decay_mult), bypass_duplicate; overridden by the '
                 f'layer decay: {", ".join(OVERRIDDEN_OPTIONS)}')
    for key, value in paramwise_cfg.items():
        if key not in LAYER_DECAY_KEYS + tuple(OVERRIDDEN_OPTIONS) + (
                'custom_keys', 'bypass_duplicate'):
            raise ValueError(
                f'{where}.{key}={value!r} is not supported by '
                'SLaKLearningRateDecayOptimizerConstructor; remove it (from '
                'a base: paramwise_cfg=dict(_delete_=True, ...) with the '
                f'options to keep) or use custom_keys ({supported})')
    for key in ('num_layers', 'decay_rate'):
        if not isinstance(paramwise_cfg.get(key), (int, float)):
            raise ValueError(
                f'{where}.{key}={paramwise_cfg.get(key)!r}: the layer-decay '
                'constructor needs num_layers (int, e.g. 6 for SLaK-T) and '
                'decay_rate (float, e.g. 0.9)')
    decay_type = paramwise_cfg.get('decay_type', 'layer_wise')
    if decay_type not in ('layer_wise', 'stage_wise'):
        raise ValueError(f'{where}.decay_type={decay_type!r}: expected '
                         "'layer_wise' or 'stage_wise'")
    for name, entry in paramwise_cfg.get('custom_keys', {}).items():
        if not isinstance(entry, dict):
            raise ValueError(
                f'{where}.custom_keys[{name!r}]={entry!r}: expected a dict '
                'such as dict(lr_mult=0.1, decay_mult=0.0)')
        overrides = [k for k in CUSTOM_KEY_OVERRIDES if k in entry]
        if overrides:
            raise ValueError(
                f'{where}.custom_keys[{name!r}] sets {overrides[0]!r}, which '
                'would replace the layer-wise value: use lr_mult / '
                'decay_mult, which scale it')
    return {
        key: paramwise_cfg[key]
        for key, (neutral, _) in OVERRIDDEN_OPTIONS.items()
        if key in paramwise_cfg and paramwise_cfg[key] != neutral
    }


def composition_summary(optim_wrapper_cfg: dict, optimizer_cfg: dict,
                        paramwise_cfg: dict, overridden: Dict[str,
                                                              Any]) -> str:
    """The line the SLaK constructors log once: the optimizer and layer
    decay used, what the config's optim_wrapper keeps, what the layer-decay
    rule overrides.

    Args:
        optim_wrapper_cfg (dict): The wrapper's settings without
            ``optimizer`` (``type``, ``clip_grad``, ...).
        optimizer_cfg (dict): The optimizer's.
        paramwise_cfg (dict): The layer decay and ``custom_keys``.
        overridden (dict): From :func:`check_layer_decay_paramwise_cfg`.

    Returns:
        str: The summary.
    """
    optimizer = ', '.join(f'{k}={v!r}' for k, v in optimizer_cfg.items()
                          if k != 'type' and not k.startswith('_'))
    kept = [
        f'{k}={v!r}' for k, v in optim_wrapper_cfg.items()
        if not k.startswith('_')
    ]
    kept += [
        f'custom_keys[{k!r}]={dict(v)!r}'
        for k, v in paramwise_cfg.get('custom_keys', {}).items()
    ]
    line = (
        f'SLaK layer decay ({paramwise_cfg.get("decay_type", "layer_wise")}'
        f', decay_rate={paramwise_cfg.get("decay_rate")}, num_layers='
        f'{paramwise_cfg.get("num_layers")}) on '
        f'{optimizer_cfg.get("type")}({optimizer}); kept from the '
        f'optim_wrapper: {", ".join(kept) or "nothing"}')
    if overridden:
        line += '; overridden by the layer decay: ' + ', '.join(
            f'paramwise_cfg.{k}={v!r} ({OVERRIDDEN_OPTIONS[k][1]})'
            for k, v in overridden.items())
    return line


def apply_custom_keys(groups: List[dict],
                      custom_keys: Dict[str, dict]) -> List[dict]:
    """Split layer-decay param groups by ``custom_keys`` and scale them.

    mmengine's matching rule: the keys sorted alphabetically, then longest
    first; the first key that is a substring of a parameter's full name
    applies. Its ``lr_mult`` / ``decay_mult`` multiply the group's
    layer-decayed ``lr`` and the layer-decay rule's ``weight_decay``; its
    other fields are copied onto the group as mmengine does (per-group
    optimizer options).

    Args:
        groups (list[dict]): Groups from the mm layer-decay constructor, with
            ``params``, ``param_names``, ``lr``, ``weight_decay`` and
            ``group_name``.
        custom_keys (dict[str, dict]): ``paramwise_cfg.custom_keys``.

    Returns:
        list[dict]: The groups, those with matched parameters split in two
        (a split group's ``group_name`` ends in ``:KEY``).
    """
    if not custom_keys:
        return groups
    sorted_keys = sorted(sorted(custom_keys), key=len, reverse=True)
    result = []
    for group in groups:
        parts: Dict[Optional[str], dict] = {}
        for param, name in zip(group['params'], group['param_names']):
            key = next((k for k in sorted_keys if k in name), None)
            part = parts.setdefault(key, dict(params=[], param_names=[]))
            part['params'].append(param)
            part['param_names'].append(name)
        for key, part in parts.items():
            if key is None:
                result.append(dict(group, **part))
                continue
            cfg = custom_keys[key]
            split = dict(group, **cfg, **part)
            split['group_name'] = f'{group["group_name"]}:{key}'
            split['lr'] = group['lr'] * cfg.get('lr_mult', 1.)
            if group['weight_decay'] is not None:
                split['weight_decay'] = (
                    group['weight_decay'] * cfg.get('decay_mult', 1.))
            result.append(split)
    return result


class _LayerDecayWithCustomKeys:
    """What the SLaK constructors add to the mm ones: the ConvNeXt view,
    ``custom_keys`` on top of the layer-wise groups, and the refusal of
    options neither applies."""

    def __init__(self,
                 optim_wrapper_cfg: dict,
                 paramwise_cfg: Optional[dict] = None):
        optimizer = optim_wrapper_cfg.get('optimizer')
        if isinstance(optimizer, dict) and '_delete_' in optimizer:
            # the drop-in's optimizer merged into a config without one
            optim_wrapper_cfg = dict(
                optim_wrapper_cfg,
                optimizer={
                    k: v
                    for k, v in optimizer.items() if k != '_delete_'
                })
        super().__init__(optim_wrapper_cfg, paramwise_cfg)
        overridden = check_layer_decay_paramwise_cfg(self.paramwise_cfg)
        print_log(
            composition_summary(self.optim_wrapper_cfg, self.optimizer_cfg,
                                self.paramwise_cfg, overridden),
            logger='current',
            level=logging.WARNING if overridden else logging.INFO)

    def add_params(self, params: List[dict], module: nn.Module,
                   **kwargs) -> None:
        """Add the layer-wise groups of ``module``, split by
        ``custom_keys``, to ``params``.

        Args:
            params (list[dict]): Param groups, extended in place.
            module (nn.Module): The model, with a SLaK ``backbone``.
        """
        groups: List[dict] = []
        super().add_params(groups, convnext_layout_view(module), **kwargs)
        custom_keys = self.paramwise_cfg.get('custom_keys', {})
        groups = apply_custom_keys(groups, custom_keys)
        for key in custom_keys:
            matched = [
                g for g in groups if g['group_name'].endswith(f':{key}')
            ]
            print_log(
                f'custom_keys[{key!r}] {dict(custom_keys[key])!r} on top of '
                f'the layer decay: {sum(len(g["params"]) for g in matched)} '
                f'parameters in {len(matched)} layer groups',
                logger='current',
                level=logging.INFO)
        params.extend(groups)


if 'mmseg' in FRAMEWORKS:
    from mmseg.engine.optimizers import \
        LearningRateDecayOptimizerConstructor as _SegConstructor

    @SEG_OPTIM_WRAPPER_CONSTRUCTORS.register_module()
    class SLaKLearningRateDecayOptimizerConstructor(_LayerDecayWithCustomKeys,
                                                    _SegConstructor):
        """mmseg's layer/stage-wise lr decay, for SLaK backbones.

        ``paramwise_cfg``: mmseg's ``num_layers``, ``decay_rate``,
        ``decay_type`` (``'layer_wise'`` or ``'stage_wise'``), plus
        ``custom_keys`` (``lr_mult`` / ``decay_mult`` on top of the layer
        decay, see :func:`apply_custom_keys`); other options raise
        (:func:`check_layer_decay_paramwise_cfg`).
        """

    __all__.append('SLaKLearningRateDecayOptimizerConstructor')

if 'mmdet' in FRAMEWORKS:
    from mmdet.engine.optimizers import \
        LearningRateDecayOptimizerConstructor as _DetConstructor

    @DET_OPTIM_WRAPPER_CONSTRUCTORS.register_module(
        name='SLaKLearningRateDecayOptimizerConstructor')
    class DetSLaKLearningRateDecayOptimizerConstructor(
            _LayerDecayWithCustomKeys, _DetConstructor):
        """mmdet's layer/stage-wise lr decay, for SLaK backbones (registered
        in mmdet as ``SLaKLearningRateDecayOptimizerConstructor``); the same
        ``paramwise_cfg`` as the mmseg one."""

    __all__.append('DetSLaKLearningRateDecayOptimizerConstructor')
