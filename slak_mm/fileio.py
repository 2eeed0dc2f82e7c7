"""Writes that readers (and crashes) never see half done, outputs that never
cost data, and small files read without blocking; standard library only, so
the torch-only parts (the depthwise conv tuning cache) use them too.

A file is written to a temporary name in the same folder
(``.NAME.XXXXXXXX.tmp``), flushed to disk and renamed over the target
(``os.replace`` is atomic on POSIX), so a file is either the old one or the
new one, never a truncated one. A process killed mid-write leaves only the
temporary file; :func:`remove_stale_temp_files` clears those.

Only regular files are replaced: a device node, FIFO, socket, symbolic
link or folder at the target is refused (a rename would swap ``/dev/null``
for a JSON file, or a link for a copy). :func:`check_output_path` also
refuses an output that is one of a tool's inputs, before the tool works.
:func:`read_regular_file` reads a file only if it is a regular one (a FIFO
would block the reader forever) and not larger than the caller's bound.
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
from typing import Any, List, Mapping, Optional, Union

__all__ = [
    'TEMP_FILE_PATTERN', 'DiskFullError', 'UnsafeOutputError',
    'UnwritableError', 'WriteFailedError', 'atomic_write_bytes',
    'check_output_folder', 'check_output_path', 'current_umask', 'file_kind',
    'plain_open_mode', 'read_regular_file', 'remove_stale_temp_files',
    'write_json_atomic'
]

#: Names of :func:`atomic_write_bytes`'s temporary files: ``.`` + target
#: name + ``.`` + mkstemp's 8 random characters + ``.tmp``.
TEMP_FILE_PATTERN = re.compile(r'^\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp$')


class WriteFailedError(OSError):
    """A write refused, by the OS or because it would cost data; the
    message names the file, the cause and what to do (one line, for the
    tools' ``error:``).

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


class UnsafeOutputError(WriteFailedError):
    """An output path that holds no regular file (a device, FIFO, socket,
    symbolic link or folder) or that is one of the run's inputs."""


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


#: What a path that is no regular file holds, by ``stat.S_IFMT``.
_KINDS = {
    stat.S_IFCHR: 'a character device',
    stat.S_IFBLK: 'a block device',
    stat.S_IFIFO: 'a FIFO (named pipe)',
    stat.S_IFSOCK: 'a socket',
    stat.S_IFDIR: 'a folder',
}


def file_kind(path: Union[str, Path]) -> Optional[str]:
    """What is at ``path``, in words, when it is not a regular file; the
    path itself is looked at (a symbolic link is named, not followed).

    Args:
        path (str | Path): Any path.

    Returns:
        str | None: E.g. ``'a character device'``, ``'a symbolic link (to
        /x)'``; None for a regular file or nothing at all.
    """
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISLNK(mode):
        try:
            return f'a symbolic link (to {os.readlink(path)})'
        except OSError:
            return 'a symbolic link'
    return _kind_of_mode(mode)


def _kind_of_mode(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), 'an unknown kind of file')


def _refuse_non_regular(path: Union[str, Path]) -> None:
    """Raise :class:`UnsafeOutputError` unless ``path`` is a regular file
    or free."""
    kind = file_kind(path)
    if kind is not None:
        raise UnsafeOutputError(
            errno.EEXIST, f'refusing to write {path}: it is {kind}, not a '
            f'regular file (only regular files are replaced); give the path '
            f'of a regular file or a new one')


def _same_file(a: str, b: str) -> bool:
    try:  # the same inode: also through a link or another spelling
        return osp.samefile(a, b)
    except OSError:  # one is missing (or unreadable): compare the names
        return osp.realpath(a) == osp.realpath(b)


