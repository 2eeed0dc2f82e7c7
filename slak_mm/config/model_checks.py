"""Does the neck / head of a config fit its SLaK backbone?

A framework config with SLaK swapped in keeps the ResNet numbers of its
neck and heads unless the user changes them. Wrong channels fail deep in a
conv with a shape error; wrong strides do not fail at all: RetinaNet with
``out_indices=(1, 2, 3)`` and the base's FPN ``start_level=1`` trains on
maps at strides 16-256 while its anchors assume 8-128.
:func:`check_backbone_neck` compares, from the config alone (nothing is
built), the SLaK outputs with the neck's ``in_channels`` and the feature
maps (of the neck, else of the backbone) with the heads' channels,
``in_index``, DeepLabV3+'s ``c1_in_channels``, anchor / prior strides,
RoI extractor strides and FPNHead's ``feature_strides``.
"""
import inspect
from typing import Any, List, Optional

from mmengine.config import Config

from slak_mm.models.backbones.slak import SLaK
from slak_mm.registry import init_default, is_subclass_named, registered_class

__all__ = [
    'FPN_LIKE', 'check_backbone_neck', 'slak_default', 'slak_feature_maps',
    'type_name'
]

#: Necks whose outputs are the inputs from ``start_level`` on, then extra
#: levels at twice the stride each (mmdet's and mmseg's FPN, mmdet's PAFPN).
FPN_LIKE = ('FPN', 'PAFPN')


def type_name(node: dict) -> Optional[str]:
    """The class name of a config node's ``type``, without a scope
    (``'mmdet.FPN'`` -> ``'FPN'``; a class gives its ``__name__``).

    Args:
        node (dict): A config dict with a ``type``.

    Returns:
        str | None: The name; None without a usable ``type``.
    """
    kind = node.get('type')
    if isinstance(kind, str):
        return kind.split('.')[-1]  # 'mmdet.FPN' -> 'FPN'
    return getattr(kind, '__name__', None)


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _stride(value: Any) -> int:
    """An anchor generator stride: ``8`` or ``(8, 8)``."""
    return int(_as_list(value)[0])


def slak_default(name: str) -> Any:
    """The default of the ``SLaK`` argument ``name`` (what a backbone
    config that does not set it gets).

    Args:
        name (str): An argument of ``SLaK.__init__``.

    Returns:
        The default value.
    """
    return inspect.signature(SLaK.__init__).parameters[name].default


def slak_feature_maps(backbone: dict) -> Optional[List[dict]]:
    """The maps a SLaK backbone config outputs, without building it.

    Args:
        backbone (dict): A ``type='SLaK'`` config.

    Returns:
        list[dict] | None: Per output ``channels``, ``stride``, ``name``
        (``'SLaK stage i'``) and ``source`` (for messages); None when the
        config cannot be read (SLaK's own argument checks then report it
        at build time).
    """
    arch = backbone.get('arch', slak_default('arch'))
    width = backbone.get('width_factor', slak_default('width_factor'))
    out_indices = _as_list(
        backbone.get('out_indices', slak_default('out_indices')))
    try:
        dims = (SLaK.arch_settings[arch]
                if isinstance(arch, str) else arch)['dims']
        # as SLaK.__init__ widens them (SLaK(...).out_channels)
        return [
            dict(
                channels=int(dims[i] * width),
                stride=4 * 2**i,
                name=f'SLaK stage {i}',
                source='the SLaK outputs') for i in out_indices
        ]
    except (KeyError, IndexError, TypeError):
        return None


def _describe(maps: List[dict]) -> str:
    return (f'channels {[m["channels"] for m in maps]} at strides '
            f'{[m["stride"] for m in maps]}')


def _check_neck(neck: dict, maps: List[dict], errors: List[str]):
    """Check the neck's inputs; return its output maps (None if unknown)."""
    in_channels = neck.get('in_channels')
    if isinstance(in_channels, (list, tuple)):
        wanted = [m['channels'] for m in maps]
        if list(in_channels) != wanted:
            errors.append(
                f'model.neck.in_channels={list(in_channels)} does not match '
                f'the SLaK backbone outputs ({_describe(maps)}): set '
                f'model.neck.in_channels={wanted} (one entry per '
                f'model.backbone.out_indices, SLaK(...).out_channels).')
            return None
    kind = type_name(neck)
    if kind not in FPN_LIKE or not isinstance(in_channels, (list, tuple)):
        return None
    start = neck.get('start_level', 0)
    end = neck.get('end_level', -1)
    used = maps[start:len(maps) if end in (-1, len(maps) - 1) else end + 1]
    if not used:
        errors.append(f'model.neck.start_level={start} leaves none of the '
                      f'{len(maps)} SLaK outputs for the {kind}.')
        return None
    strides = [m['stride'] for m in used]
    while len(strides) < neck.get('num_outs', len(used)):
        strides.append(strides[-1] * 2)  # extra levels: stride-2 conv/pool
    return [
        dict(
            channels=neck.get('out_channels'),
            stride=s,
            name=f'{kind} output {i}',
            source=f'the {kind} outputs',
            neck=True) for i, s in enumerate(strides)
    ]


