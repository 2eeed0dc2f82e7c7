"""Sparse fine-tuning end to end with the real tools on synthetic ADE20K:
an official-format sparse checkpoint for the demo model is fine-tuned with
AdamW; the zero pattern must survive training, checkpoints and --resume, and
the dynamic mode must move masks identically on two gloo ranks."""
import os.path as osp

import pytest
import torch

from slak_mm.checkpoint import load_checkpoint_safely
from slak_mm.config import load_config
from slak_mm.models import SLaK
from tests.common import DEMO_CONFIG as DEMO
from tests.common import free_port
from tests.official_format import model_shapes, write_official_checkpoint
from tests.tool_runner import run_tool


def sparse_items(state):
    """(key, weight, mask) of every masked weight of a backbone state."""
    return [(k[:-len('_mask')], state[k[:-len('_mask')]], v)
            for k, v in state.items() if k.endswith('_mask')]


@pytest.fixture(scope='module')
def pretrained(tmp_path_factory):
    """Official-format sparse file for the demo's backbone (module. prefix,
    args Namespace, 40% zeros); returns (path, state)."""
    args = dict(load_config(DEMO).model.backbone)
    args.pop('type')
    args['sparse'] = False
    path = str(tmp_path_factory.mktemp('pretrained') / 'slak_demo.pth')
    state = write_official_checkpoint(
        path, model_shapes(SLaK(**args)), prefix='module.')
    return path, state


def train_args(ade_root, pretrained_path, work_dir, *extra):
    return [
        'tools/train.py', DEMO, '--work-dir', work_dir, '--cfg-options',
        f'data_root={ade_root}', 'model.backbone.init_cfg.type=Pretrained',
        f'model.backbone.init_cfg.checkpoint={pretrained_path}',
        'train_cfg.val_interval=1000', 'default_hooks.logger.interval=1',
        'default_hooks.checkpoint.interval=3',
        'default_hooks.checkpoint.max_keep_ckpts=3', *extra
    ]


@pytest.fixture(scope='module')
def fine_tuned(ade_root, pretrained, tmp_path_factory):
    work_dir = str(tmp_path_factory.mktemp('sparse_ft'))
    log = run_tool(
        *train_args(ade_root, pretrained[0], work_dir, 'train_cfg.max_iters=6',
                    'custom_hooks.0.interval=3')).log
    return work_dir, log


def assert_same_zero_pattern(state, original):
    """Masks equal the original non-zeros, masked weights are exactly 0."""
    items = sparse_items(state)
    assert len(items) == sum(v.dim() in (2, 4) for k, v in original.items()
                             if not k.startswith('head'))
    for key, weight, mask in items:
        assert torch.equal(mask, original[key] != 0), key
        assert not weight[~mask].any(), key


def backbone_state(checkpoint):
    sd = load_checkpoint_safely(checkpoint)['state_dict']
    return {
        k[len('backbone.'):]: v
        for k, v in sd.items() if k.startswith('backbone.')
    }


def test_adamw_fine_tuning_keeps_the_zero_pattern(fine_tuned, pretrained):
    work_dir, log = fine_tuned
    path, original = pretrained
    assert f'Loaded SLaK backbone weights from {path}' in log
    assert 'masks taken from the weights\' zeros' in log
    weights = [
        v for k, v in original.items()
        if v.dim() in (2, 4) and not k.startswith('head')
    ]
    density = sum(int(w.count_nonzero())
                  for w in weights) / sum(w.numel() for w in weights)
    assert f'Weight density at start of training: {density:.4f}' in log
    assert f'Weight density at iter 6: {density:.4f}' in log
    for it in (3, 6):
        state = backbone_state(osp.join(work_dir, f'iter_{it}.pth'))
        assert_same_zero_pattern(state, original)
    # it did train: weights moved away from the pretrained values
    changed = [
        k for k, w, _ in sparse_items(state)
        if not torch.equal(w, original[k])
    ]
    assert len(changed) == len(sparse_items(state))


def test_resume_keeps_the_zero_pattern(fine_tuned, pretrained, ade_root,
                                       tmp_path):
    work_dir, _ = fine_tuned
    log = run_tool(
        *train_args(ade_root, pretrained[0], str(tmp_path),
                    'train_cfg.max_iters=6',
                    'optim_wrapper.accumulative_counts=2'), '--resume',
        osp.join(work_dir, 'iter_3.pth')).log
    assert 'resumed epoch: 0, iter: 3' in log
    assert_same_zero_pattern(
        backbone_state(osp.join(tmp_path, 'iter_6.pth')), pretrained[1])


def test_dynamic_sparsity_two_gloo_ranks(pretrained, ade_root, tmp_path):
    config = tmp_path / 'dynamic.py'
    config.write_text(
        f'_base_ = [{DEMO!r}]\n'
        "custom_imports = dict(imports=['slak_mm', 'tests.rank_state_dump'],"
        ' allow_failed_imports=False)\n'
        "custom_hooks = [dict(type='DynamicSparsityHook', update_interval=2,"
        " prune_rate=0.3, interval=2), dict(type='RankStateDumpHook')]\n")
    work_dir = str(tmp_path / 'work')
    args = train_args(ade_root, pretrained[0], work_dir,
                      'train_cfg.max_iters=6', 'train_dataloader.batch_size=2')
    args[1] = str(config)
    log = run_tool(
        'tools/dist_train.sh', args[1], '2', *args[2:], PORT=free_port()).log
    assert 'world_size: 2' in log or 'Distributed launcher: pytorch' in log
    assert 'Dynamic sparsity at iter 2' in log
    assert 'Dynamic sparsity at iter 4' in log
    rank0, rank1 = (
        torch.load(osp.join(work_dir, f'backbone_rank{r}.pth'))
        for r in (0, 1))
    assert rank0.keys() == rank1.keys()
    for key in rank0:  # masks and weights (BN statistics are per rank)
        if 'running_' not in key and 'num_batches' not in key:
            assert torch.equal(rank0[key], rank1[key]), key
    original = pretrained[1]
    moved = 0
    for key, weight, mask in sparse_items(rank0):
        start = original[key] != 0
        assert mask.sum() == start.sum(), key  # per-layer density kept
        assert not weight[~mask].any(), key
        moved += int((mask != start).sum())
    assert moved > 0
