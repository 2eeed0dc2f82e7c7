from .cli import (CfgOptionsAction, add_cfg_options_arg, add_common_args,
                  add_unsafe_load_arg, parse_tool_args, run_cli)
from .config import (adapt_to_device, check_datasets, enable_visualization,
                     load_config, replace_sync_bn, set_work_dir)
from .config_scopes import register_config_scopes
from .deploy import DEPLOY_CFG_OPTION, deploy_checkpoint
from .model import build_model, det_data_samples
from .inference import infer_images, list_images
from .run import test, train

# before any config is read: `_base_ = 'mmseg::...'` on the onedl forks
register_config_scopes()

__all__ = [
    'CfgOptionsAction', 'add_cfg_options_arg', 'add_unsafe_load_arg', 'run_cli',
    'DEPLOY_CFG_OPTION', 'add_common_args', 'adapt_to_device', 'build_model',
    'check_datasets', 'deploy_checkpoint', 'det_data_samples',
    'enable_visualization', 'infer_images', 'list_images', 'load_config',
    'parse_tool_args', 'register_config_scopes', 'replace_sync_bn',
    'set_work_dir', 'train', 'test'
]
