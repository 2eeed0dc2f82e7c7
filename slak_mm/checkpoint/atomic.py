"""Checkpoints and mmengine's file writes made atomic, on
:mod:`slak_mm.fileio`'s writer.

- :func:`torch_save_atomic`: ``torch.save`` to a temporary file, then a
  rename (deploy and converted checkpoints);
- :class:`AtomicLocalBackend`: mmengine's local file backend writing the
  same way; ``backend_args=dict(backend=ATOMIC_BACKEND)`` on mmengine's
  ``CheckpointHook`` (``SafeCheckpointHook`` picks it itself) writes
  checkpoints and the ``last_checkpoint`` pointer through it;
- :func:`atomic_local_writes`: within a block, every local file written
  through mmengine's fileio (``dump``, ``put``; mmcv's ``imwrite``) goes
  through :class:`AtomicLocalBackend` (the test runs' ``--out`` pickles
  and mmdet's ``--show-dir`` images).

The writer itself (:func:`slak_mm.fileio.atomic_write_bytes`, JSON, stale
temporary files) is plain Python, for the torch-only parts too.
"""
import contextlib
import io
from pathlib import Path
from typing import Any, Iterator, Union

import torch
from mmengine.fileio import LocalBackend
from mmengine.fileio import io as mm_io
from mmengine.fileio import register_backend
from mmengine.fileio.backends import registry_utils

from slak_mm.fileio import atomic_write_bytes

__all__ = [
    'ATOMIC_BACKEND', 'AtomicLocalBackend', 'atomic_local_writes',
    'torch_save_atomic'
]

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
    (used for checkpoints, the ``last_checkpoint`` pointer and, within
    :func:`atomic_local_writes`, every local write of mmengine's fileio)."""

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


def _drop_cached_local_backends() -> None:
    # fileio.put keeps one backend per prefix and arguments ("singleton"
    # instances, keyed 'PREFIX:ARGS'); a local one, made before the swap,
    # would keep writing in place
    for key in [k for k in mm_io.backend_instances if k.startswith(':')]:
        del mm_io.backend_instances[key]


@contextlib.contextmanager
def atomic_local_writes() -> Iterator[None]:
    """Within the block, mmengine's fileio writes every local file
    (``dump``, ``put``, ``put_text``; mmcv's ``imwrite``) through
    :class:`AtomicLocalBackend`: the old file stays whole on a full disk,
    and a device, FIFO or symbolic link at the path is refused.

    The frameworks' writers take no backend from a config (mmengine's
    ``DumpResults`` and mmdet's ``DumpDetResults`` call ``dump(results,
    path)``, mmdet's visualizer ``mmcv.imwrite(image, path)``): they pick
    it by the path's prefix, a local path getting the backend registered for
    the prefix ``''``. Swapping that entry for the block makes them atomic
    without copying their code, and only where a tool asks for it (reads
    are :class:`LocalBackend`'s).

    Yields:
        None
    """
    previous = registry_utils.prefix_to_backends['']
    registry_utils.prefix_to_backends[''] = AtomicLocalBackend
    _drop_cached_local_backends()
    try:
        yield
    finally:
        registry_utils.prefix_to_backends[''] = previous
        _drop_cached_local_backends()
