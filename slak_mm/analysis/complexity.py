"""Parameters and FLOPs of SLaK models, dense and sparse.

Dense counts come from mmengine's complexity analysis
(:class:`mmengine.analysis.FlopAnalyzer` and
:func:`mmengine.analysis.parameter_count`). FLOPs follow its (fvcore's)
convention: **one multiply-add is one FLOP**, i.e. the numbers are MACs, the
convention of the SLaK / ConvNeXt papers' tables. Only ops with a handle are
counted (convolutions, linear layers, matrix products, norms, upsampling,
adaptive pooling); element-wise additions and activations are not.

Two sparse counts are reported beside the dense one:

* **paper** (``params_paper`` / ``flops_paper``): the SLaK paper's
  convention, every masked weight (those of a ``sparse=True`` backbone) at
  the same density ``1 - sparsity`` (0.6 for 40% sparsity): a weight op's
  dense FLOPs and a masked weight's parameters are scaled by it. It does
  not depend on where the zeros are, so a config without a checkpoint gets
  the paper's figure; without masks it equals the dense count.
* **actual** (``params_sparse`` / ``flops_sparse``): only the non-zero
  weights, i.e. the zeros this model really has. Parameters: dense count
  minus the exact zeros of every 2-D / 4-D weight (biases, norms and layer
  scales always count); FLOPs: every weight op (conv, linear, matrix
  product, and the Triton large-kernel ops) scaled by the density
  ``nnz / numel`` of the weight it uses. Without a checkpoint these are the
  config's random masks (ERK by default, which keeps the FLOP-heavy early
  stages denser, hence more FLOPs than the paper's convention).

In both, all other ops count dense. A sparse model's masks are applied to
its weights (random masks by ``init_weights``, a checkpoint's by loading),
so zeros and masks agree; weights without masks (heads) are dense in
practice.

Which weight an op uses is taken from the module that runs it: each
``nn.Conv2d`` / ``nn.Linear`` (and each branch conv of a
:class:`~slak_mm.network.LargeKernelConv` on the torch path) is a leaf module
owning its weight. Two cases run their convs in the parent module and are
split by the weights' sizes, which is exact because a depthwise "same"
conv's MACs are ``N * H * W * weight.numel()``: a deploy-form
``LargeKernelConv``'s ``MergedLargeKernel`` (``weight_v`` + ``weight_h``) and
the one Triton launch of a training-form ``LargeKernelConv`` (its branch conv
weights).
"""
import logging
from collections import Counter
from contextlib import contextmanager
from fractions import Fraction
from functools import partial
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.analysis import FlopAnalyzer, parameter_count
from mmengine.analysis.jit_handles import get_shape
from mmengine.logging import MMLogger
from mmengine.runner import load_checkpoint

from slak_mm.checkpoint import (extract_state_dict, load_checkpoint_file,
                                load_pretrained_backbone)
from slak_mm.config import replace_sync_bn
from slak_mm.models import SLaK, build_model
from slak_mm.network import LargeKernelConv
from slak_mm.sparse import is_sparse_weight, masked_weights
from .inputs import det_data_samples

__all__ = [
    'COUNT_KEYS', 'COUNT_LABELS', 'DEFAULT_SHAPE', 'FLOP_CONVENTION',
    'TRITON_OPS', 'WEIGHT_OPS', 'build_for_analysis', 'count_complexity',
    'depthwise_flop_jit', 'flop_analyzer', 'format_report', 'get_flops',
    'op_weights', 'slak_groups'
]

#: What the printed FLOPs are.
FLOP_CONVENTION = ('FLOPs = multiply-adds (MACs): mmengine/fvcore count one '
                   'multiply-add as one FLOP, as the SLaK and ConvNeXt '
                   'papers report them')
