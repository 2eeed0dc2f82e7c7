"""Configs: loading, adapting to the run, and checks before a run.

- :mod:`.loading`: :func:`load_config` (``--cfg-options`` with top-level
  variables re-bound), which registers the config scopes first;
- :mod:`.scopes`: ``mmseg::`` bases on the onedl forks, ``slak_mm::``
  bases: :func:`read_scoped_bases` (``import slak_mm`` calls it) and
  :func:`register_config_scopes` (:func:`load_config` and
  ``python -m slak_mm.mm_tool``);
- :mod:`.bases`: the top-level keys a config and its bases set, read
  without running them (:func:`config_keys`), and the bases that clash;
- :mod:`.run_config`: :func:`prepare_run_config`, the one way from a
  loaded config to the run's (train, test, ImageNet evaluation): the
  ordered steps of :data:`RUN_STEPS`, each calling one of the following;
- :mod:`.adapt`: in-place edits a run asks for (work_dir, device, mixed
  precision, load check, visualisation, TTA, prediction dumps);
- :mod:`.checks` and :mod:`.model_checks`: refuse a config before anything
  is built: datasets (the dataset-file checks of
  :mod:`slak_mm.datasets.checks`), schedule, neck / heads that do not fit
  the SLaK backbone, heads' ``num_classes`` that do not fit the datasets;
  each can be skipped by name (:data:`CHECKS`, :func:`checks_to_run`).

The shipped config files are found with :func:`slak_mm.get_config_path`
(:mod:`slak_mm.config_path`, importable without OpenMMLab).
"""
from .adapt import (LOAD_CHECK_HOOK, adapt_amp, adapt_to_device,
                    add_load_check, enable_tta, enable_visualization,
                    iter_dicts, partial_load_allowed, remove_created_folders,
                    replace_sync_bn, save_predictions, set_work_dir)
from .bases import base_clash_line, base_files, config_keys
from .checks import (CHECKS, check_datasets, check_num_classes,
                     check_train_cfg, checks_to_run, head_num_classes)
from .loading import (dict_option_problem, load_config, not_a_config,
                      rebind_key, rebind_value)
from .model_checks import (Problem, backbone_neck_problems,
                           check_backbone_neck, slak_feature_maps)
from .run_config import RUN_STEPS, PreparedRun, RunOptions, prepare_run_config
from .scale_down import scale_down, shrink_sizes
from .scopes import (OWN_SCOPES, packaged_config_folder, read_scoped_bases,
                     register_config_scopes)

__all__ = [
    'CHECKS', 'LOAD_CHECK_HOOK', 'OWN_SCOPES', 'Problem', 'RUN_STEPS',
    'PreparedRun', 'RunOptions', 'adapt_amp', 'adapt_to_device',
    'add_load_check', 'backbone_neck_problems', 'base_clash_line',
    'base_files', 'check_backbone_neck', 'check_datasets', 'check_num_classes',
    'check_train_cfg', 'checks_to_run', 'config_keys', 'dict_option_problem',
    'enable_tta', 'enable_visualization', 'head_num_classes', 'iter_dicts',
    'load_config', 'not_a_config', 'packaged_config_folder',
    'partial_load_allowed', 'prepare_run_config', 'read_scoped_bases',
    'rebind_key', 'rebind_value', 'register_config_scopes',
    'remove_created_folders', 'replace_sync_bn', 'save_predictions',
    'scale_down', 'set_work_dir', 'shrink_sizes', 'slak_feature_maps'
]
