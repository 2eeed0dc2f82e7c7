"""The files a segmentation test run writes besides its metrics
(``tools/test.py --out`` and ``--show-dir``), written atomically.

mmdet's writers of these files (``DumpDetResults``, the visualizer's
``mmcv.imwrite``) go through mmengine's fileio and are made atomic by
:func:`slak_mm.checkpoint.atomic_local_writes`. mmseg's write the files
themselves: ``IoUMetric(output_dir=...)`` saves each prediction PNG with
PIL, mmengine's ``LocalVisBackend`` each painted image with ``cv2.imwrite``
(an open-and-write: a full disk leaves a truncated file in place of the old
one). The two classes here write the same files through
:func:`slak_mm.fileio.atomic_write_bytes`: the old file stays whole on a
full disk (the error names the file, the size and the free space) and only
regular files are replaced.
"""
import io
import os.path as osp
from typing import Optional, Sequence

import cv2
import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.registry import VISBACKENDS
from mmengine.visualization import LocalVisBackend
from mmengine.visualization.vis_backend import force_init_env
from PIL import Image

from slak_mm.fileio import atomic_write_bytes
from slak_mm.registry import register_seg_metric

__all__ = ['AtomicLocalVisBackend', 'SegPredictionWriter']


@register_seg_metric
class SegPredictionWriter(BaseMetric):
    """Save each prediction as a PNG label map, as mmseg's
    ``IoUMetric(output_dir=...)`` does (``IMAGE_NAME.png``, the dataset's
    label ids), atomically; it computes no metric (``tools/test.py --out``
    appends it to the segmentation evaluators).

    Args:
        output_dir (str): The folder of the PNGs (created if missing).
        collect_device (str): Where the ranks' results are gathered.
            Default: ``'cpu'``.
        prefix (str, optional): Metric name prefix (no metric is made).
    """

    def __init__(self,
                 output_dir: str,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.output_dir = output_dir

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Write the PNG of each sample's ``pred_sem_seg``.

        Args:
            data_batch (dict): The batch (unused).
            data_samples (Sequence[dict]): The model's outputs.
        """
        for sample in data_samples:
            labels = sample['pred_sem_seg']['data'].squeeze().cpu().numpy()
            # as IoUMetric: predictions count from 0 without the dataset's
            # "zero" (background) label; the file holds the dataset's ids
            if sample.get('reduce_zero_label', False):
                labels = labels + 1
            buffer = io.BytesIO()
            Image.fromarray(labels.astype(np.uint8)).save(buffer, 'PNG')
            name = osp.splitext(osp.basename(sample['img_path']))[0]
            path = osp.abspath(osp.join(self.output_dir, f'{name}.png'))
            atomic_write_bytes(buffer.getvalue(), path)
            self.results.append(path)

    def compute_metrics(self, results: list) -> dict:
        """No metric: the files are the result.

        Args:
            results (list): The paths written.

        Returns:
            dict: Empty.
        """
        return {}


@VISBACKENDS.register_module()
class AtomicLocalVisBackend(LocalVisBackend):
    """mmengine's ``LocalVisBackend`` whose images (``vis_image/NAME_STEP
    .png``) and ``config.py`` are written atomically; its scalars are
    appended to ``scalars.json`` as before (a log grows line by line).
    ``tools/test.py --show-dir`` uses it for segmentation configs."""

    @force_init_env
    def add_config(self, config, **kwargs) -> None:
        """Record the config (its text, as ``Config.dump`` to a ``.py``).

        Args:
            config (Config): The config.
        """
        atomic_write_bytes(
            config.pretty_text.encode('utf-8'), self._config_save_file)

    @force_init_env
    def add_image(self,
                  name: str,
                  image: np.ndarray,
                  step: int = 0,
                  **kwargs) -> None:
        """Record an image as ``vis_image/NAME_STEP.png``.

        Args:
            name (str): The image identifier.
            image (np.ndarray): The image, RGB, ``uint8``.
            step (int): Global step value to record. Default: 0.
        """
        if image.dtype != np.uint8:
            raise TypeError(f'{name}: images are uint8, got {image.dtype}')
        _, png = cv2.imencode('.png', cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        atomic_write_bytes(png.tobytes(),
                           osp.join(self._img_save_dir, f'{name}_{step}.png'))