#: What each count of a result is (also written to the JSON).
COUNT_LABELS = {
    'flops':
    'dense',
    'flops_paper':
    'sparse (paper: uniform density): every masked weight '
    'at density 1 - sparsity, dense multiply-adds scaled per layer by it',
    'flops_sparse':
    'sparse (actual zeros): only the multiply-adds of the '
    'non-zero weights this model has (random masks without a checkpoint)',
}
#: Counts per row of a result (total, groups).
COUNT_KEYS = ('params', 'params_paper', 'params_sparse', 'flops',
              'flops_paper', 'flops_sparse')
#: jit graph kinds of slak_mm's Triton autograd functions
#: (``prim::PythonOp.<Function class name>``).
TRITON_OPS = ('prim::PythonOp._MultiDepthwiseConv',
              'prim::PythonOp._CrossDepthwiseConv')
#: Operator names (as :meth:`FlopAnalyzer.by_operator` gives them) whose
#: FLOPs are products with a weight, hence scaled by its density.
WEIGHT_OPS = frozenset(
    ('conv', 'linear', 'addmm', 'matmul', 'mm', 'bmm', 'einsum'))
#: Default input side (H = W): 224 for a backbone (ImageNet, the papers'
#: backbone tables), 512 for a whole model.
DEFAULT_SHAPE = {'backbone': (224, 224), 'model': (512, 512)}

Number = Union[int, float]


def depthwise_flop_jit(inputs: List[Any], outputs: List[Any]) -> Counter:
    """FLOP handle of the Triton depthwise ops (``TRITON_OPS``).

    Both are stride-1 "same" depthwise convs: input ``x`` (N, C, H, W), then
    kernels (C, 1, kh, kw) (and a 1-D bias, not counted, as mmengine counts
    no conv bias). MACs: ``N * H * W * sum(kernel.numel())``, i.e.
    ``N * C * H * W * sum(kh * kw)``, the same as mmengine counts the
    ``F.conv2d`` calls of the torch path.

    Args:
        inputs (list[torch._C.Value]): The op's inputs.
        outputs (list[torch._C.Value]): The op's outputs (unused: the output
            of the multi-kernel op is a tuple, and its maps have the input's
            size).

    Returns:
        Counter: ``{'conv': MACs}``, under the torch path's op name.
    """
    n, _, h, w = get_shape(inputs[0])
    macs = 0
    for value in inputs[1:]:
        shape = get_shape(value)
        if shape is not None and len(shape) == 4:
            c, cin, kh, kw = shape
            macs += n * h * w * c * cin * kh * kw
    return Counter({'conv': macs})


def flop_analyzer(model: nn.Module, inputs: Union[torch.Tensor,
                                                  Tuple]) -> FlopAnalyzer:
    """mmengine's ``FlopAnalyzer`` with the Triton op handles, quiet.

    Args:
        model (nn.Module): The model (put it in eval mode first: BatchNorm
            counts differently in training mode).
        inputs (Tensor | tuple): Inputs of ``model.forward``.

    Returns:
        FlopAnalyzer: Not yet run (it traces on the first query).
    """
    analyzer = FlopAnalyzer(model, inputs)
    analyzer.set_op_handle(**{op: depthwise_flop_jit for op in TRITON_OPS})
    # unsupported ops are reported by count_complexity; uncalled modules
    # include the branch convs on the Triton path, which is expected
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    return analyzer


def op_weights(module: nn.Module) -> List[torch.Tensor]:
    """The weights used by the weight ops ``module`` runs itself (not in
    its children).

    Its own 2-D / 4-D parameters; for a training-form ``LargeKernelConv``
    also its branch conv weights, which the Triton path convolves in one
    launch from the parent module.

    Args:
        module (nn.Module): Any module.

    Returns:
        list[Tensor]: The weights (maybe empty).
    """
    weights = [
        p for p in module.parameters(recurse=False) if is_sparse_weight(p)
    ]
    if isinstance(module, LargeKernelConv) and not module.deploy:
        weights += [branch.conv.weight for branch in module.branches()]
    return weights


