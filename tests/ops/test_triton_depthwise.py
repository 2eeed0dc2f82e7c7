"""Triton depthwise conv kernels against float64 ``F.conv2d``.

The kernels run on CPU tensors through the Triton interpreter: an autouse
fixture turns the ops' ``triton_interpret`` setting on (``TRITON_INTERPRET=1``
for a user) for each test of this module only (the kernels module looks it
up per call, so other test modules in the same process keep the torch
path). Shapes are tiny because the interpreter is slow.
On a CUDA machine the ``test_cuda_*`` tests also check the compiled kernels
at SLaK-T stage shapes.
"""
import random

import pytest
import torch

# isort: off
pytest.importorskip('triton')  # before the Triton module imports

from slak_mm.ops import (
    MAX_KERNEL,
    configure,  # noqa: E402
    cross_depthwise_conv2d,
    depthwise_conv2d,
    multi_depthwise_conv2d,
    resolve_impl,
    use)
from slak_mm.ops import triton_depthwise as td  # noqa: E402
from tests.dwconv_checks import leaf, ref_conv, rel_err  # noqa: E402
# isort: on

# Relative error bound (max abs error / max abs reference) per input dtype.
TOL = {torch.float32: 1e-5, torch.float16: 3e-3, torch.bfloat16: 2e-2}


@pytest.fixture(autouse=True)
def interpret():
    """Triton's interpreter on; the settings as they were afterwards."""
    with use(triton_interpret=True):
        yield


def _make_input(n, c, h, w, dtype, layout, device='cpu'):
    """An input of shape (n, c, h, w) with the given memory layout."""
    if layout == 'transposed':
        x = torch.randn(n, c, w, h).to(dtype).transpose(2, 3)
    elif layout == 'sliced':
        x = torch.randn(n, 2 * c, h, w + 3).to(dtype)[:, ::2, :, 1:w + 1]
    elif layout == 'channels_last':
        x = torch.randn(
            n, c, h, w).to(dtype).contiguous(memory_format=torch.channels_last)
    else:
        x = torch.randn(n, c, h, w).to(dtype)
    assert x.shape == (n, c, h, w)
    assert layout == 'contiguous' or not x.is_contiguous()
    return x.to(device)


def _multi_errors(n,
                  c,
                  h,
                  w,
                  sizes,
                  dtype,
                  layout='contiguous',
                  weight_dtype=None,
                  device='cpu',
                  fp32_tol=1e-5):
    """Relative errors of the multi-kernel op's forward and all gradients
    against float64, with their tolerances: ``{what: (error, tol)}``."""
    weight_dtype = weight_dtype or dtype
    x = leaf(_make_input(n, c, h, w, dtype, layout, device))
    weights = [
        leaf((torch.randn(c, 1, kh, kw) / (kh * kw)**0.5).to(
            device, weight_dtype)) for kh, kw in sizes
    ]
    outs = multi_depthwise_conv2d(x, weights, impl='triton')
    assert len(outs) == len(sizes)
    grads = [torch.randn(o.shape).to(device, dtype) for o in outs]
    torch.autograd.backward(outs, grads)

    # Reference on the same (rounded) values, in float64.
    x64 = leaf(x.double())
    w64 = [leaf(wt.to(dtype).double()) for wt in weights]
    refs = [ref_conv(x64, wt) for wt in w64]
    torch.autograd.backward(refs, [g.double() for g in grads])

    tol = TOL[dtype] if dtype != torch.float32 else fp32_tol
    # Weight grads are reduced in fp32 from exact products: tight unless
    # rounded to a 16-bit weight dtype.
    wtol = TOL[weight_dtype] if weight_dtype != torch.float32 else fp32_tol
    errors = {}
    for k, (out, ref) in enumerate(zip(outs, refs)):
        assert out.dtype == dtype and out.shape == ref.shape
        assert out.is_contiguous()
        errors[f'out{k}'] = (rel_err(out, ref), tol)
    assert x.grad.dtype == dtype
    errors['grad_x'] = (rel_err(x.grad, x64.grad), tol)
    for k, (wt, ref) in enumerate(zip(weights, w64)):
        assert wt.grad.dtype == weight_dtype
        errors[f'grad_w{k}'] = (rel_err(wt.grad, ref.grad), wtol)
    return errors


