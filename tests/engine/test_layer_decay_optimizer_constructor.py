"""SLaKLearningRateDecayOptimizerConstructor: layer decay with mmengine's
``custom_keys`` on top, in mmseg and mmdet; the drop-in's recipe merged
into stock optim wrappers (AMP type, clip_grad, custom_keys kept, what it
overrides logged once); refusal of options it does not know (the mm
constructors drop them silently)."""
import copy
import importlib
import logging
import os.path as osp

import pytest
import torch.nn as nn
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

import slak_mm  # noqa: F401
from slak_mm.config import adapt_amp, load_config
from tests.common import ROOT, tiny_slak, tiny_slak_args

NAME = 'SLaKLearningRateDecayOptimizerConstructor'
SCOPES = ('mmseg', 'mmdet')
BASE_LR, BASE_WD, DECAY, NUM_LAYERS = 1e-3, 0.05, 0.8, 6
LAYER_DECAY = dict(
    decay_rate=DECAY, decay_type='layer_wise', num_layers=NUM_LAYERS)
DOWNSAMPLE0 = 'backbone.downsample_layers.0.0.weight'  # layer 0, 4-D
BACKBONE_NORM = 'backbone.downsample_layers.0.1.weight'  # 1-D
QUERY_EMBED = 'decode_head.query_embed.weight'  # 2-D, after the backbone
HEAD_WEIGHT = 'decode_head.cls.weight'


class _QueryHead(nn.Module):
    """Names as in Mask2Former's head: query_embed, query_feat,
    level_embed."""

    def __init__(self):
        super().__init__()
        self.query_embed = nn.Embedding(4, 8)
        self.query_feat = nn.Embedding(4, 8)
        self.level_embed = nn.Embedding(3, 8)
        self.norm = nn.LayerNorm(8)
        self.cls = nn.Linear(8, 5)


class _QueryModel(nn.Module):

    def __init__(self):
        super().__init__()
        self.backbone = tiny_slak()
        self.decode_head = _QueryHead()


@pytest.fixture(scope='module')
def model():
    return _QueryModel()


def _build(scope, paramwise_cfg):
    registry = importlib.import_module(
        f'{scope}.registry').OPTIM_WRAPPER_CONSTRUCTORS
    with DefaultScope.overwrite_default_scope(scope):
        return registry.build(
            dict(
                type=NAME,
                optim_wrapper_cfg=dict(
                    type='OptimWrapper',
                    optimizer=dict(
                        type='AdamW', lr=BASE_LR, weight_decay=BASE_WD)),
                paramwise_cfg=copy.deepcopy(paramwise_cfg)))


def _lr_wd(groups, model):
    """{param name: (lr, weight_decay)}, each trainable parameter once."""
    found = {
        name: (g['lr'], g['weight_decay'])
        for g in groups
        for name in g['param_names']
    }
    assert sum(len(g['params']) for g in groups) == len(found)
    assert set(found) == {
        n
        for n, p in model.named_parameters() if p.requires_grad
    }
    return found


def _settings(scope, paramwise_cfg, model):
    constructor = _build(scope, paramwise_cfg)
    groups = constructor(model).optimizer.param_groups
    return _lr_wd(groups, model)


@pytest.mark.parametrize('scope', SCOPES)
def test_registered_in_both_frameworks(scope):
    base = importlib.import_module(f'{scope}.engine.optimizers')
    constructor = _build(scope, LAYER_DECAY)
    assert isinstance(constructor, base.LearningRateDecayOptimizerConstructor)
    assert type(constructor).__module__.startswith('slak_mm.')