def _nnz(weights: Sequence[torch.Tensor]) -> Tuple[int, int]:
    return (sum(int(w.count_nonzero())
                for w in weights), sum(w.numel() for w in weights))


def _exact(value: Fraction) -> Number:
    return int(value) if value.denominator == 1 else float(value)


def _in_group(name: str, prefixes: Sequence[str]) -> bool:
    return any(p == '' or name == p or name.startswith(p + '.')
               for p in prefixes)


def _minus(total: Number, removed: Dict[str, Fraction],
           prefixes: Sequence[str]) -> Number:
    """``total`` less what ``removed`` holds for the names in ``prefixes``."""
    # Fraction(total): mmengine's totals may be floats holding integers
    return _exact(
        Fraction(total) - sum((r for k, r in removed.items()
                               if _in_group(k, prefixes)), Fraction(0)))


@torch.no_grad()
def count_complexity(model: nn.Module,
                     inputs: Union[torch.Tensor, Tuple],
                     groups: Optional[Dict[str, Sequence[str]]] = None,
                     uniform_density: Optional[float] = None) -> dict:
    """Dense and sparse parameters and FLOPs of ``model`` on ``inputs``.

    Args:
        model (nn.Module): The model, in eval mode, its forward taking
            ``inputs``.
        inputs (Tensor | tuple): Forward inputs (batch 1 for per-image
            counts).
        groups (dict[str, Sequence[str]], optional): Report rows: a label to
            the module names (prefixes) it sums, e.g. ``{'stage0':
            ['downsample_layers.0', 'stages.0', 'norm0']}``.
        uniform_density (float, optional): Density of every masked weight
            in the paper-convention counts (``1 - sparsity``). None: the
            paper counts equal the dense ones.

    Returns:
        dict: ``params``, ``params_paper``, ``params_sparse``, ``flops``,
        ``flops_paper``, ``flops_sparse`` (MACs; int where exact; see the
        module doc and :data:`COUNT_LABELS`), ``paper_density`` (the
        uniform density, None without one or without masked weights),
        ``groups`` (the six counts per label), ``by_operator`` (dense FLOPs
        per op), ``not_counted`` (ops without a handle: count),
        ``dense_weight_flops`` (weight-op FLOPs of modules owning no
        weight, counted dense).
    """
    analyzer = flop_analyzer(model, inputs)
    by_module = analyzer.by_module_and_operator()
    masked = {name: w for name, w, _ in masked_weights(model)}
    masked_ids = {id(w) for w in masked.values()}
    # str(): 0.6 as 3/5, not the float's binary fraction
    density = (None if uniform_density is None or not masked else Fraction(
        str(uniform_density)))

    # FLOPs removed by zero weights (actual) and by the uniform density
    # (paper), per module (its own ops only)
    removed: Dict[str, Fraction] = {}
    removed_paper: Dict[str, Fraction] = {}
    dense_weight_flops = 0
    for name, module in model.named_modules():
        name = analyzer.canonical_module_name(name)
        own = Counter(by_module.get(name, {}))
        for child, _ in module.named_children():
            child = analyzer.canonical_module_name(
                f'{name}.{child}' if name else child)
            own.subtract(by_module.get(child, {}))
        flops = sum(v for op, v in own.items() if op in WEIGHT_OPS)
        if flops <= 0:
            continue
        weights = op_weights(module)
        if not weights:  # e.g. a product of activations
            dense_weight_flops += flops
            continue
        nnz, numel = _nnz(weights)
        removed[name] = flops - Fraction(flops * nnz, numel)
        if density is not None:
            kept = sum(w.numel() * (density if id(w) in masked_ids else 1)
                       for w in weights)
            removed_paper[name] = flops - Fraction(flops * kept) / numel

    zeros = {
        name: Fraction(p.numel() - int(p.count_nonzero()))
        for name, p in model.named_parameters() if is_sparse_weight(p)
    }
    zeros_paper = {} if density is None else {
        name: w.numel() * (1 - density)
        for name, w in masked.items()
    }
    params = parameter_count(model)

    def summary(prefixes: Sequence[str]) -> dict:
        dense = sum(analyzer.total(p) for p in prefixes)
        n_params = sum(params.get(p, 0) for p in prefixes)
        return dict(
            params=n_params,
            params_paper=_minus(n_params, zeros_paper, prefixes),
            params_sparse=_minus(n_params, zeros, prefixes),
            flops=dense,
            flops_paper=_minus(dense, removed_paper, prefixes),
            flops_sparse=_minus(dense, removed, prefixes))

    result = summary([''])
    result['paper_density'] = None if density is None else float(density)
    result['groups'] = {
        label: summary(prefixes)
        for label, prefixes in (groups or {}).items()
    }
    result['by_operator'] = dict(analyzer.by_operator())
    result['not_counted'] = dict(analyzer.unsupported_ops())
    result['dense_weight_flops'] = dense_weight_flops
    return result


