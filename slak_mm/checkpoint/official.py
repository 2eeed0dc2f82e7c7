"""Reading official SLaK checkpoints (and mm checkpoints) into the backbone.

The official ImageNet files are ``torch.save`` dicts with ``model`` (the
state dict), ``optimizer``, ``epoch``, ``scaler``, ``args`` (an
``argparse.Namespace``) and sometimes ``model_ema``. They are read
through :func:`~slak_mm.checkpoint.load_checkpoint_safely`
(``weights_only=True`` with an allow-list that includes
``argparse.Namespace``): no arbitrary object is ever unpickled.

At the core is :func:`checkpoint_filter_fn`, a pure function as timm's:
the file's weights mapped onto a SLaK backbone's names, checked against it
and completed with the masks a sparse backbone derives from their zeros;
:func:`load_backbone_weights` loads its result and reports.
"""
import argparse
import logging
import os.path as osp
import re
from collections import OrderedDict
from typing import Dict, List, Tuple

import numpy as np
import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.runner import CheckpointLoader

from slak_mm.fileio import check_output_path
from slak_mm.sparse import (MASK_SUFFIX, apply_masks, group_density, has_masks,
                            masks_to_state_dict, weight_density)
from slak_mm.version import __version__
from .atomic import torch_save_atomic
from .reading import load_checkpoint_safely
from .remote import is_remote

__all__ = [
    'checkpoint_filter_fn', 'convert_official_checkpoint',
    'extract_state_dict', 'load_backbone_weights', 'load_checkpoint_file',
    'load_pretrained_backbone', 'to_backbone_state_dict'
]

#: Key prefixes added by DDP (``module.``) or by mm detectors/segmentors.
_WRAPPER_PREFIXES = ('module.', 'backbone.')
#: The ImageNet classifier's final norm and head: not part of a backbone.
_CLASSIFIER_PREFIXES = ('norm.', 'head.')
#: Keys of the backbone body; all of them must match between file and model.
_BODY_PREFIXES = ('stages.', 'downsample_layers.')
_BLOCK_PATTERN = re.compile(r'stages\.(\d+)\.(\d+)\.')
#: Branch names used by official files before 2022-07-12.
_LEGACY_RENAMES = (('.Decom1.', '.LoRA1.'), ('.Decom2.', '.LoRA2.'))


def load_checkpoint_file(path: str, map_location='cpu') -> dict:
    """Read a SLaK checkpoint file safely
    (:func:`~slak_mm.checkpoint.load_checkpoint_safely`).

    Args:
        path (str): Local path of the checkpoint, or a URL / mmengine
            scheme (``https://...``, ``s3://...``), read by mmengine's
            ``CheckpointLoader`` (which ``import slak_mm`` made safe).
        map_location: Passed to ``torch.load``. Default: ``'cpu'``.

    Returns:
        dict: The unpickled checkpoint.

    Raises:
        FileNotFoundError: If ``path`` does not exist (the message says how
            to point the config at the official file).
        CheckpointError: Unsafe or damaged files (see the loader).
    """
    if is_remote(path):
        return CheckpointLoader.load_checkpoint(path, map_location)
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'SLaK checkpoint not found: {path!r}. Download the official '
            f'ImageNet checkpoint and set the config variable `checkpoint` '
            f'(or --cfg-options model.backbone.init_cfg.checkpoint=PATH).')
    return load_checkpoint_safely(path, map_location=map_location)


def _as_tensors(state_dict: dict) -> dict:
    """``state_dict`` with numpy arrays as tensors; anything else that is
    not a tensor is refused by key."""
    out = type(state_dict)() if isinstance(state_dict, OrderedDict) else {}
    for key, value in state_dict.items():
        if isinstance(value, np.ndarray) and value.dtype.kind in 'biuf':
            value = torch.from_numpy(np.ascontiguousarray(value))
        elif not isinstance(value, torch.Tensor):
            raise ValueError(
                f'weight {key!r} is a {type(value).__name__}, not a tensor '
                f'or a numeric numpy array: not a state dict of weights')
        out[key] = value
    return out


