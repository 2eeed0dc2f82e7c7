"""configs/integrations: mmdet's / mmseg's packaged configs with SLaK.

Each config trains and tests through tools/train.py and tools/test.py on
synthetic data, shrunk with ``--cfg-options`` to a small SLaK (as a user
would try a config on a laptop): the ``mmdet::`` / ``mmseg::`` bases
resolve, the swapped-in backbone builds with the frameworks' necks and
heads, the layer-decay constructor and the sparsity hook run, and the
metrics are reported. Accuracy is not checked (two iterations).
"""
import json
import os.path as osp
import sys

import pytest

from slak_mm.checkpoint import load_checkpoint_safely
from slak_mm.config import load_config, scale_down
from slak_mm.datasets import generate_coco
from tests.tool_runner import ROOT, run_tool

CONFIGS = 'configs/integrations'

# a small SLaK for every config: 16/32/64/128 channels at strides 4-32
SMALL_CHANNELS = [16, 32, 64, 128]
SMALL_SLAK = [
    'model.backbone.arch._delete_=True',
    'model.backbone.arch.depths=[1,1,1,1]',
    f'model.backbone.arch.dims={SMALL_CHANNELS}'.replace(' ', ''),
    'model.backbone.kernel_size=(7,7,7,7)',
    'model.backbone.small_kernel=3',
    'model.backbone.width_factor=1.0',
    'model.backbone.drop_path_rate=0.0',
    'model.backbone.init_cfg=None',  # no official checkpoint in the tests
]
# no validation while training (the loops would run it after the last
# iteration): tools/test.py reports the metrics
NO_VAL = ['val_cfg=None', 'val_dataloader=None', 'val_evaluator=None']
DET = ('coco', 128)
SEG = ('ade20k', 64)
# Mask2Former / MaskFormer / DETR family: 10 queries, one layer each
QUERIES = 'num_queries=10'
CASES = {
    # name: ((dataset, image size, schedule), model options, test options,
    #        metrics)
    'retinanet_slak_t_fpn_1x_coco': (DET, [
        f'model.neck.in_channels={SMALL_CHANNELS}'.replace(' ', ''),
        'model.neck.out_channels=32', 'model.bbox_head.in_channels=32',
        'model.bbox_head.feat_channels=32', 'model.bbox_head.stacked_convs=1'
    ], ['model.test_cfg.score_thr=0.0'], {'coco/bbox_mAP'}),
    'mask_rcnn_slak_t_fpn_1x_coco': (DET, [
        f'model.neck.in_channels={SMALL_CHANNELS}'.replace(' ', ''),
        'model.neck.out_channels=32', 'model.rpn_head.in_channels=32',
        'model.rpn_head.feat_channels=32',
        'model.roi_head.bbox_roi_extractor.out_channels=32',
        'model.roi_head.bbox_head.in_channels=32',
        'model.roi_head.bbox_head.fc_out_channels=64',
        'model.roi_head.mask_roi_extractor.out_channels=32',
        'model.roi_head.mask_head.in_channels=32',
        'model.roi_head.mask_head.conv_out_channels=32',
        'model.train_cfg.rpn.sampler.num=64',
        'model.train_cfg.rcnn.sampler.num=64'
    ], ['model.test_cfg.rcnn.score_thr=0.0'],
                                     {'coco/bbox_mAP', 'coco/segm_mAP'}),
    'cascade_mask_rcnn_slak_t_fpn_1x_coco': (DET, [
        f'model.neck.in_channels={SMALL_CHANNELS}'.replace(' ', ''),
        'model.train_cfg.rpn.sampler.num=64',
        'model.train_cfg.rpn_proposal.max_per_img=100',
        *(f'model.train_cfg.rcnn.{i}.sampler.num=32'
          for i in range(3)), 'model.test_cfg.rpn.max_per_img=100',
        'model.test_cfg.rcnn.max_per_img=20'
    ], ['model.test_cfg.rcnn.score_thr=0.0'
        ], {'coco/bbox_mAP', 'coco/segm_mAP'}),
    'dino_slak_t_4scale_coco': (DET, [
        f'model.neck.in_channels={SMALL_CHANNELS[1:]}'.replace(' ', ''),
        f'model.{QUERIES}', 'model.encoder.num_layers=1',
        'model.decoder.num_layers=1',
        'model.dn_cfg.group_cfg.num_dn_queries=10'
    ], [], {'coco/bbox_mAP'}),
    'deformable_detr_slak_t_coco': (DET, [
        f'model.neck.in_channels={SMALL_CHANNELS[1:]}'.replace(' ', ''),
        f'model.{QUERIES}', 'model.encoder.num_layers=1',
        'model.decoder.num_layers=1'
    ], [], {'coco/bbox_mAP'}),
    'mask2former_slak_t_coco_instance': (DET, [
        f'model.panoptic_head.in_channels={SMALL_CHANNELS}'.replace(' ', ''),
        f'model.panoptic_head.{QUERIES}',
        'model.panoptic_head.pixel_decoder.encoder.num_layers=1',
        'model.panoptic_head.transformer_decoder.num_layers=1',
        'model.panoptic_head.train_cfg.num_points=256',
        'model.test_cfg.max_per_image=10'
    ], [], {'coco/bbox_mAP', 'coco/segm_mAP'}),
    'deeplabv3plus_slak_t_ade20k': (SEG, [
        f'model.decode_head.in_channels={SMALL_CHANNELS[3]}',
        f'model.decode_head.c1_in_channels={SMALL_CHANNELS[0]}',
        'model.decode_head.channels=16', 'model.decode_head.c1_channels=8',
        f'model.auxiliary_head.in_channels={SMALL_CHANNELS[2]}',
        'model.auxiliary_head.channels=16'
    ], [], {'mIoU'}),
    'fpn_slak_t_ade20k': (SEG, [
        f'model.neck.in_channels={SMALL_CHANNELS}'.replace(' ', ''),
        'model.neck.out_channels=16',
        'model.decode_head.in_channels=[16,16,16,16]',
        'model.decode_head.channels=16'
    ], [], {'mIoU'}),
    'mask2former_slak_t_ade20k': (SEG, [
        f'model.decode_head.in_channels={SMALL_CHANNELS}'.replace(' ', ''),
        f'model.decode_head.{QUERIES}',
        'model.decode_head.pixel_decoder.encoder.num_layers=1',
        'model.decode_head.transformer_decoder.num_layers=1',
        'model.decode_head.train_cfg.num_points=256'
    ], [], {'mIoU'}),
    'maskformer_slak_t_ade20k': (SEG, [
        f'model.decode_head.in_channels={SMALL_CHANNELS}'.replace(' ', ''),
        f'model.decode_head.{QUERIES}',
        'model.decode_head.transformer_decoder.num_layers=1'
    ], [], {'mIoU'}),
}


