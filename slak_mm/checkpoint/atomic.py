"""Writes that readers (and crashes) never see half done.

A file is written to a temporary name in the same folder
(``.NAME.XXXXXXXX.tmp``), flushed to disk and renamed over the target
(``os.replace`` is atomic on POSIX), so a checkpoint is either the old one or
the new one, never a truncated file. A process killed mid-write leaves only
the temporary file; :func:`remove_stale_temp_files` clears those.

Plain Python (``torch`` only inside :func:`torch_save_atomic`): no
OpenMMLab import. mmengine's checkpoint writes use it through
:mod:`.atomic_backend`.
"""
import io
import json
import os
import os.path as osp
import re
import stat
import tempfile
from pathlib import Path
from typing import Any, List, Union

__all__ = [
    'TEMP_FILE_PATTERN', 'atomic_write_bytes', 'current_umask',
    'plain_open_mode', 'remove_stale_temp_files', 'torch_save_atomic',
    'write_json_atomic'
]

#: Names of :func:`atomic_write_bytes`'s temporary files: ``.`` + target
#: name + ``.`` + mkstemp's 8 random characters + ``.tmp``.
TEMP_FILE_PATTERN = re.compile(r'^\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp$')


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


def atomic_write_bytes(data: bytes, path: Union[str, Path]) -> None:
    """Write ``data`` to ``path`` via a temporary file and a rename.

    The file gets the mode a plain ``open(path, 'w')`` would give it (not
    mkstemp's 0600).

    Args:
        data (bytes): File content.
        path (str | Path): Target file; its folder is created if missing.
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    mode = plain_open_mode(path)
    fd, tmp = tempfile.mkstemp(
        dir=folder, prefix=f'.{osp.basename(path)}.', suffix='.tmp')
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_folder(folder)


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


def write_json_atomic(data: dict, path: Union[str, Path]) -> None:
    """Write ``data`` as indented JSON, atomically.

    Args:
        data (dict): JSON-serialisable content.
        path (str | Path): Target file.
    """
    atomic_write_bytes(json.dumps(data, indent=2).encode('utf-8'), path)


def torch_save_atomic(obj: Any, path: Union[str, Path]) -> None:
    """``torch.save(obj, path)``, atomically.

    Args:
        obj: What to save (e.g. ``{'meta': ..., 'state_dict': ...}``).
        path (str | Path): Target file.
    """
    import torch  # the only torch use here: the byte writer stays plain
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(buffer.getvalue(), path)