def extract_state_dict(checkpoint: dict, use_ema: bool = False) -> dict:
    """Pick the model weights out of a checkpoint dict.

    Args:
        checkpoint (dict): A loaded checkpoint: ``{'model': ...}``,
            ``{'state_dict': ...}`` or a bare state dict.
        use_ema (bool): Take ``model_ema`` instead of ``model``.

    Returns:
        dict: The state dict; numpy arrays (some converters write them)
        become tensors.

    Raises:
        KeyError: No weights found.
        ValueError: A weight that is neither a tensor nor a numpy array.
    """
    if use_ema:
        if 'model_ema' not in checkpoint:
            raise KeyError(
                'use_ema=True but the checkpoint has no "model_ema" entry; '
                f'its keys are {sorted(checkpoint)[:10]}')
        return _as_tensors(checkpoint['model_ema'])
    for key in ('state_dict', 'model'):
        if key in checkpoint and isinstance(checkpoint[key], dict):
            return _as_tensors(checkpoint[key])
    if checkpoint and all(
            isinstance(v, (torch.Tensor, np.ndarray))
            for v in checkpoint.values()):
        return _as_tensors(checkpoint)
    raise KeyError('No weights found in the checkpoint: expected a "model" '
                   'or "state_dict" entry or a bare state dict; found keys '
                   f'{sorted(checkpoint)[:10]}')


def to_backbone_state_dict(
        state_dict: dict) -> 'OrderedDict[str, torch.Tensor]':
    """Map official or mm key names onto :class:`SLaK`'s parameter names.

    Strips ``module.``/``backbone.`` prefixes (keeping only ``backbone.*``
    keys when an mm model's state dict is given), drops the classifier's
    ``norm.*`` / ``head.*`` and renames the legacy ``Decom1``/``Decom2``
    branches to ``LoRA1``/``LoRA2``.

    Args:
        state_dict (dict): Keys and tensors as stored in the file.

    Returns:
        OrderedDict: Backbone keys and tensors.
    """
    items = [(k[len('module.'):] if k.startswith('module.') else k, v)
             for k, v in state_dict.items()]
    if any(k.startswith('backbone.') for k, _ in items):
        items = [(k[len('backbone.'):], v) for k, v in items
                 if k.startswith('backbone.')]
    out = OrderedDict()
    for key, value in items:
        if key.startswith(_CLASSIFIER_PREFIXES):
            continue
        for old, new in _LEGACY_RENAMES:
            key = key.replace(old, new)
        out[key] = value
    return out


def _depths(keys) -> List[int]:
    depths = {}
    for key in keys:
        match = _BLOCK_PATTERN.match(key)
        if match:
            stage, block = int(match.group(1)), int(match.group(2))
            depths[stage] = max(depths.get(stage, 0), block + 1)
    return [depths.get(i, 0) for i in range(max(depths, default=-1) + 1)]


def _check_compatible(path: str, state_dict: dict, model_state: dict):
    file_dense = any('.lkb_origin.' in k for k in state_dict)
    model_dense = any('.lkb_origin.' in k for k in model_state)
    if file_dense != model_dense:
        file_kind, fix = (('non-decomposed (one dense M x M "lkb_origin" '
                           'branch)', 'decompose=False') if file_dense else
                          ('decomposed (LoRA1/LoRA2/small_conv)',
                           'decompose=True'))
        raise ValueError(
            f'Checkpoint {path!r} holds a {file_kind} SLaK model, which does '
            f'not fit this backbone; build it with {fix}.')
    mismatched = [(k, tuple(v.shape), tuple(model_state[k].shape))
                  for k, v in state_dict.items()
                  if k in model_state and v.shape != model_state[k].shape]
    if mismatched:
        lines = '\n'.join(f'  {k}: checkpoint {a} vs model {b}'
                          for k, a, b in mismatched[:5])
        raise ValueError(
            f'Checkpoint {path!r} does not fit the model ({len(mismatched)} '
            f'shape mismatches; check arch, kernel_size, small_kernel and '
            f'width_factor). Nothing was loaded. First mismatches:\n{lines}')
    # blocks present on one side only: a different depth (e.g. small vs tiny)
    extra = [
        k for k in state_dict if k not in model_state
        and k.startswith(_BODY_PREFIXES) and not k.endswith(MASK_SUFFIX)
    ]
    absent = [
        k for k in model_state if k not in state_dict
        and k.startswith(_BODY_PREFIXES) and not k.endswith(MASK_SUFFIX)
    ]
    if extra or absent:
        file_depths, model_depths = _depths(state_dict), _depths(model_state)
        if file_depths != model_depths:
            reason = (f'blocks per stage {file_depths} in the file vs '
                      f'{model_depths} in the model (check arch)')
        elif any('.merged' in k for k in extra):
            reason = ('the file is a deploy checkpoint (merged large '
                      'kernels, from tools/deploy.py); build the model with '
                      'deploy=True')
        elif any('.merged' in k for k in absent):
            reason = ('the model is built with deploy=True but the file '
                      'holds the training form; build it with deploy=False')
        else:
            reason = 'the same depth but other layer names'
        raise ValueError(
            f'Checkpoint {path!r} does not fit the model: {reason}. Nothing '
            f'was loaded. Only in the file: {extra[:3]}; only in the model: '
            f'{absent[:3]}')