def small_copy(name, size, tmp_path):
    """The integration config as a user trying it on a laptop would shrink
    it (slak_mm.config.scale_down: its pipelines and data preprocessor at
    ``size`` px, two images per batch, no workers, 2 iterations or 1
    epoch), written next to the test; tools read the copy."""
    cfg = load_config(osp.join(ROOT, CONFIGS, f'{name}.py'))
    scale_down(cfg, size)
    path = str(tmp_path / f'{name}.py')
    cfg.dump(path)
    return path


@pytest.fixture(scope='module')
def data_roots(tmp_path_factory, small_ade_root):
    """One tiny synthetic COCO and ADE20K for all configs."""
    root = str(tmp_path_factory.mktemp('integration_data'))
    return dict(
        coco=generate_coco(root, num_train=4, num_val=2, img_size=128),
        ade20k=small_ade_root)


@pytest.mark.parametrize('name', list(CASES))
def test_integration_config_trains_and_tests(name, data_roots, tmp_path):
    (dataset, size), options, test_options, metric_keys = CASES[name]
    config = small_copy(name, size, tmp_path)
    work_dir = str(tmp_path / 'work_dir')
    options = [f'data_root={data_roots[dataset]}', *SMALL_SLAK, *options]
    proc = run_tool('tools/train.py', config, '--work-dir', work_dir,
                    '--cfg-options', *options, *NO_VAL)
    # the config's optimizer rules were used: our layer decay, or the
    # base's custom_keys (backbone lr_mult=0.1 of DETR / Mask2Former)
    if 'constructor' in load_config(config).optim_wrapper:
        assert 'Build LearningRateDecayOptimizerConstructor' in proc.log
    else:
        assert 'paramwise_options -- backbone.' in proc.log
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    state = load_checkpoint_safely(checkpoint)['state_dict']
    masks = {
        k[:-len('_mask')]: v
        for k, v in state.items()
        if k.startswith('backbone.') and k.endswith('_mask')
    }
    assert masks, 'sparse=True: the backbone weights carry masks'
    for key, mask in masks.items():
        assert not state[key][~mask].any(), f'{key}: masked weights moved'

    proc = run_tool('tools/test.py', config, checkpoint, '--work-dir',
                    work_dir, '--cfg-options', *options, *test_options)
    with open(osp.join(work_dir, 'test_metrics.json')) as f:
        metrics = json.load(f)['metrics']
    assert metric_keys <= set(metrics), metrics
    for key in metric_keys:
        assert key in proc.stdout


