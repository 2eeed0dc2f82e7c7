"""The top-level keys a config file sets, and where its bases clash.

mmengine refuses two ``_base_`` files that set one top-level key
(``Duplicate key is not allowed among bases``) without naming the files.
These functions read the keys from the files' source (``ast``: nothing is
run, each file is parsed once per process and modification), so a clash
can be named with its bases, and a drop-in base can be checked against
every packaged config in seconds (``Config.fromfile`` of all of them takes
minutes).

The keys are those mmengine keeps: names assigned at module level (also in
``if`` / ``for`` / ``with`` / ``try`` blocks, not in functions, classes'
bodies or comprehensions), minus ``_base_``, names starting with ``__``,
functions and imports, plus the keys of the file's own bases.
"""
import ast
import functools
import os
import os.path as osp
from typing import Dict, FrozenSet, List, Optional, Set, Tuple

from mmengine.config import Config
from mmengine.fileio import load

__all__ = ['base_clash', 'base_clash_line', 'base_files', 'config_keys']

#: Nodes whose assignments do not reach the module's namespace.
_OWN_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef,
               ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def _assigned_names(node: ast.AST, names: Dict[str, None]) -> None:
    """Add the module-level names ``node`` assigns (in order) to
    ``names``; ``del`` removes them."""
    if isinstance(node, ast.ClassDef):
        names[node.name] = None  # a class object is kept, unlike functions
        return
    if isinstance(node, _OWN_SCOPES):
        return
    if isinstance(node, ast.Name):
        if isinstance(node.ctx, ast.Store):
            names[node.id] = None
        elif isinstance(node.ctx, ast.Del):
            names.pop(node.id, None)
        return
    if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        if isinstance(node.value, ast.Lambda):
            return  # a function: mmengine drops it
        if node.value is not None:  # a walrus inside binds a name too
            _assigned_names(node.value, names)
        for target in getattr(node, 'targets', None) or [node.target]:
            _assigned_names(target, names)
        return
    for child in ast.iter_child_nodes(node):
        _assigned_names(child, names)


def _literal_bases(tree: ast.Module, path: str) -> List[str]:
    """The ``_base_`` entries of a parsed config, as written."""
    bases: List[str] = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == '_base_'
                for t in node.targets):
            try:
                value = ast.literal_eval(node.value)
            except ValueError as err:
                raise ValueError(
                    f'{path}: _base_ must be a string or a list of strings '
                    f'(mmengine reads it before running the file)') from err
            bases = _as_list(value)
    return bases


def _as_list(bases) -> List[str]:
    return [bases] if isinstance(bases, str) else list(bases or ())


@functools.lru_cache(maxsize=None)
def _parsed(path: str, mtime_ns: int) -> Tuple[Tuple[str, ...], FrozenSet]:
    """``(bases as written, own keys)`` of one file (cached per version)."""
    if not path.endswith('.py'):  # a .json / .yaml config: data
        data = dict(load(path))
        bases = _as_list(data.pop('_base_', None))
        return tuple(bases), frozenset(data)
    with open(path, encoding='utf-8') as f:
        tree = ast.parse(f.read(), path)
    names: Dict[str, None] = {}
    for node in tree.body:
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            _assigned_names(node, names)
    own = frozenset(n for n in names
                    if n != '_base_' and not n.startswith('__'))
    return tuple(_literal_bases(tree, path)), own


def _read(path: str) -> Tuple[Tuple[str, ...], FrozenSet]:
    real = osp.realpath(path)
    return _parsed(real, os.stat(real).st_mtime_ns)


@functools.lru_cache(maxsize=None)
def _resolved(base: str, folder: str) -> str:
    """A ``_base_`` entry as a file: relative to ``folder`` (the including
    file's), or through the package for ``SCOPE::path`` (mmengine reads
    the package's model index for that: once per entry here)."""
    return Config._get_cfg_path(base, osp.join(folder, 'config.py'))[0]


def _resolve(base: str, path: str) -> str:
    return _resolved(base, '' if '::' in base else osp.dirname(path))


def base_files(path: str) -> List[str]:
    """The files a config's ``_base_`` names, resolved as mmengine does
    (``SCOPE::path`` through the installed package).

    Args:
        path (str): A ``.py`` config file.

    Returns:
        list[str]: One path per ``_base_`` entry, in order.
    """
    return [_resolve(base, path) for base in _read(path)[0]]


@functools.lru_cache(maxsize=None)
def _merged_keys(real: str,
                 mtime_ns: int) -> Tuple[FrozenSet[str], Tuple[str, ...]]:
    """``(keys, unresolved _base_ entries)`` of a file and its bases."""
    bases, own = _parsed(real, mtime_ns)
    keys, unresolved = set(own), []
    for base in bases:
        try:
            base_real = osp.realpath(_resolve(base, real))
            base_keys, missing = _merged_keys(base_real,
                                              os.stat(base_real).st_mtime_ns)
        except (ImportError, OSError, SyntaxError, ValueError):
            unresolved.append(f'{real}: {base}')
            continue
        keys |= base_keys
        unresolved += missing
    return frozenset(keys), tuple(unresolved)


def config_keys(path: str,
                unresolved: Optional[Set[str]] = None) -> FrozenSet[str]:
    """The top-level keys ``Config.fromfile(path)`` has: the file's own and
    its bases' (recursively). Cached per file version (a base edited after
    a config that includes it was read in this process is not re-read).

    Args:
        path (str): A ``.py`` config file.
        unresolved (set, optional): Collects the ``_base_`` entries that
            name no file (a package that is not installed, a missing file)
            instead of raising.

    Returns:
        frozenset[str]: The keys.

    Raises:
        FileNotFoundError: A ``_base_`` entry names no file (without
            ``unresolved``).
    """
    real = osp.realpath(path)
    keys, missing = _merged_keys(real, os.stat(real).st_mtime_ns)
    if missing and unresolved is None:
        raise FileNotFoundError(f'{missing[0]}: the _base_ names no file')
    if unresolved is not None:
        unresolved.update(missing)
    return keys


def base_clash(path: str) -> Optional[Tuple[str, str, List[str]]]:
    """The first config file (``path`` or one of its bases, depth first,
    as mmengine reads them) two of whose bases set the same key.

    Args:
        path (str): A ``.py`` config file.

    Returns:
        tuple | None: ``(file, key, [the bases that set it])``, or None.
    """
    bases, resolved = _read(path)[0], base_files(path)
    seen: Dict[str, str] = {}
    for written, base_path in zip(bases, resolved):
        inner = base_clash(base_path)
        if inner is not None:
            return inner
        for key in sorted(config_keys(base_path)):
            if key in seen:
                return path, key, [seen[key], written]
            seen[key] = written
    return None


def base_clash_line(path: str) -> Optional[str]:
    """One line for mmengine's ``Duplicate key is not allowed among
    bases``: the file, the key, the two bases and the fix.

    Args:
        path (str): The config (a file, or ``SCOPE::path``).

    Returns:
        str | None: The line; None where no clash is found.
    """
    try:
        if '::' in path and not osp.exists(path):
            path = Config._get_cfg_path(path, path)[0]
        clash = base_clash(path)
    except (ImportError, OSError, SyntaxError, ValueError):
        return None  # mmengine's own message stands
    if clash is None:
        return None
    file, key, (first, second) = clash
    return (f'config {file}: its bases {first} and {second} both set '
            f'{key!r} (mmengine: "Duplicate key is not allowed among '
            f'bases"); keep it in one base only: remove or rename it in the '
            f'other (a top config may set {key!r} itself, after its bases)')
