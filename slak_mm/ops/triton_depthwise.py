"""Triton depthwise "same" convolution with autograd: the host side.

:func:`triton_multi_depthwise_conv2d` runs several depthwise kernels of one
input (SLaK's ``M x N``, ``N x M`` and ``N x N`` branches) in one launch, one
output each; :func:`triton_cross_depthwise_conv2d` runs the merged deploy
form (tall + wide kernel + bias) into one output. Both are
``torch.autograd.Function``\\ s whose forward, input gradient and weight
gradients are the Triton kernels of :mod:`.triton_depthwise_kernels` (the
kernel design is described there). The launches are ``torch.library``
custom ops (``slak_mm::triton_dwconv``, ``slak_mm::triton_dwconv_wgrad``),
so ``torch.compile`` traces the Functions without a graph break.

Dtypes: fp32, fp16 and bf16 inputs; products are accumulated in fp32 and
the outputs have the input's dtype. Weights are cast to the input's dtype
for the computation, as ``F.conv2d`` requires, and their gradients are
reduced in fp32 and returned in the weights' own dtype. Under
``torch.autocast`` the input is first cast to the autocast dtype, as
autocast does for ``conv2d``. fp32 products run on the tensor cores as
TF32 when torch's convs may use TF32 (``torch.backends.cudnn.allow_tf32``,
the default), else as 3xTF32 (about fp32 accuracy); see
:func:`conv_fp32_precision`.

The kernels run on CUDA tensors, and on CPU tensors in Triton's
interpreter (the test mode: the ``triton_interpret`` setting,
``TRITON_INTERPRET=1`` or ``slak_mm.ops.use(triton_interpret=True)``; see
:mod:`slak_mm.ops.settings`). The setting is looked up at each call: the
kernel module is loaded once per mode (under Triton's ``triton.knobs``, so
a triton without them is too old and gets no ``triton`` implementation),
and compiled and interpreted calls can share a process. What they support
(dtypes, kernel sides up to 63) is stated in :mod:`.capabilities`.

Importing this module (which imports triton) registers the kernels with the
registry as ``triton``. Nothing here imports mm packages.
"""
import importlib.util
from contextlib import contextmanager, nullcontext
from typing import List, Optional, Sequence, Tuple

import torch
import triton
from torch.autograd.function import once_differentiable
from triton import knobs  # ImportError on a triton too old (< 3.4)

from . import settings
from .capabilities import (TRITON_DTYPES, TRITON_NEEDS, triton_offered_to_auto,
                           triton_runs)
from .checks import check_inputs
from .registry import Candidate, register

#: Kernels per launch (the kernel has three slots; more are chunked).
_MAX_PER_LAUNCH = 3
#: Kernels with at most this many taps use the plain tap loop, larger ones
#: (SLaK's 5 x 5 too) the Toeplitz matrix product (see the kernels module).
_DIRECT_MAX_TAPS = 9
#: Positions per step of the weight-gradient product.
_WGRAD_BK = 64
#: Weight-gradient programs per multiprocessor to aim for.
_WGRAD_PROGRAMS_PER_SM = 4
#: Fewest steps a weight-gradient program gets before channels are split.
_WGRAD_MIN_ITEMS = 4

_KERNEL_MODULES = {}
_SM_COUNTS = {}


@contextmanager
def _interpret_mode(interpret: bool):
    """Make ``@triton.jit`` build interpreted (or compiled) functions
    (Triton's own switch, restored afterwards)."""
    with knobs.runtime.scope():
        knobs.runtime.interpret = interpret
        yield


def _kernels():
    """The kernels module for the current mode (the ``triton_interpret``
    setting, ``TRITON_INTERPRET``).

    ``@triton.jit`` decides between compiled and interpreted functions when
    it decorates, and a kernel's helpers must be of the same kind, so each
    mode gets its own instance of the module, executed under that mode.
    """
    interpret = settings.current().triton_interpret
    module = _KERNEL_MODULES.get(interpret)
    if module is None:
        spec = importlib.util.find_spec(
            __name__.rpartition('.')[0] + '.triton_depthwise_kernels')
        module = importlib.util.module_from_spec(spec)
        with _interpret_mode(interpret):
            spec.loader.exec_module(module)
        _KERNEL_MODULES[interpret] = module
    return module


def _next_pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def _sm_count(device: torch.device) -> int:
    if device.type != 'cuda':
        return 2  # interpreter: still split channels, to test the reduction
    index = device.index if device.index is not None else \
        torch.cuda.current_device()
    if index not in _SM_COUNTS:
        _SM_COUNTS[index] = torch.cuda.get_device_properties(
            index).multi_processor_count
    return _SM_COUNTS[index]


