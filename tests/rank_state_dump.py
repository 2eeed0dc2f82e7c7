"""Test-only hook: each rank saves its backbone state (weights and masks)
after training, so a test can compare ranks of a multi-process run."""
import os.path as osp

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from slak_mm.engine.hooks.sparse_mask_hook import unwrap_model


@HOOKS.register_module()
class RankStateDumpHook(Hook):
    priority = 'LOWEST'

    def after_train(self, runner):
        state = {
            k: v.detach().cpu()
            for k, v in unwrap_model(
                runner.model).backbone.state_dict().items()
        }
        torch.save(state,
                   osp.join(runner.work_dir, f'backbone_rank{get_rank()}.pth'))
