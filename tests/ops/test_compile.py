"""torch.compile of SLaK's large kernel: the op causes no graph break (the
FFT path is a torch.library custom op, the dispatcher's choice a traced
constant) and the compiled module computes what eager does."""
import pytest
import torch

from slak_mm.network import LargeKernelConv
from slak_mm.ops import clear_memory, configure, tuning, tuning_state, use


@pytest.fixture(autouse=True)
def isolated_tuning(tmp_path):
    clear_memory()
    torch._dynamo.reset()
    with use(cache=str(tmp_path / 'tune.json')):
        yield
    clear_memory()
    torch._dynamo.reset()


def _layer(impl, deploy=False):
    torch.manual_seed(0)
    layer = LargeKernelConv(4, 13, 3, impl=impl)
    for module in layer.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_var.uniform_(0.5, 2)
            module.weight.data.uniform_(0.5, 2)
    if deploy:
        layer.eval().switch_to_deploy()
    return layer


@pytest.mark.parametrize('impl, deploy', [('fft', False), ('fft', True),
                                          ('auto', False), ('torch', False)])
def test_no_graph_break(impl, deploy):
    layer = _layer(impl, deploy)
    x = torch.randn(2, 4, 24, 20)
    explanation = torch._dynamo.explain(layer)(x)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


@pytest.mark.parametrize('backend', ['aot_eager', 'inductor'])
def test_compiled_equals_eager(backend):
    """Forward and all gradients of the FFT path, compiled vs eager (aot
    traces the custom op's fake and autograd registrations)."""
    eager = _layer('fft')
    compiled = _layer('fft')
    x = torch.randn(2, 4, 24, 20)
    fn = torch.compile(compiled, backend=backend, fullgraph=True)
    results = []
    for module, run in ((eager, eager), (compiled, fn)):
        inp = x.clone().requires_grad_()
        out = run(inp)
        out.square().sum().backward()
        results.append([out, inp.grad] + [p.grad for p in module.parameters()])
    for a, b in zip(*results):  # inductor reorders the BN reductions
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_compile_does_not_tune(monkeypatch):
    """While compiling, the dispatcher uses the stored choice or the
    heuristic, and times nothing."""
    monkeypatch.setattr(tuning_state, 'MIN_TUNE_WORK', 0)
    monkeypatch.setattr(tuning, 'tune', None)  # would raise if called
    x = torch.randn(1, 4, 40, 40)
    fn = torch.compile(_layer('auto'), backend='aot_eager', fullgraph=True)
    # the heuristic's choice for a 13 x 13 kernel: torch
    torch.testing.assert_close(fn(x), _layer('torch')(x))


@pytest.mark.parametrize('impl', ['fft', 'auto'])
def test_tiny_backbone_has_no_graph_break(impl):
    from slak_mm.models.backbones.slak import SLaK
    torch.manual_seed(0)
    model = SLaK(
        arch=dict(depths=[1, 1, 1, 1], dims=[8, 8, 8, 8]),
        kernel_size=(13, 11, 9, 5),
        small_kernel=3,
        width_factor=1.0,
        conv_impl=impl)
    explanation = torch._dynamo.explain(model)(torch.randn(1, 3, 64, 64))
    assert explanation.graph_break_count == 0, explanation.break_reasons


@pytest.mark.parametrize('deploy', [False, True])
def test_triton_path_compiles_without_graph_break(deploy):
    """The Triton launchers are custom ops too (checked under the
    interpreter; the compiled kernels are the GPU issue's)."""
    pytest.importorskip('triton')
    configure(triton_interpret=True)  # restored by the fixture
    layer = _layer('triton', deploy)
    x = torch.randn(1, 4, 12, 10)
    explanation = torch._dynamo.explain(layer)(x)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    results = []
    for run in (layer, torch.compile(layer, backend='aot_eager')):
        inp = x.clone().requires_grad_()
        out = run(inp)
        out.square().sum().backward()
        results.append([out, inp.grad])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
