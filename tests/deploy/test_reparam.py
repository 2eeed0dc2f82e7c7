"""Inference re-parameterisation: switch_to_deploy, SLaK(deploy=True) and
tools/deploy.py give the training-form model's eval outputs (fp32, 1e-5
relative) with merged kernels; the tool never overwrites its inputs nor
anything but a regular file, and a full disk leaves the old file."""
import hashlib
import os
import os.path as osp

import pytest
import torch
import torch.nn as nn
from mmengine.runner import load_checkpoint, load_state_dict
from mmengine.structures import PixelData

import slak_mm  # noqa: F401  (registers SLaK)
from slak_mm.apis import build_model
from slak_mm.config import load_config
from slak_mm.deploy import deploy_checkpoint
from slak_mm.models import SLaK
from slak_mm.network import LargeKernelConv
from slak_mm.network.large_kernel_conv import fuse_conv_bn
from tests.common import DEMO_CONFIG as DEMO
from tests.common import (SPECIAL_FILES, TINY_SLAK, disk_full_for, rel_err,
                          special_file, tiny_slak_args)
from tests.tool_runner import refusal, run_tool

RTOL = 1e-5
SIZES = [(64, 64), (70, 45)]  # the second is no multiple of 32
ARCHS = {
    'small_kernels':
    TINY_SLAK,
    # the real SLaK-T kernels on few channels
    'tiny_kernels':
    tiny_slak_args(
        dims=[8, 8, 16, 16], kernel_size=(51, 49, 47, 13), small_kernel=5),
}


