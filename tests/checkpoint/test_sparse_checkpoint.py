"""Official-format SLaK-T checkpoints (built from the reference key list,
40% zeros, ``args`` Namespace) through the real config path, the load report,
refusals, and tools/convert_checkpoint.py (which never overwrites its input,
and leaves the old output on a full disk)."""
import os
import os.path as osp

import pytest
import torch
from mmengine.registry import init_default_scope

import slak_mm  # noqa: F401
from slak_mm.checkpoint import load_checkpoint_safely, load_pretrained_backbone
from slak_mm.config import adapt_to_device, load_config
from slak_mm.models import SLaK
from slak_mm.sparse import masked_weights
from tests.common import TINY_SLAK as SMALL
from tests.common import disk_full_for
from tests.official_format import (model_shapes, reference_shapes,
                                   write_official_checkpoint)
from tests.tool_runner import ROOT, refusal, run_tool

TINY_CONFIG = osp.join(ROOT, 'configs', 'upernet_slak_t_ade20k.py')


def build_tiny_segmentor(checkpoint):
    from mmseg.registry import MODELS
    cfg = load_config(TINY_CONFIG, cfg_options=dict(checkpoint=checkpoint))
    adapt_to_device(cfg)
    init_default_scope('mmseg')
    assert cfg.model.backbone.init_cfg.checkpoint == checkpoint
    assert cfg.model.backbone.sparse is True
    return MODELS.build(cfg.model)


@pytest.fixture(scope='module')
def official_tiny(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('ckpt') / 'SLaK_tiny_checkpoint.pth')
    state = write_official_checkpoint(
        path,
        reference_shapes('tiny'),
        prefix='module.',
        rename=('LoRA', 'Decom'),
        with_ema=True)
    return path, state


def test_official_tiny_loads_through_config_with_report(official_tiny, mm_log):
    import logging

    from mmengine.logging import MMLogger
    path, state = official_tiny
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.DEBUG)  # the per-weight table is DEBUG
    try:
        model = build_tiny_segmentor(path)
        model.init_weights()
    finally:
        logger.setLevel(level)
    backbone = model.backbone
    summary = [
        r for r in mm_log if 'Loaded SLaK backbone weights' in r.getMessage()
    ]
    # one INFO line with the per-stage density; the table only at DEBUG
    assert len(summary) == 1 and summary[0].levelno == logging.INFO
    assert '\n' not in summary[0].getMessage()
    assert 'stage0 0.6' in summary[0].getMessage()
    table = [r for r in mm_log if 'Density per weight' in r.getMessage()]
    assert len(table) == 1 and table[0].levelno == logging.DEBUG
    report = summary[0].getMessage() + '\n' + table[0].getMessage()
    assert path in report
    n_file = len([k for k in state if not k.startswith(('norm.', 'head.'))])
    assert f'{n_file} keys loaded' in report
    assert '0 unexpected' in report
    # the only missing keys: the dense-prediction output norms
    assert '8 missing' in report and 'norm3.bias' in report
    # one line per sparse weight with its density (~0.6 here)
    line = [
        ln for ln in report.splitlines()
        if 'stages.0.0.large_kernel.LoRA1.conv.weight' in ln
    ][0]
    assert '(124, 1, 51, 5)' in line and abs(float(line.split()[-1]) -
                                             0.6) < 0.02
    # weights and masks: exactly the file, zeros kept as masks
    key = 'stages.2.4.large_kernel.LoRA1.conv.weight'
    assert torch.equal(backbone.state_dict()[key], state[key])
    n_masks = 0
    for name, weight, mask in masked_weights(backbone):
        assert torch.equal(mask, state[name] != 0), name
        assert torch.equal(weight, state[name]), name
        n_masks += 1
    assert n_masks == len([
        k for k, v in state.items()
        if v.dim() in (2, 4) and not k.startswith('head')
    ])


