"""ONNX export of a config's model in deploy form (``tools/export_onnx.py``).

The model is loaded and re-parameterised as by ``tools/deploy.py``
(:func:`slak_mm.deploy.load_deploy_model`), then exported with
``torch.onnx.export(dynamo=True)`` with dynamic batch, height and width:

- ``backbone_only=True``: the SLaK backbone, one output per ``out_indices``
  stage (``feat0`` ...);
- a segmentor (mmseg ``EncoderDecoder``): the decode head's logits resized
  to the input size (``seg_logits``, what ``predict`` resizes before its
  argmax);
- a detector: the backbone and neck features (``feat0`` ...). mmdet 3's
  RPN / RoI heads do not export with ``torch.onnx``: its box coder's ONNX
  branch imports ``mmdet.core.export`` (an mmdet 2 module), and NMS /
  RoIAlign need mmdeploy's rewrites and custom ops.

During the export every large-kernel conv runs ``F.conv2d`` (standard ONNX
``Conv``), whatever ``conv_impl`` / the ops' ``impl`` setting say, and every
``nn.AdaptiveAvgPool2d`` (mmseg's PPM) is replaced by an equivalent that
stays correct for every input size (see :class:`ExportAdaptiveAvgPool2d`).
"""
import contextlib
import os.path as osp
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config

from slak_mm import ops
from slak_mm.fileio import atomic_write_bytes, check_output_path
from slak_mm.models import SLaK
from slak_mm.network import LargeKernelConv
from .reparam import load_deploy_model

__all__ = [
    'DETECTOR_NOTE', 'MIN_SIDE', 'ExportAdaptiveAvgPool2d', 'FeatureExtractor',
    'SegmentorLogits', 'export_friendly', 'export_module', 'export_onnx',
    'plain_torch_convs', 'verify_onnx'
]

#: Smallest input side SLaK accepts (four downsamplings, stride 32).
MIN_SIDE = 32
#: Why a whole detector is not exported; printed by the tool.
DETECTOR_NOTE = (
    'Exported the detector\'s backbone + neck features only: mmdet 3\'s '
    'RPN/RoI heads do not export with torch.onnx (the box coder\'s ONNX '
    'branch imports mmdet.core.export, removed in mmdet 3; NMS and RoIAlign '
    'need mmdeploy\'s rewrites and custom ops). See docs/deploy.md for '
    'mmdeploy.')


class ExportAdaptiveAvgPool2d(nn.Module):
    """``nn.AdaptiveAvgPool2d`` as two matrix products, exportable with a
    dynamic input size.

    torch.onnx lowers adaptive pooling for the example input's size: the
    graph is then wrong for inputs whose size divides differently (measured:
    mmseg's PPM off by 3.4 at another size). Here row ``i`` of the pooling
    matrix averages input rows ``floor(i * H / k)`` to
    ``ceil((i + 1) * H / k) - 1``, the bins torch uses, built from the
    input's shape at run time.

    Args:
        output_size (int | tuple[int, int]): Output height and width.
    """

    def __init__(self, output_size):
        super().__init__()
        size = output_size
        if not isinstance(size, (tuple, list)):
            size = (size, size)
        if any(s is None for s in size):
            raise ValueError('ExportAdaptiveAvgPool2d needs a fixed output '
                             f'size, got {output_size}')
        self.output_size = tuple(int(s) for s in size)

    @staticmethod
    def _pool_matrix(length: int, bins: int, like: torch.Tensor):
        i = torch.arange(bins, device=like.device)
        start = (i * length) // bins
        end = ((i + 1) * length + bins - 1) // bins
        j = torch.arange(length, device=like.device)
        inside = ((j[None] >= start[:, None]) & (j[None] < end[:, None])).to(
            like.dtype)
        return inside / inside.sum(1, keepdim=True)  # (bins, length)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = self._pool_matrix(x.shape[-2], self.output_size[0], x)
        cols = self._pool_matrix(x.shape[-1], self.output_size[1], x)
        return rows @ x @ cols.t()


