"""Dense and sparse parameter / FLOP counts (slak_mm.analysis.complexity)
against hand counts, and tools/analysis/get_flops.py end to end.

FLOPs are multiply-adds (mmengine's convention). A depthwise "same" conv
with a (C, 1, kh, kw) kernel on an H x W map takes H * W * C * kh * kw
multiply-adds, and only H * W * nnz(kernel) with its zeros skipped.
"""
import importlib.util
import json
import os.path as osp

import pytest
import torch

from slak_mm.analysis.complexity import WEIGHT_OPS, count_complexity
from slak_mm.network import LargeKernelConv, SLaKBlock

C, H, W, M, N = 8, 10, 12, 7, 3


def _randomize_bn(module):
    # non-trivial running statistics, so deploy kernels have no exact zeros
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 2)


def _zero_known_fraction(weight, keep_every=3):
    """Zero all but every ``keep_every``-th entry; return the nnz."""
    flat = weight.data.view(-1)
    keep = torch.zeros_like(flat, dtype=torch.bool)
    keep[::keep_every] = True
    flat.masked_fill_(~keep, 0)
    return int(keep.sum())


def _lk(impl=None, decompose=True):
    torch.manual_seed(0)
    lk = LargeKernelConv(C, M, N, decompose=decompose, impl=impl)
    _randomize_bn(lk)
    return lk.eval()


def _dense_lk_macs():
    return H * W * C * (M * N * 2 + N * N)


def test_large_kernel_dense_and_sparse_hand_count():
    lk = _lk(impl='torch')
    x = torch.randn(1, C, H, W)
    res = count_complexity(lk, x)
    assert res['by_operator']['conv'] == _dense_lk_macs()
    # eval BatchNorm with affine: 2 per element (mmengine), one per branch
    assert res['by_operator']['batch_norm'] == 3 * 2 * C * H * W
    assert res['flops'] == _dense_lk_macs() + 3 * 2 * C * H * W
    assert res['params'] == C * (M * N * 2 + N * N) + 3 * 2 * C
    assert res['flops_sparse'] == res['flops']

    nnz = sum(
        _zero_known_fraction(b.conv.weight, k)
        for b, k in zip(lk.branches(), (2, 3, 4)))
    res = count_complexity(lk, x)
    assert res['flops'] == _dense_lk_macs() + 3 * 2 * C * H * W
    assert res['flops_sparse'] == H * W * nnz + 3 * 2 * C * H * W
    assert res['params_sparse'] == nnz + 3 * 2 * C


def test_block_hand_count_with_random_masks():
    from slak_mm.sparse import attach_masks, init_random_masks
    torch.manual_seed(0)
    block = SLaKBlock(C, M, N, decompose=True).eval()
    attach_masks(block)
    init_random_masks(
        block, 0.5, 'uniform', generator=torch.Generator().manual_seed(0))
    x = torch.randn(1, C, H, W)
    res = count_complexity(block, x)
    tokens = H * W
    ops = res['by_operator']
    assert ops['conv'] == _dense_lk_macs()
    assert ops['linear'] == 2 * tokens * C * 4 * C  # pwconv1 + pwconv2
    assert ops['layer_norm'] == 5 * tokens * C  # mmengine: 5 per element
    dense_rest = ops['batch_norm'] + ops['layer_norm']
    assert res['flops'] == _dense_lk_macs() + 8 * tokens * C * C + dense_rest

    lk = block.large_kernel
    nnz_lk = sum(int(b.conv.weight.count_nonzero()) for b in lk.branches())
    nnz_pw = int(block.pwconv1.weight.count_nonzero()) + int(
        block.pwconv2.weight.count_nonzero())
    assert 0 < nnz_lk < C * (2 * M * N + N * N)
    assert res['flops_sparse'] == tokens * (nnz_lk + nnz_pw) + dense_rest
    zeros = sum(p.numel() - int(p.count_nonzero()) for p in block.parameters()
                if p.dim() in (2, 4))
    assert res['params_sparse'] == res['params'] - zeros


