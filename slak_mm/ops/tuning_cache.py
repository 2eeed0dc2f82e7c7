"""Where the dispatcher keeps its choices: in memory, and in a JSON file
shared by processes.

Each key has a record (:func:`record`): ``choice`` (the implementation),
``how`` (``'measured'``, or ``'heuristic: <why nothing was measured>'``)
and, when measured, ``times`` (each candidate's best time in seconds; a
candidate abandoned as too slow keeps its one time), ``failures`` (name ->
why it was dropped) and ``seconds`` (how long the measurement stalled the
call). Only measured records are written to the file.

The file is the ``cache`` setting (:mod:`slak_mm.ops.settings`:
``$SLAK_MM_DWCONV_CACHE`` if set, else
``$XDG_CACHE_HOME/slak_mm/dwconv_tune.json``). It holds the
versions it was measured with (:func:`fingerprint`: torch, Triton, CUDA,
cuDNN; device names are part of the keys); a file from other versions, or
one that is no tuning cache (it does not parse, is nested too deeply,
holds records of the wrong shape, or exceeds :data:`MAX_CACHE_BYTES`), is
ignored (all but a stale one with a warning, once per process) and replaced
on the next write. A path that holds no regular file (a FIFO, a device, a
symbolic link, a folder) is never opened for a blocking read nor replaced:
it is ignored with one warning and the choices stay in memory. Files of the
first format (a name per key, no times) are read as records without times.
Writes merge with the file's current entries and are atomic
(:func:`slak_mm.fileio.write_json_atomic`); when several processes train
together (:func:`slak_mm.utils.dist.rank_and_world`) only rank 0 writes.
Nothing here imports mm packages.
"""
import copy
import json
import warnings
from importlib import metadata
from typing import Dict, Optional, Set, Union

import torch

from slak_mm.fileio import file_kind, read_regular_file, write_json_atomic
from slak_mm.utils.dist import rank_and_world
from .keys import TuningKey
from .settings import cache_path

#: Version of the file's layout (1: a name per key; 2: a record per key).
CACHE_FORMAT = 2
_READABLE_FORMATS = ('1', '2')
#: The largest cache file read: a record takes a few hundred bytes, so
#: 16 MiB hold tens of thousands of keys; a larger file is no cache of ours
#: (and parsing it would stall the first forward).
MAX_CACHE_BYTES = 16 * 2**20
#: The fields of a record and their types (a number: int or float).
_FIELDS = dict(
    choice=str, how=str, times=dict, failures=dict, seconds=(int, float))
_SCALARS = (str, int, float, bool, type(None))

_memory: Dict[str, dict] = {}  # key -> record, this process
_disk: Optional[Dict[str, dict]] = None  # the file's records, read once
_warned: Set[str] = set()  # the warnings given, each once per process


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


def _as_record(entry) -> Optional[dict]:
    """A file entry as a record (format 1 stored the name alone); None for
    one of another shape (the readers count on its fields' types)."""
    if isinstance(entry, str):
        return dict(choice=entry, how='measured')
    if not isinstance(entry, dict) or not isinstance(entry.get('choice'), str):
        return None
    for field, value in entry.items():
        if not isinstance(value, _FIELDS.get(field, _SCALARS)):
            return None
        if isinstance(value, dict) and not all(
                isinstance(k, str) and isinstance(v, (str, int, float))
                for k, v in value.items()):
            return None
    return entry


def _ignore(path: str, why: str) -> None:
    """Warn that the file is not used, once per process for each reason."""
    message = (f'slak_mm: ignoring the depthwise conv tuning cache {path} '
               f'({why})')
    if message not in _warned:
        _warned.add(message)
        warnings.warn(message)


def _same_versions(stored) -> bool:
    """Whether a file's fingerprint is this one, in a format read here."""
    return (isinstance(stored, dict)
            and stored.get('format') in _READABLE_FORMATS
            and dict(stored, format=str(CACHE_FORMAT)) == fingerprint())