@contextlib.contextmanager
def plain_torch_convs(model: nn.Module) -> Iterator[nn.Module]:
    """Within the block, every :class:`LargeKernelConv` of ``model`` runs
    ``F.conv2d`` (``impl='torch'``, also through the ops' ``impl`` setting,
    :func:`slak_mm.ops.use`, for convs called without an ``impl``);
    restored afterwards.

    Args:
        model (nn.Module): Changed in place for the duration of the block.

    Yields:
        nn.Module: ``model``.
    """
    convs = [(m, m.impl) for m in model.modules()
             if isinstance(m, LargeKernelConv)]
    try:
        with ops.use(impl='torch'):
            for conv, _ in convs:
                conv.impl = 'torch'
            yield model
    finally:
        for conv, impl in convs:
            conv.impl = impl


@contextlib.contextmanager
def export_friendly(model: nn.Module) -> Iterator[nn.Module]:
    """Within the block, ``model`` runs only standard ONNX ops: plain
    convs (:func:`plain_torch_convs`) and every ``nn.AdaptiveAvgPool2d``
    replaced by an :class:`ExportAdaptiveAvgPool2d`; restored afterwards.

    Args:
        model (nn.Module): Changed in place for the duration of the block.

    Yields:
        nn.Module: ``model``.
    """
    pools = [(parent, name, child) for parent in model.modules()
             for name, child in parent.named_children()
             if isinstance(child, nn.AdaptiveAvgPool2d)]
    with plain_torch_convs(model):
        try:
            for parent, name, child in pools:
                setattr(parent, name,
                        ExportAdaptiveAvgPool2d(child.output_size))
            yield model
        finally:
            for parent, name, child in pools:
                setattr(parent, name, child)


class SegmentorLogits(nn.Module):
    """An mmseg segmentor as ``images -> logits`` at the input size.

    Args:
        segmentor (nn.Module): An ``EncoderDecoder`` (``_forward`` gives the
            decode head's logits at 1/4 resolution).
    """

    def __init__(self, segmentor: nn.Module):
        super().__init__()
        self.segmentor = segmentor
        self.align_corners = segmentor.decode_head.align_corners

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        logits = self.segmentor._forward(inputs)
        return F.interpolate(
            logits,
            size=inputs.shape[2:],
            mode='bilinear',
            align_corners=self.align_corners)


