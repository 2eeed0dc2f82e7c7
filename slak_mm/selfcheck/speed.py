"""How fast: every implementation and ``auto`` side by side per SLaK-T
stage (:func:`slak_mm.benchmark.op.benchmark_stage`), and a SLaK-T
training step (:class:`slak_mm.network.SLaK`, the network every SLaK of
slak_mm is) against timm's ConvNeXt-T in the same run.
"""
import contextlib
from typing import List

import timm
import torch

from slak_mm.benchmark.op import benchmark_stage, slak_stage_shapes
from slak_mm.benchmark.timing import time_medians
from slak_mm.network import SLaK
from slak_mm.ops import clear_memory

__all__ = ['backbone_step', 'op_timings']


def op_timings(quick: bool, device: torch.device) -> List[dict]:
    """Time SLaK's three branch convs with every implementation and
    ``auto``, forward and forward + backward.

    Full: the four SLaK-T stages at 512x512, batch 8, fp32 and bf16 (the
    figures of ``docs/benchmarks.md``). Quick: one small shape (16
    channels, 64x64, kernel 51, batch 1, fp32), one round.

    Args:
        quick (bool): The CPU / CI set.
        device (torch.device): Where to run.

    Returns:
        list[dict]: :func:`slak_mm.benchmark.op.benchmark_stage`'s results.
    """
    if quick:
        shapes = [dict(channels=16, height=64, width=64, kernel=51)]
        runs = dict(batch=1, rounds=1, min_round_time=1e-3)
        dtypes = ('fp32', )
    else:
        shapes = slak_stage_shapes(512)
        runs = dict(batch=8, rounds=3, min_round_time=0.1)
        dtypes = ('fp32', 'bf16')
    results = []
    for dtype in dtypes:
        for backward in (False, True):
            for shape in shapes:
                clear_memory()  # a fresh count of tuned keys per call
                results.append(
                    benchmark_stage(
                        **shape,
                        **runs,
                        dtype=dtype,
                        backward=backward,
                        device=device.type))
    return results


def backbone_step(quick: bool, device: torch.device) -> dict:
    """Time a training step (forward, backward of the stage maps' means)
    of SLaK (``auto`` convs, :class:`slak_mm.network.SLaK`) and of timm's
    ConvNeXt (``features_only``), interleaved in one run; bf16 autocast on
    CUDA, fp32 on the CPU.

    Full: SLaK-T against ConvNeXt-T, batch 8 at 512x512 on CUDA (batch 1
    on the CPU). Quick: both at ConvNeXt-atto's widths and depths (SLaK's
    kernels), batch 1 at 64x64, one round: only that it runs means
    something there.

    Args:
        quick (bool): The CPU / CI set.
        device (torch.device): Where to run.

    Returns:
        dict: ``models`` (what was compared), ``batch``, ``size``, ``amp``,
        ``ms`` (``slak`` / ``convnext`` -> median time), ``ratio`` (SLaK /
        ConvNeXt) and ``auto_impl`` (stage -> the implementation ``auto``
        ran SLaK's large kernels with).
    """
    cuda = device.type == 'cuda'
    if quick:
        names = ('SLaK at ConvNeXt-atto widths', 'convnext_atto')
        arch = dict(
            depths=(2, 2, 6, 2), dims=(40, 80, 160, 320), width_factor=1.0)
        batch, size = 1, 64
    else:
        names = ('SLaK-T', 'convnext_tiny')
        arch = 'tiny'
        batch, size = 8 if cuda else 1, 512
    slak = SLaK(arch, num_classes=0, global_pool='').to(device).train()
    convnext = timm.create_model(
        names[1], pretrained=False, features_only=True).to(device).train()
    amp = torch.bfloat16 if cuda else None
    x = torch.randn(batch, 3, size, size, device=device)

    def step(stage_maps):

        def run():
            with (torch.autocast(device.type, dtype=amp)
                  if amp else contextlib.nullcontext()):
                outs = stage_maps(x)
            sum(o.float().mean() for o in outs).backward()

        return run

    clear_memory()
    seconds = time_medians(
        dict(
            slak=step(lambda x: slak.forward_intermediates(
                x, intermediates_only=True)),
            convnext=step(convnext)),
        rounds=1 if quick else 3,
        min_round_time=1e-3 if quick else 0.5)
    return dict(
        models=dict(slak=names[0], convnext=f'timm {names[1]}'),
        batch=batch,
        size=size,
        amp=None if amp is None else str(amp),
        ms={
            name: s * 1e3
            for name, s in seconds.items()
        },
        ratio=seconds['slak'] / seconds['convnext'],
        auto_impl={
            str(i): stage[0].large_kernel.last_impl
            for i, stage in enumerate(slak.stages)
        })