@torch.no_grad()
def randomise_norms(model: nn.Module, seed: int = 0) -> None:
    """Running statistics and affine parameters far from their defaults,
    so that folding them is really tested."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            c = m.num_features
            m.running_mean.copy_(torch.rand(c, generator=gen) * 2 - 1)
            m.running_var.copy_(torch.rand(c, generator=gen) * 2 + 0.1)
            if m.affine:
                m.weight.copy_(torch.rand(c, generator=gen) * 2 - 1)
                m.bias.copy_(torch.rand(c, generator=gen) * 2 - 1)


def random_slak(arch='small_kernels', decompose=True, **kwargs) -> SLaK:
    torch.manual_seed(0)
    # layer scale 1 (as in the configs): the kernels matter in the output
    model = SLaK(
        **ARCHS[arch],
        decompose=decompose,
        layer_scale_init_value=1.0,
        sparse=True,
        sparse_init='uniform',  # ERK leaves these small kernels dense
        **kwargs)
    model.init_weights()  # random masks at 40% sparsity, applied
    lora1 = next(model.stages[0][0].large_kernel.branches())
    assert (lora1.conv.weight == 0).float().mean() > 0.3
    randomise_norms(model)
    return model.eval()


@torch.no_grad()
def features(model, size, seed=1):
    x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(seed))
    return model(x)


def assert_close(outs_a, outs_b, rtol=RTOL):
    assert len(outs_a) == len(outs_b)
    for a, b in zip(outs_a, outs_b):
        assert a.shape == b.shape
        assert rel_err(b, a) < rtol, rel_err(b, a)


# ------------------------------------------------------------ fuse_conv_bn
@pytest.mark.parametrize('affine', [True, False])
def test_fuse_conv_bn_equals_eval_conv_bn(affine):
    conv = nn.Conv2d(6, 6, (7, 3), padding=(3, 1), groups=6, bias=False)
    bn = nn.BatchNorm2d(6, eps=1e-3, affine=affine)
    seq = nn.Sequential(conv, bn)
    randomise_norms(seq)
    seq.eval()
    kernel, bias = fuse_conv_bn(conv.weight, bn)
    x = torch.randn(2, 6, 11, 9)
    with torch.no_grad():
        fused = nn.functional.conv2d(x, kernel, bias, padding=(3, 1), groups=6)
        assert rel_err(fused, seq(x)) < RTOL


def test_fuse_conv_bn_refuses_norms_without_running_stats():
    weight = torch.randn(4, 1, 3, 3)
    for norm in (nn.GroupNorm(2,
                              4), nn.BatchNorm2d(4,
                                                 track_running_stats=False)):
        with pytest.raises(TypeError, match='running statistics'):
            fuse_conv_bn(weight, norm)


@pytest.mark.parametrize('decompose', [True, False])
def test_equivalent_kernel_shapes(decompose):
    lk = LargeKernelConv(4, 9, 3, decompose=decompose)
    weight_v, weight_h, bias = lk.get_equivalent_kernel_bias()
    assert bias.shape == (4, )
    if decompose:
        assert weight_v.shape == (4, 1, 9, 3)
        assert weight_h.shape == (4, 1, 3, 9)
    else:
        assert weight_v.shape == (4, 1, 9, 9) and weight_h is None


# ------------------------------------------------------ switch_to_deploy
@pytest.mark.parametrize('decompose', [True, False])
@pytest.mark.parametrize('arch', sorted(ARCHS))
def test_switch_to_deploy_keeps_eval_outputs(arch, decompose):
    model = random_slak(arch, decompose)
    before = {size: features(model, size) for size in SIZES}
    params_before = sum(p.numel() for p in model.parameters())
    model.switch_to_deploy()
    assert model.deploy
    for size in SIZES:
        assert_close(before[size], features(model, size))

    # the branches are gone, with their masks; the merged kernels have none
    names = dict(model.named_modules())
    assert not any(
        n.endswith(('LoRA1', 'LoRA2', 'small_conv', 'lkb_origin'))
        for n in names)
    keys = set(model.state_dict())
    lk_keys = {k for k in keys if '.large_kernel.' in k}
    expected = ({'merged.weight_v', 'merged.weight_h', 'merged.bias'}
                if decompose else {'merged.weight_v', 'merged.bias'})
    assert {k.split('.large_kernel.')[1] for k in lk_keys} == expected
    # masks of the other weights stay
    assert 'stages.0.0.pwconv1.weight_mask' in keys
    assert sum(p.numel() for p in model.parameters()) < params_before

    # a second call changes nothing
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.switch_to_deploy()
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())


@pytest.mark.parametrize('decompose', [True, False])
def test_deploy_model_loads_switched_state_dict(decompose):
    model = random_slak('tiny_kernels', decompose)
    reference = features(model, SIZES[1])
    model.switch_to_deploy()

    built = SLaK(
        **ARCHS['tiny_kernels'],
        decompose=decompose,
        layer_scale_init_value=1.0,
        sparse=True,
        deploy=True)
    assert set(built.state_dict()) == set(model.state_dict())
    built.load_state_dict(model.state_dict(), strict=True)
    built.eval()
    outs = features(built, SIZES[1])
    assert all(
        torch.equal(a, b) for a, b in zip(outs, features(model, SIZES[1])))
    assert_close(reference, outs)


def test_switch_in_training_mode_uses_running_statistics():
    model = random_slak()
    reference = features(model, SIZES[0])
    model.train().switch_to_deploy()  # explicit eval semantics of the BNs
    assert_close(reference, features(model.eval(), SIZES[0]))


def test_frozen_stages_stay_frozen_after_switch():
    model = random_slak(frozen_stages=1)
    model.switch_to_deploy()
    lk0 = model.stages[0][0].large_kernel
    lk1 = model.stages[1][0].large_kernel
    assert not any(p.requires_grad for p in lk0.parameters())
    assert all(p.requires_grad for p in lk1.parameters())


def test_checkpoint_form_mismatch_is_a_clear_error():
    train_form = random_slak()
    deploy_form = random_slak()
    deploy_form.switch_to_deploy()
    kwargs = dict(**ARCHS['small_kernels'], sparse=True)
    # mmengine loads with strict=False by default (tools/test.py's runner)
    with pytest.raises(ValueError, match='tools/deploy.py'):
        load_state_dict(
            SLaK(deploy=True, **kwargs), train_form.state_dict(), strict=False)
    with pytest.raises(ValueError, match='deploy=True'):
        load_state_dict(SLaK(**kwargs), deploy_form.state_dict(), strict=False)


def test_deploy_checkpoint_of_the_bare_parameter_layout_is_refused():
    """Deploy files written before MergedLargeKernel (merged_v / merged_h /
    merged_bias) are refused by name, not loaded as zeros."""
    deploy_form = random_slak()
    deploy_form.switch_to_deploy()
    old_names = {
        'merged.weight_v': 'merged_v',
        'merged.weight_h': 'merged_h',
        'merged.bias': 'merged_bias'
    }
    old = {}
    for key, value in deploy_form.state_dict().items():
        for new, bare in old_names.items():
            key = key.replace(new, bare)
        old[key] = value
    kwargs = dict(**ARCHS['small_kernels'], sparse=True)
    with pytest.raises(ValueError, match='earlier slak_mm'):
        load_state_dict(SLaK(deploy=True, **kwargs), old, strict=False)
    with pytest.raises(ValueError, match='deploy=True'):
        load_state_dict(SLaK(**kwargs), old, strict=False)


def test_pretrained_training_file_into_deploy_model(tmp_path):
    path = str(tmp_path / 'backbone.pth')
    torch.save(random_slak().state_dict(), path)
    model = SLaK(
        **ARCHS['small_kernels'],
        sparse=True,
        deploy=True,
        init_cfg=dict(type='Pretrained', checkpoint=path))
    with pytest.raises(ValueError, match='deploy=True'):
        model.init_weights()


# ------------------------------------------------------- tools/deploy.py
def _demo_cfg(**cfg_options):
    cfg = load_config(DEMO, cfg_options)
    cfg.model.backbone.pop('init_cfg', None)
    cfg.model.data_preprocessor.size = (64, 64)
    return cfg


def _seg_data():
    from mmseg.structures import SegDataSample
    gen = torch.Generator().manual_seed(2)
    samples = []
    for h, w in ((64, 64), (64, 64)):
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=torch.zeros(1, h, w).long())
        sample.set_metainfo(
            dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w)))
        samples.append(sample)
    inputs = [
        torch.randint(0, 255, (3, 64, 64), generator=gen, dtype=torch.uint8)
        for _ in samples
    ]
    return dict(inputs=inputs, data_samples=samples)


@pytest.fixture(scope='module')
def demo_checkpoint(tmp_path_factory):
    """A demo UperNet+SLaK with random weights, BN statistics and masks."""
    model = build_model(_demo_cfg())
    model.init_weights()
    randomise_norms(model)
    path = str(tmp_path_factory.mktemp('ckpt') / 'demo.pth')
    torch.save(
        dict(
            meta=dict(dataset_meta=dict(classes=['a', 'b'])),
            state_dict=model.state_dict()), path)
    return path, model.eval()


@torch.no_grad()
def _seg_outputs(model):
    data = model.data_preprocessor(_seg_data(), False)
    logits = model(data['inputs'], mode='tensor')
    preds = model.test_step(_seg_data())
    return logits, torch.stack([p.seg_logits.data for p in preds])


def test_tools_deploy_end_to_end(demo_checkpoint, tmp_path):
    path, reference = demo_checkpoint
    out = str(tmp_path / 'deploy.pth')
    # the tool's smoke run as its own process
    proc = run_tool(
        'tools/deploy.py', DEMO, path, out, timeout=600, fresh_process=True)
    assert 'model.backbone.deploy=True' in proc.stdout
    assert '5 large kernels merged' in proc.stdout  # depths 1+1+2+1

    ckpt = torch.load(out, map_location='cpu', weights_only=True)
    assert ckpt['meta']['deploy'] is True
    assert ckpt['meta']['dataset_meta'] == dict(classes=['a', 'b'])
    assert not any('LoRA' in k or 'small_conv' in k
                   for k in ckpt['state_dict'])

    deployed = build_model(_demo_cfg(**{'model.backbone.deploy': True}))
    load_checkpoint(deployed, out, map_location='cpu', strict=True)
    deployed.eval()
    for a, b in zip(_seg_outputs(reference), _seg_outputs(deployed)):
        assert rel_err(b, a) < RTOL, rel_err(b, a)


def test_deploy_checkpoint_refuses_a_deploy_checkpoint(demo_checkpoint,
                                                       tmp_path):
    path, _ = demo_checkpoint
    once = str(tmp_path / 'once.pth')
    info = deploy_checkpoint(_demo_cfg(), path, once)
    assert info['params_after'] < info['params_before']
    with pytest.raises(ValueError, match='deploy checkpoint'):
        deploy_checkpoint(_demo_cfg(), once, str(tmp_path / 'twice.pth'))
    assert not osp.exists(tmp_path / 'twice.pth')


def _digest(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


#: The unsafe outputs :func:`unsafe_output` makes.
UNSAFE_OUTPUTS = ('same', 'other_spelling', 'link_to_checkpoint', 'hard_link',
                  'config', *sorted(SPECIAL_FILES))


def unsafe_output(tmp_path, checkpoint, case):
    """``(out, config, the refusal's start)`` for an output path that is
    the checkpoint or the config in some form, or no regular file (a case
    of :data:`UNSAFE_OUTPUTS`). The config is a child of the demo's in
    ``tmp_path``: a tool that failed to refuse replaces that copy, not the
    repository's file."""
    config = tmp_path / 'demo.py'
    config.write_text(f'_base_ = {DEMO!r}\n')
    if case in SPECIAL_FILES:
        out = special_file(tmp_path, case)
        return out, str(config), f'error: refusing to write {out}: it is ' \
            f'{SPECIAL_FILES[case]}'
    out = {
        'same':
        checkpoint,
        'other_spelling':
        osp.join(osp.dirname(checkpoint), '.', osp.basename(checkpoint)),
        'config':
        str(config),
    }.get(case, str(tmp_path / 'out.pth'))
    if case == 'link_to_checkpoint':
        os.symlink(checkpoint, out)
    elif case == 'hard_link':
        os.link(checkpoint, out)
    what = 'config' if case == 'config' else 'checkpoint'
    return out, str(config), f'error: refusing to write {out}: it is the ' \
        f'{what}'


@pytest.mark.parametrize('case', UNSAFE_OUTPUTS)
def test_deploy_never_overwrites_its_inputs_nor_special_files(
        demo_checkpoint, tmp_path, case):
    path, _ = demo_checkpoint
    before = _digest(path)
    out, config, expected = unsafe_output(tmp_path, path, case)
    error = refusal('tools/deploy.py', config, path, out)
    assert error.startswith(expected), error
    assert _digest(path) == before
    assert open(config).read() == f'_base_ = {DEMO!r}\n'


def test_deploy_on_a_full_disk_keeps_the_old_file(demo_checkpoint, tmp_path,
                                                  monkeypatch):
    out = tmp_path / 'deploy.pth'
    out.write_bytes(b'the previous deploy checkpoint')
    disk_full_for(monkeypatch, 'deploy.pth')
    error = refusal('tools/deploy.py', DEMO, demo_checkpoint[0], str(out))
    assert error.startswith(f'error: no space left on device writing {out}: '
                            f'it needs '), error
    assert 'MiB free in' in error
    assert out.read_bytes() == b'the previous deploy checkpoint'
    assert os.listdir(tmp_path) == ['deploy.pth']  # no temp file left
