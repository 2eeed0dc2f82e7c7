"""Checkpoint files: reading them safely, writing them atomically, mapping
the official format, checking the fit, choosing what to resume.

- :mod:`.reading`: :func:`load_checkpoint_safely` (``weights_only=True``
  with an allow-list; numpy objects rebuilt by :mod:`.safe_numpy`), the
  errors, and :func:`checkpoint_problem` (is a file complete, read
  without unpickling); :mod:`.mmengine_loader` routes mmengine's reads
  through it (every ``CheckpointLoader`` scheme); :mod:`.mmengine_handlers`
  makes ``mmengine.load`` read YAML as plain data and refuse pickles;
- :mod:`.remote`: checkpoints named by a URL, downloaded into torch's hub
  cache and read by the safe loader; :mod:`.embedded_config`: the config
  text inside checkpoints, which mmengine executes, judged as data only;
- :mod:`.atomic`: :func:`torch_save_atomic` and mmengine's file backend,
  written atomically by :mod:`slak_mm.fileio` (the plain-Python writer),
  and :func:`atomic_local_writes` (all of mmengine's local writes, for a
  block);
- :mod:`.official`: :func:`checkpoint_filter_fn` (official or mm weights
  onto a SLaK backbone, a pure function as timm's) and the loaders around
  it; :mod:`.classifier`: the same for the ImageNet classifier;
- :mod:`.fit`: :func:`fit_checkpoint`, whether a whole-model checkpoint
  fits the model (``load_from``, test, inference, deploy);
- :mod:`.recovery`: which checkpoint an automatic ``--resume`` takes.
"""
from .atomic import (ATOMIC_BACKEND, AtomicLocalBackend, atomic_local_writes,
                     torch_save_atomic)
from .classifier import classifier_filter_fn, load_official_classifier
from .fit import (PARTIAL_LOAD_OPTION, CheckpointMismatchError, fit_checkpoint,
                  state_dict_of)
from .mmengine_handlers import UnsafeFileError, use_safe_mmengine_handlers
from .mmengine_loader import MMENGINE_LOADER, use_safe_mmengine_loader
from .official import (checkpoint_filter_fn, convert_official_checkpoint,
                       extract_state_dict, load_backbone_weights,
                       load_checkpoint_file, load_pretrained_backbone,
                       to_backbone_state_dict)
from .reading import (UNSAFE_LOAD_ENV, CheckpointError, DamagedCheckpointError,
                      UnsafeCheckpointError, checkpoint_problem,
                      load_checkpoint_safely, safe_globals,
                      unsafe_load_allowed)
from .recovery import POINTER_NAME, find_resume_checkpoint, resolve_auto_resume
from .remote import (CheckpointDownloadError, cached_checkpoint_path,
                     is_remote, require_checkpoint)

__all__ = [
    'ATOMIC_BACKEND', 'MMENGINE_LOADER', 'PARTIAL_LOAD_OPTION', 'POINTER_NAME',
    'UNSAFE_LOAD_ENV', 'AtomicLocalBackend', 'CheckpointError',
    'CheckpointMismatchError', 'DamagedCheckpointError',
    'UnsafeCheckpointError', 'CheckpointDownloadError', 'atomic_local_writes',
    'cached_checkpoint_path', 'is_remote', 'require_checkpoint',
    'checkpoint_filter_fn', 'checkpoint_problem', 'classifier_filter_fn',
    'convert_official_checkpoint', 'extract_state_dict',
    'find_resume_checkpoint', 'fit_checkpoint', 'load_backbone_weights',
    'load_checkpoint_file', 'load_checkpoint_safely',
    'load_official_classifier', 'load_pretrained_backbone',
    'resolve_auto_resume', 'safe_globals', 'state_dict_of',
    'to_backbone_state_dict', 'torch_save_atomic', 'unsafe_load_allowed',
    'use_safe_mmengine_loader', 'UnsafeFileError', 'use_safe_mmengine_handlers'
]
