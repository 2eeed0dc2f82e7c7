"""Is every depthwise conv implementation correct on this machine?

Each implementation registered with :mod:`slak_mm.ops.registry` that can
run a case is run on it (forced, as ``impl='torch' | 'fft' | 'triton'``
runs it) and its outputs and gradients (input; weights and bias) are
compared with ``F.conv2d`` in float64 on the same values: the inputs,
kernels and output gradients are drawn once per case, rounded to bfloat16
(so fp32, fp16 and bf16 hold them exactly, up to fp16 subnormals) and the
float64 reference is computed once from them. The measure and the bounds
are the dispatcher's (:func:`slak_mm.ops.relative_error`,
:func:`slak_mm.ops.tolerance` of the compute dtype), except that
fp32 with TF32 off is held to the fp32 bound of the CPU (1e-4): asking for
full fp32 must give it.
"""
import contextlib
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

from slak_mm.benchmark.op import SLAK_T_DIMS, slak_stage_shapes
from slak_mm.ops import relative_error, run_cross, run_multi, tolerance, use
from slak_mm.ops.registry import CANDIDATES

__all__ = [
    'MODES', 'Case', 'check_case', 'conv_tf32', 'correctness_cases',
    'modes_for', 'run_op'
]

#: SLaK-B's stage channels (width x1.3); SLaK-T and -S share SLAK_T_DIMS.
SLAK_B_DIMS = (166, 332, 665, 1331)
#: Large kernels of SLaK 51 and of the 61 variant (its last stage is 13,
#: as SLaK 51's).
KERNELS_51 = (51, 49, 47, 13)
KERNELS_61 = (61, 59, 57)

#: Dtype settings: name -> (input and parameter dtype, autocast dtype, TF32
#: for fp32 convs on CUDA: True, False or None = leave as it is).
MODES: Dict[str, Tuple[torch.dtype, Optional[torch.dtype], Optional[bool]]] = {
    'fp32': (torch.float32, None, None),
    'fp32-tf32': (torch.float32, None, True),
    'fp32-ieee': (torch.float32, None, False),
    'bf16': (torch.bfloat16, None, None),
    'fp16': (torch.float16, None, None),
    'autocast-bf16': (torch.float32, torch.bfloat16, None),
    'autocast-fp16': (torch.float32, torch.float16, None),
}
LAYOUTS = ('nchw', 'cl')


@dataclass(frozen=True)
class Case:
    """One shape of one op: ``multi`` (SLaK's training form: ``M x N``,
    ``N x M`` and ``N x N`` kernels, one output each) or ``cross`` (the
    deploy form: tall + wide kernel + bias, one output).

    Args:
        op (str): ``'multi'`` or ``'cross'``.
        batch, channels, height, width (int): The input's shape.
        kernel (int): The large side ``M``.
        small (int): The short side ``N``. Default: 5.
        interpret (bool): On the CPU, run only Triton on this case, fp32,
            under its interpreter (``TRITON_INTERPRET=1``); elsewhere
            Triton is not run on CPU tensors. Default: False.
    """
    op: str
    batch: int
    channels: int
    height: int
    width: int
    kernel: int
    small: int = 5
    interpret: bool = False

    def __str__(self) -> str:
        return (f'{self.batch}x{self.channels}x{self.height}x{self.width} '
                f'k{self.kernel}x{self.small}')

    def kernel_shapes(self) -> List[Tuple[int, int]]:
        """The kernels' ``(kh, kw)``: three for ``multi``, two for
        ``cross``."""
        m, n = self.kernel, self.small
        shapes = [(m, n), (n, m)]
        return shapes + [(n, n)] if self.op == 'multi' else shapes


def _stages(dims: Sequence[int], kernels: Sequence[int],
            size: Union[int, Tuple[int, int]], batch: int) -> List[Case]:
    return [
        Case(op, batch, s['channels'], s['height'], s['width'], s['kernel'])
        for s in slak_stage_shapes(size, dims, kernels)
        for op in ('multi', 'cross')
    ]