@pytest.mark.parametrize('scope', SCOPES)
def test_backbone_lr_mult_scales_layer_decayed_lr(scope, model):
    plain = _settings(scope, LAYER_DECAY, model)
    keyed = _settings(
        scope, dict(LAYER_DECAY, custom_keys={'backbone': dict(lr_mult=0.1)}),
        model)
    backbone_lrs = {lr for n, (lr, _) in plain.items() if 'backbone' in n}
    assert len(backbone_lrs) > 2  # the layer decay is there to compose with
    for name, (lr, wd) in plain.items():
        mult = 0.1 if name.startswith('backbone.') else 1.0
        assert keyed[name][0] == pytest.approx(lr * mult), name
        assert keyed[name][1] == wd, name
    assert keyed[DOWNSAMPLE0][0] == pytest.approx(
        BASE_LR * DECAY**(NUM_LAYERS + 1) * 0.1)


@pytest.mark.parametrize('scope', SCOPES)
def test_decay_mult_zero_takes_weight_decay_off_query_embed(scope, model):
    plain = _settings(scope, LAYER_DECAY, model)
    assert plain[QUERY_EMBED] == (pytest.approx(BASE_LR), BASE_WD)
    keyed = _settings(
        scope,
        dict(
            LAYER_DECAY,
            custom_keys={'query_embed': dict(lr_mult=1.0, decay_mult=0.0)}),
        model)
    assert keyed[QUERY_EMBED] == (pytest.approx(BASE_LR), 0.0)
    assert keyed['decode_head.query_feat.weight'] == plain[
        'decode_head.query_feat.weight']


def test_longest_matching_key_alone_applies(model):
    keyed = _settings(
        'mmseg',
        dict(
            LAYER_DECAY,
            custom_keys={
                'decode_head': dict(lr_mult=2.0),
                'decode_head.query': dict(lr_mult=3.0, decay_mult=0.5),
            }), model)
    assert keyed[QUERY_EMBED] == (pytest.approx(3 * BASE_LR), BASE_WD * 0.5)
    assert keyed[HEAD_WEIGHT] == (pytest.approx(2 * BASE_LR), BASE_WD)


def test_options_the_layer_decay_rule_already_applies_are_accepted(model):
    # stock mmdet / mmseg configs combine these with paramwise_cfg
    plain = _settings('mmdet', LAYER_DECAY, model)
    assert plain[BACKBONE_NORM][1] == 0
    assert plain['decode_head.cls.bias'][1] == 0
    assert plain['decode_head.norm.weight'][1] == 0
    honoured = dict(
        norm_decay_mult=0.,
        bias_decay_mult=0,
        flat_decay_mult=0.0,
        bypass_duplicate=True)
    assert _settings('mmdet', dict(LAYER_DECAY, **honoured), model) == plain


def _summaries(records):
    return [r for r in records if 'SLaK layer decay' in r.getMessage()]


@pytest.mark.parametrize('key, value', [
    ('bias_lr_mult', 2.0),
    ('norm_decay_mult', 1.0),
    ('bias_decay_mult', 0.5),
    ('flat_decay_mult', 1.0),
    ('dwconv_decay_mult', 0.0),
    ('dcn_offset_lr_mult', 0.1),
])
def test_mmengine_option_the_layer_decay_overrides_is_logged(
        key, value, model, mm_log):
    """A stock base's option (FCOS: bias_lr_mult=2.0) does not stop the
    build: the layer-decay values stand and one WARNING names it."""
    plain = _settings('mmdet', LAYER_DECAY, model)
    mm_log.clear()
    assert _settings('mmdet', dict(LAYER_DECAY, **{key: value}),
                     model) == plain
    (summary, ) = _summaries(mm_log)
    assert summary.levelno == logging.WARNING
    assert f'overridden by the layer decay: paramwise_cfg.{key}={value!r}' \
        in summary.getMessage()


@pytest.mark.parametrize('scope', SCOPES)
def test_unknown_option_raises_naming_it_and_the_fix(scope):
    with pytest.raises(ValueError) as err:
        _build(scope, dict(LAYER_DECAY, layer_decay_rate=0.9))
    msg = str(err.value)
    assert 'paramwise_cfg.layer_decay_rate=0.9' in msg
    assert 'paramwise_cfg=dict(_delete_=True, ...)' in msg
    assert 'supported: num_layers, decay_rate, decay_type, custom_keys' in msg