def slak_groups(model: nn.Module) -> Dict[str, List[str]]:
    """Per-stage rows for every SLaK backbone in ``model``.

    Stage ``i`` is ``downsample_layers.i`` (the stem for stage 0), the
    blocks ``stages.i`` and the output norm ``norm{i}``.

    Args:
        model (nn.Module): A SLaK backbone or a model containing one.

    Returns:
        dict[str, list[str]]: ``{'stage0': [...], ...}``, labels prefixed
        with the backbone's name inside a model (``backbone.stage0``).
    """
    groups = {}
    for name, module in model.named_modules():
        if not isinstance(module, SLaK):
            continue
        prefix = name + '.' if name else ''
        for i in range(module.num_stages):
            groups[f'{prefix}stage{i}'] = [
                f'{prefix}{part}' for part in (f'downsample_layers.{i}',
                                               f'stages.{i}', f'norm{i}')
                if hasattr(module,
                           part.split('.')[0])
            ]
    return groups


# ----------------------------------------------------------------- configs
def _backbone(model: nn.Module) -> nn.Module:
    return model if isinstance(model, SLaK) else model.backbone


def _weights_note(model: nn.Module, checkpoint: Optional[str]) -> str:
    if checkpoint:
        return f'checkpoint {checkpoint}'
    backbone = _backbone(model)
    note = 'random initialisation (init_weights), no checkpoint'
    if getattr(backbone, 'sparse', False):
        note += (f'; sparse=True: the config\'s RANDOM masks '
                 f'({backbone.sparse_init}, sparsity {backbone.sparsity}), '
                 f'not a trained model\'s zeros (pass --checkpoint)')
    if getattr(backbone, 'deploy', False):
        note += ('; deploy=True without weights: the merged kernels are '
                 'zeros')
    return note


def _load(model: nn.Module, checkpoint: str, backbone_only: bool) -> None:
    keys = extract_state_dict(load_checkpoint_file(checkpoint)).keys()
    whole = any(k.startswith('backbone.')
                for k in keys) and any(not k.startswith('backbone.')
                                       for k in keys)
    if whole and not backbone_only:
        load_checkpoint(
            model,
            checkpoint,
            map_location='cpu',
            strict=True,
            logger='current')
    else:  # official ImageNet file, or the backbone of an mm checkpoint
        load_pretrained_backbone(_backbone(model), checkpoint)


