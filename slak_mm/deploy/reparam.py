"""Inference re-parameterisation of a trained model (``tools/deploy.py``).

Folds the BatchNorms of every SLaK large kernel into the convs and merges
the branches (see :meth:`slak_mm.models.SLaK.switch_to_deploy`), then saves
a deploy checkpoint that loads into the same config built with
``model.backbone.deploy=True``.
"""
import os.path as osp
from typing import Optional, Tuple

import torch.nn as nn
from mmengine.config import Config
from mmengine.runner.checkpoint import (_load_checkpoint,
                                        _load_checkpoint_to_model)

from slak_mm.checkpoint import (fit_checkpoint, require_checkpoint,
                                torch_save_atomic)
from slak_mm.config import adapt_to_device, partial_load_allowed
from slak_mm.fileio import check_output_path
from slak_mm.models import SLaK, build_model
from slak_mm.network import LargeKernelConv
from slak_mm.version import __version__

__all__ = ['DEPLOY_CFG_OPTION', 'deploy_checkpoint', 'load_deploy_model']

#: ``--cfg-options`` that builds a config's model in the merged form.
DEPLOY_CFG_OPTION = 'model.backbone.deploy=True'


def _num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def load_deploy_model(cfg: Config,
                      checkpoint: str) -> Tuple[nn.Module, dict, dict]:
    """Build ``cfg``'s model from a checkpoint, in eval mode and deploy form.

    With ``model.backbone.deploy`` unset or False the checkpoint holds the
    training form: it is loaded strictly and every SLaK backbone is switched
    to the merged form. With ``model.backbone.deploy=True`` the checkpoint
    must be a deploy checkpoint (``tools/deploy.py``) and is loaded as it is.
    The config is adapted to the device first
    (:func:`slak_mm.config.adapt_to_device`).

    Args:
        cfg (Config): Loaded config; changed in place.
        checkpoint (str): mm checkpoint of the whole model (``state_dict``
            with ``backbone.`` and head keys).

    Returns:
        tuple[nn.Module, dict, dict]: The model (CPU, eval mode), the loaded
        checkpoint dict, and ``merged`` (large kernels merged here) plus
        ``params_before`` (parameters before merging).
    """
    require_checkpoint(checkpoint)
    adapt_to_device(cfg)
    model = build_model(cfg)
    backbones = [m for m in model.modules() if isinstance(m, SLaK)]
    if not backbones:
        raise ValueError(
            f'The model of the config ({type(model).__name__}) contains no '
            f'SLaK backbone; nothing to re-parameterise.')
    ckpt = _load_checkpoint(checkpoint, map_location='cpu')  # safe loader
    if not isinstance(ckpt, dict):
        raise ValueError(f'{checkpoint!r} holds a {type(ckpt).__name__}, '
                         f'not a checkpoint dict')
    # a short error naming what does not fit, masks completed from zeros
    allow_partial = partial_load_allowed(cfg)
    fit_checkpoint(model, ckpt, checkpoint, allow_partial)
    _load_checkpoint_to_model(model, ckpt, strict=not allow_partial)
    model.eval()
    params_before = _num_params(model)
    merged = 0
    for backbone in backbones:
        merged += sum(1 for m in backbone.modules()
                      if isinstance(m, LargeKernelConv) and not m.deploy)
        backbone.switch_to_deploy()
    return model, ckpt, dict(merged=merged, params_before=params_before)


def deploy_checkpoint(cfg: Config,
                      checkpoint: str,
                      out: str,
                      config_path: Optional[str] = None) -> dict:
    """Convert a trained (training-form) checkpoint to a deploy checkpoint.

    The model of ``cfg`` is built with ``deploy=False``, loaded strictly
    from ``checkpoint``, put in eval mode and every SLaK backbone in it is
    switched to the merged form. ``out`` gets ``{'meta': ..., 'state_dict':
    ...}`` (the input's meta, e.g. ``dataset_meta``, plus ``deploy=True``),
    written atomically. Load it with the same config and
    ``--cfg-options model.backbone.deploy=True``. Sparsity masks of the
    merged kernels are gone (see ``SLaK.switch_to_deploy``); deploy
    checkpoints are for inference.

    Args:
        cfg (Config): Loaded config of the trained model.
        checkpoint (str): mm checkpoint of the whole model (``state_dict``
            with ``backbone.`` and head keys), e.g. from tools/train.py.
        out (str): Output path.
        config_path (str, optional): Recorded in the meta.

    Returns:
        dict: ``out``, ``merged`` (number of large kernels merged),
        ``params_before`` and ``params_after``.

    Raises:
        UnsafeOutputError: ``out`` is the checkpoint or the config, or no
            regular file (refused before anything is loaded).
        DiskFullError: No space for the file (the old one stays whole).
    """
    check_output_path(
        out, dict(checkpoint=checkpoint, config=config_path or cfg.filename))
    backbone_cfg = cfg.model.get('backbone')
    if backbone_cfg is not None and backbone_cfg.get('deploy'):
        # the training form is what the checkpoint holds; it is merged here
        backbone_cfg.deploy = False
    model, ckpt, info = load_deploy_model(cfg, checkpoint)
    meta = dict(ckpt.get('meta') or {}) if isinstance(ckpt, dict) else {}
    meta.update(
        deploy=True,
        deploy_source=osp.abspath(checkpoint),
        deploy_config=config_path,
        deployed_by=f'slak_mm {__version__}')
    torch_save_atomic(dict(meta=meta, state_dict=model.state_dict()), out)
    return dict(out=out, params_after=_num_params(model), **info)
