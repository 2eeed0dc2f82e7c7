"""``tools/train.py --amp`` on the device it runs on (issue 17): bfloat16
autocast on the CPU through ``CPUAmpOptimWrapper``, masks kept exact, and a
one-line refusal of a half type or device without mixed precision."""
import os.path as osp

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config

from slak_mm.checkpoint import load_checkpoint_safely
from slak_mm.config import adapt_amp, load_config
from slak_mm.engine.optimizers import CPUAmpOptimWrapper
from slak_mm.registry import FRAMEWORKS
from slak_mm.sparse import MASK_SUFFIX
from tests.common import DEMO_CONFIG, DEMO_VOC_CONFIG
from tests.tool_runner import refusal, run_tool

#: The runs below train on the CPU (on a CUDA machine --amp is mmengine's).
cpu_only = pytest.mark.skipif(
    torch.cuda.is_available(), reason='--amp trains on CUDA here')
SHORT = [
    'train_cfg.max_iters=2', 'train_cfg.val_begin=1000',
    'default_hooks.checkpoint.interval=2'
]


def amp_cfg(**wrapper):
    return Config(
        dict(
            optim_wrapper=dict(
                type='AmpOptimWrapper',
                optimizer=dict(type='AdamW', lr=1e-3),
                **wrapper)))


@pytest.mark.parametrize('scope', FRAMEWORKS)
def test_wrapper_autocasts_to_bfloat16_in_both_scopes(scope):
    from mmengine.registry import OPTIM_WRAPPERS, DefaultScope
    model = nn.Linear(4, 4)
    with DefaultScope.overwrite_default_scope(scope):
        wrapper = OPTIM_WRAPPERS.build(
            dict(
                type='CPUAmpOptimWrapper',
                optimizer=torch.optim.AdamW(model.parameters())))
    assert isinstance(wrapper, CPUAmpOptimWrapper)
    with wrapper.optim_context(model):
        assert torch.is_autocast_enabled('cpu')
        assert torch.get_autocast_dtype('cpu') == torch.bfloat16
        out = model(torch.ones(2, 4))
    assert not torch.is_autocast_enabled('cpu')
    assert out.dtype == torch.bfloat16
    wrapper.update_params(out.float().sum())
    assert model.weight.dtype == torch.float32


def test_wrapper_refuses_float16():
    with pytest.raises(ValueError, match='bfloat16 only'):
        CPUAmpOptimWrapper(
            dtype='float16',
            optimizer=torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=1.))


def test_adapt_amp_per_device():
    cfg = amp_cfg(loss_scale='dynamic', dtype='bf16')
    adapt_amp(cfg, device='cpu')
    assert cfg.optim_wrapper.type == 'CPUAmpOptimWrapper'
    assert cfg.optim_wrapper.dtype == 'bfloat16'
    assert 'loss_scale' not in cfg.optim_wrapper
    cfg = amp_cfg(loss_scale='dynamic', dtype='fp16')
    adapt_amp(cfg, device='cuda')  # mmengine's wrapper, its dtype name
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert (cfg.optim_wrapper.dtype,
            cfg.optim_wrapper.loss_scale) == ('float16', 'dynamic')
    with pytest.raises(ValueError, match='no mixed precision on mps'):
        adapt_amp(amp_cfg(), device='mps')


@cpu_only
def test_amp_on_cpu_trains_in_bfloat16_and_keeps_masks(small_ade_root,
                                                       tmp_path):
    log = run_tool('tools/train.py', DEMO_CONFIG, '--amp', '--work-dir',
                   tmp_path, '--cfg-options', f'data_root={small_ade_root}',
                   *SHORT).log
    assert 'bfloat16 autocast on the CPU' in log, log[-3000:]
    dumped = load_config(str(tmp_path / osp.basename(DEMO_CONFIG)))
    assert dumped.optim_wrapper.type == 'CPUAmpOptimWrapper'
    state = load_checkpoint_safely(str(tmp_path / 'iter_2.pth'))['state_dict']
    masks = {
        k[:-len(MASK_SUFFIX)]: m
        for k, m in state.items()
        if k.startswith('backbone.') and k.endswith(MASK_SUFFIX)
    }
    assert masks and any((~m).any() for m in masks.values())
    for key, mask in masks.items():
        assert state[key].dtype == torch.float32, key
        assert not state[key][~mask].any(), key


@cpu_only
@pytest.mark.parametrize('dtype', ['float16', 'fp16'])
def test_float16_on_cpu_is_refused_in_one_line(dtype, tmp_path):
    error = refusal('tools/train.py', DEMO_CONFIG, '--amp', '--work-dir',
                    tmp_path / 'work', '--cfg-options',
                    f'optim_wrapper.dtype={dtype}')
    assert 'optim_wrapper.dtype=float16' in error, error
    assert 'optim_wrapper.dtype=bfloat16' in error, error
    assert not (tmp_path / 'work').exists()


@cpu_only
def test_detector_with_mmcv_cpu_ops_is_refused_in_one_line(tmp_path):
    """mmcv's compiled CPU RoIAlign / nms have no bfloat16 kernel (was: a
    raw "expected scalar type Float but found BFloat16" in the RPN's nms);
    detectors without them (DINO, Mask2Former) train under --amp."""
    error = refusal('tools/train.py', DEMO_VOC_CONFIG, '--amp', '--work-dir',
                    tmp_path / 'work')
    assert "RoIAlign (type='RoIAlign')" in error, error
    assert 'without --amp' in error, error
    assert not (tmp_path / 'work').exists()
