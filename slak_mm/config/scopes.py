"""``_base_ = 'mmseg::...'`` bases on the onedl forks of the frameworks.

mmengine finds the package behind a ``SCOPE::path`` base through its
``MODULE2PACKAGE`` table (``mmengine.config.utils``, alias ``PKG2PROJECT``),
which maps the scope (the import name, ``mmseg``) to the *upstream* pip
distribution (``mmsegmentation``), and refuses the base when no
distribution of that name is installed. The onedl forks install the same
modules under other distribution names (``onedl-mmsegmentation``), so
``mmseg::`` bases fail with ``mmsegmentation is not installed``.
(``mmdet::`` and ``mmpretrain::`` happen to work because their scope equals
the upstream distribution name and mmengine falls back to the import name.)

:func:`register_config_scopes` points every scope whose upstream
distribution is missing but whose module imports at the distribution that
really installed it. It also adds ``slak_mm`` itself (:data:`OWN_SCOPES`),
so user configs can inherit ours: ``_base_ = 'slak_mm::_base_/models/
upernet_slak.py'`` reads ``slak_mm/.mim/configs/...`` (the configs the wheel
ships, or the link an editable install makes). mmengine accepts only
``SCOPE::FOLDER/FILE`` there, so a top-level config is reached through
:func:`slak_mm.get_config_path` instead. mmengine would also tag such a
base's dicts with ``_scope_='slak_mm'``, a registry scope that does not
exist (SLaK is registered in mmseg's and mmdet's registries), and building
would then fall back to mmengine's root registry and fail
(``SegDataPreProcessor is not in the mmengine::model registry``); so our
scopes' bases are read like local files, in the inheriting config's scope.

``import slak_mm`` calls :func:`read_scoped_bases`, so every reader of
mmengine configs in that process (``Config.fromfile``, the inferencers,
``init_model``, a plain ``Runner``) takes these bases: it wraps
``Config._get_cfg_path`` (where mmengine turns ``SCOPE::path`` into a
file), which maps a scope the first time a base names it. That is the one
change to mmengine's config reader at import; it costs nothing until a
scoped base is read. :func:`register_config_scopes` maps every scope at
once (``load_config`` and ``python -m slak_mm.mm_tool`` call it). A config
cannot do it for itself through ``custom_imports``: mmengine reads the
bases before it imports anything.
"""
import functools
import os.path as osp
from importlib import metadata
from importlib.util import find_spec
from typing import Dict, Iterable, Optional

from mmengine.config import Config
from mmengine.config import utils as config_utils
from mmengine.utils import get_installed_path

__all__ = [
    'OWN_SCOPES', 'packaged_config_folder', 'read_scoped_bases',
    'register_config_scopes'
]

#: Scopes added to mmengine's table even though it does not know them.
OWN_SCOPES = ('slak_mm', )

#: scope -> the table entry it was last resolved to (resolving scans every
#: installed distribution: once, unless someone changes the entry)
_RESOLVED: Dict[str, str] = {}


def _has_distribution(name: str) -> bool:
    try:
        metadata.distribution(name)
        return True
    except metadata.PackageNotFoundError:
        return False


def _provider(module: str, module_dir: str, providers: Dict[str, list]) -> str:
    """The installed distribution whose files hold ``module_dir``, else the
    import name itself (mmengine resolves an import name through
    ``find_spec`` too; only its install hints would then name no real
    distribution)."""
    for dist in providers.get(module, ()):
        try:
            if osp.samefile(get_installed_path(dist), module_dir):
                return dist
        except (ImportError, OSError, RuntimeError):
            continue
    return module


def packaged_config_folder(package: str) -> Optional[str]:
    """The configs a package ships (``<package>/.mim/configs``, where
    ``SCOPE::path`` bases are read), without importing it.

    Args:
        package (str): A top-level module name (``'mmdet'``).

    Returns:
        str | None: The folder; None where the package or folder is
        missing.
    """
    try:
        spec = find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = osp.join(
        list(spec.submodule_search_locations)[0], '.mim', 'configs')
    return folder if osp.isdir(folder) else None


def read_scoped_bases() -> None:
    """Make mmengine's ``Config`` read ``SCOPE::path`` bases on the onedl
    forks and ``slak_mm::`` bases (those without a ``_scope_``, see the
    module doc): each scope is mapped to its installed distribution the
    first time a base names it. What ``import slak_mm`` does; idempotent.
    """
    original = Config._get_cfg_path
    if getattr(original, 'slak_mm_unscoped', False):
        return

    @functools.wraps(original)
    def get_cfg_path(cfg_path: str, filename: str):
        if '::' in cfg_path:
            register_config_scopes([cfg_path.partition('::')[0]])
        try:
            path, scope = original(cfg_path, filename)
        except ValueError:
            # mmengine matches SCOPE::path with r'\w*::\w*/\w*' and cuts
            # the path at its first '.': folders such as mmdet's 'gn+ws'
            # and 'legacy_1.x' cannot be bases there
            scope, _, rel = cfg_path.partition('::')
            path = osp.join(packaged_config_folder(scope) or '', rel)
            if '::' not in cfg_path or not osp.isfile(path):
                raise
        return path, None if scope in OWN_SCOPES else scope

    get_cfg_path.slak_mm_unscoped = True
    Config._get_cfg_path = staticmethod(get_cfg_path)


def register_config_scopes(
        scopes: Optional[Iterable[str]] = None) -> Dict[str, str]:
    """Map config scopes to the distributions installed for them.

    For each scope of mmengine's ``MODULE2PACKAGE`` (or of ``scopes``) whose
    mapped distribution is not installed while the scope's module is
    importable, the entry is replaced by the distribution that installed
    the module (e.g. ``mmseg`` -> ``onedl-mmsegmentation``). Entries that
    resolve already, and scopes whose module is missing, are left as they
    are, so the upstream packages keep working. Idempotent.

    Args:
        scopes (Iterable[str], optional): Scopes to consider (new ones are
            added to the table). Defaults to every scope mmengine knows
            and :data:`OWN_SCOPES`.

    Returns:
        dict: Each changed scope and the distribution it now maps to.
    """
    read_scoped_bases()
    table = config_utils.MODULE2PACKAGE  # the dict mmengine reads per call
    changed = {}
    providers = None
    if scopes is None:
        scopes = list(table) + [s for s in OWN_SCOPES if s not in table]
    for scope in list(scopes):
        dist = table.get(scope, scope)
        if scope in table and (_RESOLVED.get(scope) == dist
                               or _has_distribution(dist)):
            continue
        spec = find_spec(scope)  # top-level name: finds, does not import
        if spec is None or spec.origin is None:
            continue
        if providers is None:  # scans every distribution: only when needed
            providers = metadata.packages_distributions()
        new = _RESOLVED[scope] = _provider(scope, osp.dirname(spec.origin),
                                           providers)
        if table.get(scope) != new:
            table[scope] = changed[scope] = new
    return changed
