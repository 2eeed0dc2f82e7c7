"""Inputs to run a model without a dataset (FLOP counts, timing)."""
from typing import List, Tuple

__all__ = ['det_data_samples']


def det_data_samples(shape: Tuple[int, int], batch: int = 1) -> List:
    """``DetDataSample`` s with the metainfo a detector's ``tensor`` /
    ``predict`` forward reads, for unpadded, unscaled ``shape`` inputs.

    Args:
        shape (tuple[int, int]): Input height and width.
        batch (int): Number of samples. Default: 1.

    Returns:
        list[DetDataSample]: One per image.
    """
    from mmdet.structures import DetDataSample  # only detectors need mmdet
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
