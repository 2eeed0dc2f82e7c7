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
import torch

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
LOADERS = [
    f'{split}_dataloader.{key}' for split in ('train', 'val', 'test')
    for key in ('batch_size=2', 'num_workers=0', 'persistent_workers=False')
]
# no validation while training (the loops would run it after the last
# iteration): tools/test.py reports the metrics
NO_VAL = ['val_cfg=None', 'val_dataloader=None', 'val_evaluator=None']
# COCO pipelines: Resize is transform 2 (train) and 1 (test) in mmdet's
# coco_detection.py / coco_instance.py
DET_DATA = LOADERS + [
    'train_dataloader.dataset.pipeline.2.scale=(128,128)',
    'test_dataloader.dataset.pipeline.1.scale=(128,128)',
    'train_cfg.max_epochs=1'
]
# ADE20K: RandomResize (2) and RandomCrop (3) in train, Resize (1) in test
SEG_DATA = LOADERS + [
    'train_dataloader.dataset.pipeline.2.scale=(256,64)',
    'train_dataloader.dataset.pipeline.3.crop_size=(64,64)',
    'test_dataloader.dataset.pipeline.1.scale=(256,64)',
    'model.data_preprocessor.size=(64,64)', 'train_cfg.max_iters=2'
]
CASES = {
    'retinanet_slak_t_fpn_1x_coco': ('coco', DET_DATA + [
        f'model.neck.in_channels={SMALL_CHANNELS}'.replace(' ', ''),
        'model.neck.out_channels=32', 'model.bbox_head.in_channels=32',
        'model.bbox_head.feat_channels=32', 'model.bbox_head.stacked_convs=1'
    ], ['model.test_cfg.score_thr=0.0'], {'coco/bbox_mAP'}),
    'mask_rcnn_slak_t_fpn_1x_coco': ('coco', DET_DATA + [
        f'model.neck.in_channels={SMALL_CHANNELS}'.replace(
            ' ', ''), 'model.neck.out_channels=32',
        'model.rpn_head.in_channels=32', 'model.rpn_head.feat_channels=32',
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
    'deeplabv3plus_slak_t_ade20k': ('ade20k', SEG_DATA + [
        f'model.decode_head.in_channels={SMALL_CHANNELS[3]}',
        f'model.decode_head.c1_in_channels={SMALL_CHANNELS[0]}',
        'model.decode_head.channels=16', 'model.decode_head.c1_channels=8',
        f'model.auxiliary_head.in_channels={SMALL_CHANNELS[2]}',
        'model.auxiliary_head.channels=16'
    ], [], {'mIoU'}),
    'fpn_slak_t_ade20k': ('ade20k', SEG_DATA + [
        f'model.neck.in_channels={SMALL_CHANNELS}'.replace(
            ' ', ''), 'model.neck.out_channels=16',
        'model.decode_head.in_channels=[16,16,16,16]',
        'model.decode_head.channels=16'
    ], [], {'mIoU'}),
}


@pytest.fixture(scope='module')
def data_roots(tmp_path_factory, small_ade_root):
    """One tiny synthetic COCO and ADE20K for all configs."""
    root = str(tmp_path_factory.mktemp('integration_data'))
    return dict(
        coco=generate_coco(root, num_train=4, num_val=2, img_size=128),
        ade20k=small_ade_root)


@pytest.mark.parametrize('name', list(CASES))
def test_integration_config_trains_and_tests(name, data_roots, tmp_path):
    dataset, options, test_options, metric_keys = CASES[name]
    config = f'{CONFIGS}/{name}.py'
    work_dir = str(tmp_path / 'work_dir')
    options = [f'data_root={data_roots[dataset]}', *SMALL_SLAK, *options]
    proc = run_tool('tools/train.py', config, '--work-dir', work_dir,
                    '--cfg-options', *options, *NO_VAL)
    # the config's optimizer constructor and sparsity hook were used
    assert 'Build LearningRateDecayOptimizerConstructor' in proc.log
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    state = torch.load(
        checkpoint, map_location='cpu', weights_only=False)['state_dict']
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
    fork's distribution; scopes whose module is missing stay as they are."""
    from mmengine.config import Config
    from mmengine.config import utils as config_utils

    from slak_mm.config import register_config_scopes
    table = config_utils.MODULE2PACKAGE
    monkeypatch.setitem(table, 'mmseg', 'mmsegmentation')  # mmengine's entry
    monkeypatch.setitem(table, 'mmocr', 'mmocr')  # not installed here
    with pytest.raises(ModuleNotFoundError, match='mmsegmentation'):
        Config.fromfile(osp.join(ROOT, CONFIGS, 'fpn_slak_t_ade20k.py'))
    changed = register_config_scopes()
    assert changed.get('mmseg') == 'onedl-mmsegmentation', changed
    assert table['mmocr'] == 'mmocr' and 'mmocr' not in changed
    assert register_config_scopes() == {}  # idempotent
    cfg = Config.fromfile(osp.join(ROOT, CONFIGS, 'fpn_slak_t_ade20k.py'))
    assert cfg.model.decode_head.type == 'FPNHead'
