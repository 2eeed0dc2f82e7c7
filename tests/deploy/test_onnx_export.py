"""ONNX export of the deploy form (tools/export_onnx.py, slak_mm.deploy):
onnxruntime on the CPU matches PyTorch at two input sizes (dynamic axes),
for a segmentor, a backbone and a detector's backbone + neck; the tool
never overwrites its inputs nor anything but a regular file, and a full
disk leaves the old file."""
import os

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import slak_mm  # noqa: F401  (registers SLaK)
from slak_mm.apis import build_model
from slak_mm.config import load_config
from slak_mm.deploy import (ExportAdaptiveAvgPool2d, deploy_checkpoint,
                            export_friendly, export_onnx, verify_onnx)
from slak_mm.network import LargeKernelConv
from slak_mm.ops import IMPL_ENV, settings
from tests.common import DEMO_CONFIG as SEG
from tests.common import DEMO_VOC_CONFIG as DET
from tests.common import disk_full_for, rel_err
from tests.deploy.test_reparam import randomise_norms, unsafe_output
from tests.tool_runner import refusal, run_tool

onnx = pytest.importorskip('onnx')
ort = pytest.importorskip('onnxruntime')

# the second size is no multiple of 32 and pools differently in the PPM
SIZES = [(64, 64), (102, 80)]
RTOL = 1e-4


def _random_checkpoint(config, path):
    """A training-form checkpoint with random weights and BN statistics;
    returns the model (eval mode) it holds."""
    torch.manual_seed(0)
    model = build_model(load_config(config))
    model.init_weights()
    randomise_norms(model)
    torch.save(dict(meta=dict(), state_dict=model.state_dict()), path)
    return model.eval()


@pytest.fixture(scope='module')
def seg_checkpoint(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('onnx') / 'seg.pth')
    return path, _random_checkpoint(SEG, path)


@pytest.mark.parametrize('out_size', [1, 2, 3, 6, (2, 5)])
def test_export_adaptive_avg_pool_equals_torch(out_size):
    pool = ExportAdaptiveAvgPool2d(out_size)
    for shape in [(2, 3), (3, 4), (7, 5), (12, 16), (6, 6)]:
        x = torch.randn(2, 4, *shape)
        torch.testing.assert_close(
            pool(x), F.adaptive_avg_pool2d(x, out_size), rtol=1e-5, atol=1e-6)


def test_export_friendly_changes_and_restores(seg_checkpoint, monkeypatch):
    _, model = seg_checkpoint
    monkeypatch.setenv(IMPL_ENV, 'fft')
    settings.reload()  # the user's setting: read at the next use
    environ = dict(os.environ)
    convs = [m for m in model.modules() if isinstance(m, LargeKernelConv)]
    pools = lambda: [  # noqa: E731
        type(m) for m in model.modules()
        if isinstance(m, (nn.AdaptiveAvgPool2d, ExportAdaptiveAvgPool2d))
    ]
    before = pools()
    assert set(before) == {nn.AdaptiveAvgPool2d}  # UperNet's PPM
    with export_friendly(model):
        assert settings.current().impl == 'torch'
        assert {m.impl for m in convs} == {'torch'}
        assert set(pools()) == {ExportAdaptiveAvgPool2d}
    assert settings.current().impl == 'fft'
    assert dict(os.environ) == environ  # steered without writing it
    assert {m.impl for m in convs} == {None}
    assert pools() == before


def _check_standard_graph(path, outputs):
    graph = onnx.load(path).graph
    onnx.checker.check_model(onnx.load(path))
    ops = {(n.domain, n.op_type) for n in graph.node}
    assert ('', 'Conv') in ops
    assert {d for d, _ in ops} <= {'', 'ai.onnx'}, ops  # no custom ops
    assert [o.name for o in graph.output] == outputs
    dims = graph.input[0].type.tensor_type.shape.dim
    assert [bool(d.dim_param) for d in dims] == [True, False, True, True]


