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

Nothing is changed at import: :func:`slak_mm.config.load_config` (every
tool of this repository) calls :func:`register_config_scopes` before it
reads a config, and ``python -m slak_mm.mm_tool`` before it runs a
framework's own tool. Code that reads configs with ``Config.fromfile``
calls it first.
"""
import os.path as osp
from importlib import metadata
from importlib.util import find_spec
from typing import Dict, Iterable, Optional

from mmengine.config import Config
from mmengine.config import utils as config_utils
from mmengine.utils import get_installed_path

__all__ = ['OWN_SCOPES', 'register_config_scopes']

#: Scopes added to mmengine's table even though it does not know them.
OWN_SCOPES = ('slak_mm', )


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


def _read_own_scopes_unscoped() -> None:
    """Make ``Config`` resolve ``slak_mm::`` bases without a ``_scope_``
    (see the module doc). Idempotent; other scopes are unchanged."""
    original = Config._get_cfg_path
    if getattr(original, 'slak_mm_unscoped', False):
        return

    def get_cfg_path(cfg_path: str, filename: str):
        path, scope = original(cfg_path, filename)
        return path, None if scope in OWN_SCOPES else scope

    get_cfg_path.slak_mm_unscoped = True
    get_cfg_path.__doc__ = original.__doc__
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
    _read_own_scopes_unscoped()
    table = config_utils.MODULE2PACKAGE  # the dict mmengine reads per call
    changed = {}
    providers = None
    if scopes is None:
        scopes = list(table) + [s for s in OWN_SCOPES if s not in table]
    for scope in list(scopes):
        dist = table.get(scope, scope)
        if scope in table and _has_distribution(dist):
            continue
        spec = find_spec(scope)  # top-level name: finds, does not import
        if spec is None or spec.origin is None:
            continue
        if providers is None:  # scans every distribution: only when needed
            providers = metadata.packages_distributions()
        new = _provider(scope, osp.dirname(spec.origin), providers)
        if table.get(scope) != new:
            table[scope] = changed[scope] = new
    return changed