def convert_official_checkpoint(
        src: str,
        dst: str,
        use_ema: bool = False) -> Tuple[float, Dict[str, float]]:
    """Write an official SLaK file as a plain mm checkpoint.

    The result is ``{'meta': ..., 'state_dict': ...}`` with ``backbone.``
    keys and a bool ``*_mask`` entry (the non-zero pattern) beside every
    conv and linear weight, so it loads as ``load_from`` or as the
    backbone's ``init_cfg`` checkpoint and carries its sparsity explicitly.
    The file is written atomically.

    Args:
        src (str): Official checkpoint (read with ``weights_only=True``).
        dst (str): Output path.
        use_ema (bool): Convert ``model_ema`` instead of ``model``.

    Returns:
        tuple[float, dict]: Weight density overall and per stage
        (``{'stage0': d0, ...}``).

    Raises:
        UnsafeOutputError: ``dst`` is ``src`` (also through a link or
            another spelling) or no regular file (refused before reading).
        DiskFullError: No space for the file (the old one stays whole).
    """
    check_output_path(dst, {'input checkpoint': src})
    checkpoint = load_checkpoint_file(src)
    state_dict = masks_to_state_dict(
        to_backbone_state_dict(extract_state_dict(checkpoint, use_ema)))
    if not any(k.startswith(_BODY_PREFIXES) for k in state_dict):
        raise ValueError(
            f'{src!r} holds no SLaK backbone weights (no "stages.*" or '
            f'"downsample_layers.*" keys; first keys: '
            f'{sorted(state_dict)[:5]}): it is not an official SLaK file.')
    args = checkpoint.get('args')
    meta = dict(
        source=osp.abspath(src),
        use_ema=use_ema,
        epoch=checkpoint.get('epoch'),
        official_args=vars(args)
        if isinstance(args, argparse.Namespace) else None,
        converted_by=f'slak_mm {__version__}')
    torch_save_atomic(
        dict(
            meta=meta,
            state_dict=OrderedDict(
                (f'backbone.{k}', v) for k, v in state_dict.items())), dst)
    return group_density(
        {k: state_dict[k]
         for k in weight_density(state_dict)})


def _density_table(density: Dict[str, float], shapes: Dict[str, tuple]) -> str:
    width = max(len(k) for k in density)
    return '\n'.join(f'  {k:<{width}}  {str(shapes[k]):<20} {d:.3f}'
                     for k, d in density.items())


def load_pretrained_backbone(
        model: nn.Module,
        path: str,
        map_location='cpu',
        use_ema: bool = False) -> Tuple[List[str], List[str]]:
    """Load an official SLaK or mm checkpoint into a SLaK backbone.

    All keys are checked before anything is copied, so a file that does not
    fit the model is refused whole. If the model has sparsity masks (see
    :mod:`slak_mm.sparse`), they are loaded from the file's ``*_mask``
    entries when it has them, else taken from the exact zeros of the loaded
    weights (the official files store sparsity that way). A report (loaded /
    missing / unexpected keys and the density of every conv and linear
    weight) goes to the current mmengine logger.

    Args:
        model (nn.Module): The backbone.
        path (str): Checkpoint path.
        map_location: Passed to ``torch.load``.
        use_ema (bool): Load the ``model_ema`` weights.

    Returns:
        tuple[list[str], list[str]]: Missing and unexpected keys (masks
        derived from the weights do not count as missing).
    """
    return load_backbone_weights(
        model,
        extract_state_dict(load_checkpoint_file(path, map_location), use_ema),
        source=path)


