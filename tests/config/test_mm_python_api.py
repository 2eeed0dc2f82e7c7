"""The mm Python API on our configs after ``import slak_mm``:
``Config.fromfile`` of the integration and demo configs; a user's config
with ``slak_mm::`` and ``mmseg::`` / ``mmdet::`` bases through
``MMSegInferencer``, mmseg's ``init_model`` / ``inference_model``,
``DetInferencer``, mmdet's ``init_detector`` / ``inference_detector``, and
mmpretrain's ``ImageClassificationInferencer`` / ``init_model``, each run
on one small synthetic image. The models are
small SLaKs (the recipe's backbone with smaller arguments); their
checkpoints hold non-zero weights where the masks are off, which the
backbone zeroes on loading, whoever loads it (no runner, no hook); a plain
mmengine ``Runner`` trains the user's model with AdamW and keeps its zeros
without any hook.

Whether ``import slak_mm`` alone makes mmengine read the scoped bases is
tested in a fresh interpreter (tests/test_import_structure.py); here the
process has read configs through our tools already."""
import glob
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

import slak_mm  # noqa: F401
from slak_mm.sparse import masked_weights
from tests.common import ROOT

# the recipe's backbone, small: what a user would try first on a laptop
SMALL = ('dict(arch=dict(depths=[1, 1, 1, 1], dims=[16, 32, 64, 128]), '
         'kernel_size=(7, 7, 7, 7), small_kernel=3, width_factor=1.0, '
         'drop_path_rate=0.0, '
         "branch_norm_cfg=dict(type='BN', requires_grad=True), "
         'init_cfg=None)')
SMALL_TEST_PIPELINE = (
    'test_dataloader = dict(dataset=dict(pipeline=[\n'
    "    dict(t, scale=(128, 128)) if t.type == 'Resize' else t\n"
    '    for t in _base_.test_pipeline]))\n')
USER_CONFIGS = {
    'seg':
    "_base_ = ['mmseg::sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py',\n"
    "          'slak_mm::_base_/slak_t_drop_in.py']\n"
    'model = dict(\n'
    '    pretrained=None,\n'
    f'    backbone=dict(_delete_=True, **dict(_base_.slak_t, **{SMALL})),\n'
    '    neck=dict(in_channels=[16, 32, 64, 128], out_channels=16),\n'
    '    decode_head=dict(in_channels=[16, 16, 16, 16], channels=16,\n'
    "                     norm_cfg=dict(type='BN', requires_grad=True)))\n"
    'optim_wrapper = _base_.slak_seg_optim_wrapper\n' + SMALL_TEST_PIPELINE,
    'det':
    "_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',\n"
    "          'slak_mm::_base_/slak_t_drop_in.py']\n"
    'model = dict(\n'
    f'    backbone=dict(_delete_=True, **dict(_base_.slak_t, **{SMALL})),\n'
    '    neck=dict(in_channels=[16, 32, 64, 128], out_channels=32),\n'
    '    bbox_head=dict(in_channels=32, feat_channels=32, stacked_convs=1),\n'
    '    test_cfg=dict(score_thr=0.0))\n'
    'optim_wrapper = _base_.slak_det_optim_wrapper\n' + SMALL_TEST_PIPELINE,
    'cls':
    "_base_ = ['slak_mm::imagenet/slak_t_in1k_eval.py']\n"
    'model = dict(\n'
    '    backbone=dict(arch=dict(_delete_=True, depths=[1, 1, 1, 1],\n'
    '                            dims=[16, 32, 64, 128]),\n'
    '                  kernel_size=(7, 7, 7, 7), small_kernel=3,\n'
    '                  width_factor=1.0, sparse=True),\n'
    '    head=dict(in_channels=128, num_classes=10))\n'
    'test_dataloader = dict(dataset=dict(pipeline=[\n'
    "    dict(type='LoadImageFromFile'),\n"
    "    dict(type='ResizeEdge', scale=64, edge='short'),\n"
    "    dict(type='CenterCrop', crop_size=64),\n"
    "    dict(type='PackInputs')]))\n",
}
SCOPES = dict(seg='mmseg', det='mmdet', cls='mmpretrain')


@pytest.mark.parametrize(
    'path',
    sorted(glob.glob(osp.join(ROOT, 'configs', 'integrations', '*.py'))) +
    sorted(glob.glob(osp.join(ROOT, 'configs', 'demo', '*.py'))),
    ids=osp.basename)
def test_config_fromfile_reads_our_configs(path):
    cfg = Config.fromfile(path)
    assert cfg.model.backbone.type in ('SLaK', 'SLaKClsBackbone')


def _dataset_meta(task):
    if task == 'seg':
        from mmseg.datasets import ADE20KDataset
        return dict(ADE20KDataset.METAINFO)
    if task == 'det':
        from mmdet.datasets import CocoDataset
        return dict(CocoDataset.METAINFO)
    return dict(classes=[f'class{i}' for i in range(10)])


