"""The official SLaK checkpoint format, mapped onto the network's names.

The official ImageNet files are ``torch.save`` dicts with ``model`` (the
state dict), ``optimizer``, ``epoch``, ``scaler``, ``args`` (an
``argparse.Namespace``) and sometimes ``model_ema``; they are read by
:func:`~slak_mm.checkpoint.load_checkpoint_safely`.

At the core is :func:`checkpoint_filter_fn`, a pure function as timm's:
the file's weights mapped onto a SLaK model's names (the mm backbone, or
the timm classifier, which keeps the file's ``norm`` / ``head``), checked
against it and completed with the masks a sparse model derives from their
zeros. timm's loader (:class:`slak_mm.network.SLaK`) and the mm loaders
(:mod:`.loading`) both call it. Torch only: no OpenMMLab import.
"""
import re
from collections import OrderedDict
from typing import Dict, List, Sequence

import numpy as np
import torch
import torch.nn as nn

from slak_mm.sparse import MASK_SUFFIX, has_masks, masks_to_state_dict

__all__ = [
    'CLASSIFIER_PREFIXES', 'checkpoint_filter_fn', 'extract_state_dict',
    'to_backbone_state_dict'
]

#: Key prefixes added by DDP (``module.``) or by mm detectors/segmentors.
_WRAPPER_PREFIXES = ('module.', 'backbone.')
#: The ImageNet classifier's final norm and head: not part of a backbone.
CLASSIFIER_PREFIXES = ('norm.', 'head.')
#: Keys of the backbone body; all of them must match between file and model.
_BODY_PREFIXES = ('stages.', 'downsample_layers.')
_BLOCK_PATTERN = re.compile(r'stages\.(\d+)\.(\d+)\.')
#: Branch names used by official files before 2022-07-12.
_LEGACY_RENAMES = (('.Decom1.', '.LoRA1.'), ('.Decom2.', '.LoRA2.'))


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
    state_dict: dict, keep: Sequence[str] = ()
) -> 'OrderedDict[str, torch.Tensor]':
    """Map official or mm key names onto the SLaK network's names.

    Strips ``module.``/``backbone.`` prefixes (keeping only ``backbone.*``
    keys when an mm model's state dict is given), drops the classifier's
    ``norm.*`` / ``head.*`` (those of ``keep`` stay) and renames the legacy
    ``Decom1``/``Decom2`` branches to ``LoRA1``/``LoRA2``.

    Args:
        state_dict (dict): Keys and tensors as stored in the file.
        keep (Sequence[str]): Prefixes of :data:`CLASSIFIER_PREFIXES` to
            keep (a model with a classifier). Default: none.

    Returns:
        OrderedDict: The model's keys and tensors.
    """
    items = [(k[len('module.'):] if k.startswith('module.') else k, v)
             for k, v in state_dict.items()]
    if any(k.startswith('backbone.') for k, _ in items):
        items = [(k[len('backbone.'):], v) for k, v in items
                 if k.startswith('backbone.')]
    out = OrderedDict()
    for key, value in items:
        if key.startswith(CLASSIFIER_PREFIXES) and not key.startswith(
                tuple(keep)):
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


def checkpoint_filter_fn(
        state_dict: Dict[str, torch.Tensor],
        model: nn.Module,
        source: str = 'the given state dict'
) -> 'OrderedDict[str, torch.Tensor]':
    """Map official or mm weights onto a SLaK model, as timm's
    ``checkpoint_filter_fn``: a pure function (neither the model nor
    ``state_dict`` is changed).

    The weights are taken out of a whole checkpoint
    (:func:`extract_state_dict`), the keys renamed
    (:func:`to_backbone_state_dict`; the classifier's ``norm`` / ``head``
    are kept where ``model`` has them), checked against
    ``model`` (decomposed or not, shapes, depth, deploy form; a file that
    does not fit is refused whole), and when ``model`` has sparsity masks,
    the masks the file lacks are added from the zeros of its weights (the
    official files store sparsity that way).

    Args:
        state_dict (dict): Keys and tensors as stored in the file, or the
            whole checkpoint (``{'model': ...}``, ``{'state_dict': ...}``).
        model (nn.Module): The SLaK model they are meant for.
        source (str): Where they came from, for the messages.

    Returns:
        OrderedDict: The model's keys and tensors, ready for
        ``model.load_state_dict``.

    Raises:
        ValueError: The weights do not fit ``model``.
        KeyError: No weights found in a whole checkpoint.
    """
    model_state = model.state_dict()
    keep = [
        p for p in CLASSIFIER_PREFIXES if any(
            k.startswith(p) for k in model_state)
    ]
    state_dict = to_backbone_state_dict(
        extract_state_dict(state_dict), keep=keep)
    _check_compatible(source, state_dict, model_state)
    if has_masks(model):
        masks = masks_to_state_dict({
            k: v
            for k, v in state_dict.items() if k in model_state
        })
        state_dict.update((k, v) for k, v in masks.items()
                          if k not in state_dict and k in model_state)
    return state_dict
