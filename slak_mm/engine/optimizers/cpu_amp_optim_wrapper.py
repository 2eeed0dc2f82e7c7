"""Mixed precision on the CPU: bfloat16 autocast under mmengine's runner.

mmengine's ``AmpOptimWrapper`` refuses to be built without a GPU (its
``GradScaler`` is CUDA's), although its :func:`mmengine.runner.amp.autocast`
supports the CPU. bfloat16 keeps float32's exponent range, so no loss
scaling is needed: this is a plain ``OptimWrapper`` whose ``optim_context``
also autocasts. Parameters, gradients and optimizer states stay float32.
"""
from contextlib import contextmanager
from typing import Optional, Union

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS
from mmengine.runner.amp import autocast

__all__ = ['CPUAmpOptimWrapper']


# mmengine's root registry, as AmpOptimWrapper: the mmseg and mmdet scopes
# find it through their parent
@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(OptimWrapper):
    """``OptimWrapper`` that runs forward and loss under CPU bfloat16
    autocast (what ``tools/train.py --amp`` uses without CUDA).

    Args:
        dtype (str | torch.dtype, optional): ``'bfloat16'`` (or None), the
            one type CPU autocast supports. Default: ``'bfloat16'``.
        **kwargs: ``OptimWrapper``'s arguments (``optimizer``,
            ``accumulative_counts``, ``clip_grad``).
    """

    def __init__(self,
                 dtype: Optional[Union[str, torch.dtype]] = 'bfloat16',
                 **kwargs):
        if dtype not in (None, 'bfloat16', torch.bfloat16):
            raise ValueError(
                f'CPUAmpOptimWrapper dtype={dtype!r}: CPU autocast supports '
                f"bfloat16 only; set optim_wrapper.dtype='bfloat16'")
        super().__init__(**kwargs)
        self.cast_dtype = torch.bfloat16
        print_log(
            'Mixed precision: bfloat16 autocast on the CPU (float32 weights, '
            'no loss scaling)',
            logger='current')

    @contextmanager
    def optim_context(self, model: nn.Module):
        """The parent's context (no gradient sync while accumulating) plus
        CPU autocast to bfloat16.

        Args:
            model (nn.Module): The training model.
        """
        with super().optim_context(model), autocast(
                device_type='cpu', dtype=self.cast_dtype):
            yield
