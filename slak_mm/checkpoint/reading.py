"""Reading checkpoint files safely: the one path every slak_mm load takes.

``torch.load(weights_only=True)`` unpickles only tensors, containers and an
allow-list of globals, so a hostile file cannot run code. The allow-list is
what the files this toolkit meets legitimately hold:

- mmengine training checkpoints (``iter_N.pth``): numpy arrays, scalars and
  dtypes, and the message hub's :class:`~mmengine.logging.HistoryBuffer`,
  which pickles its statistics methods as ``getattr(HistoryBuffer, 'min')``;
  ``getattr`` itself would be an escape hatch, so it is replaced by a
  version that only looks up public methods of ``HistoryBuffer``;
- official SLaK ImageNet files: ``argparse.Namespace`` (their ``args``).

mmengine's own loader retries with ``weights_only=False`` when that fails
(one WARNING line, then the file's code runs);
:func:`~slak_mm.checkpoint.use_safe_mmengine_loader` (:mod:`.mmengine_loader`)
makes the runner's ``load_from`` / ``resume``, the backbones' ``init_cfg``
and the frameworks' inferencers read through :func:`load_checkpoint_safely`
too.

Damaged files (empty, truncated, garbage, failing the zip CRC) get one line
naming the file and the problem instead of a bare ``EOFError``.

A file the user trusts can be read unsafely with ``SLAK_MM_UNSAFE_LOAD=1``
(the tools' ``--unsafe-load`` sets it); every such read is logged as a
WARNING naming the file.
"""
import argparse
import logging
import os
import os.path as osp
import pickle
import re
import zipfile
from typing import Any, BinaryIO, List, Optional, Union

import torch

from slak_mm.utils import has_package, log_message
from . import safe_numpy

# mmengine's training checkpoints hold it; a box without mmengine has none
if has_package('mmengine'):
    from mmengine.logging import HistoryBuffer
else:
    HistoryBuffer = None

__all__ = [
    'UNSAFE_LOAD_ENV', 'CheckpointError', 'DamagedCheckpointError',
    'UnsafeCheckpointError', 'checkpoint_problem', 'load_checkpoint_safely',
    'safe_globals', 'unsafe_load_allowed'
]

#: Environment variable that allows unsafe (code-running) loads.
UNSAFE_LOAD_ENV = 'SLAK_MM_UNSAFE_LOAD'

# torch's refusals: "Unsupported global: GLOBAL mod.name was not ...",
# "... unrecognized function <class 'slice'>", "... but got <class 'x.Y'>"
_GLOBAL_PATTERN = re.compile(
    r'[Uu]nsupported (?:global: )?GLOBAL ([\w.]+)|'
    r"unrecognized function <(?:class|built-in function|function) '?([\w.]+)|"
    r'unrecognized function ([\w.]+)|'
    r"but got <class '([\w.]+)'>")

#: The DOS attribute of a folder in a zip entry's external attributes.
_DOS_FOLDER = 0x10