def correctness_cases(quick: bool) -> List[Case]:
    """The cases of a run.

    Full: the stage shapes of SLaK-T/S with kernels 51/49/47/13 at 512x512
    (batch 2) and 800x1216 (batch 1), of the 61 variant (61/59/57) at
    512x512 (batch 1), and of SLaK-B (51/49/47/13) at 800x1216 (batch 2),
    both ops each. Quick: three small shapes (8 channels, kernels 13 and 7
    on 32x32 maps, 51 on a 16x16 map), and one tiny shape for Triton's
    interpreter.

    Args:
        quick (bool): The CPU / CI set.

    Returns:
        list[Case]: The cases.
    """
    if quick:
        shapes = [(2, 8, 32, 32, 13, False), (1, 8, 32, 32, 7, False),
                  (1, 8, 16, 16, 51, False), (1, 2, 12, 12, 13, True)]
        return [
            Case(op, b, c, h, w, m, interpret=i) for b, c, h, w, m, i in shapes
            for op in ('multi', 'cross')
        ]
    return (_stages(SLAK_T_DIMS, KERNELS_51, 512, 2) +
            _stages(SLAK_T_DIMS, KERNELS_51, (800, 1216), 1) +
            _stages(SLAK_T_DIMS[:3], KERNELS_61, 512, 1) +
            _stages(SLAK_B_DIMS, KERNELS_51, (800, 1216), 2))


def modes_for(device_type: str, quick: bool) -> Tuple[str, ...]:
    """The dtype settings (:data:`MODES`) checked on a device.

    Args:
        device_type (str): ``'cuda'`` or ``'cpu'``.
        quick (bool): The CPU / CI set (fp32, bf16, bf16 autocast).

    Returns:
        tuple[str]: Names in :data:`MODES`.
    """
    if quick:
        return ('fp32', 'bf16', 'autocast-bf16')
    if device_type == 'cuda':
        return ('fp32-tf32', 'fp32-ieee', 'bf16', 'fp16', 'autocast-bf16',
                'autocast-fp16')
    return ('fp32', 'bf16', 'fp16', 'autocast-bf16')


@contextlib.contextmanager
def conv_tf32(enabled: Optional[bool]) -> Iterator[None]:
    """Let torch's fp32 convs (and with them the Triton kernels, which
    follow the same switch) use TF32 or not, restoring the setting after.

    Args:
        enabled (bool, optional): TF32 on or off; None changes nothing.
    """
    if enabled is None:
        yield
        return
    conv = getattr(torch.backends.cudnn, 'conv', None)
    if conv is not None and hasattr(conv, 'fp32_precision'):  # torch >= 2.9
        owner, attr, value = conv, 'fp32_precision', ('tf32'
                                                      if enabled else 'ieee')
    else:
        owner, attr, value = torch.backends.cudnn, 'allow_tf32', enabled
    old = getattr(owner, attr)
    setattr(owner, attr, value)
    try:
        yield
    finally:
        setattr(owner, attr, old)