def _too_large(errors):
    """The entries of ``{what: (relative error, tolerance)}`` over their
    tolerance (empty when all are within)."""
    return {k: v for k, v in errors.items() if not v[0] < v[1]}


@pytest.mark.parametrize(
    'n, c, h, w, sizes, layout',
    [
        # SLaK's three branches (M x 5, 5 x M, 5 x 5) on a small map.
        (2, 3, 9, 11, [(13, 5), (5, 13), (5, 5)], 'contiguous'),
        # Kernels larger than the map in one or both directions.
        (1, 2, 7, 6, [(63, 5), (5, 63), (5, 5)], 'transposed'),
        (1, 1, 3, 12, [(61, 61)], 'contiguous'),
        # Square, wide and tiny (tap-loop) kernels; strided input.
        (2, 2, 12, 10, [(11, 11), (3, 17), (3, 3)], 'sliced'),
        (1, 2, 5, 9, [(1, 1), (9, 1)], 'channels_last'),
        # Several output tiles in each direction (tiles are <= 64 x 64).
        (1, 1, 70, 9, [(21, 7)], 'contiguous'),
        (1, 1, 6, 67, [(3, 25)], 'contiguous'),
        (1, 1, 70, 70, [(13, 5), (5, 13), (5, 5)], 'contiguous'),
        # 1 x 1 maps.
        (2, 1, 1, 1, [(5, 3)], 'contiguous'),
    ])
def test_multi_fp32(n, c, h, w, sizes, layout):
    assert not _too_large(
        _multi_errors(n, c, h, w, sizes, torch.float32, layout))


def test_multi_random_shapes_fp32():
    rng = random.Random(0)
    for _ in range(4):
        sizes = [(rng.randrange(1, 64, 2), rng.randrange(1, 64, 2))
                 for _ in range(rng.randint(1, 3))]
        assert not _too_large(
            _multi_errors(
                rng.randint(1, 2), rng.randint(1, 4), rng.randint(1, 12),
                rng.randint(1, 12), sizes, torch.float32,
                rng.choice(['contiguous', 'transposed'])))


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_multi_half(dtype):
    assert not _too_large(
        _multi_errors(2, 2, 10, 7, [(15, 5), (5, 15),
                                    (5, 5)], dtype, 'sliced'))


def test_fp32_weights_with_bf16_input():
    # What autocast hands over: bf16 input, fp32 parameters. Computed in
    # bf16 like conv2d; weight grads come back in fp32.
    assert not _too_large(
        _multi_errors(
            1,
            2,
            8,
            9, [(13, 5), (5, 13)],
            torch.bfloat16,
            weight_dtype=torch.float32))


def test_autocast_like_conv2d():
    x = leaf(torch.randn(1, 2, 6, 7))
    weight = leaf(torch.randn(2, 1, 9, 3))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = depthwise_conv2d(x, weight, impl='triton')
        ref = depthwise_conv2d(x, weight, impl='torch')
    assert out.dtype == ref.dtype == torch.bfloat16
    assert rel_err(out, ref.double()) < TOL[torch.bfloat16]
    out.float().sum().backward()
    assert x.grad.dtype == torch.float32
    assert weight.grad.dtype == torch.float32


def test_unused_outputs_and_frozen_weights():
    x = leaf(torch.randn(1, 2, 7, 8))
    w_v, w_h = leaf(torch.randn(2, 1, 11, 3)), torch.randn(2, 1, 3, 11)
    out_v, out_h = multi_depthwise_conv2d(x, [w_v, w_h], impl='triton')
    out_v.sum().backward()  # out_h unused, w_h needs no grad
    x64, wv64 = leaf(x.double()), leaf(w_v.double())
    ref_conv(x64, wv64).sum().backward()
    assert rel_err(x.grad, x64.grad) < 1e-5
    assert rel_err(w_v.grad, wv64.grad) < 1e-5
    assert w_h.grad is None


def test_weight_grad_deterministic_and_once_differentiable():
    x = leaf(torch.randn(2, 2, 9, 9))
    weight = leaf(torch.randn(2, 1, 9, 5))
    grads = []
    for _ in range(2):
        (out, ) = multi_depthwise_conv2d(x, [weight], impl='triton')
        grads.append(torch.autograd.grad(out.sum(), weight)[0])
    assert torch.equal(grads[0], grads[1])
    (out, ) = multi_depthwise_conv2d(x, [weight], impl='triton')
    # No double backward: an error, not silently wrong second derivatives.
    (grad_x, ) = torch.autograd.grad((out**2).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match='differentiate twice'):
        grad_x.sum().backward()


