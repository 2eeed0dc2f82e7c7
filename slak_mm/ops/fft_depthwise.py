"""Depthwise "same" convolution through the FFT, with its own backward.

The cost of a direct depthwise conv grows with the kernel area; through
the FFT it is a few transforms of the (padded) map, whatever the kernel
size. On the CPU that makes SLaK's 51 x 5 / 5 x 51 / 5 x 5 branches several
times faster than oneDNN's direct conv at large maps (and slower at small
maps, where the transforms' fixed cost dominates: see
:mod:`slak_mm.ops.dispatch`, which measures). Registers itself with
:mod:`slak_mm.ops.registry` as ``fft`` on import.

How one call works (``x`` is N x C x H x W, ``B`` kernels):

- every kernel is flipped and placed, centred, in the frame of the largest
  kernel ``KH x KW``, so all branches share one origin; the transforms are
  padded to ``Hp >= H + KH // 2`` and ``Wp >= W + KW // 2`` rounded up to
  a 2-3-5-smooth size (:func:`fft_size`): enough that the circular
  convolution's wrap-around never reaches the "same" output window
  (kernels larger than ``2 H - 1`` are first cut to the part that can touch
  the map);
- forward: ``X = F(x)`` once, the kernel spectra ``K_b`` once (as small DFT
  matrix products, cheaper than transforming padded kernels), one product
  and one inverse per output; ``X`` and ``K`` are kept for the backward
  (only when a gradient is wanted);
- backward: the output gradients are flipped and transformed once
  (``G_b``). The input gradient is one inverse of ``sum_b G_b K_b`` (the
  branches are summed in the frequency domain); each weight gradient is a
  ``KH x KW`` window of the inverse of ``sum_n X_n G_b,n`` (the correlation
  of the input with the output gradient, batch summed before the inverse;
  one window serves both kernels of the cross form). Flipping the gradient
  instead of conjugating a spectrum keeps every product a plain complex
  multiply.

The work is done in chunks of channels of about :data:`CHUNK_BYTES` of
spectrum each (2-5x faster on the CPU than whole-stage transforms: the
temporaries stay in cache and are reused), and spectra are laid out with H
last, where the CPU FFT's complex passes are fastest.

Dtypes: computed in fp32 (fp64 for fp64 inputs) whatever the input dtype
or autocast say (CPU FFTs have no 16-bit kernels, and fp32 keeps the error
near 1e-7 relative); outputs come back in the dtype ``F.conv2d`` would
give (the autocast dtype under autocast, else the input's) and in the
input's memory format (channels-last in, channels-last out); gradients in
the dtypes of ``x`` and the weights.

The op is a ``torch.library`` custom op (``slak_mm::fft_dwconv``, with
``slak_mm::fft_dwconv_backward``), so ``torch.compile`` keeps it as one
node instead of tracing complex arithmetic. Nothing here imports mm
packages.
"""
import math
from typing import Iterator, List, Optional, Sequence, Tuple

import torch

from .capabilities import FFT_NEEDS, fft_runs
from .checks import check_inputs
from .registry import Candidate, register

Tensor = torch.Tensor

#: Bytes of spectrum per chunk of channels (see :func:`_chunks`).
CHUNK_BYTES = 1 << 22


