from .cli import add_common_args, parse_tool_args
from .config import (adapt_to_device, check_datasets, enable_visualization,
                     load_config, set_work_dir)
from .run import test, train

__all__ = [
    'add_common_args', 'adapt_to_device', 'check_datasets',
    'enable_visualization', 'load_config', 'parse_tool_args', 'set_work_dir',
    'train', 'test'
]