def test_paper_convention_uniform_density_hand_count():
    """The paper row scales each masked weight's op by the uniform density,
    whatever zeros the weights have; unmasked weights count dense."""
    from fractions import Fraction

    from slak_mm.sparse import attach_masks, init_random_masks
    torch.manual_seed(0)
    block = SLaKBlock(C, M, N, decompose=True).eval()
    attach_masks(block, exclude=[block.pwconv2])  # pwconv2: no mask
    init_random_masks(block, 0.3, 'ERK')  # zeros unlike the paper's 0.6
    x = torch.randn(1, C, H, W)
    res = count_complexity(block, x, uniform_density=0.6)
    tokens, d = H * W, Fraction(3, 5)
    ops = res['by_operator']
    dense_rest = ops['batch_norm'] + ops['layer_norm']
    pw = tokens * C * 4 * C  # one pointwise linear
    assert res['paper_density'] == 0.6
    assert res['flops_paper'] == _exact_number((_dense_lk_macs() + pw) * d +
                                               pw + dense_rest)
    masked_numel = C * (2 * M * N + N * N) + 4 * C * C
    assert res['params_paper'] == _exact_number(res['params'] - masked_numel *
                                                (1 - d))
    # the actual zeros (ERK at 0.3 on the masked weights) differ from it
    assert res['flops_sparse'] < res['flops_paper'] < res['flops']

    res = count_complexity(block, x)  # no density given: paper = dense
    assert res['paper_density'] is None
    assert res['flops_paper'] == res['flops']
    assert res['params_paper'] == res['params']


def _exact_number(value):
    return int(value) if value.denominator == 1 else float(value)


def test_deploy_form_hand_count():
    lk = _lk(impl='torch')
    _zero_known_fraction(lk.LoRA1.conv.weight, 2)
    _zero_known_fraction(lk.LoRA2.conv.weight, 3)
    lk.switch_to_deploy()
    x = torch.randn(1, C, H, W)
    res = count_complexity(lk, x)
    assert res['flops'] == H * W * C * (M * N + N * M)  # bias add: no flops
    nnz = int(lk.merged.weight_v.count_nonzero()) + int(
        lk.merged.weight_h.count_nonzero())
    assert nnz < 2 * C * M * N
    assert res['flops_sparse'] == H * W * nnz
    assert res['params_sparse'] == nnz + C


def test_triton_op_handle_under_interpreter():
    """The Triton autograd functions trace as prim::PythonOp; the handle
    counts them as the torch path's convs, dense and sparse."""
    pytest.importorskip('triton')
    from slak_mm.ops import triton_depthwise, use
    launch = triton_depthwise._launch_conv
    with use(triton_interpret=True):
        lk = _lk(impl='triton')
        nnz = _zero_known_fraction(lk.LoRA1.conv.weight, 2)
        nnz += sum(
            int(b.conv.weight.count_nonzero()) for b in lk.branches()
            if b is not lk.LoRA1)
        x = torch.randn(1, C, H, W)
        res = count_complexity(lk, x)
        assert 'prim::PythonOp._MultiDepthwiseConv' not in res['not_counted']
        assert res['by_operator']['conv'] == _dense_lk_macs()
        assert res['flops_sparse'] == res['flops'] - H * W * (
            C * (2 * M * N + N * N) - nnz)

        lk.switch_to_deploy()
        res = count_complexity(lk, x)
        assert 'prim::PythonOp._CrossDepthwiseConv' not in res['not_counted']
        assert res['by_operator']['conv'] == H * W * C * (M * N + N * M)
        nnz = int(lk.merged.weight_v.count_nonzero()) + int(
            lk.merged.weight_h.count_nonzero())
        assert res['flops_sparse'] == H * W * nnz
    assert triton_depthwise._launch_conv is launch  # trace patch undone


