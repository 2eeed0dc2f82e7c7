"""mmengine reads checkpoints through slak_mm's safe loader, and the private
mmengine function that is replaced for it still exists: this fails loudly
when an mmengine release renames or removes it."""
import io

import pytest
import torch
from mmengine.runner import CheckpointLoader
from mmengine.runner import checkpoint as mm_checkpoint

import slak_mm  # noqa: F401  (replaces the loader)
from slak_mm.checkpoint import (MMENGINE_LOADER, UnsafeCheckpointError,
                                mmengine_loader, use_safe_mmengine_loader)


class NotAllowed:
    """A class a checkpoint may not unpickle."""


def test_mmengine_still_has_the_replaced_function():
    assert hasattr(mm_checkpoint, MMENGINE_LOADER), (
        f'mmengine.runner.checkpoint.{MMENGINE_LOADER} is gone: '
        f'slak_mm/checkpoint/mmengine_loader.py must route mmengine\'s '
        f'checkpoint reads another way')
    assert getattr(mm_checkpoint,
                   MMENGINE_LOADER) is getattr(mmengine_loader,
                                               MMENGINE_LOADER)


def test_a_missing_function_is_a_clear_error(monkeypatch):
    monkeypatch.delattr(mm_checkpoint, MMENGINE_LOADER)
    with pytest.raises(ImportError, match=f'no {MMENGINE_LOADER}'):
        use_safe_mmengine_loader()


def test_mmengine_schemes_refuse_pickled_objects(tmp_path):
    path = str(tmp_path / 'evil.pth')
    torch.save(dict(state_dict={}, meta=NotAllowed()), path)
    with pytest.raises(UnsafeCheckpointError, match='NotAllowed'):
        CheckpointLoader.load_checkpoint(path)  # the local scheme
    with open(path, 'rb') as f:  # what the remote schemes pass
        data = io.BytesIO(f.read())
    with pytest.raises(UnsafeCheckpointError, match='NotAllowed'):
        getattr(mm_checkpoint, MMENGINE_LOADER)(data)
