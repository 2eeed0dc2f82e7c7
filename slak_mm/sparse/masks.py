"""Sparsity masks held as buffers beside the weights they mask.

Every parameter with 2 or 4 dimensions (conv and linear weights) is sparse in
SLaK; 1-D parameters (biases, norms, layer scale) stay dense. The mask of
``<module>.weight`` is a bool buffer ``<module>.weight_mask`` (the name
``torch.nn.utils.prune`` uses), so masks are saved in every checkpoint, moved
with ``.to(device)`` and restored by ``load_state_dict`` / ``--resume``.

:func:`mask_gradients_in_backward` puts a gradient hook on every masked
weight, so a model keeps its own zeros under any optimizer whose update is
elementwise in the gradient (see docs/sparsity.md for why it lives on the
weights rather than in a runner hook).

Nothing here imports mm packages: masks are plain torch.
"""
import re
import weakref
from collections import OrderedDict, defaultdict
from typing import Callable, Dict, Iterator, Sequence, Tuple

import torch
import torch.nn as nn
from torch.utils.weak import WeakIdKeyDictionary

#: Suffix of a mask buffer's name: ``weight`` -> ``weight_mask``.
MASK_SUFFIX = '_mask'


def is_sparse_weight(param: torch.Tensor) -> bool:
    """Whether SLaK keeps ``param`` sparse: conv (4-D) and linear (2-D)
    weights."""
    return param.dim() in (2, 4)


def mask_key(weight_key: str) -> str:
    """State-dict key of the mask of ``weight_key``."""
    return weight_key + MASK_SUFFIX


def attach_masks(module: nn.Module, exclude: Sequence[nn.Module] = ()) -> int:
    """Register an all-True ``<name>_mask`` buffer beside every 2-D / 4-D
    parameter of ``module`` (no-op for parameters that already have one).

    Args:
        module (nn.Module): Model whose weights are to be masked.
        exclude (Sequence[nn.Module]): Submodules whose parameters (their
            children's too) stay without masks. Default: none.

    Returns:
        int: Number of masked parameters.
    """
    skipped = {id(m) for ex in exclude for m in ex.modules()}
    count = 0
    for owner in module.modules():
        if id(owner) in skipped:
            continue
        for name, param in list(owner.named_parameters(recurse=False)):
            if not is_sparse_weight(param):
                continue
            count += 1
            if not hasattr(owner, name + MASK_SUFFIX):
                owner.register_buffer(name + MASK_SUFFIX,
                                      torch.ones_like(param, dtype=torch.bool))
    return count


def _masked_owners(
    module: nn.Module
) -> Iterator[Tuple[str, nn.Module, str, nn.Parameter, torch.Tensor]]:
    """``(prefix, owner, name, weight, mask)`` of every masked weight."""
    for prefix, owner in module.named_modules():
        for name, param in owner.named_parameters(recurse=False):
            mask = getattr(owner, name + MASK_SUFFIX, None)
            if isinstance(mask, torch.Tensor):
                yield prefix, owner, name, param, mask


def masked_weights(
        module: nn.Module) -> Iterator[Tuple[str, nn.Parameter, torch.Tensor]]:
    """Yield ``(name, weight, mask)`` for every masked weight of ``module``.

    Args:
        module (nn.Module): Model with masks from :func:`attach_masks`.

    Yields:
        tuple: Parameter name (as in ``named_parameters``), the parameter
        and its bool mask buffer.
    """
    for prefix, _, name, param, mask in _masked_owners(module):
        yield (f'{prefix}.{name}' if prefix else name), param, mask


def has_masks(module: nn.Module) -> bool:
    """Whether any weight of ``module`` carries a mask buffer."""
    return next(masked_weights(module), None) is not None


@torch.no_grad()
def apply_masks(module: nn.Module) -> None:
    """Zero every masked-out weight entry of ``module`` in place."""
    for _, weight, mask in masked_weights(module):
        weight.masked_fill_(~mask, 0)


@torch.no_grad()
def mask_gradients(module: nn.Module) -> None:
    """Zero the gradients of masked-out entries, so optimizers keep no
    momentum there."""
    for _, weight, mask in masked_weights(module):
        if weight.grad is not None:
            weight.grad.masked_fill_(~mask, 0)


class _GradientMasker:
    """The gradient hook of one masked weight: zeroes the masked entries.

    It reads the mask from the owning module on every call (``.to(device)``
    replaces buffers, ``load_state_dict(assign=True)`` too) and holds the
    owner weakly (the owner holds the weight, which holds this hook).
    """

    def __init__(self, owner: nn.Module, mask_name: str):
        self.owner = weakref.ref(owner)
        self.mask_name = mask_name
        self.enabled = True

    def __call__(self, grad: torch.Tensor) -> torch.Tensor:
        owner = self.owner()
        mask = getattr(owner, self.mask_name, None)
        if not self.enabled or not isinstance(mask, torch.Tensor):
            return grad
        return grad.masked_fill(~mask, 0)


#: weight -> its hook. Keyed by identity: a deep copy or an unpickled model
#: has new weights without hooks (torch copies no hooks), which get theirs.
_GRADIENT_MASKERS = WeakIdKeyDictionary()


