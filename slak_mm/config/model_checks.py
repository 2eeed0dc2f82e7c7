"""Does the neck / head of a config fit its SLaK backbone?

A framework config with SLaK swapped in keeps the ResNet numbers of its
neck and heads unless the user changes them. Wrong channels fail deep in a
conv with a shape error; wrong strides and level counts often do not fail
at all: RetinaNet with ``out_indices=(1, 2, 3)`` and the base's FPN
``start_level=1`` trains on maps at strides 16-256 while its anchors assume
8-128, and RTMDet's CSPNeXtPAFPN fed four SLaK maps hands its head strides
4-16 for the 8-32 of its prior generator (the head zips the two lists).
:func:`check_backbone_neck` compares, from the config alone (nothing is
built), the SLaK outputs with what the neck or head reads, and the feature
maps (of the neck, else of the backbone) with the heads' channels,
``in_index``, DeepLabV3+'s ``c1_in_channels``, anchor / prior strides (the
config's, else the head class's defaults), RoI extractor strides, FPNHead's
``feature_strides``, Mask2Former's pixel decoder strides and the
deformable DETRs' level count.

How a neck maps inputs to outputs is read from its class (:data:`NECKS`,
matched along the class's bases, so subclasses count) and its arguments'
defaults from the class signature. Each fix the error offers is tried on a
copy of the config first: only a fix after which this check finds nothing
new is offered.
"""
import copy
import inspect
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from mmengine.config import Config

from slak_mm.models import SLaK
from slak_mm.network import resolve_arch
from slak_mm.registry import (init_default, is_subclass_named,
                              registered_class, type_name)

__all__ = [
    'NECKS', 'Problem', 'backbone_neck_problems', 'check_backbone_neck',
    'format_value', 'slak_default', 'slak_feature_maps', 'type_name'
]

#: How a neck class (or a subclass of it) maps its inputs to outputs:
#: ``'fpn'``: the inputs from ``start_level`` on, then extra levels at twice
#: the stride up to ``num_outs`` (mmdet's and mmseg's FPN, PAFPN);
#: ``'per_input'``: one output per input at its stride (RTMDet's
#: CSPNeXtPAFPN, YOLOX's PAFPN); ``'mapper'``: one per input, then extra
#: levels up to ``num_outs`` (ChannelMapper, the DETR family's neck).
NECKS = {
    'FPN': 'fpn',
    'CSPNeXtPAFPN': 'per_input',
    'YOLOXPAFPN': 'per_input',
    'ChannelMapper': 'mapper',
}
#: Strides of the four SLaK stages.
SLAK_STRIDES = (4, 8, 16, 32)
#: mmpretrain heads that read the backbone's maps themselves (CSRA's
#: class-specific attention), not one pooled vector.
MAP_HEADS = ('CSRAClsHead', )
#: Heads that read one backbone map at a stride of their own (CornerNet's
#: and CentripetalNet's read HourglassNet's stride-4 maps).
SINGLE_MAP_STRIDES = {'CornerHead': 4}


class Problem(NamedTuple):
    """One way a neck or head does not fit the SLaK backbone.

    Attributes:
        key (str): The config key at fault (``'model.neck.in_channels'``).
        message (str): The line the check prints: both sides and the fix.
        fixes (tuple[dict]): The settings the message offers, each a
            ``{'model.a.b': value}`` dict that removes this problem (tried
            on a copy of the config where the message says so), first the
            one the message names first; empty where it offers none.
    """
    key: str
    message: str
    fixes: Tuple[Dict[str, Any], ...] = ()


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
    out_indices = _as_list(
        backbone.get('out_indices', slak_default('out_indices')))
    try:
        # as SLaK.__init__ reads them (SLaK(...).out_channels)
        channels = resolve_arch(
            backbone.get('arch', slak_default('arch')), **{
                k: backbone.get(k)
                for k in ('kernel_size', 'small_kernel', 'width_factor')
            })['channels']
        return [
            dict(
                channels=channels[i],
                stride=SLAK_STRIDES[i],
                name=f'SLaK stage {i}',
                source='the SLaK outputs') for i in out_indices
        ]
    except (ValueError, IndexError, TypeError):
        return None