def build_for_analysis(cfg,
                       backbone_only: bool = False,
                       checkpoint: Optional[str] = None,
                       deploy: bool = False) -> Tuple[nn.Module, str]:
    """Build the model of a config for counting, in eval mode on the CPU.

    ``SyncBN`` becomes ``BN`` and the backbone's ``init_cfg`` is dropped
    (no pretrained file is read); ``init_weights()`` then draws the
    config's random masks when ``sparse=True``. A segmentor's auxiliary
    head (training only, not run by the ``tensor`` forward) is removed, as
    mmseg's ``get_flops.py`` does.

    Args:
        cfg (Config): Loaded config (changed in place).
        backbone_only (bool): Return ``model.backbone``.
        checkpoint (str, optional): Weights: an mm checkpoint of the whole
            model (mmengine ``load_checkpoint``, strict) or an official /
            backbone checkpoint (``load_pretrained_backbone``).
        deploy (bool): Merge the large kernels (``switch_to_deploy``) after
            loading.

    Returns:
        tuple[nn.Module, str]: The model and a note on its weights.
    """
    replace_sync_bn(cfg)
    cfg.model.backbone.pop('init_cfg', None)
    model = build_model(cfg)
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)  # init_weights logs every parameter
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)
    if checkpoint:
        _load(model, checkpoint, backbone_only)
    note = _weights_note(model, checkpoint)
    model.eval()
    if deploy:
        _backbone(model).switch_to_deploy()
        note += '; large kernels merged (switch_to_deploy)'
    if backbone_only:
        return _backbone(model), note
    if getattr(model, 'auxiliary_head', None) is not None:
        model.auxiliary_head = None
        note += '; auxiliary head excluded (training only)'
    return model, note


@contextmanager
def _tensor_forward(model: nn.Module, **kwargs) -> Iterator[nn.Module]:
    """Make ``model(inputs)`` run ``model.forward(inputs, **kwargs)``
    (data samples and ``mode='tensor'``), as mmdet's get_flops.py does; the
    module names stay those of the model."""
    model.forward = partial(type(model).forward, model, **kwargs)
    try:
        yield model
    finally:
        del model.forward


def _add_rest_row(result: dict, top: Sequence[str]) -> None:
    """Add a row for what the top-level rows miss: ops the tracer puts in
    the model's own scope (e.g. some of UPerHead's resizes)."""
    rest = {
        k: result[k] - sum(result['groups'][name][k] for name in top)
        for k in COUNT_KEYS
    }
    if any(abs(v) > 1e-6 * max(1, result['flops']) for v in rest.values()):
        result['groups']['(model scope)'] = rest


