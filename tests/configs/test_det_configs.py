"""Every detection config builds the real mmdet model, trains a step and
predicts, with layer-wise lr decay from the SLaK constructor.

The full configs keep their real architecture (SLaK-T, 51x51 kernels, 256-ch
FPN and heads); only the backbone's pretrained ``init_cfg`` is dropped (no
file in tests) and the input is one small image.
"""
import ast
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

import slak_mm  # noqa: F401
from slak_mm.config import (adapt_to_device, iter_dicts, load_config,
                            replace_sync_bn)
from slak_mm.datasets.checks import leaf_dataset_cfgs
from tests.common import ROOT
from tests.sparse_checks import assert_sparsity_kept, attach_config_sparse_hook

FULL_CONFIGS = [
    'configs/faster_rcnn_slak_t_fpn_voc0712.py',
    'configs/cascade_mask_rcnn_slak_t_fpn_3x_coco.py',
]
DEMO_CONFIGS = [
    'configs/demo/faster_rcnn_slak_demo_synthetic_voc.py',
    'configs/demo/cascade_mask_rcnn_slak_demo_synthetic_coco.py',
]
DET_CONFIGS = FULL_CONFIGS + DEMO_CONFIGS


def _path(rel):
    return osp.join(ROOT, rel)


def _norm_types(node):
    return {
        d['type']
        for d in iter_dicts(node)
        if isinstance(d.get('type'), str) and d['type'] in ('BN', 'SyncBN',
                                                            'MMSyncBN')
    }


def test_mmcv_sync_bn_becomes_bn_on_one_process():
    """Simple Copy-Paste's heads use mmcv's MMSyncBN: one process has no
    group for it (was: 'Default process group has not been initialized');
    replace_sync_bn turns it into BN as it does SyncBN."""
    cfg = load_config('mmdet::simple_copy_paste/mask-rcnn_r50_fpn_'
                      'rpn-2conv_4conv1fc_syncbn-all_32xb2-ssj-270k_coco.py')
    assert _norm_types(cfg.model) == {'SyncBN', 'MMSyncBN'}
    replace_sync_bn(cfg)
    assert _norm_types(cfg.model) == {'BN'}


def _first_variable(rel):
    """Name of the first top-level variable a config file assigns."""
    with open(_path(rel)) as f:
        tree = ast.parse(f.read())
    first = next(n for n in tree.body if isinstance(n, ast.Assign))
    return first.targets[0].id


def _det_sample(size, num_classes, with_mask):
    """One DetDataSample with two gt boxes (and their masks)."""
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    boxes = torch.tensor([[8., 12., 60., 70.], [50., 40., 110., 100.]])
    boxes[:, 0::2].clamp_(max=size - 1)
    boxes[:, 1::2].clamp_(max=size - 1)
    gt = InstanceData()
    gt.bboxes = boxes
    gt.labels = torch.tensor([0, min(3, num_classes - 1)])
    if with_mask:
        masks = np.zeros((2, size, size), dtype=np.uint8)
        for i, (x1, y1, x2, y2) in enumerate(boxes.long().tolist()):
            masks[i, y1:y2, x1:x2] = 1
        gt.masks = BitmapMasks(masks, size, size)
    sample = DetDataSample()
    sample.gt_instances = gt
    sample.set_metainfo(
        dict(
            img_id=0,
            img_shape=(size, size),
            ori_shape=(size, size),
            scale_factor=(1.0, 1.0)))
    return sample


def test_all_detection_configs_exist():
    for rel in DET_CONFIGS:
        assert osp.isfile(_path(rel)), rel


