"""Does a whole-model checkpoint fit the model it is loaded into?

mmengine loads ``load_from`` / test checkpoints with ``strict=False``: a
ResNet file, another kernel size or a backbone-only file only logs "do not
match exactly" and the run goes on with random weights (mIoU 0.0, exit 0).
:func:`fit_checkpoint` makes that an error naming what does not fit, unless
the user asks for a partial load. It also completes sparse models: a file
without ``*_mask`` entries gets its masks from the loaded weights' zeros
instead of keeping the model's random masks (which would zero 40% of the
loaded weights).
"""
import logging
import re
from typing import Dict, List, Tuple

import torch
import torch.nn as nn
from mmengine.logging import print_log

from slak_mm.sparse import MASK_SUFFIX, mask_key
from .reading import CheckpointError

__all__ = [
    'PARTIAL_LOAD_OPTION', 'CheckpointMismatchError', 'fit_checkpoint',
    'state_dict_of'
]

#: Where the opt-in for partial loads lives in a config.
PARTIAL_LOAD_OPTION = 'default_hooks.load_check.allow_partial=True'
_MODULE_PREFIX = re.compile(r'^module\.')


class CheckpointMismatchError(CheckpointError, ValueError):
    """The checkpoint's weights do not fit the model."""


def state_dict_of(checkpoint: dict) -> Dict[str, torch.Tensor]:
    """The weights of a loaded checkpoint (``state_dict`` entry or bare).

    Args:
        checkpoint (dict): A loaded checkpoint.

    Returns:
        dict: Its state dict.

    Raises:
        CheckpointMismatchError: The ``state_dict`` entry is no dict.
    """
    state_dict = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state_dict, dict):
        raise CheckpointMismatchError(
            f'The checkpoint holds no state dict (its "state_dict" entry is '
            f'a {type(state_dict).__name__}).')
    return state_dict


def _first(keys: List[str], n: int = 3) -> str:
    more = f' (+{len(keys) - n} more)' if len(keys) > n else ''
    return ', '.join(keys[:n]) + more


def _hint(file_keys: List[str], model_keys: List[str]) -> str:
    if any(k.startswith('backbone.') for k in model_keys) and not any(
            k.startswith('backbone.') for k in file_keys):
        return (' It looks like a backbone-only or ImageNet file: give it to '
                'model.backbone.init_cfg (checkpoint=...), not to '
                'load_from / test.')
    file_merged = any('.merged' in k for k in file_keys)
    if file_merged and not any('.merged' in k for k in model_keys):
        return (' The file is a deploy checkpoint (merged large kernels, '
                'from tools/deploy.py): build the model with '
                'model.backbone.deploy=True.')
    if not file_merged and any('.merged' in k for k in model_keys):
        return (' The model is built in deploy form (merged kernels) but the '
                'file holds the training form: drop model.backbone.deploy, '
                'or convert the file with tools/deploy.py.')
    return ' Check that it was written for this config (arch, kernel_size).'


def _alias(state_dict: dict, names: Dict[str, str], key: str,
           model_state: dict) -> bool:
    """Whether the file's ``key`` holds the very tensor of a key the model
    has: a module a model also attaches under a second name while it
    trains (DDQ-DETR's ``decoder.aux_reg_branches`` is its head's), which
    ``torch.save`` writes once, shared. A fresh model has only the first
    name; nothing is lost."""
    tensor = state_dict[names[key]]
    if not isinstance(tensor, torch.Tensor) or tensor.numel() == 0:
        return False
    return any(other in names and other != key
               and isinstance(state_dict[names[other]], torch.Tensor)
               and state_dict[names[other]].data_ptr() == tensor.data_ptr()
               and state_dict[names[other]].shape == tensor.shape
               for other in model_state)


def fit_checkpoint(model: nn.Module,
                   checkpoint: dict,
                   source: str,
                   allow_partial: bool = False) -> Tuple[int, int]:
    """Check ``checkpoint`` against ``model`` and add derivable masks.

    Keys are compared after mmengine's default ``module.`` stripping. Masks
    (``*_mask`` buffers) the model has and the file lacks are added to the
    checkpoint's state dict in place, from the non-zero pattern of the
    file's weights.

    Args:
        model (nn.Module): The (unwrapped) model about to be loaded.
        checkpoint (dict): The loaded checkpoint; modified in place.
        source (str): Where it came from, for the messages.
        allow_partial (bool): Log a WARNING instead of raising when keys
            are missing, unexpected or of another shape (at least one key
            must still fit).

    Returns:
        tuple[int, int]: Keys that fit, masks derived from zeros.

    Raises:
        CheckpointMismatchError: The file does not fit (and
            ``allow_partial`` is False), or nothing in it fits.
    """
    state_dict = state_dict_of(checkpoint)
    names = {_MODULE_PREFIX.sub('', k): k for k in state_dict}
    model_state = model.state_dict()
    derived = 0
    for key in model_state:
        if key.endswith(MASK_SUFFIX) and key not in names:
            weight_key = key[:-len(MASK_SUFFIX)]
            if weight_key in names and mask_key(weight_key) == key:
                state_dict[key] = state_dict[names[weight_key]] != 0
                names[key] = key
                derived += 1
    missing = [k for k in model_state if k not in names]
    unexpected = [
        k for k in names if k not in model_state
        and not _alias(state_dict, names, k, model_state)
    ]
    shapes = [(k, tuple(state_dict[names[k]].shape), tuple(v.shape))
              for k, v in model_state.items()
              if k in names and hasattr(state_dict[names[k]], 'shape')
              and state_dict[names[k]].shape != v.shape]
    fitting = len(model_state) - len(missing) - len(shapes)
    if derived:
        print_log(
            f'{source}: {derived} sparsity masks taken from the zeros of the '
            f'loaded weights (the file has no *_mask entries).',
            logger='current')
    if not (missing or unexpected or shapes):
        return fitting, derived
    summary = (
        f'{source!r} does not fit the model: {fitting} of '
        f'{len(model_state)} keys fit; {len(missing)} missing, '
        f'{len(unexpected)} unexpected, {len(shapes)} of another shape.')
    details = []
    if missing:
        details.append(f'missing: {_first(missing)}')
    if unexpected:
        details.append(f'unexpected: {_first(unexpected)}')
    if shapes:
        details.append('shapes: ' + ', '.join(f'{k} file {a} vs model {b}'
                                              for k, a, b in shapes[:3]))
    message = f'{summary} {"; ".join(details)}.'
    if fitting == 0:
        raise CheckpointMismatchError(message +
                                      _hint(list(names), list(model_state)))
    if not allow_partial:
        raise CheckpointMismatchError(
            message + _hint(list(names), list(model_state)) +
            f' To load the keys that fit anyway (e.g. a detector with another '
            f'number of classes), set --cfg-options {PARTIAL_LOAD_OPTION}.')
    print_log(
        f'Partial load ({PARTIAL_LOAD_OPTION}): {message}',
        logger='current',
        level=logging.WARNING)
    return fitting, derived
