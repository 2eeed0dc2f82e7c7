"""Dynamic sparse fine-tuning: SLaK's prune-and-regrow as a runner hook."""
from typing import Optional

import torch
from mmengine.dist import get_world_size
from mmengine.logging import print_log

from slak_mm.registry import register_hook
from slak_mm.sparse import (GROWTH_METHODS, cosine_prune_rate,
                            prune_and_regrow, set_gradient_masking)
from .sparse_mask_hook import SparseMaskHook


@register_hook
class DynamicSparsityHook(SparseMaskHook):
    """Every ``update_interval`` iterations, move part of each layer's
    non-zeros: prune the ``prune_rate`` fraction of active weights with the
    smallest magnitude and regrow as many inactive positions.

    Everything :class:`SparseMaskHook` does also happens here (it is its
    subclass: use one of the two). Per-layer density stays constant. The
    prune rate decays from ``prune_rate`` to 0 with a cosine over
    ``[0, end)``. Regrown weights start at zero, and the optimizer state
    (e.g. AdamW's moments) of every position whose mask changed is cleared.
    The update runs right before an optimizer step, so ``growth='gradient'``
    sees that step's dense (all-reduced, unscaled) gradient; random growth
    draws from a generator seeded with ``seed + iteration``, identical on
    every rank, so masks stay equal across DDP ranks without communication.

    Args:
        update_interval (int): Iterations between mask updates. Default: 100.
        prune_rate (float): Initial fraction of each layer's active weights
            moved per update, in (0, 1). Default: 0.3.
        growth (str): ``'random'`` (SLaK) or ``'gradient'`` (RigL).
            Default: ``'random'``.
        end (int, optional): Last iteration with updates (the cosine reaches
            0 there). Default: None, the run's ``max_iters``.
        seed (int): Seed of the random growth. Default: 0.
        interval (int): Iterations between density logs. Default: 1000.
    """

    def __init__(self,
                 update_interval: int = 100,
                 prune_rate: float = 0.3,
                 growth: str = 'random',
                 end: Optional[int] = None,
                 seed: int = 0,
                 interval: int = 1000):
        super().__init__(interval=interval)
        if update_interval < 1:
            raise ValueError(
                f'update_interval must be >= 1, got {update_interval}')
        if not 0. < prune_rate < 1.:
            raise ValueError(f'prune_rate must be in (0, 1), got {prune_rate}')
        if growth not in GROWTH_METHODS:
            raise ValueError(f'Unknown growth {growth!r}; choose one of '
                             f'{GROWTH_METHODS}')
        self.update_interval = update_interval
        self.prune_rate = prune_rate
        self.growth = growth
        self.end = end
        self.seed = seed
        self._due_iter: Optional[int] = None

    def before_train(self, runner) -> None:
        if self.end is None:
            self.end = runner.max_iters
        super().before_train(runner)

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch=None) -> None:
        step = runner.iter + 1
        if step % self.update_interval == 0:
            self.request_update(step)

    def request_update(self, step: int) -> None:
        """Update the masks at the next optimizer step, as iteration
        ``step`` of the cosine schedule (what ``before_train_iter`` does
        every ``update_interval`` iterations; usable without a runner)."""
        if self.end is None:
            raise ValueError('DynamicSparsityHook needs `end` (the last '
                             'iteration of the cosine schedule) when used '
                             'without a runner')
        if self._model is not None and step < self.end:
            self._due_iter = step
            if self.growth == 'gradient':  # the update step's dense gradient
                set_gradient_masking(self._model, False)

    def attach(self, model, optimizers) -> None:
        super().attach(model, optimizers)
        for optimizer in optimizers:
            self._handles.append(
                optimizer.register_step_pre_hook(self._before_step))

    def detach(self) -> None:
        if self._model is not None:  # an update requested but never run
            set_gradient_masking(self._model, True)
        self._due_iter = None
        super().detach()

    @torch.no_grad()
    def _before_step(self, optimizer, args, kwargs) -> None:
        if self._due_iter is None:
            return
        pairs = self._masked_params(optimizer)
        self._update_masks(optimizer, pairs, self._due_iter)
        self._due_iter = None
        set_gradient_masking(self._model, True)
        # this step's gradients were masked with the old masks (or not at
        # all, for gradient growth): apply the new ones
        for weight, mask in pairs:
            if weight.grad is not None:
                weight.grad.masked_fill_(~mask, 0)

    def _update_masks(self, optimizer, pairs, step: int) -> None:
        rate = cosine_prune_rate(self.prune_rate, step, self.end)
        generator = torch.Generator().manual_seed(self.seed + step)
        moved = total = 0
        for weight, mask in pairs:
            if not weight.requires_grad:
                continue
            before = mask.clone()
            moved += prune_and_regrow(
                weight,
                mask,
                rate,
                self.growth,
                grad=weight.grad,
                generator=generator)
            total += int(mask.sum())
            self._clear_optimizer_state(optimizer, weight, before != mask)
        if self.growth == 'gradient' and get_world_size() > 1:
            # all-reduced gradients are equal, but ties broken on different
            # devices need not be: rank 0 decides
            self._sync_masks()
        print_log(
            f'Dynamic sparsity at iter {step}: prune rate {rate:.4f}, moved '
            f'{moved} of {total} active weights',
            logger='current')

    @staticmethod
    def _clear_optimizer_state(optimizer, weight, changed) -> None:
        for value in optimizer.state.get(weight, {}).values():
            if isinstance(value, torch.Tensor) and value.shape == weight.shape:
                value.masked_fill_(changed, 0)
