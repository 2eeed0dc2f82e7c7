"""Sparsity masks, their initialisation and dynamic updates (plain torch).

Without mmengine: ``attach_masks(model)``, load weights,
``masks_from_zeros(model)``, ``mask_gradients_in_backward(model)``; the
masked weights then stay zero under any elementwise optimizer (SGD, AdamW,
...). ``SLaK(sparse=True)`` does all of it itself.
"""
from .dynamic import GROWTH_METHODS, cosine_prune_rate, prune_and_regrow
from .init import (SPARSE_INIT_METHODS, erk_densities, init_random_masks,
                   layer_densities, uniform_densities)
from .masks import (MASK_SUFFIX, apply_masks, attach_masks, density_by_group,
                    group_density, has_masks, is_sparse_weight, mask_gradients,
                    mask_gradients_in_backward, mask_key, masked_weights,
                    masks_from_zeros, masks_to_state_dict,
                    set_gradient_masking, stage_of, weight_density)

__all__ = [
    'GROWTH_METHODS', 'MASK_SUFFIX', 'SPARSE_INIT_METHODS', 'apply_masks',
    'attach_masks', 'cosine_prune_rate', 'density_by_group', 'erk_densities',
    'group_density', 'has_masks', 'init_random_masks', 'is_sparse_weight',
    'layer_densities', 'mask_gradients', 'mask_gradients_in_backward',
    'mask_key', 'masked_weights', 'masks_from_zeros', 'masks_to_state_dict',
    'prune_and_regrow', 'set_gradient_masking', 'stage_of',
    'uniform_densities', 'weight_density'
]