@pytest.mark.parametrize('rel', DET_CONFIGS, ids=osp.basename)
def test_config_trains_one_step_and_predicts(rel):
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample

    cfg = Config.fromfile(_path(rel))
    assert cfg.default_scope == 'mmdet'
    assert 'slak_mm' in cfg.custom_imports.imports
    assert cfg.model.backbone.type == 'SLaK'
    is_full = rel in FULL_CONFIGS
    if is_full:  # real configs: SyncBN, as trained on 8 GPUs
        assert _norm_types(cfg.model) == {'SyncBN'}
    else:  # demos run on one CPU
        assert _norm_types(cfg.model) == {'BN'}
        assert 'init_cfg' not in cfg.model.backbone
    adapt_to_device(cfg)
    replace_sync_bn(cfg)  # adapt_to_device keeps SyncBN with CUDA
    assert 'SyncBN' not in _norm_types(cfg.model)
    cfg.model.backbone.init_cfg = None  # no pretrained file in tests

    init_default_scope('mmdet')
    model = MODELS.build(cfg.model)
    model.init_weights()
    with_mask = bool(getattr(model.roi_head, 'with_mask', False))
    assert with_mask == ('cascade_mask' in rel)

    # layer-wise lr decay over the backbone, full lr for neck and heads
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    attach_config_sparse_hook(cfg, model, optim_wrapper)
    groups = optim_wrapper.optimizer.param_groups
    assert len({g['lr'] for g in groups}) > 1
    base_lr = cfg.optim_wrapper.optimizer.lr
    decay = cfg.optim_wrapper.paramwise_cfg.decay_rate
    num_layers = cfg.optim_wrapper.paramwise_cfg.num_layers
    lr_of = {n: g['lr'] for g in groups for n in g['param_names']}
    assert lr_of['backbone.downsample_layers.0.0.weight'] == pytest.approx(
        base_lr * decay**(num_layers + 1))
    assert lr_of['neck.lateral_convs.0.conv.weight'] == pytest.approx(base_lr)
    assert len(lr_of) == len(
        [p for p in model.parameters() if p.requires_grad])

    size = 128
    num_classes = (
        cfg.model.roi_head.bbox_head[0].num_classes if isinstance(
            cfg.model.roi_head.bbox_head, list) else
        cfg.model.roi_head.bbox_head.num_classes)
    assert num_classes == (20 if 'voc' in rel else 80)
    torch.manual_seed(0)
    data = dict(
        inputs=[torch.randint(0, 256, (3, size, size), dtype=torch.uint8)],
        data_samples=[_det_sample(size, num_classes, with_mask)])

    model.train()
    before = model.backbone.downsample_layers[0][0].weight.detach().clone()
    losses = model.train_step(data, optim_wrapper)
    assert 'loss' in losses and 'loss_rpn_cls' in losses
    assert any(k.endswith('loss_bbox') for k in losses)
    if with_mask:
        assert any(k.endswith('loss_mask') for k in losses)
    for name, value in losses.items():
        assert torch.isfinite(torch.as_tensor(value)).all(), name
    after = model.backbone.downsample_layers[0][0].weight
    assert not torch.equal(before, after)  # the backbone got updated
    assert_sparsity_kept(model.backbone)

    model.eval()
    with torch.no_grad():
        preds = model.test_step(
            dict(
                inputs=data['inputs'],
                data_samples=[_det_sample(size, num_classes, with_mask)]))
    assert isinstance(preds, list) and len(preds) == 1
    pred = preds[0]
    assert isinstance(pred, DetDataSample)
    assert 'pred_instances' in pred
    inst = pred.pred_instances
    assert inst.bboxes.shape[-1] == 4
    assert len(inst.bboxes) == len(inst.scores) == len(inst.labels)
    if len(inst.labels):
        assert int(inst.labels.max()) < num_classes
    if with_mask:
        assert 'masks' in inst
        assert tuple(inst.masks.shape[-2:]) == (size, size)


def test_roi_features_do_not_depend_on_memory_layout():
    """The RoI heads see the same features as from contiguous NCHW maps.

    mmcv's RoIAlign indexes its input as contiguous NCHW memory. SLaK's
    output LayerNorms (permute, normalise, permute back) give channels_last
    strided maps, which the FPN convs keep; RoIAlign then reads scrambled
    features and the box/mask heads cannot learn (a from-scratch demo stays
    near 0 mAP). The backbone must hand out contiguous feature maps.
    """
    from mmdet.registry import MODELS
    cfg = Config.fromfile(_path(DEMO_CONFIGS[0]))
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.eval()
    with torch.no_grad():
        backbone_outs = model.backbone(torch.randn(1, 3, 64, 64))
        feats = model.neck(backbone_outs)
        extractor = model.roi_head.bbox_roi_extractor
        rois = torch.tensor([[0., 4., 6., 40., 50.], [0., 10., 10., 60., 30.]])
        got = extractor(feats[:extractor.num_inputs], rois)
        want = extractor(
            tuple(f.contiguous() for f in feats[:extractor.num_inputs]), rois)
    torch.testing.assert_close(
        got,
        want,
        msg='RoI features depend on the memory layout of the '
        'SLaK/FPN feature maps (SLaK must return contiguous outputs)')
    assert all(out.is_contiguous() for out in backbone_outs)


@pytest.mark.parametrize('rel', FULL_CONFIGS, ids=osp.basename)
def test_cfg_options_rebind_checkpoint(rel):
    cfg = load_config(_path(rel), {'checkpoint': '/tmp/x.pth'})
    assert cfg.checkpoint == '/tmp/x.pth'
    assert cfg.model.backbone.init_cfg == dict(
        type='Pretrained', checkpoint='/tmp/x.pth')
    default = Config.fromfile(_path(rel))
    assert default.checkpoint == 'checkpoints/SLaK_tiny_checkpoint.pth'
    assert default.model.backbone.init_cfg.checkpoint == default.checkpoint


