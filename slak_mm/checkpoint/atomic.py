"""Checkpoints written atomically, on :mod:`slak_mm.fileio`'s writer.

- :func:`torch_save_atomic`: ``torch.save`` to a temporary file, then a
  rename (deploy and converted checkpoints);
- :class:`AtomicLocalBackend`: mmengine's local file backend writing the
  same way; ``backend_args=dict(backend=ATOMIC_BACKEND)`` on mmengine's
  ``CheckpointHook`` (``SafeCheckpointHook`` picks it itself) writes
  checkpoints and the ``last_checkpoint`` pointer through it.

The writer itself (:func:`slak_mm.fileio.atomic_write_bytes`, JSON, stale
temporary files) is plain Python, for the torch-only parts too.
"""
import io
from pathlib import Path
from typing import Any, Union

import torch
from mmengine.fileio import LocalBackend, register_backend

from slak_mm.fileio import atomic_write_bytes

__all__ = ['ATOMIC_BACKEND', 'AtomicLocalBackend', 'torch_save_atomic']

#: ``backend_args=dict(backend=ATOMIC_BACKEND)`` on mmengine's
#: ``CheckpointHook`` makes it write checkpoints atomically.
ATOMIC_BACKEND = 'atomic_local'


def torch_save_atomic(obj: Any, path: Union[str, Path]) -> None:
    """``torch.save(obj, path)``, atomically.

    Args:
        obj: What to save (e.g. ``{'meta': ..., 'state_dict': ...}``).
        path (str | Path): Target file.
    """
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(buffer.getvalue(), path)


@register_backend(ATOMIC_BACKEND)
class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend with atomic ``put`` / ``put_text``
    (used for checkpoints and the ``last_checkpoint`` pointer)."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        """Write ``obj`` to ``filepath`` atomically.

        Args:
            obj (bytes): File content.
            filepath (str | Path): Target file.
        """
        atomic_write_bytes(obj, filepath)

    def put_text(self,
                 obj: str,
                 filepath: Union[str, Path],
                 encoding: str = 'utf-8') -> None:
        """Write the text ``obj`` to ``filepath`` atomically.

        Args:
            obj (str): File content.
            filepath (str | Path): Target file.
            encoding (str): Text encoding. Default: ``'utf-8'``.
        """
        atomic_write_bytes(obj.encode(encoding), filepath)