def _filter(state_dict: Dict[str, torch.Tensor], model: nn.Module,
            source: str) -> Tuple['OrderedDict[str, torch.Tensor]', list]:
    """:func:`checkpoint_filter_fn`, and the names of the masks it derived."""
    state_dict = to_backbone_state_dict(state_dict)
    model_state = model.state_dict()
    _check_compatible(source, state_dict, model_state)
    derived = []
    if has_masks(model):
        masks = masks_to_state_dict({
            k: v
            for k, v in state_dict.items() if k in model_state
        })
        derived = [k for k in masks if k not in state_dict]
        state_dict.update((k, masks[k]) for k in derived)
    return state_dict, derived


def checkpoint_filter_fn(
        state_dict: Dict[str, torch.Tensor],
        model: nn.Module,
        source: str = 'the given state dict'
) -> 'OrderedDict[str, torch.Tensor]':
    """Map official or mm weights onto a SLaK backbone, as timm's
    ``checkpoint_filter_fn``: a pure function (neither the model nor
    ``state_dict`` is changed).

    The keys are renamed (:func:`to_backbone_state_dict`), checked against
    ``model`` (decomposed or not, shapes, depth, deploy form; a file that
    does not fit is refused whole), and when ``model`` has sparsity masks,
    the masks the file lacks are added from the zeros of its weights (the
    official files store sparsity that way).

    Args:
        state_dict (dict): Keys and tensors as stored in the file.
        model (nn.Module): The SLaK backbone they are meant for.
        source (str): Where they came from, for the messages.

    Returns:
        OrderedDict: The backbone's keys and tensors, ready for
        ``model.load_state_dict(..., strict=False)``.

    Raises:
        ValueError: The weights do not fit ``model``.
    """
    return _filter(state_dict, model, source)[0]


def load_backbone_weights(
        model: nn.Module,
        state_dict: Dict[str, torch.Tensor],
        source: str = 'the given state dict') -> Tuple[List[str], List[str]]:
    """What :func:`load_pretrained_backbone` does, for weights already in
    memory (official or mm key names; see :func:`to_backbone_state_dict`).

    Args:
        model (nn.Module): The backbone.
        state_dict (dict): Keys and tensors.
        source (str): Where they came from, for the messages.

    Returns:
        tuple[list[str], list[str]]: Missing and unexpected keys.
    """
    path = source
    state_dict, derived = _filter(state_dict, model, source)
    model_state = model.state_dict()
    sparse = has_masks(model)
    in_file = len(state_dict) - len(derived)
    missing = [k for k in model_state if k not in state_dict]
    unexpected = [k for k in state_dict if k not in model_state]
    model.load_state_dict(state_dict, strict=False)
    if sparse:
        apply_masks(model)

    density = weight_density({
        k: v
        for k, v in state_dict.items() if k in model_state
    })
    mean_density = sum(density.values()) / max(len(density), 1)
    if not sparse:
        mask_note = 'dense fine-tuning (sparse=False): zeros are not kept'
    elif derived:
        mask_note = (f'{len(derived)} sparsity masks taken from the '
                     f'weights\' zeros, kept during training')
    else:
        mask_note = 'sparsity masks loaded from the file'
    per_stage = group_density({k: state_dict[k] for k in density})[1]
    print_log(
        f'Loaded SLaK backbone weights from {path}: '
        f'{in_file - len(unexpected)} keys loaded, {len(missing)} '
        f'missing {missing[:8]}, {len(unexpected)} unexpected '
        f'{unexpected[:8]}; mean density of the {len(density)} conv/linear '
        f'weights {mean_density:.3f} (' +
        ', '.join(f'{k} {v:.3f}'
                  for k, v in per_stage.items()) + f'); {mask_note}.',
        logger='current')
    # the per-weight table (~100 lines) only at DEBUG
    print_log(
        'Density per weight:\n' + _density_table(
            density, {k: tuple(state_dict[k].shape)
                      for k in density}),
        logger='current',
        level=logging.DEBUG)
    return missing, unexpected
