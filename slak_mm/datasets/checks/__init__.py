"""Cheap checks of a dataset's files before a run, one line naming the
file, the problem and the fix (:class:`DatasetError`).

* :mod:`.paths`: the paths a config's datasets read exist (else the
  expected layout is named), no folder is empty, image folders hold images
  (first bytes) — :func:`check_dataset_paths`;
* :mod:`.files`: each dataset's annotation files, by its kind —
  :func:`check_dataset_files`: :mod:`.seg_maps` (label maps: present,
  one channel, lossless, their image's size, no EXIF turn), :mod:`.coco`
  (COCO JSON, RLEs in :mod:`.rle`), :mod:`.voc` (VOC XML); detection
  datasets log what mmdet yields (:mod:`.summary`);
* :mod:`.configs`: reading a config's dataset parts (leaf datasets,
  pipeline transforms, classes, paths), :mod:`.errors`: the error.

Nothing here decodes an image: checks that need the pixels run where the
pipeline decodes anyway, in :mod:`slak_mm.datasets.transforms`; what is
known about image formats is in :mod:`slak_mm.utils.image_formats`.
"""
from .configs import (dataset_class, dataset_classes, dataset_paths, join_root,
                      leaf_dataset_cfgs, pipeline_transforms)
from .errors import DatasetError
from .files import check_dataset_files
from .paths import DATASET_LAYOUTS, IMAGENET_LAYOUT, check_dataset_paths
from .seg_maps import lossy_label_map_error

__all__ = [
    'DATASET_LAYOUTS', 'IMAGENET_LAYOUT', 'DatasetError',
    'check_dataset_files', 'check_dataset_paths', 'dataset_class',
    'dataset_classes', 'dataset_paths', 'join_root', 'leaf_dataset_cfgs',
    'lossy_label_map_error', 'pipeline_transforms'
]
