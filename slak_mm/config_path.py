"""Find the configs shipped with slak_mm, in a checkout or an installed wheel.

As in mmdet / mmseg, the wheel carries the repository's ``configs/`` as
``slak_mm/.mim/configs`` (copied by ``setup.py``'s ``build_py``; an
editable install links it to the checkout's ``configs/`` instead). That is
also where mmengine looks for ``_base_ = 'slak_mm::...'`` bases and mim for
``mim train slak_mm CONFIG``.

Plain Python, no OpenMMLab import: usable before the frameworks load.
"""
import difflib
import os
import os.path as osp
from typing import List, Optional

__all__ = ['config_roots', 'get_config_path', 'list_configs']

_PACKAGE_DIR = osp.dirname(osp.abspath(__file__))
#: Where configs are looked for, in order: the packaged copy (wheel) or
#: link (editable install), then the checkout's ``configs/`` (a source tree
#: used without installing, or installed before configs were packaged).
CONFIG_DIRS = (osp.join(_PACKAGE_DIR, '.mim', 'configs'),
               osp.join(osp.dirname(_PACKAGE_DIR), 'configs'))


def config_roots() -> List[str]:
    """The existing config folders of :data:`CONFIG_DIRS`, real paths,
    without duplicates (the editable link and the checkout are one).

    Returns:
        list[str]: Absolute folders, maybe empty.
    """
    roots = []
    for folder in CONFIG_DIRS:
        real = osp.realpath(folder)
        if osp.isdir(real) and real not in roots:
            roots.append(real)
    return roots


def list_configs(root: Optional[str] = None) -> List[str]:
    """Config files under ``root``, as paths relative to it (``/``-separated,
    sorted), e.g. ``'upernet_slak_t_ade20k.py'``, ``'_base_/models/...'``.

    Args:
        root (str, optional): A config folder; default the first of
            :func:`config_roots` (none: an empty list).

    Returns:
        list[str]: The ``.py`` files below it.
    """
    if root is None:
        roots = config_roots()
        if not roots:
            return []
        root = roots[0]
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != '__pycache__']
        rel = osp.relpath(folder, root)
        found += [
            f if rel == '.' else f'{rel}/{f}'.replace(os.sep, '/')
            for f in files if f.endswith('.py')
        ]
    return sorted(found)


def get_config_path(name: str) -> str:
    """Absolute path of a config shipped with slak_mm.

    Args:
        name (str): Path relative to the config folder, with or without
            ``.py``: ``'upernet_slak_t_ade20k.py'``,
            ``'demo/upernet_slak_demo_synthetic_ade20k'``,
            ``'_base_/models/upernet_slak.py'``. A bare file name that is
            unique among all configs also works
            (``'upernet_slak_demo_synthetic_ade20k'``).

    Returns:
        str: The config file's absolute (real) path.

    Raises:
        FileNotFoundError: No such config (the message lists close names),
            or no config folder at all (a broken install).
    """
    rel = name.strip().replace('\\', '/')
    if not rel.endswith('.py'):
        rel += '.py'
    roots = config_roots()
    if not roots:
        raise FileNotFoundError(
            f'No slak_mm configs found (looked in {", ".join(CONFIG_DIRS)}): '
            f'reinstall slak_mm (pip install . or pip install -e .)')
    known = list_configs(roots[0])
    if rel in known:
        return osp.join(roots[0], *rel.split('/'))
    same_name = [k for k in known if osp.basename(k) == rel]
    if '/' not in rel and len(same_name) == 1:
        return osp.join(roots[0], *same_name[0].split('/'))
    close = same_name or difflib.get_close_matches(rel, known, n=5, cutoff=.5)
    hint = (f'; did you mean: {", ".join(close)}?'
            if close else f'; top-level configs: '
            f'{", ".join(k for k in known if "/" not in k)}')
    raise FileNotFoundError(
        f'slak_mm has no config {name!r} in {roots[0]}{hint} '
        f'(slak_mm.config_path.list_configs() lists all)')
