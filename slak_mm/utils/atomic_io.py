"""Writes that readers (and crashes) never see half done.

A file is written to a temporary name in the same folder, flushed to disk
and renamed over the target (``os.replace`` is atomic on POSIX), so a
checkpoint is either the old one or the new one, never a truncated file.
"""
import io
import json
import os
import os.path as osp
import tempfile
from pathlib import Path
from typing import Union

import torch
from mmengine.fileio import LocalBackend, register_backend

#: ``backend_args=dict(backend=ATOMIC_BACKEND)`` on mmengine's
#: ``CheckpointHook`` makes it write checkpoints atomically.
ATOMIC_BACKEND = 'atomic_local'


def atomic_write_bytes(data: bytes, path: Union[str, Path]) -> None:
    """Write ``data`` to ``path`` via a temporary file and a rename.

    Args:
        data (bytes): File content.
        path (str | Path): Target file; its folder is created if missing.
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=folder, prefix=f'.{osp.basename(path)}.', suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def write_json_atomic(data: dict, path: Union[str, Path]) -> None:
    """Write ``data`` as indented JSON, atomically."""
    atomic_write_bytes(json.dumps(data, indent=2).encode('utf-8'), path)


def torch_save_atomic(obj, path: Union[str, Path]) -> None:
    """``torch.save(obj, path)``, atomically."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(buffer.getvalue(), path)


@register_backend(ATOMIC_BACKEND)
class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend with atomic ``put`` / ``put_text``
    (used for checkpoints and the ``last_checkpoint`` pointer)."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        atomic_write_bytes(obj, filepath)

    def put_text(self,
                 obj: str,
                 filepath: Union[str, Path],
                 encoding: str = 'utf-8') -> None:
        atomic_write_bytes(obj.encode(encoding), filepath)