def fft_size(n: int) -> int:
    """The smallest 2-3-5-smooth integer ``>= n`` (fast for pocketfft and
    cuFFT alike).

    Args:
        n (int): Minimum length.

    Returns:
        int: ``2**a * 3**b * 5**c >= n``.
    """
    n = max(1, int(n))
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def _frame(h: int, w: int,
           sizes: Sequence[Tuple[int, int]]) -> Tuple[int, int, int, int]:
    """Common kernel frame ``(KH, KW)`` and transform size ``(Hp, Wp)``."""
    kh = max(s[0] for s in sizes)
    kw = max(s[1] for s in sizes)
    return kh, kw, fft_size(h + kh // 2), fft_size(w + kw // 2)


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _complex(dtype: torch.dtype) -> torch.dtype:
    return torch.complex128 if dtype == torch.float64 else torch.complex64


def _chunks(planes: int, channels: int, hp: int, wp: int) -> Iterator[slice]:
    """Channel ranges whose spectra (``planes`` maps per channel) take about
    :data:`CHUNK_BYTES`: working chunk by chunk keeps the temporaries in
    cache and lets the allocator reuse them, which on the CPU is 2-5x
    faster than transforming a whole stage's maps at once (large fresh
    buffers cost page faults)."""
    plane = planes * hp * (wp // 2 + 1) * 8
    step = max(1, CHUNK_BYTES // plane)
    for start in range(0, channels, step):
        yield slice(start, min(channels, start + step))


def _pad_buffer(shape: Sequence[int], like: Tensor) -> Tensor:
    """Zeroed real buffer (..., Wp, Hp) that :func:`_spectrum` fills chunk
    after chunk: only the data region is written, so the padding is zeroed
    once per call."""
    return like.new_zeros(shape)


def _spectrum(t: Tensor, buf: Tensor, out: Optional[Tensor] = None) -> Tensor:
    """2-D real FFT of ``t`` (P, ..., h, w) zero-padded to (Hp, Wp), laid
    out (P, ..., Wp // 2 + 1, Hp), using ``buf`` (at least P, ..., Wp, Hp).

    H last (the complex dimension) makes the transforms along H run on
    contiguous lines: on the CPU this layout's forward and inverse together
    are about 2x faster than the natural one."""
    h, w = t.shape[-2:]
    buf = buf[:len(t)]
    buf[..., :w, :h] = t.transpose(-1, -2)
    return torch.fft.rfft2(buf, dim=(-1, -2), out=out)


def _inverse_window(spec: Tensor, wp: int, row: int, col: int, rows: int,
                    cols: int) -> Tensor:
    """Rows ``row..row+rows`` and columns ``col..col+cols`` of the inverse
    of a :func:`_spectrum` (..., Wp // 2 + 1, Hp), as (..., rows, cols):
    only the kept rows go through the real inverse."""
    z = torch.fft.ifft(spec, dim=-1)[..., row:row + rows]
    return torch.fft.irfft(
        z.transpose(-1, -2), n=wp, dim=-1)[..., col:col + cols]


def _dft(size: int, offset: int, freqs: int, period: int, like: Tensor,
         dtype: torch.dtype) -> Tensor:
    """(size, freqs): ``exp(-2 pi i (offset + k) f / period)`` (exact
    angles: the products are reduced modulo ``period`` in integers)."""
    k = torch.arange(offset, offset + size, device=like.device)
    f = torch.arange(freqs, device=like.device)
    angle = (k[:, None] * f[None, :] % period).double() * (-2 * math.pi /
                                                           period)
    return torch.polar(torch.ones_like(angle), angle).to(dtype)


class _KernelSpectra:
    """Spectra of the kernels rotated by 180 degrees (correlation ->
    convolution), each centred in the ``kh x kw`` frame (their sum when
    ``sum_out``), laid out like :func:`_spectrum`'s, computed for a chunk
    of channels at a time as two small DFT matrix products per kernel: a
    kernel has few taps, so this is several times cheaper than
    transforming a zero-padded frame."""

    def __init__(self, weights: Sequence[Tensor], kh: int, kw: int, hp: int,
                 wp: int, dtype: torch.dtype, sum_out: bool):
        cplx = _complex(dtype)
        self.sum_out = sum_out
        self.count = 1 if sum_out else len(weights)
        self.factors = []
        for weight in weights:
            sh, sw = weight.shape[-2:]
            rows = _dft(sh, (kh - sh) // 2, hp, hp, weight, cplx)
            cols = _dft(sw, (kw - sw) // 2, wp // 2 + 1, wp, weight, cplx).T
            taps = weight.to(dtype).flip((-2, -1)).transpose(-1, -2).to(cplx)
            wf = wp // 2 + 1  # cheaper pair of the three factors first
            rows_first = sw * sh * hp + wf * sw * hp <= wf * sh * (sw + hp)
            self.factors.append((cols, taps, rows, rows_first))

    def chunk(self, cs: slice) -> List[Tensor]:
        """The spectra (c, 1, Wp/2+1, Hp) of channels ``cs``, one per
        output."""
        spectra = [(cols @ (taps[cs] @ rows)) if rows_first else
                   ((cols @ taps[cs]) @ rows)
                   for cols, taps, rows, rows_first in self.factors]
        return [sum(spectra)] if self.sum_out else spectra


def _sum_of_products(pairs: Sequence[Tuple[Tensor, Tensor]]) -> Tensor:
    """``sum(a * b for a, b in pairs)`` without temporaries per term."""
    (a, b), rest = pairs[0], pairs[1:]
    out = a * b
    for a, b in rest:
        out.addcmul_(a, b)
    return out


def _empty_like_input(x: Tensor, dtype: torch.dtype,
                      channels_last: bool) -> Tensor:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return torch.empty(
        x.shape, dtype=dtype, device=x.device, memory_format=fmt)


def _spectra(x: Tensor, n_kernels: int, hp: int, wp: int,
             save: bool) -> Tuple[Tensor, Tensor]:
    """Empty input (C, N, Wp/2+1, Hp) and kernel (B, C, 1, Wp/2+1, Hp)
    spectra, channel-major so that a chunk of channels is one block; 0
    elements unless ``save``."""
    n, c = x.shape[:2]
    cplx = _complex(_compute_dtype(x.dtype))
    if not save:
        return x.new_empty(0, dtype=cplx), x.new_empty(0, dtype=cplx)
    return (x.new_empty((c, n, wp // 2 + 1, hp), dtype=cplx),
            x.new_empty((n_kernels, c, 1, wp // 2 + 1, hp), dtype=cplx))


def _channel_major(t: Tensor, cs: slice, dtype: torch.dtype) -> Tensor:
    """Channels ``cs`` of an (N, C, H, W) tensor as (c, N, H, W)."""
    return t[:, cs].transpose(0, 1).to(dtype)


@torch.library.custom_op('slak_mm::fft_dwconv', mutates_args=())
def _fft_dwconv(x: Tensor, weights: List[Tensor], sum_out: bool,
                out_dtype: torch.dtype, channels_last: bool,
                save: bool) -> Tuple[List[Tensor], Tensor, Tensor]:
    """Outputs (one per kernel, or their sum), input spectrum
    (C, N, Wp/2+1, Hp) and kernel spectra (B, C, 1, Wp/2+1, Hp), kept for
    the backward when ``save`` (else empty: inference needs them only
    chunk by chunk)."""
    n, c, h, w = x.shape
    kh, kw, hp, wp = _frame(h, w, [wt.shape[-2:] for wt in weights])
    dtype = _compute_dtype(x.dtype)
    kernels = _KernelSpectra(weights, kh, kw, hp, wp, dtype, sum_out)
    x_spec, k_spec = _spectra(x, kernels.count, hp, wp, save)
    chunks = list(_chunks(n, c, hp, wp))
    x_buf = _pad_buffer((chunks[0].stop, n, wp, hp),
                        x.new_empty(0, dtype=dtype))
    outs = [
        _empty_like_input(x, out_dtype, channels_last)
        for _ in range(kernels.count)
    ]
    with torch.autocast(x.device.type, enabled=False):
        for cs in chunks:
            xs = _spectrum(
                _channel_major(x, cs, dtype), x_buf,
                x_spec[cs] if save else None)
            for b, (ks, out) in enumerate(zip(kernels.chunk(cs), outs)):
                if save:
                    k_spec[b, cs] = ks
                out[:, cs] = _inverse_window(xs * ks, wp, kh // 2, kw // 2, h,
                                             w).transpose(0, 1)
    return outs, x_spec, k_spec


@_fft_dwconv.register_fake
def _(x, weights, sum_out, out_dtype, channels_last, save):
    kh, kw, hp, wp = _frame(*x.shape[-2:], [wt.shape[-2:] for wt in weights])
    n_out = 1 if sum_out else len(weights)
    return ([
        _empty_like_input(x, out_dtype, channels_last) for _ in range(n_out)
    ], *_spectra(x, n_out, hp, wp, save))


def _grad_shapes(grads: Sequence[Optional[Tensor]], kernel_sizes: List[int],
                 need_x: bool) -> Tuple[Tensor, Tuple[int, ...], list]:
    like = next(g for g in grads if g is not None)
    sizes = list(zip(kernel_sizes[::2], kernel_sizes[1::2]))
    return like, (like.shape if need_x else (0, )), sizes


@torch.library.custom_op('slak_mm::fft_dwconv_backward', mutates_args=())
def _fft_dwconv_backward(grads: List[Optional[Tensor]], x_spec: Tensor,
                         k_spec: Tensor, x_dtype: torch.dtype,
                         channels_last: bool, kernel_sizes: List[int],
                         need_x: bool,
                         need_w: List[bool]) -> Tuple[Tensor, List[Tensor]]:
    """Input gradient and one weight gradient (C, 1, kh, kw) per kernel (in
    the compute dtype) from the output gradients (None: output unused);
    ``kernel_sizes`` is ``[kh0, kw0, kh1, kw1, ...]``. Gradients not needed
    come back empty."""
    like, _, sizes = _grad_shapes(grads, kernel_sizes, need_x)
    n, c, h, w = like.shape
    kh, kw, hp, wp = _frame(h, w, sizes)
    dtype = x_spec.real.dtype
    # kernel k's output: its own, or the one sum (cross form)
    outputs = [0 if len(grads) < len(sizes) else k for k in range(len(sizes))]
    active = [o for o, g in enumerate(grads) if g is not None]
    grad_x = (
        _empty_like_input(like, x_dtype, channels_last)
        if need_x else x_spec.new_empty(0, dtype=x_dtype))
    grad_w = [
        x_spec.new_zeros((c, 1, sh, sw) if need else (0, ), dtype=dtype)
        for (sh, sw), need in zip(sizes, need_w)
    ]
    chunks = list(_chunks(n, c, hp, wp))
    buf = _pad_buffer((chunks[0].stop, n, wp, hp), x_spec.real)
    with torch.autocast(x_spec.device.type, enabled=False):
        for cs in chunks:
            # F(flip(g)): products with it are convolutions with g rotated,
            # i.e. the correlations the gradients are, without a conjugate.
            g_spec = {
                o:
                _spectrum(
                    _channel_major(grads[o], cs, dtype).flip((-2, -1)), buf)
                for o in active
            }
            if need_x:  # the branches summed in the frequency domain
                summed = _sum_of_products([(g_spec[o], k_spec[o, cs])
                                           for o in active])
                grad_x[:, cs] = _inverse_window(summed, wp, kh // 2, kw // 2,
                                                h, w).flip(
                                                    (-2, -1)).transpose(0, 1)
            windows = {}
            for k, (size_h, size_w) in enumerate(sizes):
                o = outputs[k]
                if not need_w[k] or o not in g_spec:
                    continue
                if o not in windows:  # batch summed before the inverse
                    corr = _sum_of_products([(x_spec[cs, i], g_spec[o][:, i])
                                             for i in range(n)])
                    windows[o] = _inverse_window(corr, wp, h - 1 - kh // 2,
                                                 w - 1 - kw // 2, kh, kw)
                dh, dw = (kh - size_h) // 2, (kw - size_w) // 2
                grad_w[k][cs, 0] = windows[o][:, dh:dh + size_h,
                                              dw:dw + size_w]
    return grad_x, grad_w


@_fft_dwconv_backward.register_fake
def _(grads, x_spec, k_spec, x_dtype, channels_last, kernel_sizes, need_x,
      need_w):
    like, _, sizes = _grad_shapes(grads, kernel_sizes, need_x)
    grad_x = (
        _empty_like_input(like, x_dtype, channels_last)
        if need_x else x_spec.new_empty(0, dtype=x_dtype))
    return grad_x, [
        x_spec.new_empty(
            (like.shape[1], 1, sh, sw) if need else (0, ),
            dtype=x_spec.real.dtype) for (sh, sw), need in zip(sizes, need_w)
    ]


def _setup_context(ctx, inputs, output):
    x, weights, _, _, channels_last, _ = inputs
    _, x_spec, k_spec = output
    ctx.mark_non_differentiable(x_spec, k_spec)
    ctx.set_materialize_grads(False)  # no zero spectra for the backward
    ctx.save_for_backward(x_spec, k_spec)
    ctx.x_dtype = x.dtype
    ctx.channels_last = channels_last
    ctx.kernel_sizes = [int(s) for wt in weights for s in wt.shape[-2:]]
    ctx.weight_dtypes = [wt.dtype for wt in weights]


def _backward(ctx, grad_outs, _grad_x_spec, _grad_k_spec):
    x_spec, k_spec = ctx.saved_tensors
    if all(g is None for g in grad_outs):
        return None, [None] * len(ctx.weight_dtypes), None, None, None, None
    need_x, need_w = ctx.needs_input_grad[0], list(ctx.needs_input_grad[1])
    grad_x, grad_w = _fft_dwconv_backward(
        list(grad_outs), x_spec, k_spec, ctx.x_dtype, ctx.channels_last,
        ctx.kernel_sizes, need_x, need_w)
    return (grad_x if need_x else None, [
        g.to(dt) if need else None
        for g, dt, need in zip(grad_w, ctx.weight_dtypes, need_w)
    ], None, None, None, None)


_fft_dwconv.register_autograd(_backward, setup_context=_setup_context)


def _output_dtype(x: Tensor) -> torch.dtype:
    """The dtype ``F.conv2d`` would return for ``x`` here (autocast)."""
    device_type = x.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return x.dtype


def _useful_part(weight: Tensor, h: int, w: int) -> Tensor:
    """The centre of ``weight`` that can touch an h x w map (offsets up to
    h - 1, w - 1): a larger kernel would only enlarge the transforms. A
    view, so autograd gives the cut-off taps zero gradient."""
    kh, kw = weight.shape[-2:]
    dh, dw = max(0, (kh - (2 * h - 1)) // 2), max(0, (kw - (2 * w - 1)) // 2)
    if dh or dw:
        weight = weight[..., dh:kh - dh, dw:kw - dw]
    return weight


def _run(x: Tensor, weights: Sequence[Tensor], sum_out: bool) -> List[Tensor]:
    weights = [_useful_part(wt, *x.shape[-2:]) for wt in weights]
    channels_last = (not x.is_contiguous()
                     and x.is_contiguous(memory_format=torch.channels_last))
    save = torch.is_grad_enabled() and (x.requires_grad
                                        or any(w.requires_grad
                                               for w in weights))
    outs, _, _ = _fft_dwconv(x, list(weights), sum_out, _output_dtype(x),
                             channels_last, save)
    return outs


def _multi(x: Tensor, weights: Sequence[Tensor]) -> Tuple[Tensor, ...]:
    return tuple(_run(x, weights, sum_out=False))


def _cross(x: Tensor,
           weight_v: Tensor,
           weight_h: Tensor,
           bias: Optional[Tensor] = None) -> Tensor:
    (out, ) = _run(x, (weight_v, weight_h), sum_out=True)
    if bias is not None:
        out = out + bias.to(out.dtype).view(1, -1, 1, 1)
    return out


def _check(x: Tensor,
           weights: Sequence[Tensor],
           bias: Optional[Tensor] = None) -> None:
    check_inputs(x, weights, bias)
    if not fft_runs(x, weights):
        raise TypeError(f'{FFT_NEEDS}, got {x.dtype}')


def fft_multi_depthwise_conv2d(
        x: Tensor, weights: Sequence[Tensor]) -> Tuple[Tensor, ...]:
    """Depthwise convs of one input through the FFT, one output each.

    Stride 1, "same" padding (odd kernel sides), no bias: each output is
    ``F.conv2d(x, w, padding=(kh // 2, kw // 2), groups=C)``. The input is
    transformed once for all kernels; differentiable in ``x`` and every
    weight (once).

    Args:
        x (Tensor): Input (N, C, H, W), floating point, any strides.
        weights (Sequence[Tensor]): Kernels (C, 1, kh_i, kw_i), odd sides
            (any size; the kernel may be larger than the map).

    Returns:
        tuple[Tensor]: One (N, C, H, W) output per kernel, in the dtype
        ``F.conv2d`` would give and in the input's memory format.

    Raises:
        ValueError: If the shapes do not fit.
        TypeError: If ``x`` is not floating point.
    """
    _check(x, weights)
    return _multi(x, weights)


def fft_cross_depthwise_conv2d(x: Tensor,
                               weight_v: Tensor,
                               weight_h: Tensor,
                               bias: Optional[Tensor] = None) -> Tensor:
    """``conv(x, weight_v) + conv(x, weight_h) + bias`` through the FFT.

    The kernels are summed before their (one) spectrum is taken, so the
    cross-shaped deploy kernel costs one product and one inverse; its
    backward needs one correlation window for both weight gradients.

    Args:
        x (Tensor): Input (N, C, H, W).
        weight_v (Tensor): Tall kernel (C, 1, M, n), odd sides.
        weight_h (Tensor): Wide kernel (C, 1, n, M), odd sides.
        bias (Tensor, optional): Per-channel bias (C,).

    Returns:
        Tensor: Output (N, C, H, W), dtype and memory format as in
        :func:`fft_multi_depthwise_conv2d`.

    Raises:
        ValueError: If the shapes do not fit.
        TypeError: If ``x`` is not floating point.
    """
    _check(x, (weight_v, weight_h), bias)
    return _cross(x, weight_v, weight_h, bias)


register('fft', Candidate(fft_runs, _multi, _cross, FFT_NEEDS))
