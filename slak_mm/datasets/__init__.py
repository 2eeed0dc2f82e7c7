"""Dataset helpers: synthetic data in the real ADE20K / VOC / COCO layouts."""
from .synthetic import (generate_ade20k, generate_all, generate_coco,
                        generate_voc, make_scene)

__all__ = [
    'generate_ade20k', 'generate_voc', 'generate_coco', 'generate_all',
    'make_scene'
]