def test_framework_tool_reads_mmseg_base(monkeypatch, capsys, tmp_path):
    """python -m slak_mm.mm_tool runs mmseg's own print_config.py on a
    config whose base is ``mmseg::...``."""
    from slak_mm import mm_tool
    config = osp.join(ROOT, CONFIGS, 'fpn_slak_t_ade20k.py')
    monkeypatch.setattr(sys, 'argv', sys.argv[:1])
    monkeypatch.chdir(tmp_path)  # print_config.py dumps example.py here
    mm_tool.main(['mmseg', 'misc/print_config.py', config])
    out = capsys.readouterr().out
    assert "type='SLaK'" in out and "type='FPNHead'" in out, out[-2000:]
    with pytest.raises(FileNotFoundError, match='no tool'):
        mm_tool.find_tool('mmseg', 'no_such_tool')


def test_train_refuses_neck_at_wrong_strides(tmp_path):
    """RetinaNet on three SLaK outputs with the base's FPN start_level=1
    would train at strides 16-256 under anchors for 8-128: tools/train.py
    stops before building anything."""
    work_dir = str(tmp_path / 'work_dir')
    proc = run_tool(
        'tools/train.py',
        f'{CONFIGS}/retinanet_slak_t_fpn_1x_coco.py',
        '--work-dir',
        work_dir,
        '--cfg-options',
        'model.backbone.out_indices=(1,2,3)',
        'model.neck.in_channels=[249,499,998]',
        expect_ok=False)
    assert proc.returncode == 1, proc.log[-2000:]
    assert 'model.bbox_head.anchor_generator.strides' in proc.stderr
    assert 'set model.neck.start_level=0' in proc.stderr
    assert 'Traceback' not in proc.stderr


def test_config_scopes_point_at_installed_distributions(monkeypatch):
    """The upstream name mmengine ships for ``mmseg`` is replaced by the
    fork's distribution (plain mmengine fails on it); scopes whose module is
    missing stay as they are. After ``import slak_mm`` mmengine's reader
    maps a scope when a base names it."""
    from mmengine.config import Config
    from mmengine.config import utils as config_utils

    from slak_mm.config import register_config_scopes
    config = osp.join(ROOT, CONFIGS, 'fpn_slak_t_ade20k.py')
    table = config_utils.MODULE2PACKAGE
    monkeypatch.setitem(table, 'mmseg', 'mmsegmentation')  # mmengine's entry
    monkeypatch.setitem(table, 'mmocr', 'mmocr')  # not installed here
    plain = staticmethod(Config._get_cfg_path.__wrapped__)
    monkeypatch.setattr(Config, '_get_cfg_path', plain)
    with pytest.raises(ModuleNotFoundError, match='mmsegmentation'):
        Config.fromfile(config)
    changed = register_config_scopes()
    assert changed.get('mmseg') == 'onedl-mmsegmentation', changed
    assert table['mmocr'] == 'mmocr' and 'mmocr' not in changed
    assert register_config_scopes() == {}  # idempotent
    assert Config.fromfile(config).model.decode_head.type == 'FPNHead'
    monkeypatch.setitem(table, 'mmseg', 'mmsegmentation')
    assert Config.fromfile(config).model.decode_head.type == 'FPNHead'
    assert table['mmseg'] == 'onedl-mmsegmentation'


def test_packaged_config_by_its_scoped_name():
    """``tools/train.py mmdet::...`` as mm users name a packaged config
    (was: 'Config file not found'); top-level variables are re-bound."""
    cfg = load_config('mmseg::sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py',
                      {'data_root': '/data/ade/'})
    assert cfg.model.decode_head.type == 'FPNHead'
    assert cfg.train_dataloader.dataset.data_root == '/data/ade/'
    with pytest.raises(FileNotFoundError, match='no_such_config.py'):
        load_config('mmseg::sem_fpn/no_such_config.py')


def test_bases_in_folders_mmengine_cannot_name(tmp_path):
    """mmengine matches ``SCOPE::path`` with ``\\w*::\\w*/\\w*``: mmdet's
    'gn+ws' and 'legacy_1.x' folders failed as bases ("... please specify
    the package name and relative config path"); after ``import slak_mm``
    they are read from the package's configs folder, in its scope."""
    from mmengine.config import Config
    user = tmp_path / 'user.py'
    user.write_text(
        "_base_ = ['mmdet::gn+ws/faster-rcnn_r50_fpn_gn-ws-all_1x_coco.py',\n"
        "          'slak_mm::_base_/slak_t_drop_in.py']\n"
        'model = dict(backbone=dict(_delete_=True, **_base_.slak_t))\n')
    cfg = Config.fromfile(str(user))
    assert cfg.model.backbone.type == 'SLaK'
    assert cfg.model.neck.norm_cfg.type == 'GN'  # the base's
    assert cfg.default_scope == 'mmdet'
    user.write_text(
        "_base_ = 'mmdet::legacy_1.x/retinanet_r50_fpn_1x_coco_v1.py'\n")
    assert Config.fromfile(str(user)).model.type == 'RetinaNet'
    user.write_text("_base_ = 'mmdet::gn+ws/no_such_config.py'\n")
    with pytest.raises(ValueError, match='specify the package name'):
        Config.fromfile(str(user))