class FeatureExtractor(nn.Module):
    """``images -> tuple of feature maps`` of a backbone or a detector
    (``extract_feat``: backbone and neck).

    Args:
        model (nn.Module): A SLaK backbone, or a model with
            ``extract_feat``.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, inputs: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        if isinstance(self.model, SLaK):
            return tuple(self.model(inputs))
        return tuple(self.model.extract_feat(inputs))


def export_module(
        model: nn.Module,
        backbone_only: bool = False) -> Tuple[nn.Module, str, Optional[str]]:
    """The module to export for a built model.

    Args:
        model (nn.Module): A segmentor or detector (deploy form, eval).
        backbone_only (bool): Export ``model.backbone`` alone.

    Returns:
        tuple: ``(module, kind, note)``; ``kind`` is ``'backbone'``,
        ``'segmentor'`` or ``'detector'``, ``note`` says what was left out
        (None when the whole model is exported).
    """
    if backbone_only:
        return FeatureExtractor(model.backbone).eval(), 'backbone', None
    if hasattr(model, 'decode_head'):
        return SegmentorLogits(model).eval(), 'segmentor', None
    if hasattr(model, 'extract_feat'):
        return FeatureExtractor(model).eval(), 'detector', DETECTOR_NOTE
    raise TypeError(f'Cannot export a {type(model).__name__}: expected an '
                    f'mmseg segmentor or an mmdet detector.')


def _output_names(module: nn.Module, example: torch.Tensor) -> List[str]:
    with torch.no_grad():
        out = module(example)
    if isinstance(out, torch.Tensor):
        return ['seg_logits']
    return [f'feat{i}' for i in range(len(out))]


def export_onnx(cfg: Config,
                checkpoint: str,
                out: str,
                shape: Sequence[int] = (512, 512),
                backbone_only: bool = False,
                dynamic: bool = True,
                opset: Optional[int] = None) -> dict:
    """Export ``cfg``'s model, loaded from ``checkpoint``, in deploy form.

    Args:
        cfg (Config): Loaded config (segmentation or detection).
        checkpoint (str): Training-form mm checkpoint (or, with
            ``model.backbone.deploy=True`` in ``cfg``, a deploy checkpoint).
        out (str): Output ``.onnx`` path (one file, weights inside).
        shape (Sequence[int]): Example input height and width. Default:
            (512, 512).
        backbone_only (bool): Export the backbone alone. Default: False.
        dynamic (bool): Dynamic batch, height and width (sides >= 32);
            else the graph is fixed to ``(1, 3, *shape)``. Default: True.
        opset (int, optional): ONNX opset; None: the exporter's default.

    Returns:
        dict: ``out``, ``kind``, ``note``, ``inputs`` / ``outputs`` (names),
        ``merged`` (large kernels merged) and ``module`` (the exported
        PyTorch module, to compare against, see :func:`verify_onnx`).

    Raises:
        UnsafeOutputError: ``out`` is the checkpoint or the config, or no
            regular file (refused before the model is loaded).
        DiskFullError: No space for the file (the old one stays whole).
    """
    height, width = (int(s) for s in shape)
    if min(height, width) < MIN_SIDE:
        raise ValueError(f'Input sides must be >= {MIN_SIDE} (SLaK '
                         f'downsamples by 32), got {height}x{width}')
    check_output_path(out, dict(checkpoint=checkpoint, config=cfg.filename))
    model, _, info = load_deploy_model(cfg, checkpoint)
    module, kind, note = export_module(model, backbone_only)
    # batch 2: an example batch of 1 would be specialised (not dynamic)
    example = torch.randn(2 if dynamic else 1, 3, height, width)
    dynamic_shapes = None
    if dynamic:
        dim = torch.export.Dim
        dynamic_shapes = ({
            0: dim('batch'),
            2: dim('height', min=MIN_SIDE),
            3: dim('width', min=MIN_SIDE)
        }, )
    with export_friendly(module):
        names = _output_names(module, example)
        # no file given: the exporter would write it in place (a full disk
        # left a truncated .onnx instead of the old one); the program's
        # bytes, what it would write, go through the atomic writer
        program = torch.onnx.export(
            module, (example, ),
            None,
            input_names=['inputs'],
            output_names=names,
            dynamic_shapes=dynamic_shapes,
            opset_version=opset,
            dynamo=True,
            external_data=False,
            verbose=False)
    atomic_write_bytes(program.model_proto.SerializeToString(), out)
    return dict(
        out=out,
        kind=kind,
        note=note,
        inputs=['inputs'],
        outputs=names,
        merged=info['merged'],
        module=module)


@torch.no_grad()
def verify_onnx(path: str,
                module: nn.Module,
                shapes: Sequence[Sequence[int]],
                batch: int = 1,
                seed: int = 0) -> List[Dict]:
    """Run the ONNX file with onnxruntime (CPU) and ``module`` in PyTorch on
    the same random inputs and compare. PyTorch runs the path the graph was
    traced from: ``F.conv2d`` for the large kernels, the model's own
    adaptive pooling.

    Args:
        path (str): ONNX file from :func:`export_onnx`.
        module (nn.Module): The exported PyTorch module (its own ops, not
            the export replacements).
        shapes (Sequence[Sequence[int]]): Input (height, width) pairs.
        batch (int): Batch size of the inputs. Default: 1.
        seed (int): Seed of the inputs. Default: 0.

    Returns:
        list[dict]: Per shape: ``shape``, ``max_abs_diff`` (over all
        outputs), ``max_abs_ref`` (largest PyTorch output magnitude) and
        ``output_shapes``.
    """
    import onnxruntime as ort  # optional dependency: the `onnx` extra
    if not osp.isfile(path):
        raise FileNotFoundError(f'ONNX file not found: {path!r}')
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    input_name = session.get_inputs()[0].name
    gen = torch.Generator().manual_seed(seed)
    results = []
    for height, width in shapes:
        x = torch.randn(batch, 3, int(height), int(width), generator=gen)
        with plain_torch_convs(module):
            ref = module(x)
        refs = [ref] if isinstance(ref, torch.Tensor) else list(ref)
        outs = session.run(None, {input_name: x.numpy()})
        if len(outs) != len(refs) or any(o.shape != tuple(r.shape)
                                         for o, r in zip(outs, refs)):
            raise RuntimeError(
                f'ONNX outputs {[o.shape for o in outs]} do not match '
                f'PyTorch {[tuple(r.shape) for r in refs]} at input '
                f'{height}x{width}')
        results.append(
            dict(
                shape=(int(height), int(width)),
                max_abs_diff=max(
                    float(np.abs(o - r.numpy()).max())
                    for o, r in zip(outs, refs)),
                max_abs_ref=max(float(r.abs().max()) for r in refs),
                output_shapes=[tuple(o.shape) for o in outs]))
    return results