def _on_device(x: torch.Tensor):
    # Triton launches on the current CUDA device, not the tensor's.
    return torch.cuda.device(x.device) if x.is_cuda else nullcontext()


def conv_fp32_precision() -> str:
    """``'tf32'`` or ``'ieee'``: what torch's own convs use for fp32 on
    CUDA, read without raising.

    ``torch.backends.cudnn.conv.fp32_precision`` (torch >= 2.9; ``'none'``
    defers to ``torch.backends.cudnn.fp32_precision``, then
    ``torch.backends.fp32_precision``; all ``'none'`` is IEEE), else the
    legacy ``torch.backends.cudnn.allow_tf32``. Reading
    ``torch.get_float32_matmul_precision()`` instead raises in torch 2.14
    once the new API was used anywhere ("mix of the legacy and new APIs"),
    and would follow the matmul flag, not the conv one.

    Returns:
        str: ``'tf32'`` (torch's default for convs) or ``'ieee'``.
    """
    chain = []
    for owner, attr in ((('cudnn', 'conv'), 'fp32_precision'),
                        (('cudnn', ), 'fp32_precision'), ((),
                                                          'fp32_precision')):
        try:
            obj = torch.backends
            for name in owner:
                obj = getattr(obj, name)
            chain.append(getattr(obj, attr))
        except (AttributeError, RuntimeError):
            break
    if len(chain) == 3:
        return next((p for p in chain if p in ('tf32', 'ieee')), 'ieee')
    try:
        return 'tf32' if torch.backends.cudnn.allow_tf32 else 'ieee'
    except RuntimeError:  # mixed legacy/new flags: torch's default
        return 'tf32'


def _dot_options(dtype: torch.dtype) -> Tuple[bool, str]:
    """``(UPCAST, PREC)`` for ``tl.dot`` on ``dtype`` operands.

    fp32 follows the TF32 switch of torch's convs, as ``F.conv2d`` does
    (:func:`conv_fp32_precision`): TF32 (torch's default; one tensor-core
    pass, about 1e-3 relative error) or, when the user asks for full fp32
    (``torch.backends.cudnn.allow_tf32 = False`` or
    ``fp32_precision = 'ieee'``), 3xTF32 (about fp32 accuracy). The
    interpreter's dot mishandles bf16, so it gets fp32 operands there
    (exact: products of 16-bit floats fit in fp32, and the GPU accumulates
    them in fp32 too).
    """
    if settings.current().triton_interpret:
        return dtype != torch.float32, 'ieee'
    if dtype != torch.float32:
        return False, 'tf32'  # ignored for 16-bit operands
    return False, ('tf32' if conv_fp32_precision() == 'tf32' else 'tf32x3')


def _mode(kh: int, kw: int) -> int:
    """How :func:`_conv_tile` evaluates a ``kh x kw`` kernel."""
    mod = _kernels()
    if kh * kw <= _DIRECT_MAX_TAPS:
        return int(mod.MODE_DIRECT)
    return int(mod.MODE_VERTICAL if kh >= kw else mod.MODE_HORIZONTAL)


def _conv_bk(kh: int, kw: int) -> int:
    """K chunk of a kernel's matrix product: the halo of a tile is
    ``B + k - 1`` long, so short kernels waste less with 16."""
    return 32 if max(kh, kw) > 16 else 16


def _conv_tiles(h: int, w: int) -> Tuple[int, int, int]:
    """Output tile (BH, BW) and warps: up to 64 x 64, at least 16 x 16
    (the tensor-core minimum), no larger than the map needs."""
    bh = min(64, max(16, _next_pow2(h)))
    bw = min(64, max(16, _next_pow2(w)))
    return bh, bw, 8 if bh * bw >= 4096 else 4