@pytest.mark.parametrize('other,expect', [
    ('base', [
        'downsample_layers.0.0.weight: checkpoint (166, 3, 4, 4) vs '
        'model (124, 3, 4, 4)'
    ]),
    ('small', ['blocks per stage [3, 3, 27, 3] in the file vs [3, 3, 9, 3]']),
])
def test_wrong_arch_is_refused_and_nothing_loaded(tmp_path, other, expect):
    path = str(tmp_path / f'{other}.pth')
    write_official_checkpoint(path, reference_shapes(other))
    model = build_tiny_segmentor(path)
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    with pytest.raises(ValueError) as err:
        model.init_weights()
    for text in expect + ['Nothing was loaded', path]:
        assert text in str(err.value)
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_61_kernel_file_into_51_model_is_refused(tmp_path):
    shapes = {  # stage 0's 51x5 / 5x51 kernels as 61x5 / 5x61
        k: tuple(61 if d == 51 else d for d in shape)
        for k, shape in reference_shapes('tiny').items()
    }
    path = str(tmp_path / 'slak61.pth')
    write_official_checkpoint(path, shapes)
    with pytest.raises(ValueError, match=r'\(124, 1, 61, 5\).*\(124, 1, 51'):
        load_pretrained_backbone(SLaK(arch='tiny', sparse=True), path)


def run_convert(*args):
    return run_tool('tools/convert_checkpoint.py', *args, timeout=600).stdout


@pytest.mark.parametrize('ema', [False, True])
def test_convert_checkpoint_writes_masks_and_prints_density(tmp_path, ema):
    src = str(tmp_path / 'official.pth')
    model = SLaK(**SMALL)
    state = write_official_checkpoint(
        src, model_shapes(model), prefix='module.', with_ema=True)
    if ema:  # the EMA weights differ from `model` in the file
        state = load_checkpoint_safely(src)['model_ema']
        state = {k[len('module.'):]: v for k, v in state.items()}
    dst = str(tmp_path / 'converted.pth')
    out = run_convert(src, dst, *(['--ema'] if ema else []))
    for stage in ('stage0', 'stage1', 'stage2', 'stage3', 'global'):
        assert stage in out
    converted = torch.load(dst, weights_only=True)
    assert converted['meta']['use_ema'] is ema
    sd = converted['state_dict']
    assert all(k.startswith('backbone.') for k in sd)
    assert not any(
        k.startswith(('backbone.head', 'backbone.norm.')) for k in sd)
    key = 'stages.1.0.pwconv2.weight'
    assert torch.equal(sd[f'backbone.{key}'], state[key])
    assert torch.equal(sd[f'backbone.{key}_mask'], state[key] != 0)
    # the saved checkpoint keeps the zero pattern; loading it restores it
    sparse = SLaK(
        **SMALL, sparse=True, init_cfg=dict(type='Pretrained', checkpoint=dst))
    sparse.init_weights()
    for name, weight, mask in masked_weights(sparse):
        assert torch.equal(mask, state[name] != 0), name
        assert torch.equal(weight, state[name]), name
    # a dense model ignores the masks (reported as unexpected)
    _, unexpected = load_pretrained_backbone(SLaK(**SMALL), dst)
    assert unexpected and all(k.endswith('_mask') for k in unexpected)


@pytest.mark.parametrize('spelling', ['same', 'other_spelling', 'symlink'])
def test_convert_never_overwrites_its_input(tmp_path, spelling):
    src = str(tmp_path / 'official.pth')
    write_official_checkpoint(src, model_shapes(SLaK(**SMALL)))
    before = open(src, 'rb').read()
    dst = dict(
        same=src, other_spelling=f'{tmp_path}/./official.pth').get(
            spelling, str(tmp_path / 'link.pth'))
    if spelling == 'symlink':
        os.symlink(src, dst)
    error = refusal('tools/convert_checkpoint.py', src, dst)
    assert error.startswith(f'error: refusing to write {dst}: it is the '
                            f'input checkpoint'), error
    assert open(src, 'rb').read() == before


def test_convert_on_a_full_disk_keeps_the_old_file(tmp_path, monkeypatch):
    src = str(tmp_path / 'official.pth')
    write_official_checkpoint(src, model_shapes(SLaK(**SMALL)))
    dst = tmp_path / 'converted.pth'
    dst.write_bytes(b'the previous conversion')
    disk_full_for(monkeypatch, 'converted.pth')
    error = refusal('tools/convert_checkpoint.py', src, str(dst))
    assert error.startswith(f'error: no space left on device writing {dst}: '
                            f'it needs '), error
    assert dst.read_bytes() == b'the previous conversion'
    assert sorted(os.listdir(tmp_path)) == ['converted.pth', 'official.pth']


def test_sparse_false_keeps_loading_dense(tmp_path):
    path = str(tmp_path / 'official.pth')
    write_official_checkpoint(path, model_shapes(SLaK(**SMALL)))
    model = SLaK(**SMALL)
    missing, unexpected = load_pretrained_backbone(model, path)
    assert not any(k.endswith('_mask') for k in model.state_dict())
    assert unexpected == []
