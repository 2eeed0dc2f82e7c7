"""Timing of a config's backbone or whole model in several variants, all in
one run so their ratios mean something (``tools/benchmark.py model``).

Variants (the first is the baseline of the ratios):

- ``default``: the model as configured (``conv_impl='auto'``: the
  measured choice per stage, reported as ``auto_impl``; channels-last
  convs on the CPU);
- ``torch``, ``fft``, ``triton``: every large kernel through that
  implementation (``triton`` only where it runs: CUDA);
- ``nchw``: CPU convs on NCHW tensors (the ops' ``cpu_layout`` setting,
  ``slak_mm.ops.use(cpu_layout='nchw')``);
- ``deploy``: the merged inference form (``switch_to_deploy``), forward
  only;
- ``timm:NAME``: a timm model's feature extractor of the same input (e.g.
  ``timm:convnext_tiny``), backbone only.
"""
import contextlib
import copy
import re
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.config import Config

from slak_mm import ops
from slak_mm.analysis.inputs import det_data_samples
from slak_mm.config import replace_sync_bn
from slak_mm.models import SLaK, build_model
from slak_mm.network import LargeKernelConv
from .timing import time_medians

__all__ = ['IMPL_VARIANTS', 'VARIANTS', 'benchmark_model', 'stage_impls']

#: Variants that force one conv implementation.
IMPL_VARIANTS = ('torch', 'fft', 'triton')
VARIANTS = ('default', ) + IMPL_VARIANTS + ('nchw', 'deploy')


def _variant(
        model: nn.Module, name: str,
        backward: bool) -> Tuple[nn.Module, contextlib.AbstractContextManager]:
    """The module to time and the context to time it in."""
    if name == 'default':
        return model, contextlib.nullcontext()
    if name == 'nchw':
        return model, ops.use(cpu_layout='nchw')  # entered at every step
    if name in IMPL_VARIANTS:
        variant = copy.deepcopy(model)
        for m in variant.modules():
            if isinstance(m, LargeKernelConv):
                m.impl = name
        return variant, contextlib.nullcontext()
    if name == 'deploy':
        if backward:
            raise ValueError('the deploy variant is for inference: time it '
                             'without --backward')
        variant = copy.deepcopy(model).eval()
        for m in variant.modules():
            if isinstance(m, SLaK):
                m.switch_to_deploy()
        return variant, contextlib.nullcontext()
    if name.startswith('timm:'):
        import timm
        return timm.create_model(
            name[len('timm:'):], pretrained=False,
            features_only=True), contextlib.nullcontext()
    raise ValueError(f'Unknown variant {name!r}; choose from {VARIANTS} or '
                     f'timm:MODEL_NAME')


def stage_impls(model: nn.Module) -> Dict[str, str]:
    """What each stage's large kernels ran with last (``auto``'s choice).

    Args:
        model (nn.Module): A model holding SLaK blocks.

    Returns:
        dict: Stage index (str) -> implementation name (names joined by
        ``+`` if the stage's blocks differ).
    """
    found = {}
    for name, m in model.named_modules():
        match = re.search(r'stages\.(\d+)\.', name)
        if isinstance(m, LargeKernelConv) and match and m.last_impl:
            found.setdefault(match.group(1), set()).add(m.last_impl)
    return {k: '+'.join(sorted(v)) for k, v in sorted(found.items())}


def _tensors(out) -> List[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in _tensors(o)]
    return []


def benchmark_model(cfg: Config,
                    variants: Sequence[str] = ('default', ),
                    whole_model: bool = False,
                    backward: bool = False,
                    batch: int = 1,
                    shape: Tuple[int, int] = (512, 512),
                    device: Optional[str] = None,
                    amp: Optional[str] = None,
                    min_run_time: float = 2.0,
                    rounds: int = 3) -> List[dict]:
    """Time the backbone (or whole model) of ``cfg`` in each variant.

    Args:
        cfg (Config): A slak_mm config (pretrained weights are not read).
        variants (Sequence[str]): See the module doc; ratios are against the
            first.
        whole_model (bool): Time the whole segmentor/detector (``tensor``
            mode) instead of the backbone.
        backward (bool): Forward + backward of the sum of the outputs'
            means (train mode) instead of forward (eval mode, no grad).
        batch (int): Batch size.
        shape (tuple[int, int]): Input height and width.
        device (str, optional): Default: CUDA if available, else CPU.
        amp (str, optional): ``'bf16'`` or ``'fp16'`` autocast.
        min_run_time (float): Seconds per timed block (a block is at least
            one step).
        rounds (int): Interleaved rounds; the median is reported.

    Returns:
        list[dict]: Per variant: ``variant``, ``ms``, ``ratio_to_first``
        (time / first variant's time), ``auto_impl`` (stage ->
        implementation its large kernels ran with) and the settings.
    """
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    replace_sync_bn(cfg)
    cfg.model.backbone.pop('init_cfg', None)
    model = build_model(cfg).to(device).train(backward)
    if not whole_model:
        model = model.backbone
    samples = (
        det_data_samples(shape, batch)
        if whole_model and cfg.get('default_scope') == 'mmdet' else None)
    x = torch.randn(batch, 3, *shape, device=device)
    autocast = (
        torch.autocast(
            device,
            dtype=getattr(torch, {
                'bf16': 'bfloat16',
                'fp16': 'float16'
            }[amp])) if amp else contextlib.nullcontext())

    steps, modules = {}, {}
    for name in variants:
        module, context = _variant(model, name, backward)
        modules[name] = module = module.to(device).train(backward)

        def step(module=module, context=context):
            with context, autocast:
                out = (
                    module(x, samples, mode='tensor')
                    if whole_model else module(x))
                if backward:
                    sum(t.float().mean() for t in _tensors(out)).backward()

        steps[name] = step
    with torch.set_grad_enabled(backward):
        # interleaved rounds: other processes' load hits all variants alike
        seconds = time_medians(steps, rounds, min_run_time)
    results = []
    for name in variants:
        results.append(
            dict(
                variant=name,
                ms=seconds[name] * 1e3,
                auto_impl=stage_impls(modules[name]),
                part='model' if whole_model else 'backbone',
                mode='fwd+bwd' if backward else 'fwd',
                batch=batch,
                shape=list(shape),
                device=device,
                amp=amp))
    for result in results:
        result['ratio_to_first'] = result['ms'] / results[0]['ms']
    return results