def _describe(maps: List[dict]) -> str:
    return (f'channels {[m["channels"] for m in maps]} at strides '
            f'{[m["stride"] for m in maps]}')


def format_value(value: Any) -> str:
    """A setting's value as a config writes it (``dict(a=1)``, ``(1, 2)``).

    Args:
        value (Any): The value.

    Returns:
        str: Its text.
    """
    if isinstance(value, dict):
        return 'dict(' + ', '.join(f'{k}={v!r}'
                                   for k, v in value.items()) + ')'
    return str(tuple(value)) if isinstance(value, tuple) else str(value)


def _set(model: dict, key: str, value: Any) -> None:
    """Set ``model.a.0.b`` (a dotted key from the messages) in ``model``."""
    *path, last = key.split('.')[1:]
    node = model
    for part in path:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[last] = value


def _fix_text(fixes: List[Dict[str, Any]]) -> str:
    """Settings as words: ``'set A=1 and B=2, or set C=3'``."""
    return ', or '.join('set ' + ' and '.join(f'{k}={format_value(v)}'
                                              for k, v in updates.items())
                        for updates in fixes)


def _stages(strides: List[int]) -> Optional[Tuple[int, ...]]:
    """The SLaK stages at ``strides`` (None if one is no SLaK stride)."""
    if not strides or any(s not in SLAK_STRIDES for s in strides):
        return None
    return tuple(SLAK_STRIDES.index(s) for s in strides)


