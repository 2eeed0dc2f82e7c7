"""slak_mm: SLaK (Sparse Large Kernel Network) for timm and OpenMMLab 2.x.

Importing the package registers the SLaK network in timm (``slak_tiny``
..., and the official ``SLaK_tiny`` ...; :mod:`slak_mm.network`, torch and
timm only). Where OpenMMLab is installed, it also registers the SLaK
backbone and its helpers in the mmseg and mmdet registries
(``custom_imports=dict(imports=['slak_mm'])``), and makes mmengine's
``Config`` read ``slak_mm::`` bases and the onedl forks' ``mmseg::`` bases
(:func:`slak_mm.config.read_scoped_bases`), so the mm Python API
(``Config.fromfile``, the inferencers, ``init_model``) reads the configs
that our tools read.
Without OpenMMLab installed (e.g. a bare GPU box with torch and Triton, or
a timm project) the torch-only parts import: the network and its timm
models, ``slak_mm.ops``, ``slak_mm.sparse`` and checkpoint reading.
"""
from . import network  # noqa: F401  (registers the timm models)
from .config_path import get_config_path  # no mm import: works bare
from .utils import has_package
from .version import __version__

if has_package('mmengine'):
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