def _launch_conv(inputs: Sequence[torch.Tensor],
                 kernels: Sequence[torch.Tensor],
                 sum_out: bool,
                 bias: Optional[torch.Tensor] = None) -> List[torch.Tensor]:
    """Run ``dw_conv_kernel``: input ``inputs[k]`` (contiguous, same shape
    and dtype) with kernel ``kernels[k]`` (contiguous, (C, 1, kh, kw), the
    inputs' dtype), one output per kernel or their sum (plus ``bias``)."""
    x = inputs[0]
    # plain ints: under torch.jit tracing sizes are tensors, which Triton
    # would take for pointers
    n, c, h, w = map(int, x.shape)
    outs = [
        torch.empty((n, c, h, w), dtype=x.dtype, device=x.device)
        for _ in range(1 if sum_out else len(kernels))
    ]
    if x.numel() == 0:
        return outs
    mod = _kernels()
    bh, bw, warps = _conv_tiles(h, w)
    n_tw = triton.cdiv(w, bw)
    n_tiles = triton.cdiv(h, bh) * n_tw
    upcast, prec = _dot_options(x.dtype)
    ptrs_in = list(inputs) + [inputs[0]] * (3 - len(inputs))
    ptrs_k = list(kernels) + [kernels[0]] * (3 - len(kernels))
    ptrs_out = outs + [outs[0]] * (3 - len(outs))
    shapes = {}
    for k in range(3):
        kh, kw = map(int, kernels[k].shape[-2:]) if k < len(kernels) else (1,
                                                                           1)
        shapes.update({
            f'KH{k}': kh,
            f'KW{k}': kw,
            f'MODE{k}': _mode(kh, kw),
            f'BK{k}': _conv_bk(kh, kw)
        })
    with _on_device(x):
        mod.dw_conv_kernel[(n * c * n_tiles, )](
            *ptrs_in,
            *ptrs_k,
            *ptrs_out,
            bias if bias is not None else x,
            c,
            h,
            w,
            n_tw,
            n_tiles,
            NUM_K=len(kernels),
            SUM_OUT=sum_out,
            HAS_BIAS=bias is not None,
            BH=bh,
            BW=bw,
            UPCAST=upcast,
            PREC=prec,
            num_warps=warps,
            **shapes)
    return outs


def _launch_wgrad(x: torch.Tensor, grads: Sequence[torch.Tensor],
                  sizes: Sequence[Tuple[int, int]]) -> List[torch.Tensor]:
    """Weight gradients (C, kh, kw), fp32, of the kernels of ``sizes``
    given the input ``x`` and each kernel's output gradient (all contiguous,
    same shape and dtype)."""
    n, c, h, w = map(int, x.shape)
    if x.numel() == 0:
        return [
            x.new_zeros((c, kh, kw), dtype=torch.float32) for kh, kw in sizes
        ]
    mod = _kernels()
    bkw = min(_WGRAD_BK, max(16, _next_pow2(w)))
    rb = _WGRAD_BK // bkw
    n_hb, n_wb = triton.cdiv(h, rb), triton.cdiv(w, bkw)
    n_items = n * n_hb * n_wb
    # Split each channel's positions over enough programs to fill the GPU;
    # the split depends only on the shape and the GPU, so the summation
    # order (and the result) is reproducible.
    splits = min(
        triton.cdiv(_WGRAD_PROGRAMS_PER_SM * _sm_count(x.device), c),
        triton.cdiv(n_items, _WGRAD_MIN_ITEMS))
    per_prog = triton.cdiv(n_items, max(1, splits))
    splits = triton.cdiv(n_items, per_prog)
    ws = [
        torch.empty((splits, c, kh, kw), dtype=torch.float32, device=x.device)
        for kh, kw in sizes
    ]
    upcast, prec = _dot_options(x.dtype)
    args = {}
    for k in range(3):
        kh, kw = sizes[k] if k < len(sizes) else (1, 1)
        args.update({
            f'KH{k}': kh,
            f'KW{k}': kw,
            f'KHP{k}': max(16, _next_pow2(kh)),
            f'KWP{k}': max(16, _next_pow2(kw))
        })
    ptrs_g = list(grads) + [grads[0]] * (3 - len(grads))
    ptrs_ws = ws + [ws[0]] * (3 - len(ws))
    with _on_device(x):
        mod.dw_wgrad_kernel[(c, splits)](
            x,
            *ptrs_g,
            *ptrs_ws,
            c,
            h,
            w,
            n_hb,
            n_wb,
            n_items,
            per_prog,
            NUM_K=len(sizes),
            RB=rb,
            BKW=bkw,
            UPCAST=upcast,
            PREC=prec,
            # 8 warps keep 16-bit inputs at ~70 registers (3 programs per
            # SM); fp32 needs ~200 (measured with 3xTF32), one program per
            # SM: 2 stages of shared memory are enough then.
            num_warps=8,
            num_stages=2 if x.dtype == torch.float32 else 3,
            **args)
    # Second stage of the reduction, fixed order.
    return [part.sum(0) for part in ws]