def _local_output(path: Union[str, Path],
                  inputs: Optional[Mapping[str, Any]]) -> Optional[str]:
    """``path`` as a string, refused (:class:`UnsafeOutputError`) if it is
    one of ``inputs``; None for a remote path (not checked)."""
    path = str(path)
    if '://' in path:
        return None
    for name, source in (inputs or {}).items():
        if source is None or '://' in str(source):
            continue
        if _same_file(path, str(source)):
            spelled = '' if str(source) == path else f' {source}'
            raise UnsafeOutputError(
                errno.EINVAL, f'refusing to write {path}: it is the {name}'
                f'{spelled}, an input of this run; write the output to '
                f'another path')
    return path


def check_output_path(path: Union[str, Path],
                      inputs: Optional[Mapping[str, Any]] = None) -> None:
    """Refuse, before any work, an output that would cost data: a path
    that is one of ``inputs`` (the same file, also through a symbolic or
    hard link or another spelling) or that holds something other than a
    regular file (:func:`file_kind`). Remote paths (``s3://...``) and
    inputs that are None are not checked.

    Args:
        path (str | Path): The output file.
        inputs (Mapping[str, str], optional): What the run reads, by the
            name the message gives it (``{'checkpoint': PATH}``).

    Raises:
        UnsafeOutputError: One line naming the path and what it is.
    """
    path = _local_output(path, inputs)
    if path is not None:
        _refuse_non_regular(path)


def check_output_folder(path: Union[str, Path],
                        what: str = 'output folder',
                        inputs: Optional[Mapping[str, Any]] = None) -> None:
    """Refuse, before any work, an output folder that is one of
    ``inputs`` or whose path holds something else (a file, a device, a
    FIFO); a symbolic link to a folder is a folder here (the files written
    in it are regular ones).

    Args:
        path (str | Path): The folder; a missing one is fine (made later).
        what (str): How the message names it (``'--show-dir'``).
        inputs (Mapping[str, str], optional): As for
            :func:`check_output_path`.

    Raises:
        UnsafeOutputError: One line naming the path and what it is.
    """
    path = _local_output(path, inputs)
    if path is None:
        return
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    except NotADirectoryError:
        kind = 'a path below a file'
    else:
        if stat.S_ISDIR(mode):
            return
        kind = 'a file' if stat.S_ISREG(mode) else _kind_of_mode(mode)
    raise UnsafeOutputError(
        errno.ENOTDIR, f'refusing to write into {path} ({what}): it is '
        f'{kind}, not a folder; give a folder path (a new one is made)')


def read_regular_file(path: Union[str, Path], max_bytes: int) -> bytes:
    """The content of ``path`` if it is a regular file of at most
    ``max_bytes``; a FIFO or device is never opened for a blocking read
    (a FIFO without a writer would hang the reader).

    Args:
        path (str | Path): The file.
        max_bytes (int): The largest size accepted.

    Returns:
        bytes: The file's content.

    Raises:
        FileNotFoundError: Nothing at ``path``.
        ValueError: Not a regular file (named: :func:`file_kind`) or larger
            than ``max_bytes``.
        OSError: It cannot be read.
    """
    kind = file_kind(path)
    if kind is not None:
        raise ValueError(f'{path} is {kind}, not a regular file')
    # O_NOFOLLOW and fstat: what was looked at is what is read, even if
    # the path was swapped meanwhile; O_NONBLOCK: opening a FIFO returns
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise ValueError(f'{path} is a symbolic link, not a regular '
                             f'file') from None
        raise
    with os.fdopen(fd, 'rb') as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f'{path} is {_kind_of_mode(info.st_mode)}, '
                             f'not a regular file')
        # the size first: a large file is refused without reading it; the
        # read is bounded too (the file may grow meanwhile)
        data = b'' if info.st_size > max_bytes else f.read(max_bytes + 1)
    size = max(info.st_size, len(data))
    if size > max_bytes:
        raise ValueError(f'{path} holds {size / 2**20:.1f} MiB, more than '
                         f'the {max_bytes / 2**20:g} MiB accepted')
    return data


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
        UnsafeOutputError: ``path`` holds no regular file (a device, FIFO,
            socket, symbolic link or folder); nothing is written.
        OSError: Other failures (the temporary file is removed).
    """
    _refuse_non_regular(path)
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
