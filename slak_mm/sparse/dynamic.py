"""Dynamic sparsity: prune the weakest active weights, regrow as many.

SLaK trains with this prune-and-grow step every few hundred iterations
(magnitude pruning, random regrowth, prune rate decaying with a cosine).
The functions here act on one layer at a time and keep its number of active
weights constant.
"""
import math
from typing import Optional

import torch

#: Regrowth criteria accepted by :func:`prune_and_regrow`.
GROWTH_METHODS = ('random', 'gradient')


def cosine_prune_rate(initial_rate: float,
                      step: int,
                      total_steps: int,
                      final_rate: float = 0.) -> float:
    """Prune rate at ``step`` of a cosine decay from ``initial_rate`` to
    ``final_rate`` over ``total_steps``."""
    if total_steps <= 0:
        return initial_rate
    progress = min(max(step / total_steps, 0.), 1.)
    return final_rate + 0.5 * (initial_rate -
                               final_rate) * (1 + math.cos(math.pi * progress))


@torch.no_grad()
def prune_and_regrow(weight: torch.Tensor,
                     mask: torch.Tensor,
                     prune_rate: float,
                     growth: str = 'random',
                     grad: Optional[torch.Tensor] = None,
                     generator: Optional[torch.Generator] = None) -> int:
    """Update one layer's mask in place: drop the ``prune_rate`` fraction of
    active weights with the smallest magnitude, activate as many inactive
    positions, and zero the weight wherever the mask is off.

    Regrown weights start at zero. Positions just pruned may be regrown
    (their weight restarts at zero), as in SLaK and RigL.

    Args:
        weight (Tensor): The layer's weight (changed in place).
        mask (Tensor): Its bool mask (changed in place).
        prune_rate (float): Fraction of active weights to prune, in [0, 1).
        growth (str): ``'random'`` or ``'gradient'`` (largest ``|grad|``
            among inactive positions). Default: ``'random'``.
        grad (Tensor, optional): Dense gradient of ``weight``; needed for
            ``growth='gradient'``.
        generator (torch.Generator, optional): CPU generator for random
            growth; give every rank the same seed so masks stay identical.

    Returns:
        int: Number of weights pruned (= regrown).
    """
    if growth not in GROWTH_METHODS:
        raise ValueError(f'Unknown growth {growth!r}; choose one of '
                         f'{GROWTH_METHODS}')
    if growth == 'gradient' and grad is None:
        raise ValueError("growth='gradient' needs the weight's gradient; "
                         'it is None (frozen or unused weight?)')
    flat_mask = mask.view(-1)
    active = int(flat_mask.sum())
    num = int(prune_rate * active)
    inactive = flat_mask.numel() - active
    if num == 0 or inactive + num == 0:
        return 0
    # prune: the `num` active weights of smallest magnitude
    magnitude = weight.detach().abs().view(-1).float()
    magnitude[~flat_mask] = math.inf
    flat_mask[torch.topk(magnitude, num, largest=False).indices] = False
    weight.masked_fill_(~mask, 0)
    # regrow among everything now inactive
    if growth == 'gradient':
        score = grad.detach().abs().view(-1).float().clone()
    else:
        score = torch.rand(
            flat_mask.numel(), generator=generator).to(flat_mask.device)
    score[flat_mask] = -math.inf
    flat_mask[torch.topk(score, num).indices] = True
    return num
