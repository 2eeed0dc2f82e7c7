"""The drop-in base (configs/_base_/slak_t_drop_in.py) composes with every
packaged mmdet / mmseg config: none of its keys is a top-level key of any
of them (read from the sources with slak_mm.config.config_keys, checked
against mmengine's reading), the families whose bases set ``custom_hooks``
or ``checkpoint`` (which clashed with the old drop-in) compose with the
user's recipe, and a clash between a user's own bases names both bases and
the fix."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

import slak_mm  # noqa: F401  (reads slak_mm:: and mmseg:: bases)
from slak_mm.config import base_files, config_keys, load_config
from tests.common import ROOT

DROP_IN = osp.join(ROOT, 'configs', '_base_', 'slak_t_drop_in.py')


def packaged_configs(package):
    """Every config file mmdet / mmseg ship (their ``.mim/configs``)."""
    module = __import__(package)
    root = osp.join(osp.dirname(module.__file__), '.mim', 'configs')
    return sorted(
        p for p in glob.glob(osp.join(root, '**', '*.py'), recursive=True)
        if '__pycache__' not in p)


def test_drop_in_sets_only_slak_variables():
    assert config_keys(DROP_IN) == {
        'slak_t_checkpoint', 'slak_t', 'slak_t_channels',
        'slak_det_optim_wrapper', 'slak_seg_optim_wrapper',
        'slak_seg_param_scheduler'
    }
    assert set(Config.fromfile(DROP_IN).keys()) == config_keys(DROP_IN)


def test_drop_in_keys_are_disjoint_from_every_packaged_config():
    """Each packaged config, _base_ files included, with its bases' keys
    (what mmengine compares); ours too (but those that inherit it), for a
    user who combines our own model bases with the drop-in."""
    ours = [
        p for p in glob.glob(
            osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)
        if p != DROP_IN and 'integrations' not in p
    ]
    configs = packaged_configs('mmdet') + packaged_configs('mmseg')
    assert len(configs) > 1500, len(configs)
    drop_in = config_keys(DROP_IN)
    unresolved, old_clashes, clashes = set(), 0, {}
    for path in configs + ours:
        keys = config_keys(path, unresolved)
        old_clashes += bool(keys & {'custom_hooks', 'checkpoint'})
        if keys & drop_in:
            clashes[path] = sorted(keys & drop_in)
    assert not clashes, clashes
    # the old drop-in's custom_hooks / checkpoint clashed with many (#23:
    # 59 of mmdet's, 36 of mmseg's); upstream configs whose _base_ names a
    # missing file (mmdet's sort/, bytetrack/) are few
    assert old_clashes > 90, old_clashes
    assert len(unresolved) < 10, sorted(unresolved)


def unscoped(value):
    """``value`` without the ``_scope_`` keys mmengine adds to the dicts of
    a ``SCOPE::`` base."""
    if isinstance(value, dict):
        return {k: unscoped(v) for k, v in value.items() if k != '_scope_'}
    if isinstance(value, (list, tuple)):
        return [unscoped(v) for v in value]
    return value


# families whose bases set custom_hooks or checkpoint, with the recipe a
# user writes: backbone, input channels (and out_indices where the neck
# reads three or two levels), the optimizer line
FAMILIES = {
    'rtmdet': ('mmdet::rtmdet/rtmdet_l_8xb32-300e_coco.py',
               'backbone=dict(_delete_=True, **dict(_base_.slak_t, '
               'out_indices=(1, 2, 3))), '
               'neck=dict(in_channels=_base_.slak_t_channels[1:])', 'det'),
    'yolox': ('mmdet::yolox/yolox_s_8xb8-300e_coco.py',
              'backbone=dict(_delete_=True, **dict(_base_.slak_t, '
              'out_indices=(1, 2, 3))), '
              'neck=dict(in_channels=_base_.slak_t_channels[1:])', 'det'),
    'ssd': ('mmdet::ssd/ssd300_coco.py',
            'backbone=dict(_delete_=True, **dict(_base_.slak_t, '
            'out_indices=(2, 3))), '
            'neck=dict(in_channels=_base_.slak_t_channels[2:])', 'det'),
    'panoptic_fpn': ('mmdet::panoptic_fpn/panoptic-fpn_r50_fpn_1x_coco.py',
                     'backbone=dict(_delete_=True, **_base_.slak_t), '
                     'neck=dict(in_channels=_base_.slak_t_channels)', 'det'),
    'segformer':
    ('mmseg::segformer/segformer_mit-b0_8xb2-160k_ade20k-'
     '512x512.py', 'pretrained=None, '
     'backbone=dict(_delete_=True, **_base_.slak_t), '
     'decode_head=dict(in_channels=_base_.slak_t_channels)', 'seg'),
    'twins':
    ('mmseg::twins/twins_pcpvt-s_uperhead_8xb4-160k_ade20k-'
     '512x512.py', 'pretrained=None, '
     'backbone=dict(_delete_=True, **_base_.slak_t), '
     'decode_head=dict(in_channels=_base_.slak_t_channels), '
     'auxiliary_head=dict(in_channels=_base_.slak_t_channels[2])', 'seg'),
}


@pytest.mark.parametrize('family', sorted(FAMILIES))
def test_recipe_composes_where_the_old_drop_in_clashed(family, tmp_path):
    base, model, recipe = FAMILIES[family]
    config = tmp_path / f'{family}_slak.py'
    config.write_text(f'_base_ = [{base!r}, {DROP_IN!r}]\n'
                      f'model = dict({model})\n'
                      f'optim_wrapper = _base_.slak_{recipe}_optim_wrapper\n')
    stock_path = base_files(str(config))[0]
    stock = Config.fromfile(stock_path)
    # the reader agrees with mmengine, and these bases set what clashed
    assert config_keys(stock_path) == set(stock.keys())
    assert {'custom_hooks', 'checkpoint'} & set(stock.keys())
    cfg = Config.fromfile(str(config))
    assert cfg.model.backbone.type == 'SLaK'
    assert 'depth' not in cfg.model.backbone  # _delete_: no ResNet keys
    for key in ('custom_hooks', 'checkpoint'):  # the base's stay
        assert unscoped(cfg.get(key)) == unscoped(stock.get(key)), key
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
    assert unscoped(cfg.optim_wrapper.get('clip_grad')) == unscoped(
        stock.optim_wrapper.get('clip_grad'))


def test_a_remaining_clash_names_both_bases_and_the_fix(tmp_path):
    """Two bases of the user's that set one key: mmengine's message names
    neither; load_config (every tool) names the file, the bases, the key."""
    (tmp_path /
     'mine.py').write_text("custom_hooks = [dict(type='EMAHook')]\n")
    (tmp_path / 'top.py').write_text(
        "_base_ = ['mmdet::rtmdet/rtmdet_l_8xb32-300e_coco.py', './mine.py']"
        '\n')
    with pytest.raises(KeyError, match='Duplicate key'):
        Config.fromfile(str(tmp_path / 'top.py'))
    with pytest.raises(ValueError) as err:
        load_config(str(tmp_path / 'top.py'))
    msg = str(err.value)
    assert f'config {tmp_path / "top.py"}' in msg
    assert ('mmdet::rtmdet/rtmdet_l_8xb32-300e_coco.py and ./mine.py both '
            "set 'custom_hooks'") in msg
    assert 'keep it in one base only' in msg
