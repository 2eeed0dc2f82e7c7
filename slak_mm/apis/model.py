"""Building a config's model, and inputs to run it without a dataset."""
from typing import List, Optional, Tuple

import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

from .config import adapt_to_device


def build_model(cfg: Config) -> nn.Module:
    """Build ``cfg.model`` in the config's default scope, without
    initialising weights (no pretrained file is read).

    Args:
        cfg (Config): Loaded config.

    Returns:
        nn.Module: The segmentor or detector, on the CPU.
    """
    adapt_to_device(cfg)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    return MODELS.build(cfg.model)


def det_data_samples(shape: Tuple[int, int], batch: int = 1) -> Optional[List]:
    """``DetDataSample`` s with the metainfo a detector's ``tensor`` /
    ``predict`` forward reads, for unpadded, unscaled ``shape`` inputs.

    Args:
        shape (tuple[int, int]): Input height and width.
        batch (int): Number of samples. Default: 1.

    Returns:
        list[DetDataSample]: One per image.
    """
    from mmdet.structures import DetDataSample
    samples = []
    for _ in range(batch):
        sample = DetDataSample()
        sample.set_metainfo(
            dict(
                img_shape=shape,
                ori_shape=shape,
                pad_shape=shape,
                batch_input_shape=shape,
                scale_factor=(1., 1.)))
        samples.append(sample)
    return samples
