"""SLaK backbone: shapes, official layout, arguments, freezing,
checkpointing."""
import json
import os.path as osp

import pytest
import torch
import torch.nn as nn

import slak_mm  # noqa: F401  (registers SLaK)
from slak_mm.models import SLaK
from tests.common import ROOT, rel_err, tiny_slak_args
from tests.official_format import official_forward

# copy of ../shared/reference/slak_official_state_dict_keys.json: key names
# and shapes of the official tiny/small/base checkpoints
REF = osp.join(ROOT, 'tests', 'data', 'slak_official_state_dict_keys.json')
SMALL = tiny_slak_args(depths=[1, 1, 2, 1])


@pytest.mark.parametrize('arch,dims', [
    ('tiny', [124, 249, 499, 998]),
    ('small', [124, 249, 499, 998]),
    ('base', [166, 332, 665, 1331]),
])
def test_output_shapes_and_official_keys(arch, dims):
    model = SLaK(arch=arch).eval()
    assert model.out_channels == dims
    for size in [(64, 64), (70, 45)]:
        with torch.no_grad():
            outs = model(torch.randn(1, 3, *size))
        assert len(outs) == 4
        for i, (out, dim) in enumerate(zip(outs, dims)):
            stride = 4 * 2**i
            assert out.shape == (1, dim, size[0] // stride, size[1] // stride)
    # the state dict is the official file's (without the classifier)
    with open(REF) as f:
        official = {
            k: tuple(shape)
            for k, shape, _ in json.load(f)[arch]
            if not k.startswith(('norm.', 'head.'))
        }
    ours = {
        k: tuple(v.shape)
        for k, v in model.state_dict().items() if not k.startswith('norm')
    }
    assert ours == official


def test_matches_official_forward_with_same_weights():
    """Official parity (1e-6), also of the adapter over the network: the
    outputs were bit-identical to the pre-adapter backbone's."""
    torch.manual_seed(0)
    model = SLaK(**SMALL, layer_scale_init_value=0.5)
    model.init_weights()
    for m in model.modules():  # non-trivial BN statistics and affine
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    model.eval()
    x = torch.randn(2, 3, 96, 80)
    with torch.no_grad():
        ours = model(x)
        ref = official_forward(model.state_dict(), x, [1, 1, 2, 1],
                               (9, 7, 7, 5), 3)
    for a, b in zip(ours, ref):
        assert rel_err(a, b) < 1e-6


def test_non_decomposed_branch_layout():
    model = SLaK(**SMALL, decompose=False)
    keys = model.state_dict().keys()
    assert 'stages.0.0.large_kernel.lkb_origin.conv.weight' in keys
    assert not any('LoRA' in k for k in keys)
    assert model.stages[0][0].large_kernel.lkb_origin.conv.weight.shape == (8,
                                                                            1,
                                                                            9,
                                                                            9)
    out = model(torch.randn(1, 3, 64, 64))
    assert out[0].shape == (1, 8, 16, 16)


def test_out_indices_subset_builds_only_those_norms():
    model = SLaK(**SMALL, out_indices=(1, 3))
    outs = model(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [16, 32]
    assert hasattr(model, 'norm1') and not hasattr(model, 'norm0')


@pytest.mark.parametrize('kwargs,match', [
    (dict(arch='huge'), 'Unknown SLaK arch'),
    (dict(arch=dict(depths=[1, 1, 1])), 'depths'),
    (dict(kernel_size=(51, 49, 47)), 'kernel_size needs 4'),
    (dict(kernel_size=(51, 48, 47, 13)), 'odd'),
    (dict(small_kernel=4), 'odd'),
    (dict(kernel_size=(51, 49, 47, 5), small_kernel=5), 'smaller'),
    (dict(out_indices=(0, 4)), 'out_indices'),
    (dict(frozen_stages=5), 'frozen_stages'),
    (dict(width_factor=0), 'width_factor must be a number > 0'),
    (dict(kernel_size=(65, 49, 47, 13)), 'supported maximum 63'),
    (dict(pretrained='ckpt.pth'), 'init_cfg'),
    (dict(norm_cfg=dict(type='SyncBN')), 'now branch_norm_cfg'),
    (dict(arch=dict(depths=[1] * 4, dims=[8] * 4, kernels=[3] * 4)),
     'Unknown SLaK arch keys'),
])
def test_invalid_arguments_raise_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SLaK(**kwargs)


def test_norm_cfg_as_in_mm_convnext_and_branch_norm_cfg():
    """``norm_cfg``: the LayerNorms on channels-first maps (stem,
    downsampling, outputs), as mm's ConvNeXt; ``branch_norm_cfg``: the
    BatchNorms of the large-kernel branches."""
    model = SLaK(
        **SMALL,
        norm_cfg=dict(type='LN2d', eps=1e-5),
        branch_norm_cfg=dict(type='BN', requires_grad=False))
    for norm in (model.downsample_layers[0][1], model.downsample_layers[2][0],
                 model.norm3):
        assert isinstance(norm, nn.LayerNorm) and norm.eps == 1e-5
    bn = model.stages[1][0].large_kernel.LoRA2.bn
    assert isinstance(bn, nn.BatchNorm2d) and not bn.weight.requires_grad


def test_too_small_input_is_refused():
    with pytest.raises(ValueError, match='H, W >= 32'):
        SLaK(**SMALL)(torch.randn(1, 3, 16, 64))


def test_frozen_stages_and_norm_eval():
    model = SLaK(**SMALL, frozen_stages=2, norm_eval=True)
    model.train()
    for i in range(2):
        assert not any(p.requires_grad
                       for p in model.downsample_layers[i].parameters())
        assert not any(p.requires_grad for p in model.stages[i].parameters())
        assert not model.stages[i].training
    assert all(p.requires_grad for p in model.stages[2].parameters())
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns)
    # running statistics stay untouched in training mode
    before = bns[-1].running_mean.clone()
    model(torch.randn(2, 3, 64, 64))
    assert torch.equal(before, bns[-1].running_mean)
    assert model.stages[3].training


def test_with_cp_same_outputs_and_gradients():
    torch.manual_seed(0)
    ref = SLaK(**SMALL, drop_path_rate=0.0)
    ref.init_weights()
    cp_model = SLaK(**SMALL, with_cp=True)
    cp_model.load_state_dict(ref.state_dict())
    ref.eval(), cp_model.eval()  # deterministic BN, checkpointing still on
    x1 = torch.randn(2, 3, 64, 64, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    out1, out2 = ref(x1), cp_model(x2)
    for a, b in zip(out1, out2):
        torch.testing.assert_close(a, b)
    sum(o.square().mean() for o in out1).backward()
    sum(o.square().mean() for o in out2).backward()
    torch.testing.assert_close(x1.grad, x2.grad)
    for (name, p1), p2 in zip(ref.named_parameters(), cp_model.parameters()):
        torch.testing.assert_close(p1.grad, p2.grad, msg=name)


def test_registered_in_both_scopes():
    from mmdet.registry import MODELS as DET
    from mmseg.registry import MODELS as SEG
    assert SEG.get('SLaK') is SLaK and DET.get('SLaK') is SLaK
    for registry in (SEG, DET):
        model = registry.build(dict(type='SLaK', **SMALL))
        assert isinstance(model, SLaK)


def test_largest_supported_kernel_and_pretrained_none_build():
    model = SLaK(
        arch=dict(depths=[1, 1, 1, 1], dims=[8, 8, 8, 8]),
        kernel_size=(63, 7, 7, 7),
        small_kernel=3,
        width_factor=1.0,
        pretrained=None)
    assert model(torch.randn(1, 3, 64, 64))[0].shape == (1, 8, 16, 16)
