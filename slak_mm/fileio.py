"""Writes that readers (and crashes) never see half done; standard library
only, so the torch-only parts (the depthwise conv tuning cache) use them too.

A file is written to a temporary name in the same folder
(``.NAME.XXXXXXXX.tmp``), flushed to disk and renamed over the target
(``os.replace`` is atomic on POSIX), so a file is either the old one or the
new one, never a truncated one. A process killed mid-write leaves only the
temporary file; :func:`remove_stale_temp_files` clears those.
"""
import errno
import json
import os
import os.path as osp
import re
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any, List, Union

__all__ = [
    'TEMP_FILE_PATTERN', 'DiskFullError', 'UnwritableError',
    'WriteFailedError', 'atomic_write_bytes', 'current_umask',
    'plain_open_mode', 'remove_stale_temp_files', 'write_json_atomic'
]

#: Names of :func:`atomic_write_bytes`'s temporary files: ``.`` + target
#: name + ``.`` + mkstemp's 8 random characters + ``.tmp``.
TEMP_FILE_PATTERN = re.compile(r'^\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp$')


class WriteFailedError(OSError):
    """A write that the OS refused; the message names the file, the cause
    and what to do (one line, for the tools' ``error:``).

    Args:
        code (int): The ``errno`` of the refusal.
        message (str): The whole message (``str()`` gives only it).
    """

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.errno = code


class DiskFullError(WriteFailedError):
    """No space (or quota) left for a write."""


class UnwritableError(WriteFailedError):
    """The folder is read-only or not ours to write."""


_FULL = (errno.ENOSPC, errno.EDQUOT)
_UNWRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)


def _explained(err: OSError, path: str, size: int) -> OSError:
    """``err`` as a one-line :class:`WriteFailedError` (others unchanged)."""
    folder = osp.dirname(osp.abspath(path))
    if err.errno in _FULL:
        try:
            free = f'{shutil.disk_usage(folder).free / 2**20:.1f} MiB free'
        except OSError:
            free = 'free space unknown'
        return DiskFullError(
            err.errno, f'no space left on device writing {path}: it needs '
            f'{size / 2**20:.1f} MiB, {free} in {folder}; free space there '
            f'or write elsewhere (nothing was replaced: the previous file, '
            f'if any, is intact)')
    if err.errno in _UNWRITABLE:
        return UnwritableError(
            err.errno,
            f'cannot write {path}: {os.strerror(err.errno)} (is {folder} '
            f'read-only or owned by another user?); choose a writable '
            f'folder')
    return err


def current_umask() -> int:
    """The process's umask, read without changing it where possible.

    Returns:
        int: The umask bits (e.g. ``0o022``).
    """
    # /proc avoids os.umask's set-and-restore, which would briefly change
    # the mask for every thread of the process
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('Umask:'):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def plain_open_mode(path: Union[str, Path]) -> int:
    """The permission bits ``open(path, 'w')`` would leave on ``path``.

    Args:
        path (str | Path): The file about to be written.

    Returns:
        int: The existing file's mode, else ``0o666`` minus the umask.
    """
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return 0o666 & ~current_umask()


def _fsync_folder(folder: str) -> None:
    # makes the rename itself durable (a power cut then keeps the new name)
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems cannot fsync a folder
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(data: bytes, path: Union[str, Path]) -> None:
    """Write ``data`` to ``path`` via a temporary file, fsync and a rename.

    The file gets the mode a plain ``open(path, 'w')`` would give it (not
    mkstemp's 0600).

    Args:
        data (bytes): File content.
        path (str | Path): Target file; its folder is created if missing.

    Raises:
        DiskFullError: No space left (names the file, the size and the free
            space); the temporary file is removed, the old file intact.
        UnwritableError: The folder is read-only or not writable.
        OSError: Other failures (the temporary file is removed).
    """
    folder = osp.dirname(osp.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            dir=folder, prefix=f'.{osp.basename(path)}.', suffix='.tmp')
    except OSError as err:
        raise _explained(err, str(path), len(data)) from None
    mode = plain_open_mode(path)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        if osp.exists(tmp):
            os.remove(tmp)
        if isinstance(err, OSError):
            raise _explained(err, str(path), len(data)) from None
        raise
    _fsync_folder(folder)


def write_json_atomic(data: Any, path: Union[str, Path],
                      **dump_kwargs) -> None:
    """Write ``data`` as JSON, atomically (:func:`atomic_write_bytes`).

    Args:
        data: A JSON-serialisable object.
        path (str | Path): Target file.
        **dump_kwargs: Passed to ``json.dumps``. Default: ``indent=2``.
    """
    dump_kwargs.setdefault('indent', 2)
    atomic_write_bytes(json.dumps(data, **dump_kwargs).encode('utf-8'), path)


def remove_stale_temp_files(folder: Union[str, Path]) -> List[str]:
    """Delete the temporary files that killed atomic writes left in
    ``folder`` (only names of :data:`TEMP_FILE_PATTERN`; not recursive).

    Call it only when no other process writes into ``folder``.

    Args:
        folder (str | Path): The folder to clean; a missing one is ignored.

    Returns:
        list[str]: The paths removed.
    """
    try:
        names = sorted(os.listdir(folder))
    except FileNotFoundError:
        return []
    removed = []
    for name in names:
        path = osp.join(folder, name)
        if TEMP_FILE_PATTERN.match(name) and osp.isfile(path):
            try:
                os.remove(path)
            except FileNotFoundError:  # removed meanwhile
                continue
            removed.append(path)
    return removed
