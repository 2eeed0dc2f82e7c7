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
  onto a SLaK model, a pure function as timm's, which timm's loader and
  ours call); :mod:`.loading`: the mm loaders around it and the converter;
  :mod:`.classifier`: the same for the mmpretrain ImageNet classifier;
- :mod:`.fit`: :func:`fit_checkpoint`, whether a whole-model checkpoint
  fits the model (``load_from``, test, inference, deploy);
- :mod:`.recovery`: which checkpoint an automatic ``--resume`` takes.

Without mmengine (a bare GPU box, timm users) the torch-only part imports:
reading (:mod:`.reading`, :mod:`.safe_numpy`), URLs (:mod:`.remote`), the
official format (:mod:`.official`) and :mod:`.embedded_config`; the rest
needs mmengine.
"""
from slak_mm.utils import has_package
from .official import (CLASSIFIER_PREFIXES, checkpoint_filter_fn,
                       extract_state_dict, to_backbone_state_dict)
from .reading import (UNSAFE_LOAD_ENV, CheckpointError, DamagedCheckpointError,
                      UnsafeCheckpointError, checkpoint_problem,
                      load_checkpoint_safely, safe_globals,
                      unsafe_load_allowed)
from .remote import (CheckpointDownloadError, cached_checkpoint_path,
                     is_remote, require_checkpoint)

__all__ = [
    'CLASSIFIER_PREFIXES', 'HAS_MMENGINE', 'UNSAFE_LOAD_ENV',
    'CheckpointError', 'DamagedCheckpointError', 'UnsafeCheckpointError',
    'CheckpointDownloadError', 'cached_checkpoint_path', 'is_remote',
    'require_checkpoint', 'checkpoint_filter_fn', 'checkpoint_problem',
    'extract_state_dict', 'load_checkpoint_safely', 'safe_globals',
    'to_backbone_state_dict', 'unsafe_load_allowed'
]

#: The mm part imports (mmengine is installed).
HAS_MMENGINE = has_package('mmengine')
if HAS_MMENGINE:
    from .atomic import (ATOMIC_BACKEND, AtomicLocalBackend,
                         atomic_local_writes, torch_save_atomic)
    from .classifier import classifier_filter_fn, load_official_classifier
    from .fit import (PARTIAL_LOAD_OPTION, CheckpointMismatchError,
                      fit_checkpoint, state_dict_of)
    from .loading import (convert_official_checkpoint, load_backbone_weights,
                          load_checkpoint_file, load_pretrained_backbone)
    from .mmengine_handlers import UnsafeFileError, use_safe_mmengine_handlers
    from .mmengine_loader import MMENGINE_LOADER, use_safe_mmengine_loader
    from .recovery import (POINTER_NAME, find_resume_checkpoint,
                           resolve_auto_resume)
    __all__ += [
        'ATOMIC_BACKEND', 'MMENGINE_LOADER', 'PARTIAL_LOAD_OPTION',
        'POINTER_NAME', 'AtomicLocalBackend', 'CheckpointMismatchError',
        'atomic_local_writes', 'classifier_filter_fn',
        'convert_official_checkpoint', 'find_resume_checkpoint',
        'fit_checkpoint', 'load_backbone_weights', 'load_checkpoint_file',
        'load_official_classifier', 'load_pretrained_backbone',
        'resolve_auto_resume', 'state_dict_of', 'torch_save_atomic',
        'use_safe_mmengine_loader', 'UnsafeFileError',
        'use_safe_mmengine_handlers'
    ]
