from .config import (adapt_to_device, check_datasets, enable_visualization,
                     load_config, set_work_dir)
from .run import test, train

__all__ = [
    'adapt_to_device', 'check_datasets', 'enable_visualization',
    'load_config', 'set_work_dir', 'train', 'test'
]
