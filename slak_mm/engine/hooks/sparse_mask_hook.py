"""Keep a sparse model sparse while it is fine-tuned."""
from functools import partial
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.dist import broadcast, get_world_size
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapperDict

from slak_mm.registry import register_hook
from slak_mm.sparse import (MASK_SUFFIX, apply_masks, density_by_group,
                            has_masks, mask_gradients_in_backward,
                            masked_weights)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside a DDP / FSDP wrapper (or ``model`` itself)."""
    return model.module if is_model_wrapper(model) else model


def torch_optimizers(optim_wrapper) -> List[torch.optim.Optimizer]:
    """The torch optimizers of an ``OptimWrapper`` or ``OptimWrapperDict``."""
    if isinstance(optim_wrapper, OptimWrapperDict):
        return [w.optimizer for w in optim_wrapper.optim_wrappers.values()]
    return [optim_wrapper.optimizer]


@register_hook
class SparseMaskHook(Hook):
    """Log the weight density of a sparse model, and keep its masked
    weights zero under any optimizer.

    Optional for ``SLaK(sparse=True)``, which keeps its own zeros (its
    masked weights carry gradient hooks, see
    :func:`slak_mm.sparse.mask_gradients_in_backward`): that is enough for
    every optimizer whose update is elementwise in the gradient (SGD,
    AdamW, ...). Works with the bool ``<name>_mask`` buffers of any model
    (e.g. from :func:`slak_mm.sparse.attach_masks`). The hook

    - broadcasts the masks from rank 0 and zeroes masked weights before
      training (after ``load_from`` / ``--resume``);
    - gives every masked weight the gradient hook (models other than SLaK);
    - re-applies the masks to the weights after every ``optimizer.step()``
      (a step post-hook, for optimizers whose update is not elementwise,
      e.g. Shampoo or Muon; it runs whenever a step really happens, also
      with AMP skipping steps and with gradient accumulation);
    - logs the global and per-stage weight density at the start and every
      ``interval`` iterations (global density also as the ``density``
      scalar, so it is in the log and in ``vis_data``).

    Args:
        interval (int): Iterations between density logs. Default: 1000.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self, interval: int = 1000):
        if interval < 1:
            raise ValueError(f'interval must be >= 1, got {interval}')
        self.interval = interval
        self._handles: list = []
        self._model: Optional[nn.Module] = None
        self._masks: Dict[nn.Parameter, torch.Tensor] = {}

    # ---------------------------------------------------------------- hooks
    def before_train(self, runner) -> None:
        model = unwrap_model(runner.model)
        if not has_masks(model):
            runner.logger.warning(
                f'{type(self).__name__}: the model has no sparsity masks '
                f'(no "*{MASK_SUFFIX}" buffers); nothing to keep sparse. '
                f'Build the backbone with sparse=True for sparse fine-tuning.')
            return
        self.attach(model, torch_optimizers(runner.optim_wrapper))
        self._log_density(runner, 'start of training')

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        if self._model is not None and self.every_n_train_iters(
                runner, self.interval):
            self._log_density(runner, f'iter {runner.iter + 1}')

    def after_train(self, runner) -> None:
        self.detach()

    # ------------------------------------------------------------ torch API
    def attach(self, model: nn.Module,
               optimizers: Sequence[torch.optim.Optimizer]) -> None:
        """Start keeping ``model``'s masks under ``optimizers`` (what
        ``before_train`` does; usable without a runner).

        Args:
            model (nn.Module): The unwrapped model with mask buffers.
            optimizers (Sequence[Optimizer]): The optimizers stepping it.
        """
        self.detach()
        self._model = model
        self._sync_masks()
        self._masks = {w: m for _, w, m in masked_weights(model)}
        apply_masks(model)
        mask_gradients_in_backward(model)  # stays on the weights
        for optimizer in optimizers:
            self._handles.append(
                optimizer.register_step_post_hook(
                    partial(self._after_step, self._masked_params(optimizer))))

    def detach(self) -> None:
        """Remove the step hooks :meth:`attach` installed (the gradient
        hooks stay: they belong to the sparse model)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    # ------------------------------------------------------------- internals
    def _masked_params(self,
                       optimizer) -> List[Tuple[nn.Parameter, torch.Tensor]]:
        """``(weight, mask)`` of the masked weights ``optimizer`` steps."""
        return [(p, self._masks[p]) for group in optimizer.param_groups
                for p in group['params'] if p in self._masks]

    @staticmethod
    @torch.no_grad()
    def _after_step(pairs, optimizer, args, kwargs) -> None:
        # gradients are masked already, so this only guards against
        # optimizers whose update is not elementwise in the gradient
        for weight, mask in pairs:
            weight.masked_fill_(~mask, 0)

    def _sync_masks(self) -> None:
        """Make every rank use rank 0's masks (they are equal when all ranks
        seed alike; this makes it so whatever the seeds)."""
        if get_world_size() < 2:
            return
        for _, _, mask in masked_weights(self._model):
            as_bytes = mask.to(torch.uint8)
            broadcast(as_bytes, src=0)
            mask.copy_(as_bytes.bool())

    def _log_density(self, runner, when: str) -> None:
        global_density, per_stage = density_by_group(self._model)
        runner.message_hub.update_scalar('train/density', global_density)
        stages = ', '.join(f'{g} {d:.4f}' for g, d in per_stage.items())
        runner.logger.info(f'Weight density at {when}: {global_density:.4f} '
                           f'(sparsity {1 - global_density:.4f}); {stages}')
