from .dynamic_sparsity_hook import DynamicSparsityHook
from .sparse_mask_hook import SparseMaskHook

__all__ = ['DynamicSparsityHook', 'SparseMaskHook']