def _stride_fix(maps: List[dict], backbone_maps: List[dict],
                first: int) -> str:
    """How to make neck outputs start at stride ``first``."""
    if not maps[0].get('neck'):
        return 'change model.backbone.out_indices'
    starts = [m['stride'] for m in backbone_maps]
    if first in starts:
        return (f'set model.neck.start_level={starts.index(first)} (the SLaK '
                f'output at stride {first})')
    stages = {4 * 2**i: i for i in range(4)}  # SLaK stage i: stride 4 * 2^i
    if first in stages:
        return (f'add stage {stages[first]} (stride {first}) to '
                f'model.backbone.out_indices and its channels to '
                f'model.neck.in_channels')
    return 'change the neck'


def _check_strides(where: str, strides: list, maps: List[dict],
                   backbone_maps: List[dict], prefix: bool,
                   errors: List[str]) -> None:
    """``strides`` must be those of ``maps`` (``prefix``: of its first
    ``len(strides)``, as RoI extractors read only those)."""
    strides = [_stride(s) for s in strides]
    actual = [m['stride'] for m in maps]
    if (actual[:len(strides)] if prefix else actual) == strides:
        return
    errors.append(
        f'{where}={strides} but {maps[0]["source"]} are at strides '
        f'{actual}: '
        f'{_stride_fix(maps, backbone_maps, strides[0])}, or set {where}='
        f'{actual[:len(strides)] if prefix else actual}.')


def _check_channels(where: str, value: Any, maps: List[dict],
                    errors: List[str]) -> None:
    """Every map of ``maps`` must have ``value`` channels."""
    widths = sorted({m['channels'] for m in maps})
    if widths == [value]:
        return
    if len(widths) == 1:
        errors.append(f'{where}={value} but the maps it reads '
                      f'({_describe(maps)}) have {widths[0]}: set '
                      f'{where}={widths[0]}.')
    else:
        errors.append(f'{where}={value} but the maps it reads differ in '
                      f'width ({_describe(maps)}): put a neck (e.g. FPN) '
                      f'before the head.')


def _check_det_heads(model: dict, maps: List[dict], backbone_maps: List[dict],
                     errors: List[str]) -> None:
    for key in ('rpn_head', 'bbox_head'):
        head = model.get(key)
        if not isinstance(head, dict):
            continue
        if isinstance(head.get('in_channels'), int):
            _check_channels(f'model.{key}.in_channels', head['in_channels'],
                            maps, errors)
        for gen in ('anchor_generator', 'prior_generator'):
            strides = (head.get(gen) or {}).get('strides')
            if strides is not None:
                _check_strides(f'model.{key}.{gen}.strides', strides, maps,
                               backbone_maps, False, errors)
        if head.get('strides') is not None:  # FCOS-like anchor-free heads
            _check_strides(f'model.{key}.strides', head['strides'], maps,
                           backbone_maps, False, errors)
    roi_head = model.get('roi_head') or {}
    for key in ('bbox_roi_extractor', 'mask_roi_extractor'):
        for i, extractor in enumerate(_as_list(roi_head.get(key))):
            if not isinstance(extractor, dict):
                continue
            where = f'model.roi_head.{key}' + (f'.{i}' if isinstance(
                roi_head.get(key), list) else '')
            if extractor.get('featmap_strides') is not None:
                _check_strides(f'{where}.featmap_strides',
                               extractor['featmap_strides'], maps,
                               backbone_maps, True, errors)
            if isinstance(extractor.get('out_channels'), int):
                n = len(extractor.get('featmap_strides') or maps)
                _check_channels(f'{where}.out_channels',
                                extractor['out_channels'], maps[:n], errors)


def _decode_head_class(head: dict, scope: Optional[str]) -> Optional[type]:
    """The class of a segmentor head that picks its inputs by ``in_index``
    (mmseg's ``BaseDecodeHead`` family); None for any other head (e.g.
    Mask2Former / MaskFormer, which read every map) or one not found."""
    from mmengine.registry import MODELS
    cls = registered_class(MODELS, head.get('type'), scope)
    return cls if is_subclass_named(cls, 'mmseg', 'BaseDecodeHead') else None


