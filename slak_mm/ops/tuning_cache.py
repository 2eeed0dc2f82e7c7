"""Where the dispatcher keeps its measured choices: in memory, and in a JSON
file shared by processes.

The file is :func:`slak_mm.ops.settings.cache_path` (``$SLAK_MM_DWCONV_CACHE``
if set, else ``$XDG_CACHE_HOME/slak_mm/dwconv_tune.json``). It holds the
versions it was measured with (:func:`fingerprint`: torch, Triton, CUDA,
cuDNN; device names are part of the keys); a file from other versions, or
one that does not parse, is ignored (a corrupt one with a warning) and
replaced on the next write. Writes merge with the file's current entries and
are atomic (:func:`slak_mm.fileio.write_json_atomic`). Nothing here imports
mm packages.
"""
import json
import warnings
from importlib import metadata
from typing import Dict, Optional

import torch

from slak_mm.fileio import write_json_atomic
from .settings import cache_path

#: Version of the file's layout.
CACHE_FORMAT = 1

_memory: Dict[str, str] = {}  # key -> implementation, this process
_disk: Optional[Dict[str, str]] = None  # the file's entries, read once


def _version(package: str) -> Optional[str]:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def fingerprint() -> Dict[str, Optional[str]]:
    """Versions a stored measurement depends on.

    Returns:
        dict: format, torch, triton, CUDA and cuDNN versions.
    """
    cudnn = torch.backends.cudnn.version() if torch.cuda.is_available() \
        else None
    return dict(
        format=str(CACHE_FORMAT),
        torch=torch.__version__,
        triton=_version('triton'),
        cuda=torch.version.cuda,
        cudnn=None if cudnn is None else str(cudnn))


def read_file(path: str) -> Dict[str, str]:
    """The file's entries when it was written by these versions.

    Args:
        path (str): The cache file.

    Returns:
        dict: Key string -> implementation name; empty when the file is
        missing, stale or corrupt (corrupt: with a warning).
    """
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        warnings.warn(f'slak_mm: ignoring the depthwise conv tuning cache '
                      f'{path} ({type(e).__name__}: {e})')
        return {}
    entries = data.get('entries') if isinstance(data, dict) else None
    if not isinstance(entries, dict) or not all(
            isinstance(v, str) for v in entries.values()):
        warnings.warn(f'slak_mm: ignoring the depthwise conv tuning cache '
                      f'{path} (not a tuning cache)')
        return {}
    if data.get('fingerprint') != fingerprint():
        return {}  # other versions: measure again
    return dict(entries)


def _write_file(path: str, key: str, choice: str) -> None:
    """Merge one entry into the file, atomically; a failure only warns."""
    entries = read_file(path)
    entries[key] = choice
    try:
        write_json_atomic(
            dict(fingerprint=fingerprint(), entries=entries),
            path,
            indent=1,
            sort_keys=True)
    except OSError as e:
        warnings.warn(f'slak_mm: could not write the depthwise conv tuning '
                      f'cache {path} ({e}); choices are kept in memory')


def lookup(key: str) -> Optional[str]:
    """This process's choice for ``key``, else the file's (read once per
    process, or after :func:`clear`).

    Args:
        key (str): A key string
            (:meth:`slak_mm.ops.dispatch.TuningKey.cache_name`).

    Returns:
        str | None: The stored implementation name.
    """
    global _disk
    if key in _memory:
        return _memory[key]
    if _disk is None:
        _disk = read_file(cache_path())
    return _disk.get(key)


def remember(key: str, choice: str, persist: bool = False) -> None:
    """Keep ``choice`` for ``key`` in memory, and in the file if
    ``persist`` (measured choices; the heuristic's are not written).

    Args:
        key (str): A key string.
        choice (str): An implementation name.
        persist (bool): Also merge it into the file. Default: False.
    """
    _memory[key] = choice
    if persist:
        _write_file(cache_path(), key, choice)


def clear() -> None:
    """Forget this process's choices and the file's entries read so far
    (the next lookup reads the file again)."""
    global _disk
    _memory.clear()
    _disk = None
