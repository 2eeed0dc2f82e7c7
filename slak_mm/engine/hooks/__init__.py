from .checkpoint_hook import SafeCheckpointHook
from .dynamic_sparsity_hook import DynamicSparsityHook
from .load_check_hook import CheckpointLoadCheckHook
from .sparse_mask_hook import SparseMaskHook

__all__ = [
    'CheckpointLoadCheckHook', 'DynamicSparsityHook', 'SafeCheckpointHook',
    'SparseMaskHook'
]