def test_more_than_three_kernels():
    x = torch.randn(1, 2, 6, 6)
    weights = [torch.randn(2, 1, k, 3) for k in (1, 3, 5, 7)]
    outs = multi_depthwise_conv2d(x, weights, impl='triton')
    for out, weight in zip(outs, weights):
        assert rel_err(out, ref_conv(x.double(), weight.double())) < 1e-5


def _cross_errors(dtype,
                  with_bias,
                  c=3,
                  h=9,
                  w=8,
                  m=17,
                  device='cpu',
                  fp32_tol=1e-5):
    x = leaf(_make_input(2, c, h, w, dtype, 'transposed', device))
    w_v = leaf(torch.randn(c, 1, m, 5).to(device, dtype))
    w_h = leaf(torch.randn(c, 1, 5, m).to(device, dtype))
    bias = leaf(torch.randn(c).to(device)) if with_bias else None
    out = cross_depthwise_conv2d(x, w_v, w_h, bias, impl='triton')
    grad = torch.randn(out.shape).to(device, dtype)
    out.backward(grad)

    x64, wv64, wh64 = (leaf(t.double()) for t in (x, w_v, w_h))
    ref = ref_conv(x64, wv64) + ref_conv(x64, wh64)
    if with_bias:
        b64 = leaf(bias.double())
        ref = ref + b64.view(1, -1, 1, 1)
    ref.backward(grad.double())

    tol = TOL[dtype] if dtype != torch.float32 else fp32_tol
    assert out.dtype == dtype
    errors = dict(
        out=(rel_err(out, ref), tol),
        grad_x=(rel_err(x.grad, x64.grad), tol),
        grad_v=(rel_err(w_v.grad, wv64.grad), tol),
        grad_h=(rel_err(w_h.grad, wh64.grad), tol))
    if with_bias:
        assert bias.grad.dtype == torch.float32
        errors['grad_bias'] = (rel_err(bias.grad, b64.grad), fp32_tol)
    return errors


@pytest.mark.parametrize('dtype, with_bias', [(torch.float32, True),
                                              (torch.float32, False),
                                              (torch.bfloat16, True)])
def test_cross(dtype, with_bias):
    assert not _too_large(_cross_errors(dtype, with_bias))


def test_empty_batch():
    x = torch.randn(0, 2, 5, 5, requires_grad=True)
    weight = torch.randn(2, 1, 7, 3, requires_grad=True)
    (out, ) = multi_depthwise_conv2d(x, [weight], impl='triton')
    assert out.shape == x.shape
    out.sum().backward()
    assert torch.equal(weight.grad, torch.zeros_like(weight))


def test_rejects_bad_arguments():
    x = torch.randn(1, 2, 5, 5)
    with pytest.raises(TypeError, match='float64'):
        td.triton_multi_depthwise_conv2d(x.double(), [torch.randn(2, 1, 3, 3)])
    with pytest.raises(ValueError, match='odd'):
        td.triton_multi_depthwise_conv2d(x, [torch.randn(2, 1, 4, 3)])
    with pytest.raises(ValueError, match='bias'):
        td.triton_cross_depthwise_conv2d(x, torch.randn(2, 1, 5, 1),
                                         torch.randn(2, 1, 1, 5),
                                         torch.randn(3))


def test_dispatch():
    x = torch.randn(1, 2, 6, 5)
    weight = torch.randn(2, 1, 7, 3)
    # Forced, Triton runs CPU tensors under the interpreter; 'auto' never
    # picks it for them.
    assert resolve_impl(x, 'triton', [weight]) == 'triton'
    assert resolve_impl(x, 'auto', [weight]) != 'triton'
    assert torch.allclose(
        depthwise_conv2d(x, weight, 'triton'),
        depthwise_conv2d(x, weight, 'torch'),
        atol=1e-5)

    # float64 (gradcheck) stays off Triton.
    assert resolve_impl(x.double(), 'auto', [weight]) != 'triton'
    with pytest.raises(RuntimeError, match='float64'):
        resolve_impl(x.double(), 'triton', [weight])

    configure(triton_interpret=False)
    assert resolve_impl(x, 'auto') == 'torch'
    assert resolve_impl(x) == 'torch'
    with pytest.raises(RuntimeError, match='TRITON_INTERPRET'):
        resolve_impl(x, 'triton')
    with pytest.raises(RuntimeError, match='TRITON_INTERPRET'):
        depthwise_conv2d(x, weight, impl='triton')