@pytest.mark.parametrize('cfg, error', [
    (dict(decay_rate=0.9), 'paramwise_cfg.num_layers=None'),
    (dict(LAYER_DECAY, decay_type='layer'), "decay_type='layer'"),
    (dict(LAYER_DECAY, custom_keys={'backbone': dict(lr=1e-5)
                                    }), "custom_keys['backbone'] sets 'lr'"),
])
def test_incomplete_layer_decay_settings_raise(cfg, error):
    with pytest.raises(ValueError) as err:
        _build('mmseg', cfg)
    assert error in str(err.value)


@pytest.mark.parametrize('scope, base', [
    ('mmseg',
     'mmseg::mask2former/mask2former_r50_8xb2-160k_ade20k-512x512.py'),
    ('mmdet',
     'mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco-panoptic.py'),
])
def test_stock_mask2former_paramwise_cfg(scope, base, model, tmp_path):
    config = tmp_path / 'mask2former_slak.py'
    config.write_text(f'_base_ = {base!r}\n'
                      f'optim_wrapper = dict(constructor={NAME!r}, '
                      f'paramwise_cfg={LAYER_DECAY!r})\n')
    cfg = load_config(str(config))
    paramwise_cfg = cfg.optim_wrapper.paramwise_cfg
    assert paramwise_cfg.norm_decay_mult == 0
    assert set(paramwise_cfg.custom_keys) == {
        'backbone', 'query_embed', 'query_feat', 'level_embed'
    }
    with DefaultScope.overwrite_default_scope(scope):
        wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    found = _lr_wd(wrapper.optimizer.param_groups, model)
    lr, wd = cfg.optim_wrapper.optimizer.lr, 0.05
    assert cfg.optim_wrapper.optimizer.weight_decay == wd
    assert found[DOWNSAMPLE0] == (pytest.approx(lr * DECAY**(NUM_LAYERS + 1) *
                                                0.1), wd)
    assert found[BACKBONE_NORM][1] == 0  # norm_decay_mult=0
    for name in ('query_embed', 'query_feat', 'level_embed'):
        assert found[f'decode_head.{name}.weight'] == (pytest.approx(lr), 0)
    assert found[HEAD_WEIGHT] == (pytest.approx(lr), wd)


DROP_IN = osp.join(ROOT, 'configs', '_base_', 'slak_t_drop_in.py')


@pytest.mark.parametrize(
    'scope, base, recipe, kept',
    [
        # AmpOptimWrapper with clip_grad, and bias_lr_mult=2 (overridden)
        ('mmdet', 'mmdet::fcos/fcos_r50_fpn_gn-head-center-normbbox-'
         'centeronreg-giou_8xb8-amp-lsj-200e_coco.py', 'det',
         dict(clip_grad=dict(max_norm=35, norm_type=2))),
        # clip_grad 0.01, custom_keys: backbone lr_mult 0.1, no decay on
        # the queries
        ('mmdet', 'mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco.py',
         'det', dict(clip_grad=dict(max_norm=0.01, norm_type=2))),
        # AmpOptimWrapper and its own layer-decay constructor (replaced)
        ('mmseg',
         'mmseg::convnext/convnext-tiny_upernet_8xb2-amp-160k_ade20k-512x512'
         '.py', 'seg', dict(type='AmpOptimWrapper', loss_scale='dynamic')),
    ],
    ids=['fcos-amp-clip', 'mask2former-custom-keys', 'convnext-amp'])
