"""The FFT depthwise conv (and the torch path it is checked with) against
float64 ``F.conv2d``: forward, input and weight gradients, at SLaK's kernel
shapes, odd and tiny maps, strided layouts and under autocast. The Triton
kernels have the same checks in ``test_triton_depthwise.py`` (interpreter)."""
import pytest
import torch

from slak_mm.ops import (cross_depthwise_conv2d, fft_size,
                         multi_depthwise_conv2d)
from tests.dwconv_checks import leaf, ref_conv, rel_err

IMPLS = ['torch', 'fft']
# Relative error bound (max abs error / max abs reference).
TOL = {torch.float32: 1e-5, torch.float16: 3e-3, torch.bfloat16: 2e-2}


def _input(n, c, h, w, layout):
    if layout == 'channels_last':
        return torch.randn(n, c, h,
                           w).contiguous(memory_format=torch.channels_last)
    if layout == 'sliced':  # non-contiguous in C and W
        return torch.randn(n, 2 * c, h, w + 3)[:, ::2, :, 1:w + 1]
    if layout == 'transposed':
        return torch.randn(n, c, w, h).transpose(2, 3)
    return torch.randn(n, c, h, w)


def _errors(impl, x, weights, bias=None, cross=False, dtype=torch.float32):
    """Relative errors of outputs and gradients against float64."""
    x = leaf(x.to(dtype))
    weights = [leaf(w) for w in weights]
    bias = None if bias is None else leaf(bias)
    if cross:
        outs = [cross_depthwise_conv2d(x, *weights, bias, impl=impl)]
    else:
        outs = list(multi_depthwise_conv2d(x, weights, impl=impl))
    grads = [torch.randn(o.shape).to(o.dtype) for o in outs]
    torch.autograd.backward(outs, grads)

    x64 = leaf(x.double())
    w64 = [leaf(w.double()) for w in weights]
    refs = [ref_conv(x64, w) for w in w64]
    if cross:
        refs = [refs[0] + refs[1]]
        if bias is not None:
            b64 = leaf(bias.double())
            refs[0] = refs[0] + b64.view(1, -1, 1, 1)
    torch.autograd.backward(refs, [g.double() for g in grads])
    errors = {
        f'out{k}': rel_err(o, r)
        for k, (o, r) in enumerate(zip(outs, refs))
    }
    errors['grad_x'] = rel_err(x.grad, x64.grad)
    for k, (w, r) in enumerate(zip(weights, w64)):
        errors[f'grad_w{k}'] = rel_err(w.grad, r.grad)
    if bias is not None:
        errors['grad_bias'] = rel_err(bias.grad, b64.grad)
    for out in outs:  # dtype and layout as F.conv2d gives them
        assert out.dtype == dtype and out.shape == x.shape
    assert x.grad.dtype == dtype
    return errors


def _bad(errors, tol):
    return {k: v for k, v in errors.items() if not v < tol}


def _branches(c, m, small=5):
    return [
        torch.randn(c, 1, kh, kw) / (kh * kw)**0.5
        for kh, kw in [(m, small), (small, m), (small, small)]
    ]


@pytest.mark.parametrize('impl', IMPLS)
@pytest.mark.parametrize('m', [51, 49, 47, 13])
def test_slak_t_branches(impl, m):
    x = _input(2, 3, 12, 10, 'contiguous')
    assert not _bad(_errors(impl, x, _branches(3, m)), TOL[torch.float32])


@pytest.mark.parametrize('impl', IMPLS)
@pytest.mark.parametrize(
    'h, w, layout',
    [
        (33, 47, 'channels_last'),  # odd sizes, SLaK's default CPU layout
        (1, 20, 'contiguous'),  # 1..3 rows under a 51-tall kernel
        (2, 17, 'sliced'),
        (3, 9, 'transposed'),
        (64, 3, 'channels_last'),  # wider kernel than the map
    ])
def test_odd_maps_and_layouts(impl, h, w, layout):
    x = _input(1, 2, h, w, layout)
    assert not _bad(_errors(impl, x, _branches(2, 51)), TOL[torch.float32])


@pytest.mark.parametrize('impl', IMPLS)
@pytest.mark.parametrize('with_bias', [True, False])
def test_deploy_cross_form(impl, with_bias):
    x = _input(2, 3, 20, 15, 'channels_last')
    c = x.shape[1]
    weights = [torch.randn(c, 1, 51, 5), torch.randn(c, 1, 5, 51)]
    bias = torch.randn(c) if with_bias else None
    assert not _bad(
        _errors(impl, x, weights, bias, cross=True), TOL[torch.float32])


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_autocast_like_conv2d(dtype):
    """Under autocast the output has the autocast dtype (as conv2d's), the
    gradients the dtypes of the fp32 leaves; the FFT computes in fp32, so
    its error is the output's rounding."""
    x = leaf(
        torch.randn(1, 4, 24,
                    20).contiguous(memory_format=torch.channels_last))
    weights = [leaf(w) for w in _branches(4, 13)]
    with torch.autocast('cpu', dtype=dtype):
        outs = multi_depthwise_conv2d(x, weights, impl='fft')
        refs = multi_depthwise_conv2d(x, weights, impl='torch')
    x64 = leaf(x.double())
    w64 = [leaf(w.double()) for w in weights]
    exact = [ref_conv(x64, w) for w in w64]
    for out, ref, ex in zip(outs, refs, exact):
        assert out.dtype == ref.dtype == dtype
        assert out.is_contiguous(memory_format=torch.channels_last)
        assert rel_err(out, ex) <= max(rel_err(ref, ex), 4e-3)
    sum(o.float().square().sum() for o in outs).backward()
    sum(o.square().sum() for o in exact).backward()
    assert x.grad.dtype == torch.float32
    assert rel_err(x.grad, x64.grad) < 2 * TOL[dtype]
    for w, r in zip(weights, w64):
        assert w.grad.dtype == torch.float32
        assert rel_err(w.grad, r.grad) < 2 * TOL[dtype]


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_half_inputs(dtype):
    x = torch.randn(2, 3, 9, 11)
    errors = _errors(
        'fft', x, [w.to(dtype) for w in _branches(3, 13)], dtype=dtype)
    assert not _bad(errors, TOL[dtype])


def test_unused_output_and_frozen_weight():
    x = leaf(torch.randn(1, 2, 16, 12))
    weights = [leaf(w) for w in _branches(2, 15)]
    weights[1].requires_grad_(False)
    outs = multi_depthwise_conv2d(x, weights, impl='fft')
    (outs[0] * outs[2]).sum().backward()  # outs[1] unused
    x64 = leaf(x.double())
    w64 = [leaf(w.double()) for w in weights]
    refs = [ref_conv(x64, w) for w in w64]
    (refs[0] * refs[2]).sum().backward()
    assert weights[1].grad is None
    for got, ref in [(x, x64), (weights[0], w64[0]), (weights[2], w64[2])]:
        assert rel_err(got.grad, ref.grad) < 1e-5


def test_float64_gradcheck():
    x = torch.randn(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    weights = [
        torch.randn(2, 1, kh, kw, dtype=torch.float64, requires_grad=True)
        for kh, kw in [(7, 3), (3, 9)]
    ]
    assert torch.autograd.gradcheck(
        lambda x, *w: multi_depthwise_conv2d(x, w, impl='fft'), (x, *weights))


def test_fft_size():
    assert [fft_size(n) for n in (1, 7, 11, 153, 131)] == [1, 8, 12, 160, 135]
