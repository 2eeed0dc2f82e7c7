"""mmengine's local file backend, writing atomically (:mod:`.atomic`).

``backend_args=dict(backend=ATOMIC_BACKEND)`` on mmengine's
``CheckpointHook`` (``SafeCheckpointHook`` picks it itself) writes
checkpoints and the ``last_checkpoint`` pointer through
:func:`~slak_mm.checkpoint.atomic_write_bytes`.
"""
from pathlib import Path
from typing import Union

from mmengine.fileio import LocalBackend, register_backend

from .atomic import atomic_write_bytes

__all__ = ['ATOMIC_BACKEND', 'AtomicLocalBackend']

#: ``backend_args=dict(backend=ATOMIC_BACKEND)`` on mmengine's
#: ``CheckpointHook`` makes it write checkpoints atomically.
ATOMIC_BACKEND = 'atomic_local'


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
