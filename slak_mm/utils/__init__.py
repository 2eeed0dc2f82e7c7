from .atomic_io import (ATOMIC_BACKEND, AtomicLocalBackend, atomic_write_bytes,
                        torch_save_atomic, write_json_atomic)

__all__ = [
    'ATOMIC_BACKEND', 'AtomicLocalBackend', 'atomic_write_bytes',
    'torch_save_atomic', 'write_json_atomic'
]