# torch's weights-only unpickler on an opcode it does not know
_UNSUPPORTED_OPCODE = re.compile(r'Unsupported operand (\S+)')


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be used; the message says why and what
    to do."""


class UnsafeCheckpointError(CheckpointError):
    """The file needs a Python global outside the allow-list."""


class DamagedCheckpointError(CheckpointError):
    """The file is empty, truncated, corrupt or not a checkpoint."""


def _history_buffer_getattr(obj, name: str):
    """``getattr`` restricted to the public methods of ``HistoryBuffer``
    (what its pickled ``_statistics_methods`` dict refers to)."""
    if obj is HistoryBuffer and not name.startswith('_') and callable(
            getattr(HistoryBuffer, name, None)):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'getattr({obj!r}, {name!r}) is not allowed: only public methods '
        f'of mmengine HistoryBuffer may be looked up')


def safe_globals() -> List[Any]:
    """The allow-list for ``torch.serialization.safe_globals``.

    numpy's names are bound to the inert stand-ins of
    :mod:`slak_mm.checkpoint.safe_numpy` (never to numpy's own callables, which
    could forge object arrays over file bytes).

    Returns:
        list: Globals (and ``(object, name)`` pairs for renamed ones).
    """
    allowed = [*safe_numpy.unpickle_bindings(), argparse.Namespace]
    if HistoryBuffer is not None:
        allowed += [
            HistoryBuffer, (_history_buffer_getattr, 'builtins.getattr')
        ]
    return allowed


def unsafe_load_allowed() -> bool:
    """Whether the user opted into unsafe loads (``SLAK_MM_UNSAFE_LOAD``).

    Returns:
        bool: ``SLAK_MM_UNSAFE_LOAD`` is ``1``, ``true`` or ``yes``.
    """
    return os.environ.get(UNSAFE_LOAD_ENV, '0').lower() in ('1', 'true', 'yes')


def _offending_global(err: Exception) -> str:
    """What a refused file asked for, from torch's (or our getattr's)
    message: ``the Python global `collections.defaultdict``` or the
    refusal itself."""
    match = _GLOBAL_PATTERN.search(str(err))
    if match:
        return f'the Python global `{next(g for g in match.groups() if g)}`'
    # torch puts the refusal between a paragraph on weights_only and a
    # pointer to its documentation
    paragraphs = [
        p for p in str(err).split('WeightsUnpickler error:')[-1].split('\n\n')
        if p.strip() and not p.startswith(('Weights only load failed',
                                           'Check the documentation'))
    ]
    detail = ' '.join(' '.join(paragraphs).split())
    return detail[:300] or 'an object outside the allow-list'


def _zip_problem(archive: zipfile.ZipFile, size: int) -> Optional[str]:
    """What is wrong with the members of a ``torch.save`` zip, judged from
    its directory alone (nothing is inflated).

    ``torch.save`` stores every member uncompressed, so a compressed member
    is foreign, and members cannot hold more bytes than the file: either
    would let a file of a few MB make torch (or the CRC check) inflate
    gigabytes before any other check runs. torch's zip reader (miniz)
    reads a member marked as a folder (the DOS attribute bit) as no data
    and leaves the tensor's memory uninitialised, while Python's CRC check
    reads the member's bytes; of a name given twice, it reads the first
    copy and Python checks the last (both found by tests/test_fuzz.py):
    both are refused.
    """
    members = archive.infolist()
    names = [info.filename for info in members]
    for info in members:
        if names.count(info.filename) > 1:
            return (f'member {info.filename!r} is in the zip twice, which '
                    f'torch.save never writes: forged or damaged')
        if info.compress_type != zipfile.ZIP_STORED:
            return (f'member {info.filename!r} is compressed (zip method '
                    f'{info.compress_type}), which torch.save never writes; '
                    f'refused before inflating it (it declares '
                    f'{info.file_size} bytes)')
        if info.external_attr & _DOS_FOLDER:
            return (f'member {info.filename!r} is marked as a folder in the '
                    f'zip directory (attributes {info.external_attr:#x}), so '
                    f'torch would read no data for it: forged or damaged')
    declared = sum(info.file_size for info in members)
    if declared > size:
        return (f'its members declare {declared} bytes, more than the '
                f'{size} bytes of the file: forged or damaged')
    if not any(
            info.filename == 'data.pkl' or info.filename.endswith('/data.pkl')
            for info in members):
        if len(members) == 1 and not members[0].is_dir():
            return (f'a zip holding one file ({members[0].filename!r}, '
                    f'torch.hub\'s pre-1.6 format); unzip it and load the '
                    f'file inside')
        return 'not a torch checkpoint (no data.pkl)'
    damaged = archive.testzip()  # reads every member, checks CRCs
    if damaged is not None:
        return (f'damaged: member {damaged!r} fails its CRC check (bit flips '
                f'or a damaged copy)')
    return None


def _stream_problem(f: BinaryIO, size: int,
                    allow_legacy: bool) -> Optional[str]:
    """:func:`checkpoint_problem` for an open binary stream of ``size``
    bytes, read from its current position."""
    if size == 0:
        return 'the file is empty (0 bytes): an interrupted save or download'
    head = f.read(4)
    f.seek(-len(head), os.SEEK_CUR)
    if head[:1] == b'\x80':  # a pickle: torch's pre-1.6 format
        return None if allow_legacy else (
            'a legacy (non-zip) torch file, which cannot be checked; '
            'resume from it explicitly with --resume PATH')
    if head != b'PK\x03\x04':
        return (f'not a PyTorch checkpoint (starts with {head!r}; '
                f'expected a torch.save zip or pickle)')
    try:
        with zipfile.ZipFile(f) as archive:
            return _zip_problem(archive, size)
    except Exception as err:  # noqa: BLE001
        # zipfile fails on damaged headers in many ways (BadZipFile,
        # EOFError, NotImplementedError for an unknown method, RuntimeError
        # for a member flagged as encrypted, zlib.error, ...)
        return (f'not a complete torch checkpoint (truncated or corrupt, '
                f'{size} bytes: {err})')


def checkpoint_problem(source: Union[str, os.PathLike, BinaryIO],
                       allow_legacy: bool = False) -> Optional[str]:
    """Why ``source`` is not a complete checkpoint file, or None.

    A structural check that unpickles nothing (so no code runs) and
    inflates nothing: ``torch.save`` writes a zip archive of uncompressed
    members, which must open, declare no more bytes than the file holds,
    pass the CRC check of every member and hold ``data.pkl``; torch's
    pre-1.6 format is a bare pickle, which cannot be checked. By default
    such a file counts as a problem (an automatic resume must not pick a
    file it cannot check); the loader accepts it (``allow_legacy=True``),
    as torch does.

    Args:
        source (str | os.PathLike | file): The file, or a seekable binary
            stream (e.g. a remote file's bytes in ``io.BytesIO``), which
            is left at the position it had.
        allow_legacy (bool): Accept a legacy (non-zip) pickle file.
            Default: False.

    Returns:
        str | None: The problem in a few words; None if it looks complete.
    """
    if not isinstance(source, (str, os.PathLike)):
        start = source.tell()
        try:
            size = source.seek(0, os.SEEK_END) - start
            source.seek(start)
            return _stream_problem(source, size, allow_legacy)
        finally:
            source.seek(start)
    path = os.fspath(source)
    if osp.isdir(path):
        return 'a folder, not a checkpoint file'
    if not osp.isfile(path):  # also False for a name with a NUL byte
        return 'the file does not exist'
    try:
        with open(path, 'rb') as f:
            return _stream_problem(f,
                                   os.fstat(f.fileno()).st_size, allow_legacy)
    except OSError as err:
        return f'unreadable: {err}'


def _check_source(source: Union[str, BinaryIO], name: str) -> None:
    """Turn torch's raw errors on a damaged file into one line."""
    if isinstance(source, str) and not osp.isfile(source) and \
            not osp.isdir(source):
        raise FileNotFoundError(f'Checkpoint not found: {source!r}')
    if not isinstance(source, str) and not source.seekable():
        return  # a pipe: torch reads it as it comes
    problem = checkpoint_problem(source, allow_legacy=True)
    if problem is not None:
        raise DamagedCheckpointError(
            f'Checkpoint {name} is unusable: {problem}. Use another '
            f'checkpoint (e.g. an earlier iter_*.pth) or copy it again.')


def load_checkpoint_safely(source: Union[str, os.PathLike, BinaryIO],
                           map_location: Any = 'cpu',
                           origin: Optional[str] = None) -> Any:
    """``torch.load`` with ``weights_only=True`` and slak_mm's allow-list.

    Args:
        source (str | os.PathLike | file): Local path, or a binary file
            object (e.g. the bytes of a remote file in ``io.BytesIO``).
        map_location: Passed to ``torch.load``. Default: ``'cpu'``.
        origin (str, optional): Where the file came from (e.g. the URL of
            a downloaded file), named in every message beside the file.

    Returns:
        The unpickled object (usually a dict).

    Raises:
        FileNotFoundError: ``source`` is a path that does not exist.
        UnsafeCheckpointError: The file needs another Python global (the
            message names it and the opt-in for trusted files).
        DamagedCheckpointError: Empty, truncated, corrupt, forged or not a
            checkpoint.
    """
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if isinstance(source, str):
        source = osp.expanduser(source)
    name = repr(
        source if isinstance(source, str) else getattr(
            source, 'name', '<in-memory checkpoint>'))
    if origin:
        name = f'{name} (from {origin})'
    _check_source(source, name)
    if unsafe_load_allowed():
        log_message(
            f'{UNSAFE_LOAD_ENV}=1: loading {name} with weights_only=False. '
            f'Any code pickled in this file runs now; use this only for '
            f'files you trust.', logging.WARNING)
        return torch.load(
            source, map_location=map_location, weights_only=False)
    try:
        with torch.serialization.safe_globals(safe_globals()):
            loaded = torch.load(
                source, map_location=map_location, weights_only=True)
        return safe_numpy.materialize(loaded)
    except safe_numpy.NumpyRefused as err:
        raise UnsafeCheckpointError(
            f'Refused to load {name}: it holds {_one_line(err)}. slak_mm '
            f'builds numpy objects from checkpoints only as plain data, '
            f'since an object dtype lets the file forge memory pointers. '
            f'If you trust the file, rerun with --unsafe-load (tools) or '
            f'{UNSAFE_LOAD_ENV}=1.') from None
    except pickle.UnpicklingError as err:
        if 'weights_only' not in str(err) and 'allowed' not in str(err):
            raise DamagedCheckpointError(
                f'Checkpoint {name} cannot be unpickled: '
                f'{_one_line(err)}') from None
        opcode = _UNSUPPORTED_OPCODE.search(str(err))
        if opcode:  # torch.save never writes it: damaged or foreign
            raise DamagedCheckpointError(
                f'Checkpoint {name} cannot be read: its pickle holds opcode '
                f'{opcode.group(1)}, which torch.save never writes (a damaged '
                f'file, or one written by other code). Use another '
                f'checkpoint or copy it again.') from None
        raise UnsafeCheckpointError(
            f'Refused to load {name}: it needs {_offending_global(err)}, '
            f'which is not among what mm and '
            f'SLaK checkpoints hold (tensors, containers, numpy arrays, '
            f'argparse.Namespace, mmengine HistoryBuffer); unpickling it '
            f'could run arbitrary code. If you trust the file, rerun with '
            f'--unsafe-load (tools) or {UNSAFE_LOAD_ENV}=1.') from None
    except Exception as err:  # noqa: BLE001
        # a damaged or forged pickle calls the allow-listed functions with
        # any arguments, and they fail in their own ways (found by
        # tests/test_fuzz.py: AssertionError from torch's persistent_load
        # and HistoryBuffer, LookupError from _codecs.encode, besides
        # EOFError, KeyError, RuntimeError, ...)
        raise DamagedCheckpointError(
            f'Checkpoint {name} cannot be read ({type(err).__name__}: '
            f'{_one_line(err)}): it is damaged or not a checkpoint.') from None


def _one_line(err: Exception, limit: int = 300) -> str:
    """An exception's message on one line, at most ``limit`` characters."""
    return ' '.join(str(err).split())[:limit] or 'no detail'