def mask_gradients_in_backward(module: nn.Module) -> int:
    """Zero the gradient of every masked-out entry as autograd computes it.

    A tensor hook on each masked weight that requires a gradient (once per
    weight: calling this again adds none). Gradient clipping, accumulation,
    loss scaling, the DDP all-reduce and the optimizer all see the masked
    gradient, so SGD, Adam(W) (momentum and decoupled weight decay of a
    zero stay zero), RMSprop, Adagrad, LAMB, Lion leave masked weights at
    exactly zero without any step hook.

    Args:
        module (nn.Module): Model with masks from :func:`attach_masks`.

    Returns:
        int: Number of masked weights that carry the hook.
    """
    count = 0
    for _, owner, name, param, _ in _masked_owners(module):
        if param not in _GRADIENT_MASKERS:
            if not param.requires_grad:
                continue  # frozen: no gradient to mask
            masker = _GradientMasker(owner, name + MASK_SUFFIX)
            param.register_hook(masker)
            _GRADIENT_MASKERS[param] = masker
        count += 1
    return count


def set_gradient_masking(module: nn.Module, enabled: bool) -> None:
    """Turn the hooks of :func:`mask_gradients_in_backward` off (dense
    gradients, e.g. for one step of gradient-based regrowth) or on again.

    Args:
        module (nn.Module): Model whose masked weights carry the hook.
        enabled (bool): Whether gradients are masked.
    """
    for _, weight, _ in masked_weights(module):
        masker = _GRADIENT_MASKERS.get(weight)
        if masker is not None:
            masker.enabled = enabled


@torch.no_grad()
def masks_from_zeros(module: nn.Module) -> None:
    """Set every mask to the non-zero pattern of its weight (the official
    checkpoints store sparsity as exact zeros)."""
    for _, weight, mask in masked_weights(module):
        mask.copy_(weight != 0)


@torch.no_grad()
def masks_to_state_dict(
        state_dict: Dict[str,
                         torch.Tensor]) -> 'OrderedDict[str, torch.Tensor]':
    """Add a ``<key>_mask`` entry (the non-zero pattern) for every 2-D / 4-D
    tensor of a state dict that has none.

    Args:
        state_dict (dict): Keys and tensors, e.g. an official checkpoint's
            backbone weights.

    Returns:
        OrderedDict: The input entries, each weight followed by its mask.
    """
    out = OrderedDict()
    for key, value in state_dict.items():
        out[key] = value
        if key.endswith(MASK_SUFFIX) or not is_sparse_weight(value):
            continue
        if mask_key(key) not in state_dict:
            out[mask_key(key)] = value != 0
    return out


def weight_density(state_dict: Dict[str, torch.Tensor]) -> Dict[str, float]:
    """Fraction of non-zero entries of every 2-D and 4-D weight of a state
    dict (mask entries skipped).

    Args:
        state_dict (dict): Names and tensors.

    Returns:
        dict: Name to density in [0, 1].
    """
    return {
        k: float(v.count_nonzero()) / v.numel()
        for k, v in state_dict.items()
        if is_sparse_weight(v) and v.numel() and not k.endswith(MASK_SUFFIX)
    }


_STAGE_PATTERN = re.compile(r'(?:^|\.)(?:stages|downsample_layers)\.(\d+)\.')


def stage_of(name: str) -> str:
    """Density-report group of a SLaK parameter: ``stage0`` .. ``stage3``
    (the downsampling layer in front of a stage counts with it), else
    ``other``."""
    match = _STAGE_PATTERN.search(name)
    return f'stage{match.group(1)}' if match else 'other'


def group_density(
    tensors: Dict[str, torch.Tensor],
    group_of: Callable[[str],
                       str] = stage_of) -> Tuple[float, Dict[str, float]]:
    """Global and per-group fraction of non-zero entries.

    Args:
        tensors (dict): Name to tensor (weights or masks).
        group_of (Callable[[str], str]): Maps a name to its group.
            Default: :func:`stage_of`.

    Returns:
        tuple[float, dict]: Global density (NaN for no tensors) and
        ``{group: density}``.
    """
    nonzero = defaultdict(int)
    total = defaultdict(int)
    for name, tensor in tensors.items():
        nonzero[group_of(name)] += int(tensor.count_nonzero())
        total[group_of(name)] += tensor.numel()
    groups = {g: nonzero[g] / total[g] for g in sorted(total)}
    all_total = sum(total.values())
    global_density = (
        sum(nonzero.values()) / all_total if all_total else float('nan'))
    return global_density, groups


@torch.no_grad()
def density_by_group(
        module: nn.Module,
        group_of: Callable[[str], str] = stage_of,
        masks_only: bool = False) -> Tuple[float, Dict[str, float]]:
    """Global and per-group density of the masked weights of a model.

    Args:
        module (nn.Module): Model with masks.
        group_of (Callable[[str], str]): Maps a parameter name to its group.
            Default: :func:`stage_of`.
        masks_only (bool): Count mask entries instead of the weights'
            non-zeros. Default: False (the weights: what is really sparse).

    Returns:
        tuple[float, dict]: See :func:`group_density`.
    """
    return group_density(
        {
            name: mask if masks_only else weight
            for name, weight, mask in masked_weights(module)
        }, group_of)
