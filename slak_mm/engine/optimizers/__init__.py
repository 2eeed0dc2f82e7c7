from .cpu_amp_optim_wrapper import CPUAmpOptimWrapper
# one constructor per installed framework (mmseg, mmdet)
from .layer_decay_optimizer_constructor import *  # noqa: F401,F403
from .layer_decay_optimizer_constructor import __all__ as _layer_decay_all

__all__ = ['CPUAmpOptimWrapper', *_layer_decay_all]