def test_kernels_above_the_triton_limit_take_the_other_paths():
    """The 63 limit is Triton's: forced Triton refuses a larger kernel with
    the reason, torch and FFT run it."""
    x = torch.randn(1, 2, 6, 5)
    weight = torch.randn(2, 1, MAX_KERNEL + 2, 3)
    with pytest.raises(RuntimeError, match=f'<= {MAX_KERNEL}'):
        resolve_impl(x, 'triton', [weight])
    assert torch.allclose(
        depthwise_conv2d(x, weight, 'fft'),
        depthwise_conv2d(x, weight, 'torch'),
        atol=1e-5)


@pytest.fixture
def fp32_flags():
    """Saves and restores torch's fp32 precision flags (new API: setting
    the new values back restores the legacy ones too)."""
    backends = torch.backends
    owners = [
        backends, backends.cudnn, backends.cudnn.conv, backends.cuda.matmul
    ]
    saved = [owner.fp32_precision for owner in owners]
    yield
    for owner, value in zip(owners, saved):
        owner.fp32_precision = value


def test_fp32_dot_options_follow_the_conv_tf32_flag(fp32_flags):
    """The options the compiled (GPU) kernels get, checked on the CPU: fp32
    is TF32 unless the user asks torch's convs for full fp32, and reading
    the flags never raises, whichever API set them."""
    configure(triton_interpret=False)
    cudnn = torch.backends.cudnn

    def prec():
        return td._dot_options(torch.float32)[1]

    assert prec() == 'tf32'  # torch's default: convs may use TF32
    assert td._dot_options(torch.bfloat16) == (False, 'tf32')
    cudnn.allow_tf32 = False  # legacy API
    assert prec() == 'tf32x3'
    cudnn.allow_tf32 = True
    assert prec() == 'tf32'
    # The new matmul API makes get_float32_matmul_precision() raise; the
    # conv flag is still read.
    torch.backends.cuda.matmul.fp32_precision = 'ieee'
    assert prec() == 'tf32'
    cudnn.conv.fp32_precision = 'ieee'
    assert prec() == 'tf32x3'
    cudnn.conv.fp32_precision = 'tf32'
    assert prec() == 'tf32'
    # 'none' inherits: cudnn, then the global default.
    cudnn.conv.fp32_precision = 'none'
    cudnn.fp32_precision = 'tf32'
    assert prec() == 'tf32'
    cudnn.fp32_precision = 'none'
    torch.backends.fp32_precision = 'ieee'
    assert prec() == 'tf32x3'


def test_compiled_and_interpreted_modules_coexist(monkeypatch):
    import os

    from triton import knobs
    from triton.runtime.interpreter import InterpretedFunction
    from triton.runtime.jit import JITFunction

    monkeypatch.setattr(td, '_KERNEL_MODULES', {})  # loaded here
    environ, switch = dict(os.environ), knobs.runtime.interpret
    interpreted = td._kernels()
    assert isinstance(interpreted.dw_conv_kernel, InterpretedFunction)
    configure(triton_interpret=False)
    compiled = td._kernels()
    assert isinstance(compiled.dw_conv_kernel, JITFunction)
    assert isinstance(compiled.dw_wgrad_kernel, JITFunction)
    # Loading a mode leaves the environment and Triton's switch as they were.
    assert dict(os.environ) == environ
    assert knobs.runtime.interpret == switch


# Compiled kernels on a GPU (skipped on CPU): SLaK-T stage shapes at batch
# 2, against float64 cuDNN. fp32 runs as 3xTF32 (full fp32 asked for) with
# long reductions.
SLAK_T_STAGES = [(124, 128, 51), (249, 64, 49), (499, 32, 47), (998, 16, 13)]
needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason='needs a CUDA GPU')


