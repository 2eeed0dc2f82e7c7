"""mmpretrain through tools/train.py and tools/test.py: SLaK fine-tuned
from an official-format ImageNet checkpoint on the synthetic ImageNet-style
folder (the demo config, 2 iterations at 64 px), then tested; accuracy in
test_metrics.json (was: "'str' object has no attribute 'items'", then
"CheckpointLoadCheckHook is not in the mmpretrain::hook registry")."""
import json
import os.path as osp

import pytest
import torch

from slak_mm.config import check_datasets, check_num_classes, load_config
from slak_mm.datasets import generate_imagenet
from slak_mm.models import SLaK
from tests.official_format import model_shapes, write_official_checkpoint
from tests.tool_runner import ROOT, run_tool

pytest.importorskip('mmpretrain')

DEMO = osp.join(ROOT, 'configs', 'demo', 'slak_cls_demo_synthetic_imagenet.py')
FINETUNE = osp.join(ROOT, 'configs', 'imagenet',
                    'slak_t_finetune_imagefolder.py')


@pytest.fixture(scope='module')
def imagenet(tmp_path_factory):
    """12 training images (2 iterations of 6), 6 validation, 64 px."""
    return generate_imagenet(
        str(tmp_path_factory.mktemp('data')),
        num_train=12,
        num_val=6,
        img_size=64)


def test_finetune_then_test_reports_accuracy(imagenet, tmp_path):
    backbone = load_config(DEMO).model.backbone
    args = {k: v for k, v in backbone.items() if k != 'type'}
    official = str(tmp_path / 'official.pth')
    weights = write_official_checkpoint(official, model_shapes(SLaK(**args)))
    work_dir = tmp_path / 'work'
    train = run_tool('tools/train.py', DEMO, '--work-dir', work_dir,
                     '--cfg-options', f'data_root={imagenet}',
                     'train_cfg.max_epochs=1', 'train_dataloader.batch_size=6',
                     'model.backbone.init_cfg.type='
                     'Pretrained',
                     f'model.backbone.init_cfg.checkpoint={official}')
    assert 'Epoch(train) [1][2/2]' in train.log
    trained = torch.load(
        work_dir / 'epoch_1.pth', weights_only=False)['state_dict']
    # fine-tuned from the official weights (two small steps away)
    key = 'stages.2.1.pwconv1.weight'
    start, now = weights[key], trained[f'backbone.{key}']
    assert torch.corrcoef(torch.stack([start.flatten(),
                                       now.flatten()]))[0, 1] > 0.9
    test = run_tool('tools/test.py', DEMO, work_dir / 'epoch_1.pth',
                    '--work-dir', work_dir, '--cfg-options',
                    f'data_root={imagenet}')
    with open(work_dir / 'test_metrics.json') as f:
        metrics = json.load(f)['metrics']
    assert set(metrics) == {'accuracy/top1', 'accuracy/top5'}
    assert 0 <= metrics['accuracy/top1'] <= metrics['accuracy/top5'] <= 100
    assert f'accuracy/top1: {metrics["accuracy/top1"]:.4f}' in test.stdout


def test_finetune_config_reads_an_imagenet_folder(imagenet):
    """The SLaK-T fine-tuning config, pointed at a folder of 6 classes by
    its two variables, passes the pre-run checks (nothing built)."""
    cfg = load_config(FINETUNE, {'data_root': imagenet, 'num_classes': 6})
    assert cfg.train_dataloader.dataset.data_root == imagenet
    # the variable re-binds the keys of its name that held its value
    assert cfg.model.head.num_classes == 6
    assert cfg.model.data_preprocessor.num_classes == 6
    assert cfg.model.backbone.init_cfg.checkpoint == cfg.checkpoint
    check_datasets(cfg)
    check_num_classes(cfg)
