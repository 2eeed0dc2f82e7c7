"""Loading official SLaK and mm checkpoints into the mm backbone, and
converting an official file into an mm checkpoint.

The file is read by :func:`~slak_mm.checkpoint.load_checkpoint_safely`
(any mmengine scheme through mmengine's ``CheckpointLoader``, which
``import slak_mm`` made safe), mapped by
:func:`~slak_mm.checkpoint.checkpoint_filter_fn` (the function timm's
loader calls too), loaded, and reported in the run's log.
"""
import argparse
import logging
import os.path as osp
from collections import OrderedDict
from typing import Dict, List, Tuple

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.runner import CheckpointLoader

from slak_mm.fileio import check_output_path
from slak_mm.sparse import (MASK_SUFFIX, apply_masks, group_density, has_masks,
                            masks_to_state_dict, weight_density)
from slak_mm.version import __version__
from .atomic import torch_save_atomic
from .official import (checkpoint_filter_fn, extract_state_dict,
                       to_backbone_state_dict)
from .reading import load_checkpoint_safely
from .remote import is_remote

__all__ = [
    'convert_official_checkpoint', 'load_backbone_weights',
    'load_checkpoint_file', 'load_pretrained_backbone'
]

#: Keys of the backbone body (an official file without any is no SLaK).
_BODY_PREFIXES = ('stages.', 'downsample_layers.')


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
    given = to_backbone_state_dict(state_dict)
    state_dict = checkpoint_filter_fn(state_dict, model, source)
    derived = [
        k for k in state_dict if k.endswith(MASK_SUFFIX) and k not in given
    ]
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
