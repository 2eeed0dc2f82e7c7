"""Config preparation shared by ``tools/train.py`` and ``tools/test.py``.

What the mm tools do (``--cfg-options``, work_dir, resume, amp, show-dir),
plus three things they lack:

* top-level variables (``checkpoint``, ``data_root``) overridden with
  ``--cfg-options`` are re-bound everywhere the config used their value, so
  ``--cfg-options checkpoint=PATH`` reaches ``model.backbone.init_cfg``;
* on machines without CUDA, ``SyncBN`` becomes ``BN`` and distributed runs use
  the gloo backend with CPU DDP;
* a missing dataset folder stops with the path and the expected layout
  instead of an error deep inside a dataset class.
"""
import os.path as osp
from typing import Any, Optional

import torch
from mmengine.config import Config, ConfigDict

#: Expected on-disk layouts, named in the error for a missing dataset.
DATASET_LAYOUTS = {
    'ADE20KDataset':
    'ADEChallengeData2016/images/{training,validation}/*.jpg and '
    'ADEChallengeData2016/annotations/{training,validation}/*.png',
    'VOCDataset':
    'VOCdevkit/VOC2007 and VOCdevkit/VOC2012, each with JPEGImages/, '
    'Annotations/*.xml and ImageSets/Main/{trainval,test}.txt',
    'CocoDataset':
    'coco/annotations/instances_{train,val}2017.json and '
    'coco/{train,val}2017/*.jpg',
}


def _replace_values(node: Any, old: Any, new: Any) -> Any:
    if isinstance(node, dict):
        for key, value in node.items():
            node[key] = _replace_values(value, old, new)
        return node
    if isinstance(node, (list, tuple)):
        return type(node)(_replace_values(v, old, new) for v in node)
    if isinstance(node, str):
        if node == old:
            return new
        if node.startswith(old.rstrip('/') + '/'):  # e.g. data_root + '/ann'
            return new.rstrip('/') + node[len(old.rstrip('/')):]
    return node


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """Read a config and apply ``--cfg-options``.

    A top-level string variable named in ``cfg_options`` (for example
    ``checkpoint`` or ``data_root``) is replaced everywhere its old value was
    used, also as the leading path of longer strings
    (``data_root + '/annotations/...'``), not only at the top level.

    Args:
        path (str): Config file.
        cfg_options (dict, optional): Parsed ``--cfg-options``.

    Returns:
        Config: The merged config.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'Config file not found: {path!r}')
    cfg = Config.fromfile(path)
    cfg_options = dict(cfg_options or {})
    for key in list(cfg_options):
        old = cfg.get(key) if '.' not in key else None
        if isinstance(old, str) and isinstance(cfg_options[key], str):
            new = cfg_options.pop(key)
            for top_key in list(cfg.keys()):
                cfg[top_key] = _replace_values(cfg[top_key], old, new)
            cfg[key] = new
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def set_work_dir(cfg: Config,
                 config_path: str,
                 work_dir: Optional[str] = None) -> None:
    """``--work-dir``, else the config's, else ``./work_dirs/CONFIG_NAME``."""
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(config_path))[0])


def _walk_dicts(node: Any):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk_dicts(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _walk_dicts(value)


def replace_sync_bn(cfg: Config) -> None:
    """Turn every ``SyncBN`` of ``cfg`` into ``BN`` (single-process runs:
    SyncBN needs a process group and CUDA)."""
    for node in _walk_dicts(cfg._cfg_dict):
        if node.get('type') == 'SyncBN':
            node['type'] = 'BN'


def adapt_to_device(cfg: Config) -> None:
    """Make GPU configs run where CUDA is missing.

    ``SyncBN`` (CUDA only) becomes ``BN``; distributed runs use gloo and DDP
    without ``device_ids``. Nothing changes when CUDA is available.
    """
    if torch.cuda.is_available():
        return
    replace_sync_bn(cfg)
    cfg.setdefault('env_cfg', ConfigDict())
    cfg.env_cfg.setdefault('dist_cfg', ConfigDict())
    cfg.env_cfg.dist_cfg.backend = 'gloo'
    cfg.model_wrapper_cfg = ConfigDict(
        type='MMDistributedDataParallel',
        device_ids=None,
        broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))


