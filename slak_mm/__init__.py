"""slak_mm: SLaK (Sparse Large Kernel Network) for OpenMMLab 2.x.

Importing the package registers the SLaK backbone and its helpers in the
mmseg and mmdet registries (``custom_imports=dict(imports=['slak_mm'])``),
and makes mmengine's ``Config`` read ``slak_mm::`` bases and the onedl
forks' ``mmseg::`` bases (:func:`slak_mm.config.read_scoped_bases`), so the
mm Python API (``Config.fromfile``, the inferencers, ``init_model``) reads
the configs that our tools read.
Without OpenMMLab installed (e.g. a bare GPU box with torch and Triton) the
torch-only parts still import: ``slak_mm.ops`` and ``slak_mm.sparse``.
"""
from .config_path import get_config_path  # no mm import: works bare
from .version import __version__

try:
    import mmengine  # noqa: F401
except ModuleNotFoundError as err:
    if err.name != 'mmengine':  # a broken install must not pass silently
        raise
else:
    import warnings

    # mmdet warns at import that its FasterCocoMetric lacks faster_coco_eval;
    # the COCO configs here use CocoMetric (pycocotools), so it misleads
    warnings.filterwarnings(
        'ignore', message='faster_coco_eval is not installed')
    from . import checkpoint, datasets, engine, models  # noqa: F401
    from .config import read_scoped_bases

    read_scoped_bases()
    # no file mmengine reads runs code: checkpoints from every scheme, the
    # config text stored in them, YAML and pickle files of mmengine.load
    checkpoint.use_safe_mmengine_loader()
    checkpoint.use_safe_mmengine_handlers()

__all__ = ['__version__', 'get_config_path']
