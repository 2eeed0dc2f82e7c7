"""Building the model a config describes."""
import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

__all__ = ['build_model']


def build_model(cfg: Config) -> nn.Module:
    """Build ``cfg.model`` in the config's default scope, without
    initialising weights (no pretrained file is read). The config is not
    changed: adapt it first where needed (e.g.
    :func:`slak_mm.config.adapt_to_device` for a ``SyncBN`` config on a
    machine without CUDA).

    Args:
        cfg (Config): Loaded config.

    Returns:
        nn.Module: The segmentor, detector or classifier, on the CPU.
    """
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    return MODELS.build(cfg.model)
