from .atomic_io import (ATOMIC_BACKEND, AtomicLocalBackend, atomic_write_bytes,
                        torch_save_atomic, write_json_atomic)
from .checkpoint_io import (UNSAFE_LOAD_ENV, CheckpointError,
                            DamagedCheckpointError, UnsafeCheckpointError,
                            checkpoint_problem, load_checkpoint_safely, safe_globals,
                            use_safe_mmengine_loader)
from .images import IMG_EXTENSIONS, list_images

__all__ = [
    'ATOMIC_BACKEND', 'AtomicLocalBackend', 'atomic_write_bytes',
    'torch_save_atomic', 'write_json_atomic', 'UNSAFE_LOAD_ENV',
    'CheckpointError', 'checkpoint_problem', 'DamagedCheckpointError', 'UnsafeCheckpointError',
    'load_checkpoint_safely', 'safe_globals', 'use_safe_mmengine_loader',
    'IMG_EXTENSIONS', 'list_images'
]