@pytest.fixture(scope='module')
def user_models(tmp_path_factory):
    """For each task: the user's config file and a checkpoint of its model
    with 40% of the backbone's weights masked, and those weights made
    non-zero in the file (as a run that did not keep its zeros saves)."""
    root = tmp_path_factory.mktemp('mm_api')
    found = {}
    for task, text in USER_CONFIGS.items():
        config = root / f'{task}_slak.py'
        config.write_text(text)
        cfg = Config.fromfile(str(config))
        scope = SCOPES[task]
        registry = __import__(f'{scope}.registry', fromlist=['MODELS'])
        with DefaultScope.overwrite_default_scope(scope):
            torch.manual_seed(0)
            model = registry.MODELS.build(cfg.model)
        model.backbone.init_weights()  # random 40% masks
        state = model.state_dict()
        masks = {}
        for name, weight, mask in masked_weights(model.backbone):
            state[f'backbone.{name}'] = weight.detach() + 1.0  # no zeros
            masks[name] = mask.clone()
        off = sum(int((~m).sum()) for m in masks.values())
        assert off > 0.3 * sum(m.numel() for m in masks.values())
        weights = str(root / f'{task}.pth')
        torch.save(
            dict(
                state_dict=state, meta=dict(dataset_meta=_dataset_meta(task))),
            weights)
        found[task] = (str(config), weights, masks)
    return found


def _image(tmp_path):
    """One 96x128 BGR image, as an array and as a file."""
    import mmcv
    image = np.random.default_rng(0).integers(
        0, 255, (96, 128, 3), dtype=np.uint8)
    path = str(tmp_path / 'image.jpg')
    mmcv.imwrite(image, path)
    return image, path


def _assert_masked(model, masks):
    backbone = getattr(model, 'backbone', model)
    for name, weight, mask in masked_weights(backbone):
        assert torch.equal(mask, masks[name]), name
        assert not weight[~mask].any(), f'{name}: masked weights loaded'


def test_mmseg_inferencer_and_init_model(user_models, tmp_path):
    from mmseg.apis import MMSegInferencer, inference_model, init_model
    config, weights, masks = user_models['seg']
    image, _ = _image(tmp_path)
    inferencer = MMSegInferencer(config, weights=weights, device='cpu')
    _assert_masked(inferencer.model, masks)
    out = inferencer(image, return_datasamples=True)
    assert out.pred_sem_seg.data.shape[-2:] == image.shape[:2]
    model = init_model(config, weights, device='cpu')
    _assert_masked(model, masks)
    result = inference_model(model, image)
    assert result.pred_sem_seg.data.shape[-2:] == image.shape[:2]


def test_mmdet_inferencer_and_init_detector(user_models, tmp_path):
    from mmdet.apis import DetInferencer, inference_detector, init_detector
    config, weights, masks = user_models['det']
    image, _ = _image(tmp_path)
    inferencer = DetInferencer(config, weights=weights, device='cpu')
    _assert_masked(inferencer.model, masks)
    out = inferencer(image, return_datasamples=True, no_save_vis=True)
    assert len(out['predictions'][0].pred_instances) > 0
    model = init_detector(config, weights, device='cpu')
    _assert_masked(model, masks)
    result = inference_detector(model, image)
    assert result.pred_instances.bboxes.shape[-1] == 4
    assert len(result.pred_instances) > 0


def test_mmpretrain_inferencer_and_init_model(user_models, tmp_path):
    """(mmpretrain's ``inference_model`` picks its inferencer from the model
    zoo's metafile, so it refuses any model outside it, ours included: "No
    available inferencer for the model"; the inferencer is the API. Its
    pipeline is built in the process's default scope, which mmseg's and
    mmdet's APIs set for good: after them, mmpretrain needs its scope.)"""
    from mmpretrain.apis import ImageClassificationInferencer, init_model
    config, weights, masks = user_models['cls']
    _, image = _image(tmp_path)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        inferencer = ImageClassificationInferencer(
            config, pretrained=weights, device='cpu')
        _assert_masked(inferencer.model, masks)
        (out, ) = inferencer(image)
        assert out['pred_class'] in _dataset_meta('cls')['classes']
        model = init_model(config, weights, device='cpu')
        _assert_masked(model, masks)
        (result, ) = ImageClassificationInferencer(model)(image)
    assert 0 <= result['pred_label'] < 10


def test_plain_runner_keeps_the_zeros_without_a_hook(user_models,
                                                     small_ade_root, tmp_path):
    """mmengine's Runner built from the user's config (no slak_mm tool, no
    SparseMaskHook): AdamW with weight decay, two iterations; the masked
    weights stay 0 and AdamW keeps no moment there."""
    from mmengine.runner import Runner

    from slak_mm.config import scale_down
    config, _, _ = user_models['seg']
    cfg = Config.fromfile(config)
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'  # the recipe's
    scale_down(cfg, 64)  # 2 iterations of 2 images at 64 px
    cfg.train_dataloader.dataset.data_root = small_ade_root
    cfg.update(
        val_cfg=None,
        val_dataloader=None,
        val_evaluator=None,
        test_cfg=None,
        test_dataloader=None,
        test_evaluator=None,
        work_dir=str(tmp_path))
    cfg.default_hooks.checkpoint.interval = 2
    assert not cfg.get('custom_hooks')
    runner = Runner.from_cfg(cfg)
    backbone = runner.model.backbone
    start = {n: w.detach().clone() for n, w, _ in masked_weights(backbone)}
    runner.train()
    masks = dict((n, m) for n, _, m in masked_weights(backbone))
    assert sum(int((~m).sum()) for m in masks.values()) > 0
    state = runner.optim_wrapper.optimizer.state
    for name, weight, mask in masked_weights(backbone):
        assert not weight[~mask].any(), name
        assert not state[weight]['exp_avg'][~mask].any(), name
    assert any(not torch.equal(w, start[n])
               for n, w, _ in masked_weights(backbone))  # it trained
    saved = torch.load(
        osp.join(str(tmp_path), 'iter_2.pth'),
        weights_only=False)['state_dict']
    for name, mask in masks.items():
        assert not saved[f'backbone.{name}'][~mask].any(), name