def _conv(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    kh, kw = weight.shape[-2:]
    return F.conv2d(x, weight, padding=(kh // 2, kw // 2), groups=x.shape[1])


def _leaf(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return t.detach().to(dtype).requires_grad_()


class _Reference:
    """A case's inputs (exact in bf16) and its float64 results."""

    def __init__(self, case: Case, device: torch.device, seed: int = 0):
        gen = torch.Generator(device).manual_seed(seed)

        def draw(*shape, scale=1.0):
            t = torch.randn(*shape, generator=gen, device=device) * scale
            return t.to(torch.bfloat16).double()

        n, c, h, w = case.batch, case.channels, case.height, case.width
        self.x = draw(n, c, h, w)
        self.tensors = [
            draw(c, 1, kh, kw, scale=(kh * kw)**-0.5)
            for kh, kw in case.kernel_shapes()
        ]
        if case.op == 'cross':
            self.tensors.append(draw(c))
        outs = len(self.tensors) if case.op == 'multi' else 1
        self.grads = [draw(n, c, h, w) for _ in range(outs)]
        x = _leaf(self.x, torch.float64)
        tensors = [_leaf(t, torch.float64) for t in self.tensors]
        outs = run_op(case.op, 'ref', x, tensors)
        torch.autograd.backward(outs, self.grads)
        self.outs = [o.detach() for o in outs]
        self.grad_x = x.grad
        self.grad_tensors = [t.grad for t in tensors]


def run_op(op: str, impl: str, x: torch.Tensor,
           tensors: Sequence[torch.Tensor]) -> List[torch.Tensor]:
    """Run an op through a resolved implementation (checking nothing).

    Args:
        op (str): ``'multi'`` (``tensors``: kernels) or ``'cross'``
            (``tensors``: tall kernel, wide kernel, bias).
        impl (str): A name in :data:`slak_mm.ops.registry.CANDIDATES`, or
            ``'ref'``: the op's definition in plain ``F.conv2d``.
        x (Tensor): Input (N, C, H, W).
        tensors (Sequence[Tensor]): As above.

    Returns:
        list[Tensor]: The outputs (one for ``cross``).
    """
    if impl == 'ref':
        if op == 'multi':
            return [_conv(x, t) for t in tensors]
        weight_v, weight_h, bias = tensors
        return [
            _conv(x, weight_v) + _conv(x, weight_h) + bias.view(1, -1, 1, 1)
        ]
    if op == 'multi':
        return list(run_multi(impl, x, tensors))
    return [run_cross(impl, x, *tensors)]


def _check_one(case: Case, ref: _Reference, impl: str, mode: str, layout: str,
               device: torch.device) -> Optional[dict]:
    """One row: ``impl`` on ``case`` in ``mode`` and ``layout``; None when
    the implementation cannot run it (e.g. Triton on CPU tensors)."""
    dtype, autocast, tf32 = MODES[mode]
    x = ref.x.to(dtype)
    if layout == 'cl':
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    tensors = [_leaf(t, dtype) for t in ref.tensors]
    weights = tensors[:3] if case.op == 'multi' else tensors[:2]
    if not CANDIDATES[impl].available(x, weights):
        return None
    compute = autocast or dtype
    tol = tolerance(compute, 'cpu' if tf32 is False else device.type)
    row = dict(
        impl=impl,
        op=case.op,
        shape=str(case),
        dtype=mode,
        layout=layout,
        tol=tol,
        out=None,
        grad_x=None,
        grad_w=None,
        status='PASS',
        error=None)
    context = (
        torch.autocast(device.type, dtype=autocast)
        if autocast else contextlib.nullcontext())
    try:
        with conv_tf32(tf32):
            with context:
                outs = run_op(case.op, impl, x, tensors)
            torch.autograd.backward(
                outs, [g.to(o.dtype) for g, o in zip(ref.grads, outs)])
        missing = [i for i, t in enumerate(tensors) if t.grad is None]
        wrong_dtype = [o.dtype for o in outs if o.dtype != compute]
        if len(outs) != len(ref.outs) or missing or x.grad is None \
                or wrong_dtype:
            row['error'] = (f'{len(outs)} outputs of dtypes '
                            f'{[str(o.dtype) for o in outs]} (expected '
                            f'{len(ref.outs)} of {compute}), no gradient '
                            f'for tensors {missing}')
        else:
            row.update(
                out=max(relative_error(o, r) for o, r in zip(outs, ref.outs)),
                grad_x=relative_error(x.grad, ref.grad_x),
                grad_w=max(
                    relative_error(t.grad, g)
                    for t, g in zip(tensors, ref.grad_tensors)))
            bad = [k for k in ('out', 'grad_x', 'grad_w') if row[k] > tol]
            if bad:
                row['error'] = ', '.join(f'{k} relative error {row[k]:.1e}'
                                         for k in bad) + f' > {tol:.0e}'
    except Exception as e:  # a crash is a result too: report, go on
        row['error'] = f'{type(e).__name__}: {str(e).splitlines()[0][:200]}'
    if row['error']:
        row['status'] = 'FAIL'
    return row


def check_case(case: Case, modes: Sequence[str],
               device: torch.device) -> List[dict]:
    """Every registered implementation that can run ``case``, in every
    mode and layout, against the float64 reference.

    Args:
        case (Case): The shape and op.
        modes (Sequence[str]): Names in :data:`MODES`.
        device (torch.device): Where to run.

    Returns:
        list[dict]: One row per run: ``impl``, ``op``, ``shape``, ``dtype``
        (the mode), ``layout``, the relative errors ``out``, ``grad_x`` and
        ``grad_w`` (the worst of the kernels and bias), ``tol``, ``status``
        (``PASS`` or ``FAIL``) and ``error`` (why it failed).
    """
    ref = _Reference(case, device)
    # on a GPU the interpreter's case is an ordinary one
    interpret = case.interpret and device.type == 'cpu'
    rows = []
    with use(triton_interpret=interpret):
        for impl in list(CANDIDATES):
            for mode in modes:
                if interpret and (impl != 'triton' or mode != 'fp32'):
                    continue  # the interpreter is slow: fp32 Triton only
                for layout in LAYOUTS:
                    row = _check_one(case, ref, impl, mode, layout, device)
                    if row is not None:
                        rows.append(row)
    return rows