def test_tool_exports_segmentor_logits(seg_checkpoint, tmp_path):
    ckpt, reference = seg_checkpoint
    out = str(tmp_path / 'seg.onnx')
    stdout = run_tool('tools/export_onnx.py', SEG, ckpt, out, '--shape',
                      *SIZES[0], '--verify-shape', *SIZES[1]).stdout
    assert 'segmentor' in stdout and '5 large kernels merged' in stdout
    assert stdout.count(' OK') == 2, stdout
    assert f'at {SIZES[1][0]}x{SIZES[1][1]}' in stdout
    _check_standard_graph(out, ['seg_logits'])

    # against the training-form model (branches and BNs, not merged)
    session = ort.InferenceSession(out, providers=['CPUExecutionProvider'])
    for batch, size in zip((1, 2), SIZES):
        x = torch.randn(batch, 3, *size)
        with torch.no_grad():
            ref = F.interpolate(
                reference._forward(x), size=size, mode='bilinear')
        onnx_out = session.run(None, {'inputs': x.numpy()})[0]
        assert onnx_out.shape == (batch, 150, *size)
        assert rel_err(torch.from_numpy(onnx_out), ref) < RTOL


def test_backbone_of_deploy_checkpoint_runs_plain_convs(
        seg_checkpoint, tmp_path):
    ckpt = str(tmp_path / 'deploy.pth')
    deploy_checkpoint(load_config(SEG), seg_checkpoint[0], ckpt)
    # triton on a CPU tensor raises unless the export forces F.conv2d
    cfg = load_config(SEG, {
        'model.backbone.conv_impl': 'triton',
        'model.backbone.deploy': True
    })
    out = str(tmp_path / 'backbone.onnx')
    info = export_onnx(cfg, ckpt, out, shape=SIZES[0], backbone_only=True)
    assert info['kind'] == 'backbone' and info['note'] is None
    assert info['merged'] == 0  # merged already by tools/deploy.py
    _check_standard_graph(out, ['feat0', 'feat1', 'feat2', 'feat3'])
    results = verify_onnx(out, info['module'], SIZES, batch=3)
    assert [r['shape'] for r in results] == SIZES
    for res in results:
        assert res['max_abs_diff'] < RTOL * res['max_abs_ref'], res
    h, w = SIZES[1]
    assert results[1]['output_shapes'][0] == (3, 24, h // 4, w // 4)
    assert results[1]['output_shapes'][3] == (3, 192, h // 32, w // 32)


def test_detector_exports_backbone_and_neck(tmp_path):
    ckpt = str(tmp_path / 'det.pth')
    _random_checkpoint(DET, ckpt)
    out = str(tmp_path / 'det.onnx')
    info = export_onnx(load_config(DET), ckpt, out, shape=SIZES[0])
    assert info['kind'] == 'detector' and 'mmdeploy' in info['note']
    _check_standard_graph(out, [f'feat{i}' for i in range(5)])  # FPN P2-P6
    for res in verify_onnx(out, info['module'], SIZES, batch=2):
        assert res['max_abs_diff'] < RTOL * res['max_abs_ref'], res
        assert [s[1] for s in res['output_shapes']] == [32] * 5


@pytest.mark.parametrize('case',
                         ['same', 'link_to_checkpoint', 'config', 'fifo'])
def test_export_never_overwrites_its_inputs_nor_special_files(
        seg_checkpoint, tmp_path, case):
    ckpt = seg_checkpoint[0]
    before = open(ckpt, 'rb').read()
    out, config, expected = unsafe_output(tmp_path, ckpt, case)
    error = refusal('tools/export_onnx.py', config, ckpt, out)
    assert error.startswith(expected), error
    assert open(ckpt, 'rb').read() == before


def test_export_on_a_full_disk_keeps_the_old_file(seg_checkpoint, tmp_path,
                                                  monkeypatch):
    """The exporter wrote the file in place: a full disk left a truncated
    .onnx instead of the previous one."""
    out = tmp_path / 'backbone.onnx'
    out.write_bytes(b'the previous export')
    disk_full_for(monkeypatch, 'backbone.onnx')
    error = refusal('tools/export_onnx.py', SEG, seg_checkpoint[0], str(out),
                    '--backbone-only', '--static', '--shape', '32', '32',
                    '--no-verify')
    assert error.startswith(f'error: no space left on device writing {out}: '
                            f'it needs '), error
    assert out.read_bytes() == b'the previous export'
    assert os.listdir(tmp_path) == ['backbone.onnx']