def read_file(path: str) -> Dict[str, dict]:
    """The file's records when it was written by these versions.

    Args:
        path (str): The cache file.

    Returns:
        dict: Key string -> record (see the module's docstring); empty when
        the file is missing, stale, corrupt, too large or no regular file
        (all but missing and stale with a warning, once per process).
    """
    kind = file_kind(path)
    if kind is not None:
        _ignore(
            path, f'it is {kind}, not a regular file; choices are kept '
            f'in memory only')
        return {}
    try:  # a FIFO put there meanwhile is refused, not read
        data = json.loads(read_regular_file(path, MAX_CACHE_BYTES))
    except FileNotFoundError:
        return {}
    except RecursionError:  # json's parser recurses per nesting level
        _ignore(path, 'nested too deeply: not a tuning cache')
        return {}
    except (OSError, ValueError) as e:
        _ignore(path, f'{type(e).__name__}: {e}')
        return {}
    entries = data.get('entries') if isinstance(data, dict) else None
    records = {
        key: _as_record(entry)
        for key, entry in entries.items()
    } if isinstance(entries, dict) else None
    if records is None or None in records.values():
        _ignore(path, 'not a tuning cache')
        return {}
    if not _same_versions(data.get('fingerprint')):
        return {}  # other versions: measure again
    return records


def _write_file(path: str, key: str, record: dict) -> None:
    """Merge one record into the file, atomically; a failure only warns."""
    entries = read_file(path)
    if file_kind(path) is not None:  # said when read: not replaced
        return
    entries[key] = record
    try:
        write_json_atomic(
            dict(fingerprint=fingerprint(), entries=entries),
            path,
            indent=1,
            sort_keys=True)
    except OSError as e:
        warnings.warn(f'slak_mm: could not write the depthwise conv tuning '
                      f'cache {path} ({e}); choices are kept in memory')


def record(key: str, file: bool = True) -> Optional[dict]:
    """This process's record for ``key``, else the file's (read once per
    process, or after :func:`clear`).

    Args:
        key (str): A key string
            (:meth:`slak_mm.ops.keys.TuningKey.cache_name`).
        file (bool): Also look in the file. Default: True.

    Returns:
        dict | None: The record (see the module's docstring); the stored
        one itself, not a copy.
    """
    global _disk
    if key in _memory:
        return _memory[key]
    if not file:
        return None
    if _disk is None:
        _disk = read_file(cache_path())
    return _disk.get(key)


def lookup(key: str, file: bool = True) -> Optional[str]:
    """The stored choice for ``key`` (:func:`record`'s ``choice``).

    Args:
        key (str): A key string.
        file (bool): Also look in the file. Default: True.

    Returns:
        str | None: The stored implementation name.
    """
    found = record(key, file)
    return None if found is None else found['choice']


def remember(key: str, record: dict, persist: bool = False) -> None:
    """Keep ``record`` for ``key`` in memory, and in the file if
    ``persist`` (measured records; the heuristic's are not written) and
    this process is rank 0 (:func:`rank_and_world`): several ranks writing
    one file would only race, and they agree anyway.

    Args:
        key (str): A key string.
        record (dict): Its record, ``choice`` among its fields.
        persist (bool): Also merge it into the file. Default: False.
    """
    _memory[key] = record
    if persist and rank_and_world()[0] == 0:
        _write_file(cache_path(), key, record)


def clear() -> None:
    """Forget this process's choices, the file's entries read so far and
    the warnings given (the next lookup reads the file again)."""
    global _disk
    _memory.clear()
    _warned.clear()
    _disk = None


def tuning_record(key: Union[TuningKey, str]) -> Optional[dict]:
    """Why ``auto`` chose what it chose for a key: its record, this
    process's, else the file's.

    Args:
        key (TuningKey | str): A key
            (:func:`slak_mm.ops.keys.tuning_key`) or its
            :meth:`~slak_mm.ops.keys.TuningKey.cache_name`.

    Returns:
        dict | None: A copy of the record: ``choice``, ``how``
        (``'measured'`` or ``'heuristic: <why>'``) and, when measured,
        ``times`` (name -> best seconds), ``failures`` (name -> why it was
        dropped) and ``seconds`` (the stall); None when the key has none.
    """
    name = key.cache_name() if isinstance(key, TuningKey) else key
    return copy.deepcopy(record(name))
