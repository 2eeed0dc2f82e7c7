"""mmengine's checkpoint reads, through the safe loader.

Every file scheme of mmengine's ``CheckpointLoader`` that reads a
``torch.save`` file (local paths, s3/petrel backends, pavi, the open-mmlab
cache) calls the private ``mmengine.runner.checkpoint._safe_torch_load``,
which retries with ``weights_only=False`` (and runs the file's code) when
the safe read fails; mmengine has no switch to turn that off.

mmengine's public ``CheckpointLoader.register_scheme(..., force=True)``
would replace one scheme's loader, but the remote loaders call the private
function inside their own bodies, so only replacing that function covers
every scheme without copying mmengine's loaders. It is replaced once, on
``import slak_mm``; if mmengine renames or removes it, the import stops
with an error that says so (``tests/test_mmengine_loader.py`` checks the
name too) instead of leaving the unsafe fallback in place.
"""
import io

import mmengine
import torch
from mmengine.runner import checkpoint as mm_checkpoint

from .reading import load_checkpoint_safely

__all__ = ['MMENGINE_LOADER', 'use_safe_mmengine_loader']

#: The function of ``mmengine.runner.checkpoint`` that is replaced.
MMENGINE_LOADER = '_safe_torch_load'


def _safe_torch_load(file, map_location=None, weights_only=None):
    """Drop-in for ``mmengine.runner.checkpoint._safe_torch_load``."""
    if weights_only is False:
        # an explicit request from the caller's own code, not a fallback
        return torch.load(file, map_location=map_location, weights_only=False)
    if isinstance(file, (bytes, bytearray)):
        file = io.BytesIO(file)
    return load_checkpoint_safely(file, map_location=map_location)


def use_safe_mmengine_loader() -> None:
    """Route mmengine's checkpoint reads through
    :func:`~slak_mm.checkpoint.load_checkpoint_safely` (idempotent).

    Raises:
        ImportError: mmengine no longer has the function that is replaced
            (see the module doc); its checkpoint reads could then run
            pickled code.
    """
    if not callable(getattr(mm_checkpoint, MMENGINE_LOADER, None)):
        raise ImportError(
            f'slak_mm cannot make mmengine {mmengine.__version__} read '
            f'checkpoints safely: mmengine.runner.checkpoint has no '
            f'{MMENGINE_LOADER}() any more (the function every '
            f'CheckpointLoader scheme read files through). Install the '
            f'mmengine version of requirements/runtime.txt or update '
            f'slak_mm/checkpoint/mmengine_loader.py.',
            name='mmengine')
    setattr(mm_checkpoint, MMENGINE_LOADER, _safe_torch_load)