class _Fit:
    """The problems of one model config (``check_backbone_neck``'s work).

    Args:
        model (dict): ``cfg.model`` (SLaK backbone).
        scope (str, optional): The config's ``default_scope``.
        advise (bool): Work out (and try) the fixes the messages offer.
    """

    def __init__(self, model: dict, scope: Optional[str], advise: bool):
        self.model, self.scope, self.advise = model, scope, advise
        # the classes of the data (mmpretrain's preprocessor says; its
        # configs set it at the top level, see _fit)
        self.classes = (model.get('data_preprocessor')
                        or {}).get('num_classes')
        self.backbone_maps = slak_feature_maps(model['backbone'])
        every = dict(model['backbone'], out_indices=(0, 1, 2, 3))
        self.stage_channels = [
            m['channels'] for m in slak_feature_maps(every) or []
        ]
        self.problems: List[Problem] = []
        self._baseline = None

    # -- what the parts are --------------------------------------------
    def _class(self, node: Any) -> Optional[type]:
        from mmengine.registry import MODELS
        if not isinstance(node, dict):
            return None
        return registered_class(MODELS, node.get('type'), self.scope)

    def _default(self, node: dict, name: str, default: Any) -> Any:
        """``node[name]``, else the default of its class's argument."""
        if name in node:
            return node[name]
        return init_default(self._class(node), name, default)

    def _neck_kind(self, neck: dict) -> Optional[str]:
        for klass in getattr(self._class(neck), '__mro__', ()):
            if klass.__name__ in NECKS:
                return NECKS[klass.__name__]
        return NECKS.get(type_name(neck))

    def _reader(self) -> Optional[Tuple[str, dict]]:
        """The part that reads the backbone maps through an
        ``in_channels`` list: the neck, else a head such as Mask2Former's."""
        neck = self.model.get('neck')
        if isinstance(neck, dict):
            return 'model.neck', neck
        for key in ('panoptic_head', 'decode_head'):
            head = self.model.get(key)
            if isinstance(head, dict) and isinstance(
                    head.get('in_channels'), (list, tuple)):
                return f'model.{key}', head
        return None

    def _head_strides(self, head: dict) -> Optional[Tuple[str, list]]:
        """``(where, strides)`` a dense head assumes: its anchor / prior
        generator's or its ``strides``, from the config, else from the
        head class's defaults."""
        for gen in ('anchor_generator', 'prior_generator'):
            node = head.get(gen)
            if isinstance(node, dict) and node.get('strides') is not None:
                return gen + '.strides', node['strides']
        if head.get('strides') is not None:  # FCOS-like, YOLOX
            return 'strides', head['strides']
        cls = self._class(head)
        for gen in ('anchor_generator', 'prior_generator'):
            node = init_default(cls, gen, None)
            if isinstance(node, dict) and node.get('strides') is not None:
                return gen + '.strides', node['strides']
        strides = init_default(cls, 'strides', None)
        if isinstance(strides, (list, tuple)):
            return 'strides', strides
        return None

    def wanted_strides(self) -> Optional[List[int]]:
        """The strides the heads assume for the maps they read (None where
        no head says)."""
        for key in ('rpn_head', 'bbox_head'):
            head = self.model.get(key)
            found = self._head_strides(head) if isinstance(head,
                                                           dict) else None
            if found:
                return [_stride(s) for s in found[1]]
        roi_head = self.model.get('roi_head') or {}
        for extractor in _as_list(roi_head.get('bbox_roi_extractor')):
            if isinstance(extractor,
                          dict) and extractor.get('featmap_strides'):
                return [_stride(s) for s in extractor['featmap_strides']]
        for key in ('decode_head', 'panoptic_head'):
            head = self.model.get(key)
            if not isinstance(head, dict):
                continue
            if head.get('feature_strides'):
                return list(head['feature_strides'])
            decoder = head.get('pixel_decoder')
            if isinstance(decoder, dict):
                strides = self._default(decoder, 'strides', None)
                if isinstance(strides, (list, tuple)):
                    return list(strides)
        return None

    # -- fixes ------------------------------------------------------------
    def _fixed(self, key: str, updates: Dict[str, Any]) -> bool:
        """Whether ``updates`` remove the problem at ``key`` and add none."""
        if self._baseline is None:
            self._baseline = {
                p.key
                for p in _Fit(self.model, self.scope, False).run()
            }
        model = copy.deepcopy(self.model)
        try:
            for name, value in updates.items():
                _set(model, name, value)
        except (KeyError, IndexError, TypeError):
            return False
        after = {p.key for p in _Fit(model, self.scope, False).run()}
        return key not in after and after <= self._baseline

    def fixes(self, key: str,
              candidates: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        """The candidates that remove the problem at ``key`` and add none
        (none without ``advise``), without repeats."""
        if not self.advise:
            return []
        found: List[Dict[str, Any]] = []
        for updates in candidates:
            if updates and updates not in found and self._fixed(key, updates):
                found.append(updates)
        return found

    def _inputs_for(self, outputs: List[int]) -> Optional[List[int]]:
        """The backbone strides the neck (or the head reading the backbone)
        needs to give maps at ``outputs``."""
        neck = self.model.get('neck')
        if not isinstance(neck, dict):
            return list(outputs)
        kind = self._neck_kind(neck)
        if kind == 'per_input':
            return list(outputs)
        if kind == 'mapper':
            count = len(_as_list(neck.get('in_channels')))
            return list(outputs[:count])
        if kind == 'fpn' and self._default(neck, 'end_level', -1) == -1:
            start = self._default(neck, 'start_level', 0)
            first = outputs[0]
            below = [first >> (start - i) for i in range(start)]
            return below + [s for s in SLAK_STRIDES if first <= s]
        return None

    def backbone_fix(self, strides: Optional[List[int]]) -> Dict[str, Any]:
        """``out_indices`` for maps at ``strides`` and the reader's
        ``in_channels`` for them (empty if SLaK has no such maps)."""
        stages = _stages(strides) if strides else None
        if stages is None:
            return {}
        updates = {'model.backbone.out_indices': stages}
        reader = self._reader()
        if reader and isinstance(reader[1].get('in_channels'), (list, tuple)):
            updates[f'{reader[0]}.in_channels'] = [
                self.stage_channels[i] for i in stages
            ]
        return updates

    # -- the checks ---------------------------------------------------------
    def add(self,
            key: str,
            text: str,
            fix: str = '',
            fixes: List[Dict[str, Any]] = ()) -> None:
        """Record a problem: ``fix`` is the advice in words, ``fixes`` the
        settings it offers (the advice is written from them where ``fix``
        is empty)."""
        fix = fix or _fix_text(fixes)
        self.problems.append(
            Problem(key, f'{text}: {fix}.' if fix else f'{text}.',
                    tuple(fixes)))

    def check_inputs(self, where: str, part: dict) -> bool:
        """The reader's ``in_channels`` list against the SLaK outputs; True
        if they fit."""
        in_channels = list(part['in_channels'])
        maps = self.backbone_maps
        wanted = [m['channels'] for m in maps]
        if in_channels == wanted:
            return True
        key = f'{where}.in_channels'
        if len(in_channels) == len(maps):
            self.add(
                key, f'{key}={in_channels} does not match the SLaK backbone '
                f'outputs ({_describe(maps)})',
                f'set {key}={wanted} (one entry per '
                f'model.backbone.out_indices, SLaK(...).out_channels)',
                [{
                    key: wanted
                }])
            return False
        outputs = self.wanted_strides()
        strides = self._inputs_for(outputs) if outputs else None
        if not strides:  # the deepest stages, as the ResNet recipes
            strides = list(SLAK_STRIDES[-len(in_channels):])
        every = {key: wanted}
        neck = self.model.get('neck')
        if outputs and where == 'model.neck' and self._neck_kind(
                neck) == 'fpn':
            found = [m['stride'] for m in maps]
            if outputs[0] in found:
                every['model.neck.start_level'] = found.index(outputs[0])
        fixes = self.fixes(key, [self.backbone_fix(strides), every])
        self.add(
            key, f'{key} has {len(in_channels)} entries ({in_channels}) but '
            f'the SLaK backbone gives {len(maps)} maps ({_describe(maps)})',
            '' if fixes else
            f'give {key} one entry per model.backbone.out_indices', fixes)
        return False

    def neck_maps(self, neck: dict) -> Optional[List[dict]]:
        """Check the neck's inputs; return its output maps (None if
        unknown)."""
        if isinstance(neck.get('in_channels'), (list, tuple)):
            if not self.check_inputs('model.neck', neck):
                return None
        else:
            return None
        kind = self._neck_kind(neck)
        maps, name = self.backbone_maps, type_name(neck)
        if kind == 'fpn':
            start = self._default(neck, 'start_level', 0)
            end = self._default(neck, 'end_level', -1)
            maps = maps[start:len(maps) if end in (-1,
                                                   len(maps) - 1) else end + 1]
            if not maps:
                self.add(
                    'model.neck.start_level', f'model.neck.start_level='
                    f'{start} leaves none of the {len(self.backbone_maps)} '
                    f'SLaK outputs for the {name}')
                return None
        elif kind is None:
            return None
        strides = [m['stride'] for m in maps]
        count = self._default(neck, 'num_outs',
                              None) if kind in ('fpn', 'mapper') else None
        while count is not None and len(strides) < count:
            strides.append(strides[-1] * 2)  # extra levels: stride-2 conv
        return [
            dict(
                channels=neck.get('out_channels'),
                stride=s,
                name=f'{name} output {i}',
                source=f'the {name} outputs',
                neck=True) for i, s in enumerate(strides)
        ]

    def check_strides(self, where: str, strides: list, maps: List[dict],
                      prefix: bool) -> None:
        """``strides`` must be those of ``maps`` (``prefix``: of its first
        ``len(strides)``, as RoI extractors read only those)."""
        strides = [_stride(s) for s in strides]
        actual = [m['stride'] for m in maps]
        actual = actual[:len(strides)] if prefix else actual
        if actual == strides:
            return
        candidates = []
        neck = self.model.get('neck')
        if maps[0].get('neck') and self._neck_kind(neck) == 'fpn':
            found = [m['stride'] for m in self.backbone_maps]
            if strides[0] in found:
                candidates.append(
                    {'model.neck.start_level': found.index(strides[0])})
        candidates.append(self.backbone_fix(self._inputs_for(strides)))
        candidates.append({where: actual})
        fixes = self.fixes(where, candidates)
        self.add(
            where, f'{where}={strides} but {maps[0]["source"]} are at '
            f'strides {[m["stride"] for m in maps]}',
            '' if fixes else 'change model.backbone.out_indices', fixes)

    def check_channels(
        self,
        where: str,
        value: Any,
        maps: List[dict],
        candidates: List[Dict[str, Any]] = ()) -> None:
        """Every map of ``maps`` must have ``value`` channels;
        ``candidates``: fixes to try where the maps differ in width."""
        widths = sorted({m['channels'] for m in maps})
        if widths == [value]:
            return
        if len(widths) == 1:
            self.add(
                where, f'{where}={value} but the maps it reads '
                f'({_describe(maps)}) have {widths[0]}',
                fixes=[{
                    where: widths[0]
                }])
        else:
            fixes = self.fixes(where, list(candidates))
            self.add(
                where, f'{where}={value} but the maps it reads differ in '
                f'width ({_describe(maps)})',
                '' if fixes else 'put a neck (e.g. FPN) before the head',
                fixes)

    def single_map(self, key: str, head: dict) -> Dict[str, Any]:
        """One SLaK output for a head that reads the backbone with one
        width: at the stride its class assumes (:data:`SINGLE_MAP_STRIDES`),
        else the last; one feature level where it counts them."""
        stride = next((SINGLE_MAP_STRIDES[k.__name__]
                       for k in getattr(self._class(head), '__mro__', ())
                       if k.__name__ in SINGLE_MAP_STRIDES), SLAK_STRIDES[-1])
        stage = SLAK_STRIDES.index(stride)
        fix = {
            'model.backbone.out_indices': (stage, ),
            f'model.{key}.in_channels': self.stage_channels[stage]
        }
        levels = self._default(head, 'num_feat_levels', None)
        if isinstance(levels, int) and levels != 1:
            fix[f'model.{key}.num_feat_levels'] = 1
        return fix

    def check_det_heads(self, maps: List[dict]) -> None:
        for key in ('rpn_head', 'bbox_head'):
            head = self.model.get(key)
            if not isinstance(head, dict):
                continue
            if isinstance(head.get('in_channels'), int):
                self.check_channels(f'model.{key}.in_channels',
                                    head['in_channels'], maps,
                                    [] if maps[0].get('neck') else
                                    [self.single_map(key, head)])
            found = self._head_strides(head)
            if found:
                self.check_strides(f'model.{key}.{found[0]}', found[1], maps,
                                   False)
        roi_head = self.model.get('roi_head') or {}
        for key in ('bbox_roi_extractor', 'mask_roi_extractor'):
            for i, extractor in enumerate(_as_list(roi_head.get(key))):
                if not isinstance(extractor, dict):
                    continue
                where = f'model.roi_head.{key}' + (f'.{i}' if isinstance(
                    roi_head.get(key), list) else '')
                if extractor.get('featmap_strides') is not None:
                    self.check_strides(f'{where}.featmap_strides',
                                       extractor['featmap_strides'], maps,
                                       True)
                if isinstance(extractor.get('out_channels'), int):
                    n = len(extractor.get('featmap_strides') or maps)
                    self.check_channels(f'{where}.out_channels',
                                        extractor['out_channels'], maps[:n])

    def check_levels(self, maps: List[dict]) -> None:
        """The deformable DETRs (Deformable DETR, DINO, DDQ) embed and
        attend over a fixed number of levels: the neck must give as many
        maps."""
        cls = self._class(self.model)
        levels = {}
        if 'num_feature_levels' in self.model or init_default(
                cls, 'num_feature_levels', None) is not None:
            levels['model.num_feature_levels'] = self._default(
                self.model, 'num_feature_levels', None)
        for part, layer in (('encoder', 'self_attn_cfg'), ('decoder',
                                                           'cross_attn_cfg')):
            attn = ((self.model.get(part) or {}).get('layer_cfg')
                    or {}).get(layer) or {}
            if isinstance(attn.get('num_levels'), int):
                levels[f'model.{part}.layer_cfg.{layer}.num_levels'] = attn[
                    'num_levels']
        wrong = {k: v for k, v in levels.items() if v != len(maps)}
        if not wrong:
            return
        count = max(wrong.values())
        key = 'model.neck.num_outs'
        candidates = [{
            key: count
        }] if 'num_outs' in (self.model.get('neck') or {}) else []
        candidates.append(dict(levels, **{k: len(maps) for k in levels}))
        named = ', '.join(f'{k}={v}' for k, v in wrong.items())
        self.add(
            key, f'{named} but {maps[0]["source"]} are {len(maps)} maps '
            f'({_describe(maps)})',
            fixes=self.fixes(key, candidates))

    def check_mask_former(self, key: str, head: dict,
                          maps: List[dict]) -> None:
        """Mask2Former / MaskFormer heads read every map; their pixel
        decoder's strides must be the maps'."""
        where = f'model.{key}'
        if self.model.get('neck') is None and not self.check_inputs(
                where, head):
            return
        decoder = head.get('pixel_decoder')
        if isinstance(decoder, dict):
            strides = self._default(decoder, 'strides', None)
            if isinstance(strides, (list, tuple)):
                self.check_strides(f'{where}.pixel_decoder.strides', strides,
                                   maps, False)

    def check_seg_head(self, where: str, head: dict, maps: List[dict]) -> None:
        cls = self._class(head)
        if not is_subclass_named(cls, 'mmseg', 'BaseDecodeHead'):
            return  # a head we do not model: nothing to say
        inner = head.get('kernel_generate_head')  # KNet's: reads the maps
        if isinstance(inner, dict):
            self.check_seg_head(f'{where}.kernel_generate_head', inner, maps)
        in_index = head.get('in_index', init_default(cls, 'in_index', -1))
        indices = _as_list(in_index)
        # unset: a wrapper head (KNet's IterativeDecodeHead) whose inner
        # heads take the channels; nothing to compare
        channels = [] if head.get('in_channels') is None else _as_list(
            head['in_channels'])
        for k, index in enumerate(indices):
            if not -len(maps) <= index < len(maps):
                key = f'{where}.in_index'
                every = {'model.backbone.out_indices': (0, 1, 2, 3)}
                if isinstance(head.get('in_channels'), (list, tuple)):
                    every[f'{where}.in_channels'] = [
                        self.stage_channels[i] for i in indices if -4 <= i < 4
                    ]
                fixes = self.fixes(
                    key, [every] if self.model.get('neck') is None else [])
                self.add(
                    key, f'{key}={in_index} but there are only {len(maps)} '
                    f'feature maps ({_describe(maps)})',
                    f'pick indices in 0..{len(maps) - 1}' +
                    (f', or {_fix_text(fixes)}' if fixes else ''), fixes)
                return
            want = maps[index]['channels']
            if k < len(channels) and channels[k] != want:
                fix = ([maps[i]['channels'] for i in indices] if isinstance(
                    head.get('in_channels'), (list, tuple)) else want)
                self.add(
                    f'{where}.in_channels',
                    f'{where}.in_channels={head.get("in_channels")} for '
                    f'in_index={in_index}, but feature map {index} '
                    f'({maps[index]["name"]}, stride '
                    f'{maps[index]["stride"]}) has {want} channels',
                    fixes=[{
                        f'{where}.in_channels': fix
                    }])
                break
        if (is_subclass_named(cls, 'mmseg', 'FCNHead')
                and self._default(head, 'num_convs', 2) == 0
                and isinstance(head.get('in_channels'), int)
                and head.get('channels') != head['in_channels']):
            self.add(
                f'{where}.channels', f'{where}.channels='
                f'{head.get("channels")} but an FCNHead without convs '
                f'(num_convs=0) passes its input on: it must be its '
                f'in_channels ({head["in_channels"]})',
                fixes=[{
                    f'{where}.channels': head['in_channels']
                }])
        c1 = head.get('c1_in_channels')
        if isinstance(c1, int) and c1 > 0 and c1 != maps[0]['channels']:
            self.add(
                f'{where}.c1_in_channels',
                f'{where}.c1_in_channels={c1}, but DeepLabV3+ takes its '
                f'low-level branch from feature map 0 ({maps[0]["name"]}, '
                f'stride {maps[0]["stride"]}) with {maps[0]["channels"]} '
                f'channels',
                fixes=[{
                    f'{where}.c1_in_channels': maps[0]['channels']
                }])
        if head.get('feature_strides') is not None:
            self.check_strides(f'{where}.feature_strides',
                               head['feature_strides'],
                               [maps[i] for i in indices], False)

    def check_classifier(self) -> None:
        """mmpretrain's ``ImageClassifier``: its head takes one vector per
        image (ResNet's pooled features, a ViT's class token); SLaK gives
        ``(N, C, H, W)`` maps, which a pooling neck turns into vectors."""
        head = self.model.get('head')
        if not isinstance(head, dict) or not is_subclass_named(
                self._class(self.model), 'mmpretrain', 'ImageClassifier'):
            return
        neck = self.model.get('neck')
        last = self.backbone_maps[-1]['channels']
        if type_name(head) == 'ClsHead':  # the stock backbone classified
            classes = self.classes
            linear = dict(
                _delete_=True,
                type='LinearClsHead',
                num_classes=classes,
                in_channels=last,
                **{k: head[k]
                   for k in ('loss', 'topk') if k in head})
            self.add(
                'model.head', 'model.head is a ClsHead, which has no '
                'classifier layer (VGG, Inception-v3 and LeNet classify in '
                'the backbone); SLaK gives features',
                '' if classes else 'use a LinearClsHead with num_classes',
                [{
                    'model.head': linear
                }] if classes else [])
        if isinstance(neck, (list, tuple)):
            return  # a chain (HRNet's HRFuseScales, then pooling): unmodelled
        if neck is None and not any(
                k.__name__ in MAP_HEADS
                for k in getattr(self._class(head), '__mro__', ())):
            self.add(
                'model.neck',
                f'model.neck is None: the {type_name(head)} '
                f'would get the SLaK maps (N, {last}, H, W) where it takes '
                f'one vector per image',
                fixes=[{
                    'model.neck':
                    dict(_delete_=True, type='GlobalAveragePooling')
                    if 'neck' in self.model else  # neck=None in the base
                    dict(type='GlobalAveragePooling')
                }])
        elif isinstance(neck, dict) and type_name(
                neck) == 'GlobalAveragePooling' and self._default(
                    neck, 'dim', 2) != 2:
            self.add(
                'model.neck.dim', f'model.neck.dim={neck["dim"]} pools token '
                f'sequences (a ViT / MLP-Mixer); the SLaK maps are '
                f'(N, C, H, W)',
                fixes=[{
                    'model.neck.dim': 2
                }])
        if neck is None or type_name(neck) == 'GlobalAveragePooling':
            if isinstance(head.get('in_channels'),
                          int) and head['in_channels'] != last:
                self.add(
                    'model.head.in_channels', f'model.head.in_channels='
                    f'{head["in_channels"]} but it reads the last SLaK '
                    f'output ({self.backbone_maps[-1]["name"]}), {last} '
                    f'channels',
                    fixes=[{
                        'model.head.in_channels': last
                    }])

    def run(self) -> List[Problem]:
        """All problems."""
        self.check_classifier()
        maps = self.backbone_maps
        neck = self.model.get('neck')
        if neck is not None:
            maps = self.neck_maps(neck) if isinstance(neck, dict) else None
        if not maps:  # None: a neck whose outputs we do not model
            return self.problems
        self.check_det_heads(maps)
        if is_subclass_named(
                self._class(self.model), 'mmdet', 'DetectionTransformer'):
            self.check_levels(maps)
        for key in ('decode_head', 'auxiliary_head', 'panoptic_head'):
            heads = self.model.get(key)
            for i, head in enumerate(_as_list(heads)):
                if not isinstance(head, dict):
                    continue
                where = f'model.{key}' + (f'.{i}'
                                          if isinstance(heads, list) else '')
                reads_all = isinstance(
                    head.get('in_channels'),
                    (list, tuple)) and not is_subclass_named(
                        self._class(head), 'mmseg', 'BaseDecodeHead')
                if reads_all:  # Mask2Former / MaskFormer
                    self.check_mask_former(key, head, maps)
                else:
                    self.check_seg_head(where, head, maps)
        return self.problems


def _fit(cfg: Config) -> Optional[_Fit]:
    """The check's work on a config with a readable SLaK backbone."""
    model = cfg.get('model') or {}
    backbone = model.get('backbone') or {}
    if not isinstance(backbone, dict) or type_name(backbone) != 'SLaK':
        return None
    fit = _Fit(model, cfg.get('default_scope'), advise=True)
    fit.classes = fit.classes or (cfg.get('data_preprocessor')
                                  or {}).get('num_classes')
    return None if fit.backbone_maps is None else fit


#: Layer-decay constructors of mmdet / mmseg that find the layers by the
#: backbone's class name (ConvNeXt, BEiT, MAE) and raise a bare
#: NotImplementedError for any other.
_CLASS_NAME_CONSTRUCTORS = ('LearningRateDecayOptimizerConstructor',
                            'LayerDecayOptimizerConstructor')


def _optimizer_problems(cfg: Config) -> List[Problem]:
    """A base's ConvNeXt / BEiT layer-decay constructor with SLaK."""
    wrapper = cfg.get('optim_wrapper')
    name = wrapper.get('constructor') if isinstance(wrapper, dict) else None
    if not isinstance(
            name, str) or name.split('.')[-1] not in _CLASS_NAME_CONSTRUCTORS:
        return []
    key = 'optim_wrapper.constructor'
    ours = 'SLaKLearningRateDecayOptimizerConstructor'
    return [
        Problem(
            key, f"{key}='{name}' finds the layers by the backbone's class "
            f'name (ConvNeXt, BEiT) and stops with NotImplementedError for '
            f"SLaK: set {key}='{ours}' (the ConvNeXt rules, which SLaK's "
            f'parameter names follow), or optim_wrapper = '
            f'_base_.slak_det_optim_wrapper / slak_seg_optim_wrapper.',
            ({
                key: ours
            }, ))
    ]


def backbone_neck_problems(cfg: Config) -> List[Problem]:
    """What :func:`check_backbone_neck` would refuse, with the fixes as
    settings (for a program that applies them, as the compatibility sweep
    does).

    Args:
        cfg (Config): The config (``--cfg-options`` applied).

    Returns:
        list[Problem]: Empty when the config fits, has no SLaK backbone or
        one the check cannot read.
    """
    fit = _fit(cfg)
    return (fit.run() + _optimizer_problems(cfg)) if fit else []


def check_backbone_neck(cfg: Config) -> None:
    """Refuse a config whose neck or heads do not fit its SLaK backbone.

    Checked from the config alone (before anything is built), only when
    ``model.backbone`` is SLaK: what reads the SLaK outputs (the neck's,
    else Mask2Former's ``in_channels``: count and widths) against
    ``out_indices``, ``arch`` and ``width_factor``; then, on the neck's
    output maps (:data:`NECKS`: FPN / PAFPN from ``start_level``,
    ``end_level``, ``num_outs``; CSPNeXtPAFPN and YOLOXPAFPN one per input;
    ChannelMapper plus extra levels) or on the backbone's when there is no
    neck: the detectors' ``rpn_head`` / ``bbox_head`` ``in_channels`` and
    anchor / prior strides (the config's or the head class's defaults), the
    RoI extractors' ``featmap_strides`` and ``out_channels``, the deformable
    DETRs' level count (``num_feature_levels``, the attention
    ``num_levels``), Mask2Former's pixel decoder ``strides``, and the
    segmentors' ``decode_head`` / ``auxiliary_head`` ``in_channels`` /
    ``in_index`` (heads of mmseg's ``BaseDecodeHead`` family, with the head
    class's own ``in_index`` default), DeepLabV3+'s ``c1_in_channels`` and
    FPNHead's ``feature_strides``; and a base's ConvNeXt / BEiT layer-decay
    optimizer constructor (it finds layers by the backbone's class name).
    Necks and heads it does not model are not checked: the check refuses
    only what it knows would go wrong.

    Args:
        cfg (Config): The config (``--cfg-options`` applied).

    Raises:
        ValueError: Listing each mismatch with both sides and the settings
            that fix it (each tried on a copy of the config first).
    """
    fit = _fit(cfg)
    errors = [p.message for p in backbone_neck_problems(cfg)] if fit else []
    if errors:
        maps = fit.backbone_maps
        raise ValueError(
            f'The neck / heads do not fit the SLaK backbone (outputs: '
            f'{", ".join(m["name"] for m in maps)}; '
            f'{_describe(maps)}):\n  - ' + '\n  - '.join(errors))