def get_flops(cfg,
              shape: Optional[Sequence[int]] = None,
              backbone_only: bool = False,
              checkpoint: Optional[str] = None,
              deploy: bool = False,
              device: str = 'cpu') -> dict:
    """Dense and sparse parameters and FLOPs of a config's model.

    Args:
        cfg (Config): Loaded config (changed in place).
        shape (Sequence[int], optional): Input ``(H, W)`` or ``(S,)``;
            default 224 x 224 for the backbone, 512 x 512 for a model.
            Detector inputs are padded up to the data preprocessor's
            ``pad_size_divisor``.
        backbone_only (bool): Count the backbone instead of the model.
        checkpoint (str, optional): Weights to count the zeros of (see
            :func:`build_for_analysis`); without it the counts use random
            weights and, for ``sparse=True``, the config's random masks.
        deploy (bool): Count the merged (deploy) large kernels.
        device (str): Where to trace; ``cuda`` traces the Triton path.

    Returns:
        dict: :func:`count_complexity`'s result (the paper-convention
        counts at the backbone's ``1 - sparsity`` when ``sparse=True``)
        plus ``part`` (``backbone`` / ``model``), ``model_type``,
        ``input_shape``, ``device``, ``weights`` (how they were obtained),
        ``flop_convention`` and ``count_labels``.
    """
    part = 'backbone' if backbone_only else 'model'
    shape = tuple(shape or DEFAULT_SHAPE[part])
    shape = (shape * 2)[:2]
    model, note = build_for_analysis(cfg, backbone_only, checkpoint, deploy)
    model = model.to(device)
    is_det = not backbone_only and cfg.get('default_scope') == 'mmdet'
    if is_det:
        divisor = cfg.model.get('data_preprocessor',
                                {}).get('pad_size_divisor', 1)
        shape = tuple(-(-s // divisor) * divisor for s in shape)
    x = torch.randn(1, 3, *shape, device=device)
    backbone = _backbone(model)
    # the paper's convention: its sparsity on every weight it masks
    density = 1. - backbone.sparsity if getattr(backbone, 'sparse',
                                                False) else None
    if backbone_only:
        result = count_complexity(model, x, slak_groups(model), density)
    else:
        groups, stages = {}, slak_groups(model)
        for name, child in model.named_children():
            if any(True for _ in child.parameters()):
                groups[name] = [name]
                groups.update((k, v) for k, v in stages.items()
                              if k.startswith(name + '.'))
        kwargs = dict(mode='tensor')
        kwargs['data_samples'] = det_data_samples(shape) if is_det else None
        if is_det:
            note += ('; the RoI head\'s FLOPs depend on how many '
                     'proposals the RPN keeps for this input (at most '
                     'test_cfg.rpn.max_per_img)')
        with _tensor_forward(model, **kwargs):
            result = count_complexity(model, x, groups, density)
        _add_rest_row(result, [name for name in groups if '.' not in name])
    result.update(
        part=part,
        model_type=type(model).__name__,
        input_shape=list(x.shape),
        device=str(device),
        weights=note,
        flop_convention=FLOP_CONVENTION,
        count_labels=COUNT_LABELS)
    return result


# -------------------------------------------------------------- formatting
def _fmt(value: Number, unit: float, digits: int = 3) -> str:
    return f'{value / unit:.{digits}f}'


def format_report(result: dict) -> str:
    """A table of :func:`get_flops`'s result: parameters (M) and FLOPs
    (G MACs), dense, sparse in the paper's convention and sparse with the
    model's actual zeros, total and per group, under a headline with the
    paper-convention figures.

    Args:
        result (dict): From :func:`get_flops` (or :func:`count_complexity`
            with the keys it adds).

    Returns:
        str: The report, several lines.
    """
    header = ('', 'params(M)', 'paper(M)', 'actual(M)', 'GFLOPs', 'paper(G)',
              'actual(G)')
    units = (1e6, 1e6, 1e6, 1e9, 1e9, 1e9)
    rows = [header]
    for label, stats in [('total', result)] + list(
            result.get('groups', {}).items()):
        rows.append((label, ) + tuple(
            _fmt(stats[k], u) for k, u in zip(COUNT_KEYS, units)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    table = [
        '  '.join(
            cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i])
            for i, cell in enumerate(row)) for row in rows
    ]
    density = result.get('paper_density')
    paper = ('no masked weights (sparse=False): paper = dense'
             if density is None else f'masked weights at density {density:g}')
    lines = [
        f'{result.get("model_type", "model")} ({result.get("part", "")}), '
        f'input {"x".join(map(str, result.get("input_shape", [])))} on '
        f'{result.get("device", "?")}',
        f'weights: {result.get("weights", "as given")}',
        FLOP_CONVENTION + '.',
        f'paper convention ({paper}): '
        f'{_fmt(result["params_paper"], 1e6, 1)}M params, '
        f'{_fmt(result["flops_paper"], 1e9, 2)} GFLOPs; actual zeros: '
        f'{_fmt(result["params_sparse"], 1e6, 1)}M, '
        f'{_fmt(result["flops_sparse"], 1e9, 2)} G; dense: '
        f'{_fmt(result["params"], 1e6, 1)}M, '
        f'{_fmt(result["flops"], 1e9, 2)} G',
        '',
    ] + table + [
        '',
        f'paper = {COUNT_LABELS["flops_paper"]};',
        f'actual = {COUNT_LABELS["flops_sparse"]}.',
    ]
    not_counted = result.get('not_counted')
    if not_counted:
        lines += [
            '', 'not counted (no FLOP handle, e.g. element-wise): ' +
            ', '.join(f'{op} x{n}' for op, n in sorted(not_counted.items()))
        ]
    if result.get('dense_weight_flops'):
        lines.append(f'weight-op FLOPs of modules owning no weight, counted '
                     f'dense: {result["dense_weight_flops"]}')
    return '\n'.join(lines)