def _get_flops_tool(repo_root):
    path = osp.join(repo_root, 'tools', 'analysis', 'get_flops.py')
    spec = importlib.util.spec_from_file_location('get_flops_tool', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_seg_demo(repo_root, tmp_path, capsys):
    tool = _get_flops_tool(repo_root)
    config = osp.join(repo_root, 'configs', 'demo',
                      'upernet_slak_demo_synthetic_ade20k.py')
    out = tmp_path / 'flops.json'
    res = tool.main([config, '--shape', '128', '128', '--out', str(out)])
    text = capsys.readouterr().out
    assert 'multiply-adds' in text and 'RANDOM masks' in text
    assert 'auxiliary head excluded' in text
    assert 'paper convention (masked weights at density 0.6)' in text
    saved = json.loads(out.read_text())
    assert saved['flops'] == res['flops']
    assert saved['flops_paper'] == res['flops_paper']
    assert set(
        saved['count_labels']) == {'flops', 'flops_paper', 'flops_sparse'}
    assert res['input_shape'] == [1, 3, 128, 128]
    assert res['params_sparse'] < res['params']
    assert res['flops_sparse'] < res['flops']
    # only the backbone is sparse; its rows add up
    groups = res['groups']
    for key in ('flops_sparse', 'flops_paper'):
        assert groups['decode_head'][key] == groups['decode_head']['flops']
    # ERK keeps the FLOP-heavy early stages denser than the uniform 0.6
    assert res['flops_sparse'] > res['flops_paper']
    # the tracer puts some of UPerHead's resizes in the model's scope
    rest = groups['(model scope)']
    assert rest['params'] == 0 and rest['flops_sparse'] == rest['flops'] > 0
    assert res['flops'] == groups['backbone']['flops'] + groups['decode_head'][
        'flops'] + rest['flops']

    backbone = tool.main([config, '--shape', '128', '--backbone-only'])
    assert backbone['part'] == 'backbone'
    assert backbone['flops'] == groups['backbone']['flops']
    stages = [backbone['groups'][f'stage{i}'] for i in range(4)]
    for key in ('params', 'params_sparse', 'flops'):
        assert sum(s[key] for s in stages) == backbone[key]
    for key in ('flops_sparse', 'flops_paper', 'params_paper'):
        assert sum(s[key] for s in stages) == pytest.approx(
            backbone[key], rel=1e-12)
    assert backbone['flops_sparse'] < backbone['flops']
    # every backbone weight op is masked: the paper row is 0.6 x its
    # weight-op FLOPs plus the rest (norms) dense
    weight_ops = sum(v for op, v in backbone['by_operator'].items()
                     if op in WEIGHT_OPS)
    assert backbone['flops_paper'] == pytest.approx(
        backbone['flops'] - 0.4 * weight_ops, rel=1e-12)


def test_cli_det_demo(repo_root, capsys):
    tool = _get_flops_tool(repo_root)
    config = osp.join(repo_root, 'configs', 'demo',
                      'faster_rcnn_slak_demo_synthetic_voc.py')
    res = tool.main([config, '--shape', '150', '160'])
    text = capsys.readouterr().out
    assert 'FasterRCNN' in text
    assert res['input_shape'] == [1, 3, 160, 160]  # padded to 32
    for part in ('backbone', 'neck', 'rpn_head', 'roi_head'):
        assert res['groups'][part]['flops'] > 0
    assert res['flops_sparse'] < res['flops']
    assert res['params_sparse'] < res['params']


def test_cli_counts_the_checkpoint_zeros(repo_root, tmp_path):
    from slak_mm.apis import build_model
    from slak_mm.config import load_config, replace_sync_bn
    tool = _get_flops_tool(repo_root)
    config = osp.join(repo_root, 'configs', 'demo',
                      'upernet_slak_demo_synthetic_ade20k.py')
    cfg = load_config(config)
    replace_sync_bn(cfg)
    torch.manual_seed(0)
    model = build_model(cfg)
    model.init_weights()  # random masks, then more zeros than they give
    model.backbone.stages[3][0].pwconv1.weight.data[:, ::2] = 0
    zeros = {
        name: p.numel() - int(p.count_nonzero())
        for name, p in model.named_parameters() if p.dim() in (2, 4)
    }
    ckpt = tmp_path / 'model.pth'
    torch.save(dict(state_dict=model.state_dict()), ckpt)

    res = tool.main([config, '--shape', '64', '--checkpoint', str(ckpt)])
    assert 'checkpoint' in res['weights']
    assert res['params'] - res['params_sparse'] == sum(
        z for k, z in zeros.items() if not k.startswith('auxiliary_head'))
    backbone = tool.main([
        config, '--shape', '64', '--checkpoint',
        str(ckpt), '--backbone-only'
    ])
    assert backbone['params'] - backbone['params_sparse'] == sum(
        z for k, z in zeros.items() if k.startswith('backbone.'))
    assert backbone['flops_sparse'] == res['groups']['backbone'][
        'flops_sparse']
