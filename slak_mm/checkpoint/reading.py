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
from mmengine.logging import HistoryBuffer, print_log

from . import safe_numpy

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
    return [
        *safe_numpy.unpickle_bindings(), argparse.Namespace, HistoryBuffer,
        (_history_buffer_getattr, 'builtins.getattr')
    ]


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


def checkpoint_problem(path: str, allow_legacy: bool = False) -> Optional[str]:
    """Why ``path`` is not a complete checkpoint file, or None.

    A structural check that unpickles nothing (so no code runs):
    ``torch.save`` writes a zip archive, which must open, pass the CRC check
    of every member and hold ``data.pkl``; torch's pre-1.6 format is a bare
    pickle, which cannot be checked. By default such a file counts as a
    problem (an automatic resume must not pick a file it cannot check); the
    loader accepts it (``allow_legacy=True``), as torch does.

    Args:
        path (str): The file.
        allow_legacy (bool): Accept a legacy (non-zip) pickle file.
            Default: False.

    Returns:
        str | None: The problem in a few words; None if it looks complete.
    """
    if osp.isdir(path):
        return 'a folder, not a checkpoint file'
    if not osp.isfile(path):  # also False for a name with a NUL byte
        return 'the file does not exist'
    try:
        size = osp.getsize(path)
        if size == 0:
            return ('the file is empty (0 bytes): an interrupted save or '
                    'download')
        with open(path, 'rb') as f:
            head = f.read(4)
        if head[:1] == b'\x80':  # a pickle: torch's pre-1.6 format
            return None if allow_legacy else (
                'a legacy (non-zip) torch file, which cannot be checked; '
                'resume from it explicitly with --resume PATH')
        if head != b'PK\x03\x04':
            return (f'not a PyTorch checkpoint (starts with {head!r}; '
                    f'expected a torch.save zip or pickle)')
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()  # reads every member, checks CRCs
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError,
            NotImplementedError) as err:
        return (f'not a complete torch checkpoint (truncated or corrupt, '
                f'{size} bytes: {err})')
    if damaged is not None:
        return (f'damaged: member {damaged!r} fails its CRC check (bit flips '
                f'or a damaged copy)')
    if not any(n == 'data.pkl' or n.endswith('/data.pkl') for n in names):
        return 'not a torch checkpoint (no data.pkl)'
    return None


def _check_file(path: str) -> None:
    """Turn torch's raw errors on a damaged file into one line."""
    if not osp.isfile(path) and not osp.isdir(path):
        raise FileNotFoundError(f'Checkpoint not found: {path!r}')
    problem = checkpoint_problem(path, allow_legacy=True)
    if problem is not None:
        raise DamagedCheckpointError(
            f'Checkpoint {path!r} is unusable: {problem}. Use another '
            f'checkpoint (e.g. an earlier iter_*.pth) or copy it again.')


def load_checkpoint_safely(source: Union[str, os.PathLike, BinaryIO],
                           map_location: Any = 'cpu') -> Any:
    """``torch.load`` with ``weights_only=True`` and slak_mm's allow-list.

    Args:
        source (str | os.PathLike | file): Local path, or a binary file
            object (e.g. the bytes of a remote file in ``io.BytesIO``).
        map_location: Passed to ``torch.load``. Default: ``'cpu'``.

    Returns:
        The unpickled object (usually a dict).

    Raises:
        FileNotFoundError: ``source`` is a path that does not exist.
        UnsafeCheckpointError: The file needs another Python global (the
            message names it and the opt-in for trusted files).
        DamagedCheckpointError: Empty, truncated, corrupt or not a
            checkpoint.
    """
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    name = source if isinstance(source, str) else getattr(
        source, 'name', '<in-memory checkpoint>')
    if isinstance(source, str):
        source = osp.expanduser(source)
        _check_file(source)
    if unsafe_load_allowed():
        print_log(
            f'{UNSAFE_LOAD_ENV}=1: loading {name!r} with weights_only=False. '
            f'Any code pickled in this file runs now; use this only for '
            f'files you trust.',
            logger='current',
            level=logging.WARNING)
        return torch.load(
            source, map_location=map_location, weights_only=False)
    try:
        with torch.serialization.safe_globals(safe_globals()):
            loaded = torch.load(
                source, map_location=map_location, weights_only=True)
        return safe_numpy.materialize(loaded)
    except safe_numpy.NumpyRefused as err:
        raise UnsafeCheckpointError(
            f'Refused to load {name!r}: it holds {err}. slak_mm builds '
            f'numpy objects from checkpoints only as plain data, since an '
            f'object dtype lets the file forge memory pointers. If you '
            f'trust the file, rerun with --unsafe-load (tools) or '
            f'{UNSAFE_LOAD_ENV}=1.') from None
    except pickle.UnpicklingError as err:
        if 'weights_only' not in str(err) and 'allowed' not in str(err):
            raise DamagedCheckpointError(
                f'Checkpoint {name!r} cannot be unpickled: {err}') from None
        raise UnsafeCheckpointError(
            f'Refused to load {name!r}: it needs {_offending_global(err)}, '
            f'which is not among what mm and '
            f'SLaK checkpoints hold (tensors, containers, numpy arrays, '
            f'argparse.Namespace, mmengine HistoryBuffer); unpickling it '
            f'could run arbitrary code. If you trust the file, rerun with '
            f'--unsafe-load (tools) or {UNSAFE_LOAD_ENV}=1.') from None
    except (EOFError, RuntimeError, ValueError, IndexError, KeyError,
            AttributeError, TypeError, OSError) as err:
        raise DamagedCheckpointError(
            f'Checkpoint {name!r} cannot be read ({type(err).__name__}: '
            f'{str(err).splitlines()[0] if str(err) else "no detail"}): '
            f'it is damaged or not a checkpoint.') from None
