"""The config a user writes to put SLaK into a packaged config: the
documented recipe (docs/your_config.md), and nothing else.

::

    _base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
              'slak_mm::_base_/slak_t_drop_in.py']
    model = dict(
        backbone=dict(_delete_=True, **_base_.slak_t),
        neck=dict(in_channels=_base_.slak_t_channels))

The input channels go to what reads the backbone: the neck (all four
outputs for a list, the last for a neck that reads one map); without a
neck the heads (an mmseg head the outputs its ``in_index`` names, a head
that reads every map all four); a classifier's head the last (through its
pooling neck). mmseg
segmentors also get ``pretrained=None`` (their ``EncoderDecoder`` hands
``pretrained`` to the backbone). What the checks then ask for
(:func:`slak_mm.config.backbone_neck_problems`) is applied on top by
:mod:`.trial`.
"""
import os.path as osp
from typing import Any, List, Optional, Tuple

from slak_mm.config import packaged_config_folder

__all__ = ['DROP_IN', 'user_config']

#: The drop-in base, as a user's config names it.
DROP_IN = 'slak_mm::_base_/slak_t_drop_in.py'
_CHANNELS = '_base_.slak_t_channels'


def _channels_for(in_channels: Any, in_index: Any = None) -> Any:
    """The expression for a reader's ``in_channels``: the SLaK outputs its
    ``in_index`` names, all four for a list without one, else the last."""
    if in_index is not None:
        indices = in_index if isinstance(in_index, (list, tuple)) else None
        if indices is None and isinstance(in_index,
                                          int) and -4 <= in_index < 4:
            return f'{_CHANNELS}[{in_index}]'
        if indices and all(
                isinstance(i, int) and -4 <= i < 4 for i in indices):
            return '[' + ', '.join(f'{_CHANNELS}[{i}]' for i in indices) + ']'
        return None  # out of range: the check names the fix
    if isinstance(in_channels, tuple):  # as the base (JPU wants a tuple)
        return f'tuple({_CHANNELS})'
    if isinstance(in_channels, list):
        return _CHANNELS
    return f'{_CHANNELS}[-1]'


def _head_lines(model: dict, keys: Tuple[str, ...]) -> List[str]:
    """``key=dict(in_channels=...)`` for the heads that read the backbone
    (no neck); a list of heads is written out with its items."""
    lines = []
    for key in keys:
        heads = model.get(key)
        if isinstance(heads, dict) and 'in_channels' in heads:
            value = _channels_for(heads['in_channels'], heads.get('in_index'))
            if value:
                lines.append(f'{key}=dict(in_channels={value})')
        elif isinstance(heads, (list, tuple)):
            items = []
            for i, head in enumerate(heads):
                value = _channels_for(
                    head.get('in_channels'),
                    head.get('in_index')) if isinstance(head, dict) else None
                items.append(f'dict(_base_.model.{key}[{i}], in_channels='
                             f'{value})' if value and 'in_channels' in head
                             else f'_base_.model.{key}[{i}]')
            if any('in_channels=' in item for item in items):
                lines.append(f'{key}=[{", ".join(items)}]')
    return lines


def _teacher_config(base: str, model: dict) -> Optional[Tuple[str, str]]:
    """The installed file of a distillation teacher's config that the base
    names relative to the framework's source tree (mmdet's LD:
    ``teacher_config='configs/gfl/...'``, found only from a clone's root),
    and the path in the configs folder; None where there is none to fix."""
    path = model.get('teacher_config')
    if not isinstance(path, str) or osp.isfile(path):
        return None
    folder = packaged_config_folder(base.partition('::')[0]) or ''
    rel = path.split('configs/', 1)[-1]
    found = osp.join(folder, rel)
    return (found, rel) if osp.isfile(found) else None


def user_config(base: str, model: dict) -> Tuple[str, List[str]]:
    """The config text a user writes for ``base`` with SLaK-T.

    Args:
        base (str): The packaged config as a ``_base_`` names it
            (``'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'``).
        model (dict): The base's ``model`` (which parts read the backbone).

    Returns:
        tuple[str, list[str]]: The config text, and the settings besides
        the backbone swap, as written there
        (``'neck=dict(in_channels=_base_.slak_t_channels)'``).
    """
    parts = []
    if model.get('pretrained') is not None:
        parts.append('pretrained=None')
    parts.append('backbone=dict(_delete_=True, **_base_.slak_t)')
    neck = model.get('neck')
    if isinstance(neck, dict) and 'in_channels' in neck:
        parts.append(
            f'neck=dict(in_channels={_channels_for(neck["in_channels"])})')
    elif isinstance(neck, (list, tuple)) and neck and isinstance(
            neck[0], dict) and 'in_channels' in neck[0]:
        rest = ', '.join(f'_base_.model.neck[{i}]'
                         for i in range(1, len(neck)))
        parts.append(f'neck=[dict(_base_.model.neck[0], in_channels='
                     f'{_channels_for(neck[0]["in_channels"])})' +
                     (f', {rest}' if rest else '') + ']')
    elif neck is None:
        parts += _head_lines(model,
                             ('decode_head', 'auxiliary_head', 'panoptic_head',
                              'rpn_head', 'bbox_head', 'head'))
    else:  # a neck that keeps the widths (a classifier's pooling)
        parts += _head_lines(model, ('head', ))
    teacher = _teacher_config(base, model)
    if teacher:
        parts.append(f'teacher_config={teacher[0]!r}')
    text = (f"_base_ = ['{base}',\n          '{DROP_IN}']\n"
            'model = dict(\n    ' + ',\n    '.join(parts) + ')\n')
    sets = [p for p in parts if not p.startswith('backbone=')]
    if teacher:  # the installed path, as the table shows it
        sets[-1] = (f"teacher_config='<{base.partition('::')[0]} configs>/"
                    f"{teacher[1]}'")
    return text, sets
