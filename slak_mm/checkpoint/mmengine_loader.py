"""mmengine's checkpoint reads, through the safe loader.

Every scheme of mmengine's ``CheckpointLoader`` ends in one of two module
functions of ``mmengine.runner.checkpoint``:

- ``_safe_torch_load`` (local paths, ``pavi://``, ``s3://`` /
  ``petrel://``, ``open-mmlab://`` names of local files), which retries
  with ``weights_only=False`` (and runs the file's code) when the safe
  read fails; mmengine has no switch to turn that off;
- ``load_url`` (``http(s)://`` and the names that resolve to a URL:
  ``torchvision://``, ``modelzoo://``, ``open-mmlab://``, ``mmcls://``),
  which is ``torch.hub.load_state_dict_from_url`` with
  ``weights_only=False``, also for a file it takes from its cache.

mmengine's public ``CheckpointLoader.register_scheme(..., force=True)``
would replace one scheme's loader, but the loaders call these functions
inside their own bodies (and each other), so replacing the two functions
covers every scheme without copying mmengine's loaders. They are replaced
on ``import slak_mm``; if mmengine renames or removes one, the import stops
with an error that says so instead of leaving the unsafe read in place.

``CheckpointLoader.load_checkpoint`` (what every mmengine read of a
checkpoint calls, whatever the scheme) is wrapped too:

- a scheme whose loader is not one of mmengine's known loaders (a scheme
  added by a newer mmengine or by another package) is refused, since its
  reads are not known to go through the two functions above;
- a checkpoint whose embedded config text holds code
  (:mod:`.embedded_config`) is refused, since mmengine executes that text
  on resume and in inferencers.

``tests/checkpoint/test_mmengine_loader.py`` runs a hostile file through every
registered scheme, so a scheme nobody covered fails a test by itself.
"""
import io
import logging

import mmengine
import torch
from mmengine.logging import print_log
from mmengine.runner import checkpoint as mm_checkpoint

from .embedded_config import code_in_config_text, embedded_configs
from .reading import (UNSAFE_LOAD_ENV, CheckpointError, UnsafeCheckpointError,
                      load_checkpoint_safely, unsafe_load_allowed)
from .remote import load_url

__all__ = [
    'MMENGINE_LOADER', 'MMENGINE_READERS', 'VERIFIED_SCHEME_LOADERS',
    'check_embedded_configs', 'use_safe_mmengine_loader'
]

#: The function of ``mmengine.runner.checkpoint`` that reads local bytes.
MMENGINE_LOADER = '_safe_torch_load'
#: Every function of ``mmengine.runner.checkpoint`` that is replaced.
MMENGINE_READERS = (MMENGINE_LOADER, 'load_url')
#: mmengine's scheme loaders whose reads end in :data:`MMENGINE_READERS`
#: (``tests/checkpoint/test_mmengine_loader.py`` proves it for every scheme).
VERIFIED_SCHEME_LOADERS = ('load_from_local', 'load_from_http',
                           'load_from_pavi', 'load_from_ceph',
                           'load_from_torchvision', 'load_from_openmmlab',
                           'load_from_mmcls')


def _safe_torch_load(file, map_location=None, weights_only=None):
    """Drop-in for ``mmengine.runner.checkpoint._safe_torch_load``."""
    if weights_only is False:
        # an explicit request from the caller's own code, not a fallback
        return torch.load(file, map_location=map_location, weights_only=False)
    if isinstance(file, (bytes, bytearray)):
        file = io.BytesIO(file)
    return load_checkpoint_safely(file, map_location=map_location)


def check_embedded_configs(checkpoint, source: str) -> None:
    """Refuse a checkpoint whose config text would run code in mmengine.

    Args:
        checkpoint: The loaded checkpoint.
        source (str): Its path or URL, for the message.

    Raises:
        UnsafeCheckpointError: An entry of
            :data:`~slak_mm.checkpoint.embedded_config.EMBEDDED_CONFIG_ENTRIES`
            is more than data (unless unsafe loads are allowed).
    """
    if unsafe_load_allowed():
        return
    for entry, text in embedded_configs(checkpoint):
        code = code_in_config_text(text)
        if code is not None:
            raise UnsafeCheckpointError(
                f'Refused to load {source!r}: its {entry} (config text '
                f'that mmengine executes on resume and in inferencers) '
                f'holds more than data ({code}); checkpoints written by '
                f'mmengine hold only `name = dict(...)` there. If you trust '
                f'the file, rerun with --unsafe-load (tools) or '
                f'{UNSAFE_LOAD_ENV}=1.')


def _verified_loaders() -> tuple:
    return tuple(
        getattr(mm_checkpoint, name, None) for name in VERIFIED_SCHEME_LOADERS)


def _load_checkpoint(cls, filename, map_location=None, logger='current'):
    """``CheckpointLoader.load_checkpoint``, refusing unknown schemes and
    config text with code."""
    loader = cls._get_checkpoint_loader(filename)
    if loader not in _verified_loaders():
        name = f'{loader.__module__}.{loader.__qualname__}'
        if not unsafe_load_allowed():
            raise UnsafeCheckpointError(
                f'Refused to load {filename!r}: its scheme is read by '
                f'{name}, which slak_mm does not know to read checkpoints '
                f'without running their pickled code. Copy the file to a '
                f'local path and give that path, or, if you trust the '
                f'file, rerun with --unsafe-load (tools) or '
                f'{UNSAFE_LOAD_ENV}=1.')
        print_log(
            f'{UNSAFE_LOAD_ENV}=1: reading {filename!r} through {name}, '
            f'which may run code pickled in the file.',
            logger='current',
            level=logging.WARNING)
    try:
        checkpoint = _mmengine_load_checkpoint(cls, filename, map_location,
                                               logger)
    except CheckpointError as err:
        if filename in str(err):
            raise
        # a name (torchvision://...) or bytes (s3://...): say which
        raise type(err)(f'{filename}: {err}') from None
    check_embedded_configs(checkpoint, filename)
    return checkpoint


#: mmengine's own ``CheckpointLoader.load_checkpoint`` (set when wrapped).
_mmengine_load_checkpoint = None


def use_safe_mmengine_loader() -> None:
    """Route mmengine's checkpoint reads through
    :func:`~slak_mm.checkpoint.load_checkpoint_safely` (idempotent).

    Raises:
        ImportError: mmengine no longer has a function that is replaced or
            a loader that is relied on (see the module doc); its
            checkpoint reads could then run pickled code.
    """
    missing = [
        name for name in (*MMENGINE_READERS, *VERIFIED_SCHEME_LOADERS)
        if not callable(getattr(mm_checkpoint, name, None))
    ]
    if missing:
        raise ImportError(
            f'slak_mm cannot make mmengine {mmengine.__version__} read '
            f'checkpoints safely: mmengine.runner.checkpoint has no '
            f'{", ".join(f"{name}()" for name in missing)} any more (the '
            f'functions its CheckpointLoader schemes read files through). '
            f'Install the mmengine version of requirements/runtime.txt or '
            f'update slak_mm/checkpoint/mmengine_loader.py.',
            name='mmengine')
    setattr(mm_checkpoint, MMENGINE_LOADER, _safe_torch_load)
    setattr(mm_checkpoint, 'load_url', load_url)
    loader_cls = mm_checkpoint.CheckpointLoader
    current = loader_cls.load_checkpoint.__func__
    if current is not _load_checkpoint:
        global _mmengine_load_checkpoint
        _mmengine_load_checkpoint = current
        loader_cls.load_checkpoint = classmethod(_load_checkpoint)