def test_drop_in_recipe_composes_with_the_stock_wrapper(
        scope, base, recipe, kept, model, tmp_path, mm_log):
    """``optim_wrapper = _base_.slak_det_optim_wrapper`` (no _delete_): the
    optimizer becomes the recipe's AdamW with layer decay; the base's
    wrapper type, clip_grad and custom_keys stay; one line says so."""
    config = tmp_path / 'user.py'
    config.write_text(f'_base_ = [{base!r}, {DROP_IN!r}]\n'
                      f'optim_wrapper = _base_.slak_{recipe}_optim_wrapper\n')
    stock = Config.fromstring(f'_base_ = [{base!r}]', '.py').optim_wrapper
    cfg = Config.fromfile(str(config))
    wrapper = cfg.optim_wrapper
    assert wrapper.optimizer.type == 'AdamW' and wrapper.optimizer.lr == 1e-4
    assert 'momentum' not in wrapper.optimizer and \
        '_delete_' not in wrapper.optimizer
    assert wrapper.constructor == NAME
    for key, value in kept.items():
        assert wrapper[key] == value == stock[key], key
    custom_keys = stock.get('paramwise_cfg', {}).get('custom_keys', {})
    assert wrapper.paramwise_cfg.get('custom_keys', {}) == custom_keys
    # AmpOptimWrapper needs a GPU: the tools' CPU stand-in (bfloat16)
    adapt_amp(Config(dict(optim_wrapper=wrapper)), 'cpu')
    mm_log.clear()
    with DefaultScope.overwrite_default_scope(scope):
        built = build_optim_wrapper(model, wrapper)
    assert built.clip_grad_kwargs == stock.get('clip_grad')
    (summary, ) = _summaries(mm_log)
    line = summary.getMessage()
    assert 'on AdamW(lr=0.0001, ' in line
    assert f"kept from the optim_wrapper: type='{wrapper.type}'" in line
    for key in custom_keys:
        assert f'custom_keys[{key!r}]' in line
    found = _lr_wd(built.optimizer.param_groups, model)
    decay = cfg.optim_wrapper.paramwise_cfg.decay_rate
    mult = custom_keys.get('backbone', {}).get('lr_mult', 1.0)
    assert found[DOWNSAMPLE0][0] == pytest.approx(
        1e-4 * decay**(NUM_LAYERS + 1) * mult)
    if 'bias_lr_mult' in stock.get('paramwise_cfg', {}):
        assert summary.levelno == logging.WARNING
        assert 'paramwise_cfg.bias_lr_mult=2.0' in line
        assert found['decode_head.cls.bias'][0] == pytest.approx(1e-4)


def test_mmpretrain_layer_decay_reads_slak_layer_depths():
    """mmpretrain's LearningRateDecayOptimWrapperConstructor (its ViT /
    ConvNeXt fine-tuning configs) asks the backbone for get_layer_depth:
    SLaK answers with ConvNeXt's rule (was: "The backbone SLaK doesn't
    support `get_layer_depth` by now")."""
    registry = pytest.importorskip('mmpretrain.registry')
    import slak_mm.models.classifiers  # noqa: F401 (SLaK in mmpretrain)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = registry.MODELS.build(
            dict(
                type='ImageClassifier',
                backbone=dict(type='SLaK', **tiny_slak_args()),
                neck=dict(type='GlobalAveragePooling'),
                head=dict(type='LinearClsHead', num_classes=5,
                          in_channels=32)))
        constructor = registry.OPTIM_WRAPPER_CONSTRUCTORS.build(
            dict(
                type='LearningRateDecayOptimWrapperConstructor',
                optim_wrapper_cfg=dict(
                    type='OptimWrapper',
                    optimizer=dict(
                        type='AdamW', lr=BASE_LR, weight_decay=BASE_WD)),
                paramwise_cfg=dict(layer_decay_rate=DECAY)))
        groups = constructor(model).optimizer.param_groups
    lr = {g['param_name']: g['lr'] for g in groups}
    # ConvNeXt's rule, 6 layers + 2: downsample 0 is layer 0, the head last
    assert lr[DOWNSAMPLE0] == pytest.approx(BASE_LR * DECAY**7)
    assert lr['backbone.stages.3.0.pwconv1.weight'] == pytest.approx(BASE_LR *
                                                                     DECAY)
    assert lr['head.fc.weight'] == pytest.approx(BASE_LR)