def _dataset_cfgs(node: Any):
    """Leaf dataset configs inside wrappers (RepeatDataset, ConcatDataset)."""
    if isinstance(node, dict):
        if 'datasets' in node:
            for child in node['datasets']:
                yield from _dataset_cfgs(child)
        elif 'dataset' in node:
            yield from _dataset_cfgs(node['dataset'])
        else:
            yield node


def check_datasets(cfg: Config, splits=('train', 'val', 'test')) -> None:
    """Stop early, with the expected layout, if a dataset path is missing.

    Args:
        cfg (Config): The config.
        splits (tuple[str]): Which ``{split}_dataloader`` entries to check.

    Raises:
        FileNotFoundError: Naming the missing path, the dataset type and the
            layout it expects.
    """
    for split in splits:
        loader = cfg.get(f'{split}_dataloader')
        if not loader:
            continue
        for ds in _dataset_cfgs(loader.get('dataset')):
            root = ds.get('data_root', '') or ''
            paths = [root] if root else []
            if ds.get('ann_file'):
                paths.append(osp.join(root, ds['ann_file']))
            for prefix in (ds.get('data_prefix') or {}).values():
                if isinstance(prefix, str) and prefix:
                    paths.append(osp.join(root, prefix))
            for path in paths:
                if not osp.exists(path):
                    ds_type = ds.get('type', '?')
                    layout = DATASET_LAYOUTS.get(
                        ds_type, 'the layout the dataset class documents')
                    raise FileNotFoundError(
                        f'{split} dataset ({ds_type}) path not found: '
                        f'{path!r} (data_root={root!r}). Expected layout '
                        f'under the data root: {layout}. Point the config '
                        f'at it with --cfg-options data_root=PATH, or make '
                        f'synthetic data with tools/generate_synthetic_data.py.'
                    )


def check_train_cfg(cfg: Config) -> None:
    """Refuse a schedule that would train nothing (``max_iters=-5`` runs
    zero iterations and exits 0).

    Raises:
        ValueError: Naming the key, its value and what is expected.
    """
    train_cfg = cfg.get('train_cfg') or {}
    for key in ('max_iters', 'max_epochs', 'val_interval', 'val_begin'):
        value = train_cfg.get(key)
        low = 0 if key == 'val_begin' else 1
        if value is not None and (not isinstance(value, int)
                                  or isinstance(value, bool) or value < low):
            raise ValueError(
                f'train_cfg.{key}={value!r}: expected an integer >= {low} '
                f'(--cfg-options train_cfg.{key}=N).')


#: The checkpoint check every runner of the tools gets (see
#: :class:`slak_mm.engine.hooks.CheckpointLoadCheckHook`).
LOAD_CHECK_HOOK = dict(type='CheckpointLoadCheckHook', allow_partial=False)


def add_load_check(cfg: Config) -> None:
    """Give ``cfg`` the ``default_hooks.load_check`` entry if it lacks one
    (e.g. a framework config with SLaK swapped in), so a checkpoint that
    does not fit the model is an error and not a silent random model."""
    if cfg.get('default_hooks') is None:
        cfg.default_hooks = ConfigDict()
    if cfg.default_hooks.get('load_check') is None:
        cfg.default_hooks.load_check = ConfigDict(LOAD_CHECK_HOOK)


def partial_load_allowed(cfg: Config) -> bool:
    """The config's ``default_hooks.load_check.allow_partial`` (False if
    unset): the same opt-in for the runner, inference and deploy."""
    hook = (cfg.get('default_hooks') or {}).get('load_check') or {}
    return bool(hook.get('allow_partial', False))


def enable_visualization(cfg: Config, show_dir: str) -> None:
    """Draw test predictions into ``show_dir`` (mmseg and mmdet hooks)."""
    hook = cfg.default_hooks.get('visualization')
    if hook is None:
        raise RuntimeError('--show-dir needs a `visualization` entry in '
                           'default_hooks (SegVisualizationHook or '
                           'DetVisualizationHook).')
    hook['draw'] = True
    if cfg.get('default_scope') == 'mmdet':
        hook['test_out_dir'] = osp.abspath(show_dir)
    else:
        hook['interval'] = 1
        cfg.visualizer['save_dir'] = show_dir
