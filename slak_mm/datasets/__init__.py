"""Dataset helpers: synthetic data in the real ADE20K / VOC / COCO / ImageNet
layouts (numpy and OpenCV only), checks of a dataset's paths and files
before a run (:mod:`.checks`, one module per kind of file) and loading
transforms that check what they decode (:mod:`.transforms`, registered in
mmseg's / mmdet's ``TRANSFORMS``)."""
from .synthetic import generate_all  # noqa: F401
from .synthetic import (generate_ade20k, generate_coco, generate_imagenet,
                        generate_voc, make_scene, synthetic_kind)

try:
    import mmengine  # noqa: F401
except ModuleNotFoundError as err:  # the generators work without OpenMMLab
    if err.name != 'mmengine':
        raise
    _WITH_MM = False
else:
    from .checks import DatasetError, check_dataset_files, check_dataset_paths
    from .transforms import CheckedLoadImageFromFile, install_data_checks
    _WITH_MM = True

__all__ = [
    'generate_ade20k', 'generate_voc', 'generate_coco', 'generate_imagenet',
    'generate_all', 'make_scene', 'synthetic_kind'
] + ([
    'DatasetError', 'check_dataset_files', 'check_dataset_paths',
    'CheckedLoadImageFromFile', 'install_data_checks'
] if _WITH_MM else [])