@needs_cuda
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
@pytest.mark.parametrize('c, size, m', SLAK_T_STAGES)
def test_cuda_slak_stages(fp32_flags, c, size, m, dtype):
    configure(triton_interpret=False)
    torch.backends.cudnn.conv.fp32_precision = 'ieee'  # 3xTF32: 1e-4
    assert not _too_large(
        _multi_errors(
            2,
            c,
            size,
            size, [(m, 5), (5, m), (5, 5)],
            dtype,
            device='cuda',
            fp32_tol=1e-4))
    assert not _too_large(
        _cross_errors(
            dtype, True, c, size, size, m, device='cuda', fp32_tol=1e-4))


@needs_cuda
def test_cuda_odd_shapes(fp32_flags):
    configure(triton_interpret=False)
    torch.backends.cudnn.conv.fp32_precision = 'ieee'  # 3xTF32: 1e-4
    assert not _too_large(
        _multi_errors(
            3,
            5,
            200,
            77, [(61, 5), (3, 63), (7, 7), (1, 1)],
            torch.float32,
            'sliced',
            device='cuda',
            fp32_tol=1e-4))
    assert not _too_large(
        _multi_errors(1, 4, 9, 300, [(31, 31)], torch.float16, device='cuda'))


@pytest.mark.parametrize('deploy', [False, True])
def test_backbone_triton_path_matches_torch_path(deploy):
    """SLaK built with conv_impl='triton' (the path the backbone takes on
    CUDA) computes what the torch path does, forward and backward: its error
    against a float64 copy is of the order of the fp32 torch path's own."""
    import copy

    from slak_mm.models import SLaK
    torch.manual_seed(0)
    kwargs = dict(
        arch=dict(depths=[1, 1, 1, 1], dims=[4, 8, 8, 8]),
        kernel_size=(9, 7, 5, 5),
        small_kernel=3,
        width_factor=1.0,
        layer_scale_init_value=1.0)
    ref = SLaK(**kwargs, conv_impl='torch')
    ref.init_weights()
    tri = SLaK(**kwargs, conv_impl='triton')
    tri.load_state_dict(ref.state_dict())
    if deploy:
        for model in (ref, tri):
            model.eval().switch_to_deploy()
    exact = copy.deepcopy(ref).double()
    x = torch.randn(2, 3, 40, 36)
    inputs = [leaf(x), leaf(x), leaf(x.double())]
    grads = []
    for model, inp in zip((ref, tri, exact), inputs):
        out = model(inp)
        sum(o.square().sum() for o in out).backward()
        grads.append([inp.grad] + [p.grad for p in model.parameters()])
        grads[-1].extend(out)
    for torch_fp32, triton_fp32, f64 in zip(*grads):
        if f64 is None:
            continue
        noise = rel_err(torch_fp32, f64)
        assert rel_err(triton_fp32, f64) <= max(10 * noise, 1e-5)


def test_host_choices_of_a_gpu_launch():
    """What a GPU launch is given, decided on the host and checked here
    without one (the compiled kernels themselves: the self-check on a GPU).
    16-bit operands reach ``tl.dot`` as they are (it accumulates in fp32);
    only the interpreter, whose bf16 dot is broken, gets them upcast."""
    configure(triton_interpret=False)
    assert td._dot_options(torch.bfloat16) == (False, 'tf32')
    assert td._dot_options(torch.float16) == (False, 'tf32')
    configure(triton_interpret=True)
    assert td._dot_options(torch.bfloat16) == (True, 'ieee')
    assert td._dot_options(torch.float32) == (False, 'ieee')
    # output tiles: powers of two in 16..64 covering a small map; 8 warps
    # for a 64 x 64 tile (SLaK-T at 800 x 1216: 200x304 ... 25x38)
    for h, w in [(1, 1), (13, 13), (25, 38), (50, 76), (200, 304)]:
        bh, bw, warps = td._conv_tiles(h, w)
        assert {bh, bw} <= {16, 32, 64}
        assert bh >= min(h, 64) and bw >= min(w, 64)
        assert warps == (8 if bh * bw >= 4096 else 4)
    # K chunks: 32 for the long kernels, 16 for short ones
    assert td._conv_bk(51, 5) == td._conv_bk(5, 61) == 32
    assert td._conv_bk(13, 5) == td._conv_bk(5, 5) == 16
    # evaluation: direct up to 3 x 3 taps, else along the kernel's long side
    kernels = td._kernels()
    assert td._mode(3, 3) == kernels.MODE_DIRECT
    assert td._mode(51, 5) == kernels.MODE_VERTICAL
    assert td._mode(5, 51) == kernels.MODE_HORIZONTAL