def _check_seg_head(where: str, head: dict, scope: Optional[str],
                    maps: List[dict], backbone_maps: List[dict],
                    errors: List[str]) -> None:
    cls = _decode_head_class(head, scope)
    if cls is None:  # a head we do not model: nothing to say
        return
    in_index = head.get('in_index', init_default(cls, 'in_index', -1))
    indices = _as_list(in_index)
    # unset: a wrapper head (KNet's IterativeDecodeHead) whose inner heads
    # take the channels; nothing to compare
    channels = [] if head.get('in_channels') is None else _as_list(
        head['in_channels'])
    for k, index in enumerate(indices):
        if not -len(maps) <= index < len(maps):
            errors.append(
                f'{where}.in_index={in_index} but there are only '
                f'{len(maps)} feature maps ({_describe(maps)}): pick indices '
                f'in 0..{len(maps) - 1}.')
            return
        want = maps[index]['channels']
        if k < len(channels) and channels[k] != want:
            fix = ([maps[i]['channels'] for i in indices] if isinstance(
                head.get('in_channels'), (list, tuple)) else want)
            errors.append(
                f'{where}.in_channels={head.get("in_channels")} for '
                f'in_index={in_index}, but feature map {index} '
                f'({maps[index]["name"]}, stride {maps[index]["stride"]}) '
                f'has {want} channels: set {where}.in_channels={fix}.')
            break
    c1 = head.get('c1_in_channels')
    if isinstance(c1, int) and c1 > 0 and c1 != maps[0]['channels']:
        errors.append(
            f'{where}.c1_in_channels={c1}, but DeepLabV3+ takes its '
            f'low-level branch from feature map 0 ({maps[0]["name"]}, stride '
            f'{maps[0]["stride"]}) with {maps[0]["channels"]} channels: set '
            f'{where}.c1_in_channels={maps[0]["channels"]}.')
    if head.get('feature_strides') is not None:
        _check_strides(f'{where}.feature_strides', head['feature_strides'],
                       [maps[i] for i in indices], backbone_maps, False,
                       errors)


def check_backbone_neck(cfg: Config) -> None:
    """Refuse a config whose neck or heads do not fit its SLaK backbone.

    Checked from the config alone (before anything is built), only when
    ``model.backbone`` is SLaK: the neck's ``in_channels`` against the SLaK
    outputs (``out_indices``, ``arch``, ``width_factor``); then, on the
    neck's output maps (FPN / PAFPN: strides from ``start_level``,
    ``end_level``, ``num_outs``) or on the backbone's when there is no
    neck, the detectors' ``rpn_head`` / ``bbox_head`` ``in_channels`` and
    anchor / prior strides, the RoI extractors' ``featmap_strides`` and
    ``out_channels``, and the segmentors' ``decode_head`` /
    ``auxiliary_head`` ``in_channels`` / ``in_index`` (heads of mmseg's
    ``BaseDecodeHead`` family, with the head class's own ``in_index``
    default), DeepLabV3+'s ``c1_in_channels`` and FPNHead's
    ``feature_strides``. Heads and necks it does not model (Mask2Former,
    MaskFormer, DETR-family channel mappers) are not checked: the check
    refuses only what it knows would fail.

    Args:
        cfg (Config): The config (``--cfg-options`` applied).

    Raises:
        ValueError: Listing each mismatch with both sides and the setting
            that fixes it.
    """
    model = cfg.get('model') or {}
    backbone = model.get('backbone') or {}
    if not isinstance(backbone, dict) or type_name(backbone) != 'SLaK':
        return
    backbone_maps = slak_feature_maps(backbone)
    if backbone_maps is None:
        return
    errors: List[str] = []
    maps = backbone_maps
    neck = model.get('neck')
    if neck is not None:
        maps = (
            _check_neck(neck, backbone_maps, errors)
            if isinstance(neck, dict) else None)
    if maps:  # None: a neck whose outputs we do not model
        _check_det_heads(model, maps, backbone_maps, errors)
        for key in ('decode_head', 'auxiliary_head'):
            heads = model.get(key)
            for i, head in enumerate(_as_list(heads)):
                if isinstance(head, dict):
                    where = f'model.{key}' + (f'.{i}' if isinstance(
                        heads, list) else '')
                    _check_seg_head(where, head, cfg.get('default_scope'),
                                    maps, backbone_maps, errors)
    if errors:
        raise ValueError(
            f'The neck / heads do not fit the SLaK backbone (outputs: '
            f'{", ".join(m["name"] for m in backbone_maps)}; '
            f'{_describe(backbone_maps)}):\n  - ' + '\n  - '.join(errors))
