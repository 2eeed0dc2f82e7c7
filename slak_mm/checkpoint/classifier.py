"""Official SLaK ImageNet checkpoints into an mmpretrain ``ImageClassifier``.

The official files hold the backbone (``downsample_layers.*``,
``stages.*``), the final ``norm.*`` (LayerNorm after pooling) and
``head.*`` (Linear); the classifier of :mod:`slak_mm.models.classifiers`
names them ``backbone.*``, ``head.norm.*`` and ``head.fc.*``. The names
are mapped
when loading (:func:`classifier_filter_fn`, as timm's
``checkpoint_filter_fn``), the files stay as published. Nothing here needs
mmpretrain.
"""
from collections import OrderedDict
from typing import Dict, List, Tuple

import torch
import torch.nn as nn

from .loading import load_backbone_weights, load_checkpoint_file
from .official import extract_state_dict

__all__ = ['classifier_filter_fn', 'load_official_classifier']

#: Official classifier prefixes -> ``ImageClassifier`` prefixes. ``head.``
#: is matched after the official ``norm.`` only, so an official
#: ``head.weight`` becomes ``head.fc.weight``.
_CLASSIFIER_RENAMES = (('norm.', 'head.norm.'), ('head.', 'head.fc.'))


def classifier_filter_fn(
        state_dict: Dict[str,
                         torch.Tensor]) -> 'OrderedDict[str, torch.Tensor]':
    """Map an official SLaK ImageNet state dict onto the names of an
    ``ImageClassifier`` with
    :class:`~slak_mm.models.classifiers.SLaKClsBackbone` and
    :class:`~slak_mm.models.classifiers.SLaKClsHead`.

    ``module.`` prefixes (DDP) are stripped; ``norm.*`` becomes
    ``head.norm.*``, ``head.*`` becomes ``head.fc.*``, every other key gets
    ``backbone.``. A state dict already in mm names (it has ``backbone.*``
    keys, e.g. saved by an mmpretrain run) is returned unchanged.

    Args:
        state_dict (dict): Keys and tensors as stored in the file.

    Returns:
        OrderedDict: Keys of the mm classifier and the same tensors.
    """
    items = [(k[len('module.'):] if k.startswith('module.') else k, v)
             for k, v in state_dict.items()]
    if any(k.startswith('backbone.') for k, _ in items):
        return OrderedDict(items)
    out = OrderedDict()
    for key, value in items:
        for old, new in _CLASSIFIER_RENAMES:
            if key.startswith(old):
                out[new + key[len(old):]] = value
                break
        else:
            out['backbone.' + key] = value
    return out


def _check_head(path: str, head_state: dict, head: nn.Module) -> None:
    expected = head.state_dict()
    absent = [f'head.{k}' for k in expected if k not in head_state]
    if absent:
        raise ValueError(
            f'Checkpoint {path!r} has no classifier weights {absent} (the '
            f'official files have "norm.*" and "head.*"): it holds a '
            f'backbone only (e.g. from tools/convert_checkpoint.py or a '
            f'detector/segmentor), which cannot be evaluated on ImageNet.')
    mismatched = [(f'head.{k}', tuple(v.shape), tuple(expected[k].shape))
                  for k, v in head_state.items()
                  if k in expected and v.shape != expected[k].shape]
    if mismatched:
        lines = '\n'.join(f'  {k}: checkpoint {a} vs model {b}'
                          for k, a, b in mismatched)
        raise ValueError(
            f'The classifier head of {path!r} does not fit the model (check '
            f'model.head.num_classes, 1000 for the official ImageNet-1K '
            f'files, and in_channels, the last stage width). Nothing was '
            f'loaded.\n{lines}')


def load_official_classifier(
        model: nn.Module,
        path: str,
        use_ema: bool = False) -> Tuple[List[str], List[str]]:
    """Load an official SLaK ImageNet checkpoint (or an mm classifier
    checkpoint) into an ``ImageClassifier`` with a SLaK backbone and
    :class:`~slak_mm.models.classifiers.SLaKClsHead`.

    The file is read safely (``weights_only=True``). Head and backbone are
    checked before anything is copied: a head of another shape (e.g.
    ``num_classes``), a file without a head, or a backbone that does not fit
    (arch, kernel sizes, depth) is refused whole, naming the keys. The
    backbone part goes through
    :func:`slak_mm.checkpoint.load_backbone_weights` (legacy
    ``Decom1/Decom2`` names, sparsity masks from the zeros, load report).

    Args:
        model (nn.Module): The classifier (``backbone`` and ``head``).
        path (str): Checkpoint file.
        use_ema (bool): Load the ``model_ema`` weights. Default: False.

    Returns:
        tuple[list[str], list[str]]: The backbone's missing and unexpected
        keys (the head is loaded strictly).
    """
    state = classifier_filter_fn(
        extract_state_dict(load_checkpoint_file(path), use_ema))
    head_state = OrderedDict((k[len('head.'):], v) for k, v in state.items()
                             if k.startswith('head.'))
    _check_head(path, head_state, model.head)
    backbone_state = OrderedDict(
        (k, v) for k, v in state.items() if k.startswith('backbone.'))
    result = load_backbone_weights(model.backbone, backbone_state, path)
    model.head.load_state_dict(head_state, strict=True)
    return result
