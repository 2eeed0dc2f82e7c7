"""The OpenMMLab registries slak_mm adds its modules to.

SLaK serves both mmsegmentation and mmdetection, so every public part is
registered in the registries of each framework that is installed: a config
whose ``default_scope`` is ``mmseg`` or ``mmdet`` then finds it by ``type``
alone. One of the two frameworks is enough (an mmseg-only or mmdet-only
environment); a registry of a missing framework is ``None`` here.
"""
import importlib
import importlib.util
import inspect
from typing import Any, Optional

from mmengine.registry import Registry

__all__ = [
    'DET_HOOKS', 'DET_MODELS', 'DET_OPTIM_WRAPPER_CONSTRUCTORS', 'SEG_HOOKS',
    'SEG_METRICS', 'SEG_MODELS', 'SEG_OPTIM_WRAPPER_CONSTRUCTORS',
    'FRAMEWORKS', 'framework_installed', 'init_default', 'is_subclass_named',
    'register_hook', 'register_model', 'register_seg_metric',
    'registered_class', 'type_name'
]


def framework_installed(package: str) -> bool:
    """Whether the OpenMMLab framework ``package`` (``'mmseg'``,
    ``'mmdet'``) can be imported."""
    try:
        return importlib.util.find_spec(package) is not None
    except ModuleNotFoundError:  # an import hook that hides the package
        return False


#: The frameworks slak_mm registers into, of ``('mmseg', 'mmdet')``.
FRAMEWORKS = tuple(p for p in ('mmseg', 'mmdet') if framework_installed(p))
if not FRAMEWORKS:
    raise ImportError(
        'slak_mm needs mmsegmentation or mmdetection: pip install '
        'onedl-mmsegmentation and/or onedl-mmdetection (see docs/install.md). '
        'Without them only slak_mm.ops and slak_mm.sparse work.')


def _registry(package: str, name: str) -> Optional[Registry]:
    if package not in FRAMEWORKS:
        return None
    return getattr(importlib.import_module(f'{package}.registry'), name)


SEG_MODELS = _registry('mmseg', 'MODELS')
SEG_HOOKS = _registry('mmseg', 'HOOKS')
SEG_METRICS = _registry('mmseg', 'METRICS')
SEG_OPTIM_WRAPPER_CONSTRUCTORS = _registry('mmseg',
                                           'OPTIM_WRAPPER_CONSTRUCTORS')
DET_MODELS = _registry('mmdet', 'MODELS')
DET_HOOKS = _registry('mmdet', 'HOOKS')
DET_OPTIM_WRAPPER_CONSTRUCTORS = _registry('mmdet',
                                           'OPTIM_WRAPPER_CONSTRUCTORS')


def _register_in(*registries):
    registries = [r for r in registries if r is not None]

    def register(cls):
        for registry in registries:
            registry.register_module(module=cls)
        return cls

    return register


#: Class decorator: register a model part in the installed frameworks'
#: ``MODELS``.
register_model = _register_in(SEG_MODELS, DET_MODELS)
#: Class decorator: register a runner hook in the installed frameworks'
#: ``HOOKS``.
register_hook = _register_in(SEG_HOOKS, DET_HOOKS)
#: Class decorator: register a segmentation metric in mmseg's ``METRICS``
#: (if mmseg is installed).
register_seg_metric = _register_in(SEG_METRICS)


def type_name(node: dict) -> Optional[str]:
    """The class name of a config node's ``type``, without a scope
    (``'mmdet.FPN'`` -> ``'FPN'``; a class gives its ``__name__``).

    Args:
        node (dict): A config dict with a ``type``.

    Returns:
        str | None: The name; None without a usable ``type``.
    """
    kind = node.get('type')
    if isinstance(kind, str):
        return kind.split('.')[-1]  # 'mmdet.FPN' -> 'FPN'
    return getattr(kind, '__name__', None)


def registered_class(registry: Registry, kind: Any,
                     scope: Optional[str]) -> Optional[type]:
    """The class a config's ``type`` names, looked up as the runner would
    (pre-run checks read it without building anything).

    Args:
        registry (Registry): mmengine's root registry of the kind
            (``mmengine.registry.MODELS``, ``DATASETS``).
        kind (str | type): The ``type`` value (``'FPN'``, ``'mmdet.FPN'``
            or a class).
        scope (str, optional): The config's ``default_scope``, for names
            without a scope.

    Returns:
        type | None: The class; None where it is not found.
    """
    if isinstance(kind, type):
        return kind
    if not isinstance(kind, str):
        return None
    if '.' not in kind and scope:  # the root registry finds scoped names
        kind = f'{scope}.{kind}'
    try:
        return registry.get(kind)
    except (KeyError, ImportError):
        return None


def init_default(cls: Optional[type], name: str, default: Any) -> Any:
    """The default of ``name`` in the ``__init__`` of ``cls`` or of the
    first base that declares it (subclasses often pass ``**kwargs`` on).

    Args:
        cls (type, optional): The class.
        name (str): An ``__init__`` argument.
        default: What to return when no ``__init__`` gives a default.

    Returns:
        The default value.
    """
    for klass in getattr(cls, '__mro__', ()):
        init = klass.__dict__.get('__init__')
        if init is None:
            continue
        param = inspect.signature(init).parameters.get(name)
        if param is not None and param.default is not inspect.Parameter.empty:
            return param.default
    return default


def is_subclass_named(cls: Optional[type], package: str, name: str) -> bool:
    """Whether ``cls`` is (a subclass of) the class ``name`` of ``package``,
    without importing it (the framework may not be installed).

    Args:
        cls (type, optional): The class.
        package (str): Top module, e.g. ``'mmseg'``.
        name (str): Class name, e.g. ``'BaseDecodeHead'``.

    Returns:
        bool: Whether a class of that name and package is in its MRO.
    """
    return any(k.__name__ == name and k.__module__.startswith(package)
               for k in getattr(cls, '__mro__', ()))
