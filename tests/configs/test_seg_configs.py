"""Every segmentation config builds the real mmseg model, trains a step and
predicts, with layer-wise lr decay from the SLaK constructor."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData

import slak_mm  # noqa: F401
from slak_mm.config import adapt_to_device, load_config
from tests.common import ROOT
from tests.sparse_checks import assert_sparsity_kept, attach_config_sparse_hook

SEG_CONFIGS = sorted(
    glob.glob(osp.join(ROOT, 'configs', '*ade20k*.py')) +
    glob.glob(osp.join(ROOT, 'configs', 'demo', '*ade20k*.py')))


def test_all_segmentation_configs_found():
    names = {osp.basename(p) for p in SEG_CONFIGS}
    assert {
        'upernet_slak_t_ade20k.py', 'upernet_slak_s_ade20k.py',
        'upernet_slak_b_ade20k.py', 'upernet_slak_demo_synthetic_ade20k.py'
    } <= names


@pytest.mark.parametrize('path', SEG_CONFIGS, ids=osp.basename)
def test_config_trains_one_step_and_predicts(path):
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample
    cfg = load_config(path)
    assert cfg.default_scope == 'mmseg'
    assert cfg.model.backbone.type == 'SLaK'
    adapt_to_device(cfg)
    init_default_scope('mmseg')
    cfg.model.backbone.pop('init_cfg', None)  # no pretrained file in tests
    cfg.model.data_preprocessor.size = (64, 64)
    model = MODELS.build(cfg.model)
    model.init_weights()

    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    attach_config_sparse_hook(cfg, model, optim_wrapper)
    lrs = {g['lr'] for g in optim_wrapper.optimizer.param_groups}
    if cfg.optim_wrapper.paramwise_cfg.decay_rate < 1:
        assert len(lrs) > 1  # stage-wise decay really applied

    num_classes = cfg.model.decode_head.num_classes
    samples = []
    for _ in range(2):  # BN in the pooling branch needs batch > 1
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(
            data=torch.randint(0, num_classes, (1, 64, 64)))
        sample.set_metainfo(
            dict(img_shape=(64, 64), ori_shape=(64, 64), pad_shape=(64, 64)))
        samples.append(sample)
    data = dict(
        inputs=[
            torch.randint(0, 255, (3, 64, 64), dtype=torch.uint8)
            for _ in samples
        ],
        data_samples=samples)
    model.train()
    before = model.backbone.downsample_layers[0][0].weight.detach().clone()
    losses = model.train_step(data, optim_wrapper)
    assert all(torch.isfinite(v).all() for v in losses.values())
    assert not torch.equal(before,
                           model.backbone.downsample_layers[0][0].weight)
    assert_sparsity_kept(model.backbone)

    model.eval()
    cfg.model.test_cfg.mode = 'whole'
    model.test_cfg.mode = 'whole'
    with torch.no_grad():
        preds = model.test_step(data)
    assert preds[0].pred_sem_seg.data.shape == (1, 64, 64)
    assert int(preds[0].pred_sem_seg.data.max()) < num_classes


def test_cfg_options_rebind_checkpoint_and_data_root():
    path = osp.join(ROOT, 'configs', 'upernet_slak_t_ade20k.py')
    cfg = load_config(path, {
        'checkpoint': '/ckpt/x.pth',
        'data_root': '/data/ade'
    })
    assert cfg.model.backbone.init_cfg.checkpoint == '/ckpt/x.pth'
    assert cfg.train_dataloader.dataset.data_root == '/data/ade'
    assert cfg.test_dataloader.dataset.data_root == '/data/ade'


def test_real_settings_of_tiny_config():
    cfg = load_config(osp.join(ROOT, 'configs', 'upernet_slak_t_ade20k.py'))
    assert cfg.model.backbone.kernel_size == (51, 49, 47, 13)
    assert cfg.model.backbone.branch_norm_cfg.type == 'SyncBN'
    assert cfg.model.test_cfg == dict(
        mode='slide', crop_size=(512, 512), stride=(341, 341))
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
    assert cfg.optim_wrapper.paramwise_cfg == dict(
        decay_rate=0.9, decay_type='stage_wise', num_layers=6)
    assert cfg.train_cfg.max_iters == 160000