# The launchers as torch.library custom ops: torch.compile keeps each
# launch as one opaque node (dynamo cannot trace the launchers' module
# loading and grid set-up), the autograd Functions below call them.
@torch.library.custom_op('slak_mm::triton_dwconv', mutates_args=())
def _conv_op(inputs: List[torch.Tensor], kernels: List[torch.Tensor],
             sum_out: bool,
             bias: Optional[torch.Tensor]) -> List[torch.Tensor]:
    return _launch_conv(inputs, kernels, sum_out, bias)


@_conv_op.register_fake
def _(inputs, kernels, sum_out, bias):
    return [
        torch.empty(
            inputs[0].shape, dtype=inputs[0].dtype, device=inputs[0].device)
        for _ in range(1 if sum_out else len(kernels))
    ]


@torch.library.custom_op('slak_mm::triton_dwconv_wgrad', mutates_args=())
def _wgrad_op(x: torch.Tensor, grads: List[torch.Tensor],
              sizes: List[int]) -> List[torch.Tensor]:
    """:func:`_launch_wgrad` with ``sizes`` flat: ``[kh0, kw0, ...]``."""
    return _launch_wgrad(x, grads, list(zip(sizes[::2], sizes[1::2])))


@_wgrad_op.register_fake
def _(x, grads, sizes):
    return [
        x.new_empty((x.shape[1], kh, kw), dtype=torch.float32)
        for kh, kw in zip(sizes[::2], sizes[1::2])
    ]


def _flat_sizes(kernels: Sequence[torch.Tensor]) -> List[int]:
    return [int(s) for k in kernels for s in k.shape[-2:]]


def _flipped(kernel: torch.Tensor) -> torch.Tensor:
    # grad_x of a "same" conv is the same conv of grad_out with the kernel
    # rotated by 180 degrees (odd sides keep the padding symmetric).
    return kernel.flip((-2, -1)).contiguous()


class _MultiDepthwiseConv(torch.autograd.Function):
    """Up to three depthwise kernels of one input, one output each."""

    @staticmethod
    def forward(ctx, x, *weights):
        kernels = [wt.to(x.dtype).contiguous() for wt in weights]
        outs = _conv_op([x] * len(kernels), kernels, False, None)
        ctx.save_for_backward(x, *kernels)
        ctx.weight_dtypes = [wt.dtype for wt in weights]
        ctx.set_materialize_grads(False)
        return tuple(outs)

    @staticmethod
    @once_differentiable
    def backward(ctx, *grad_outs):
        x, *kernels = ctx.saved_tensors
        grads = [None] * (1 + len(kernels))
        active = [k for k, g in enumerate(grad_outs) if g is not None]
        if not active:
            return tuple(grads)
        grad_outs = [
            g if g is None else g.to(x.dtype).contiguous() for g in grad_outs
        ]
        if ctx.needs_input_grad[0]:
            grads[0] = _conv_op([grad_outs[k] for k in active],
                                [_flipped(kernels[k]) for k in active], True,
                                None)[0]
        need_w = [k for k in active if ctx.needs_input_grad[1 + k]]
        if need_w:
            parts = _wgrad_op(x, [grad_outs[k] for k in need_w],
                              _flat_sizes([kernels[k] for k in need_w]))
            for k, part in zip(need_w, parts):
                grads[1 + k] = part.view(kernels[k].shape).to(
                    ctx.weight_dtypes[k])
        return tuple(grads)


class _CrossDepthwiseConv(torch.autograd.Function):
    """A tall and a wide depthwise kernel plus bias, summed in one pass."""

    @staticmethod
    def forward(ctx, x, weight_v, weight_h, bias):
        kernels = [
            weight_v.to(x.dtype).contiguous(),
            weight_h.to(x.dtype).contiguous()
        ]
        out = _conv_op([x, x], kernels, True, bias)[0]
        ctx.save_for_backward(x, *kernels)
        ctx.weight_dtypes = (weight_v.dtype, weight_h.dtype)
        ctx.bias_dtype = None if bias is None else bias.dtype
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        x, k_v, k_h = ctx.saved_tensors
        grad_out = grad_out.to(x.dtype).contiguous()
        grads = [None] * 4
        if ctx.needs_input_grad[0]:
            grads[0] = _conv_op([grad_out, grad_out],
                                [_flipped(k_v), _flipped(k_h)], True, None)[0]
        need_w = [k for k in (0, 1) if ctx.needs_input_grad[1 + k]]
        if need_w:
            kernels = (k_v, k_h)
            parts = _wgrad_op(x, [grad_out] * len(need_w),
                              _flat_sizes([kernels[k] for k in need_w]))
            for k, part in zip(need_w, parts):
                grads[1 + k] = part.view(kernels[k].shape).to(
                    ctx.weight_dtypes[k])
        if ctx.needs_input_grad[3]:
            grads[3] = grad_out.sum((0, 2, 3),
                                    dtype=torch.float32).to(ctx.bias_dtype)
        return tuple(grads)


