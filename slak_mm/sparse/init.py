"""Layer-wise densities and random masks for training without a pretrained
sparse checkpoint.

``uniform`` gives every layer the target density; ``ERK``
(Erdos-Renyi-Kernel, Evci et al., "Rigging the Lottery", 2020) gives layer
``l`` a density proportional to ``sum(shape_l) / prod(shape_l)``, so small
layers stay denser and the large kernels sparser, at the same global
density.
"""
import math
from typing import Dict, Optional, Sequence

import torch
import torch.nn as nn

from .masks import masked_weights

#: Layer-wise schemes accepted by :func:`layer_densities`.
SPARSE_INIT_METHODS = ('uniform', 'ERK')


def _check_density(density: float) -> None:
    if not 0. < density <= 1.:
        raise ValueError(f'density must be in (0, 1] (1 - sparsity), got '
                         f'{density}')


def uniform_densities(shapes: Dict[str, Sequence[int]],
                      density: float) -> Dict[str, float]:
    """The same density for every layer.

    Args:
        shapes (dict): Layer name to weight shape.
        density (float): Fraction of weights kept, in (0, 1].

    Returns:
        dict: Layer name to density.
    """
    _check_density(density)
    return {name: density for name in shapes}


def erk_densities(shapes: Dict[str, Sequence[int]],
                  density: float,
                  power_scale: float = 1.0) -> Dict[str, float]:
    """Erdos-Renyi-Kernel densities with the given global density.

    Layers whose ERK density would exceed 1 are made dense and the budget is
    re-balanced over the others, as in RigL.

    Args:
        shapes (dict): Layer name to weight shape.
        density (float): Global fraction of weights kept, in (0, 1].
        power_scale (float): Exponent on the ERK score. Default: 1.

    Returns:
        dict: Layer name to density; ``sum(d * numel) / sum(numel)`` equals
        ``density``.
    """
    _check_density(density)
    numel = {name: math.prod(shape) for name, shape in shapes.items()}
    score = {
        name: (sum(shape) / numel[name])**power_scale
        for name, shape in shapes.items()
    }
    dense = set()
    while True:
        budget = sum(n * density for name, n in numel.items()
                     if name not in dense)
        budget -= sum(n * (1 - density) for name, n in numel.items()
                      if name in dense)
        divisor = sum(score[name] * n for name, n in numel.items()
                      if name not in dense)
        if divisor == 0:  # every layer dense: only possible at density 1
            return {name: 1.0 for name in shapes}
        epsilon = budget / divisor
        too_dense = {
            name
            for name in shapes
            if name not in dense and epsilon * score[name] > 1
        }
        if not too_dense:
            break
        dense |= too_dense
    return {
        name: 1.0 if name in dense else epsilon * score[name]
        for name in shapes
    }


def layer_densities(module: nn.Module, density: float,
                    method: str) -> Dict[str, float]:
    """Per-layer densities of the masked weights of ``module``.

    Args:
        module (nn.Module): Model with masks.
        density (float): Global fraction of weights kept.
        method (str): One of :data:`SPARSE_INIT_METHODS`.

    Returns:
        dict: Parameter name to density.
    """
    shapes = {name: tuple(w.shape) for name, w, _ in masked_weights(module)}
    if method == 'uniform':
        return uniform_densities(shapes, density)
    if method == 'ERK':
        return erk_densities(shapes, density)
    raise ValueError(f'Unknown sparse_init {method!r}; choose one of '
                     f'{SPARSE_INIT_METHODS}')


@torch.no_grad()
def init_random_masks(module: nn.Module,
                      density: float,
                      method: str = 'ERK',
                      generator: Optional[torch.Generator] = None) -> None:
    """Draw random masks with layer-wise densities from ``method`` and zero
    the masked-out weights.

    Each layer keeps exactly ``round(density_l * numel)`` entries (at least
    one).

    Args:
        module (nn.Module): Model with masks (see ``attach_masks``).
        density (float): Global fraction of weights kept.
        method (str): ``'uniform'`` or ``'ERK'``. Default: ``'ERK'``.
        generator (torch.Generator, optional): CPU random generator; the
            global one when None (seeded by mmengine's ``randomness``).
    """
    densities = layer_densities(module, density, method)
    for name, weight, mask in masked_weights(module):
        numel = weight.numel()
        keep = min(numel, max(1, round(densities[name] * numel)))
        flat = torch.zeros(numel, dtype=torch.bool)
        flat[torch.randperm(numel, generator=generator)[:keep]] = True
        mask.copy_(flat.view_as(mask))
        weight.masked_fill_(~mask, 0)