@pytest.mark.parametrize('rel', DET_CONFIGS, ids=osp.basename)
def test_cfg_options_rebind_data_root(rel):
    default = Config.fromfile(_path(rel))
    cfg = load_config(_path(rel), {'data_root': '/data/somewhere'})
    for split in ('train', 'val', 'test'):
        leaves = list(leaf_dataset_cfgs(cfg[f'{split}_dataloader']['dataset']))
        assert leaves
        for ds in leaves:
            assert ds.data_root == '/data/somewhere', split
    old = list(leaf_dataset_cfgs(default.train_dataloader.dataset))
    assert all(ds.data_root == default.data_root for ds in old)
    for split in ('val', 'test'):  # CocoMetric reads the json itself
        evaluator = cfg[f'{split}_evaluator']
        if evaluator.type == 'CocoMetric':
            assert evaluator.ann_file == (
                '/data/somewhere/annotations/instances_val2017.json')


def test_voc_config_settings():
    rel = 'configs/faster_rcnn_slak_t_fpn_voc0712.py'
    assert _first_variable(rel) == 'checkpoint'
    cfg = Config.fromfile(_path(rel))
    assert cfg.model.type == 'FasterRCNN'
    bb = cfg.model.backbone
    assert (bb.arch, bb.kernel_size, bb.small_kernel,
            bb.width_factor) == ('tiny', (51, 49, 47, 13), 5, 1.3)
    assert bb.drop_path_rate == 0.4 and bb.layer_scale_init_value == 1.0
    assert cfg.model.neck.in_channels == [124, 249, 499, 998]
    train_sets = list(leaf_dataset_cfgs(cfg.train_dataloader.dataset))
    assert [d.ann_file for d in train_sets] == [
        'VOC2007/ImageSets/Main/trainval.txt',
        'VOC2012/ImageSets/Main/trainval.txt'
    ]
    assert all(d.type == 'VOCDataset' for d in train_sets)
    assert cfg.test_dataloader.dataset.ann_file == (
        'VOC2007/ImageSets/Main/test.txt')
    assert cfg.test_evaluator.type == 'VOCMetric'
    assert cfg.test_evaluator.eval_mode == '11points'
    assert cfg.train_cfg.max_epochs == 36
    opt = cfg.optim_wrapper
    assert opt.constructor == 'SLaKLearningRateDecayOptimizerConstructor'
    assert opt.optimizer.type == 'AdamW' and opt.optimizer.lr == 1e-4
    assert opt.optimizer.weight_decay == 0.05
    assert opt.paramwise_cfg == dict(
        decay_rate=0.7, decay_type='layer_wise', num_layers=6)
    milestones = [
        s.milestones for s in cfg.param_scheduler if s.type == 'MultiStepLR'
    ]
    assert milestones == [[27, 33]]


def test_coco_config_settings():
    rel = 'configs/cascade_mask_rcnn_slak_t_fpn_3x_coco.py'
    assert _first_variable(rel) == 'checkpoint'
    cfg = Config.fromfile(_path(rel))
    assert cfg.model.type == 'CascadeRCNN'
    bb = cfg.model.backbone
    assert (bb.arch, bb.kernel_size, bb.width_factor) == ('tiny', (51, 49, 47,
                                                                   13), 1.3)
    assert bb.drop_path_rate == 0.4 and bb.layer_scale_init_value == 1.0
    assert cfg.model.neck.in_channels == [124, 249, 499, 998]
    heads = cfg.model.roi_head.bbox_head
    assert len(heads) == 3
    for head in heads:
        assert head.type == 'Shared4Conv1FCBBoxHead'
        assert head.reg_decoded_bbox is True
        assert head.loss_bbox == dict(type='GIoULoss', loss_weight=10.0)
        assert head.norm_cfg.type == 'SyncBN'
    # multi-scale training, short side 480-800 (resize or resize+crop)
    choice = [
        t for t in cfg.train_dataloader.dataset.pipeline
        if t.type == 'RandomChoice'
    ]
    assert len(choice) == 1
    short_sides = {s[0] for s in choice[0].transforms[0][0].scales}
    assert min(short_sides) == 480 and max(short_sides) == 800
    assert cfg.test_evaluator.type == 'CocoMetric'
    assert set(cfg.test_evaluator.metric) == {'bbox', 'segm'}
    assert cfg.train_cfg.max_epochs == 36
    opt = cfg.optim_wrapper
    assert opt.constructor == 'SLaKLearningRateDecayOptimizerConstructor'
    assert opt.optimizer.type == 'AdamW' and opt.optimizer.lr == 2e-4
    assert opt.optimizer.betas == (0.9, 0.999)
    assert opt.optimizer.weight_decay == 0.05
    assert opt.paramwise_cfg == dict(
        decay_rate=0.7, decay_type='layer_wise', num_layers=6)
    warmup = [s for s in cfg.param_scheduler if s.type == 'LinearLR']
    assert warmup and warmup[0].end == 1000 and not warmup[0].by_epoch
    milestones = [
        s.milestones for s in cfg.param_scheduler if s.type == 'MultiStepLR'
    ]
    assert milestones == [[27, 33]]