def _prepare_input(x: torch.Tensor) -> torch.Tensor:
    """Cast like autocast casts conv2d's input and make it contiguous (NCHW;
    strided and channels-last inputs are copied)."""
    device_type = x.device.type
    if x.is_floating_point() and torch.is_autocast_enabled(device_type):
        x = x.to(torch.get_autocast_dtype(device_type))
    return x.contiguous()


def _check(x: torch.Tensor,
           weights: Sequence[torch.Tensor],
           bias: Optional[torch.Tensor] = None) -> None:
    """The checks of the public functions (the dispatcher has made them
    before it calls :func:`_multi` / :func:`_cross`)."""
    check_inputs(x, weights, bias)
    if not weights:
        raise ValueError('need at least one kernel')
    dtype = x.dtype
    if x.is_floating_point() and torch.is_autocast_enabled(x.device.type):
        dtype = torch.get_autocast_dtype(x.device.type)  # what runs
    if dtype not in TRITON_DTYPES:
        raise TypeError(f'Triton depthwise conv supports {TRITON_DTYPES} '
                        f'inputs, got {dtype}; use impl="torch"')


def _multi(x: torch.Tensor,
           weights: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, ...]:
    weights = tuple(weights)
    x = _prepare_input(x)
    outs = ()
    for start in range(0, len(weights), _MAX_PER_LAUNCH):
        outs += _MultiDepthwiseConv.apply(
            x, *weights[start:start + _MAX_PER_LAUNCH])
    return outs


def _cross(x: torch.Tensor,
           weight_v: torch.Tensor,
           weight_h: torch.Tensor,
           bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    x = _prepare_input(x)
    if bias is not None:
        bias = bias.contiguous()
    return _CrossDepthwiseConv.apply(x, weight_v, weight_h, bias)


def triton_multi_depthwise_conv2d(
        x: torch.Tensor,
        weights: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, ...]:
    """Depthwise convs of one input, stride 1, "same" padding, no bias.

    All kernels (up to three per launch; more are run in groups of three)
    are evaluated tile by tile in one launch, so each input tile is read
    from DRAM once for all of them. Differentiable in ``x`` and every
    weight.

    Args:
        x (Tensor): Input (N, C, H, W), fp32 / fp16 / bf16, CUDA (or CPU
            under ``TRITON_INTERPRET=1``); any strides.
        weights (Sequence[Tensor]): Kernels (C, 1, kh_i, kw_i) with odd
            sides up to :data:`~slak_mm.ops.capabilities.MAX_KERNEL` (63);
            cast to the input's dtype to compute.

    Returns:
        tuple[Tensor]: One (N, C, H, W) output per kernel, in the input's
        dtype (the autocast dtype under autocast).

    Raises:
        ValueError: If the shapes do not fit.
        TypeError: If the dtype is not supported.
    """
    weights = tuple(weights)
    _check(x, weights)
    return _multi(x, weights)


def triton_cross_depthwise_conv2d(
        x: torch.Tensor,
        weight_v: torch.Tensor,
        weight_h: torch.Tensor,
        bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``conv(x, weight_v) + conv(x, weight_h) + bias`` in one pass.

    The deploy form of SLaK's decomposed kernel: both kernels go into one
    accumulator per output tile, the bias is added and the tile is written
    once. Differentiable (input, both kernels and bias) with the same
    kernels as :func:`triton_multi_depthwise_conv2d`.

    Args:
        x (Tensor): Input (N, C, H, W), fp32 / fp16 / bf16.
        weight_v (Tensor): Tall kernel (C, 1, M, n), odd sides.
        weight_h (Tensor): Wide kernel (C, 1, n, M), odd sides (any odd
            shape works for either).
        bias (Tensor, optional): Per-channel bias (C,), added in fp32.

    Returns:
        Tensor: Output (N, C, H, W) in the input's dtype.

    Raises:
        ValueError: If the shapes do not fit.
        TypeError: If the dtype is not supported.
    """
    _check(x, (weight_v, weight_h), bias)
    return _cross(x, weight_v, weight_h, bias)


register(
    'triton',
    Candidate(
        triton_runs,
        _multi,
        _cross,
        TRITON_NEEDS,
        offered_to_auto=triton_offered_to_auto))
