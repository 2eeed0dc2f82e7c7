# one constructor per installed framework (mmseg, mmdet)
from .layer_decay_optimizer_constructor import *  # noqa: F401,F403
from .layer_decay_optimizer_constructor import __all__  # noqa: F401
