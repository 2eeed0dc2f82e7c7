"""Shared by the config tests: a config's own SparseMaskHook on its model."""
import torch
from mmengine.registry import HOOKS

from slak_mm.engine import SparseMaskHook
from slak_mm.engine.hooks.sparse_mask_hook import torch_optimizers
from slak_mm.sparse import density_by_group, masked_weights


def attach_config_sparse_hook(cfg, model, optim_wrapper):
    """Build the config's SparseMaskHook and attach it like the runner."""
    assert cfg.model.backbone.sparse is True
    hooks = [HOOKS.build(h) for h in cfg.custom_hooks]
    mask_hooks = [h for h in hooks if isinstance(h, SparseMaskHook)]
    assert len(mask_hooks) == 1, cfg.custom_hooks
    mask_hooks[0].attach(model, torch_optimizers(optim_wrapper))
    return mask_hooks[0]


def assert_sparsity_kept(model, density=0.6):
    global_density, _ = density_by_group(model)
    assert abs(global_density - density) < 1e-3, global_density
    for name, weight, mask in masked_weights(model):
        assert not weight[~mask].any(), name
        assert weight.dtype == torch.float32 and mask.dtype == torch.bool
