from .checkpoint_hook import SafeCheckpointHook
from .dynamic_sparsity_hook import DynamicSparsityHook
from .sparse_mask_hook import SparseMaskHook

__all__ = ['DynamicSparsityHook', 'SafeCheckpointHook', 'SparseMaskHook']
