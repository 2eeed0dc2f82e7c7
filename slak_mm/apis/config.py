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
import os
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


#: First bytes of the image formats the datasets read.
_IMAGE_MAGIC = (b'\xff\xd8\xff', b'\x89PNG', b'BM', b'II*\x00', b'MM\x00*',
                b'RIFF')
_IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def _unreadable_images(folder: str) -> list:
    """Image files under ``folder`` that are empty or not images at all
    (read their first bytes only; a fast scan before training)."""
    bad = []
    for parent, _, names in os.walk(folder):
        for name in names:
            if not name.lower().endswith(_IMAGE_SUFFIXES):
                continue
            path = osp.join(parent, name)
            with open(path, 'rb') as f:
                head = f.read(8)
            if not head.startswith(_IMAGE_MAGIC):
                bad.append(path)
    return bad


def _check_folder_content(split: str, ds_type: str, key: str,
                          path: str) -> None:
    if not osp.isdir(path):
        return
    if not any(files for _, _, files in os.walk(path)):
        raise FileNotFoundError(
            f'{split} dataset ({ds_type}) folder {key}={path!r} is empty: '
            f'put the data there or point data_root at the right folder.')
    if 'img' in key:
        bad = _unreadable_images(path)
        if bad:
            raise ValueError(
                f'{split} dataset ({ds_type}): {len(bad)} file(s) under '
                f'{path!r} are empty or not images, e.g. {bad[:3]}; remove or '
                f'replace them (training would stop at the first one).')


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
            folders = {
                key: osp.join(root, prefix)
                for key, prefix in (ds.get('data_prefix') or {}).items()
                if isinstance(prefix, str) and prefix
            }
            paths += list(folders.values())
            for path in paths:
                if not osp.exists(path):
                    ds_type = ds.get('type', '?')
                    layout = DATASET_LAYOUTS.get(
                        ds_type, 'the layout the dataset class documents')
                    # a root that already ends in the layout's top folder
                    # (.../ADEChallengeData2016) is named once, not twice
                    top = osp.basename(osp.normpath(root)) if root else ''
                    if top and layout.startswith(top + '/'):
                        layout = layout.replace(top + '/', '')
                    raise FileNotFoundError(
                        f'{split} dataset ({ds_type}) path not found: '
                        f'{path!r} (data_root={root!r}). Expected layout '
                        f'under the data root: {layout}. Point the config '
                        f'at it with --cfg-options data_root=PATH, or make '
                        f'synthetic data with tools/generate_synthetic_data.py.'
                    )
            for key, folder in folders.items():
                _check_folder_content(split, ds.get('type', '?'), key, folder)


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


def enable_visualization(cfg: Config,
                         show_dir: Optional[str] = None,
                         show: bool = False,
                         wait_time: float = 2.) -> None:
    """Draw test predictions (mmseg's and mmdet's visualization hooks).

    Args:
        cfg (Config): The config, ``work_dir`` set.
        show_dir (str, optional): Save the painted predictions here; a
            relative path is taken relative to the work_dir.
        show (bool): Also open a window per image (needs a display).
        wait_time (float): Seconds each window stays open.
    """
    hook = cfg.default_hooks.get('visualization')
    if hook is None:
        raise ValueError('--show/--show-dir need a `visualization` entry in '
                         'default_hooks (SegVisualizationHook or '
                         'DetVisualizationHook).')
    hook['draw'] = True
    if show:
        hook['show'] = True
        hook['wait_time'] = wait_time
    if cfg.get('default_scope') != 'mmdet':
        hook['interval'] = 1
    if not show_dir:
        return
    show_dir = osp.abspath(osp.join(cfg.work_dir, show_dir))
    if cfg.get('default_scope') == 'mmdet':
        hook['test_out_dir'] = show_dir
    else:
        cfg.visualizer['save_dir'] = show_dir


def enable_tta(cfg: Config) -> None:
    """Test-time augmentation, as the frameworks' ``--tta``: the test set
    runs ``tta_pipeline`` and the model is wrapped in ``tta_model``.

    Raises:
        ValueError: The config defines no ``tta_pipeline`` / ``tta_model``.
    """
    lacking = [k for k in ('tta_pipeline', 'tta_model') if k not in cfg]
    if lacking:
        raise ValueError(
            f'--tta needs {" and ".join(lacking)} in the config (the ADE20K '
            f'and VOC dataset bases here define them; Cascade Mask R-CNN has '
            f'no mask-merging TTA model in mmdet).')
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)


def save_predictions(cfg: Config, out: str) -> None:
    """``--out``: keep the raw predictions, as the frameworks' tools do
    (mmseg: prediction PNGs in the folder ``out``; mmdet: a pickle file of
    all results via ``DumpDetResults``)."""
    if cfg.get('default_scope') == 'mmdet':
        if not out.endswith(('.pkl', '.pickle')):
            raise ValueError(f'--out {out!r}: detection results are dumped '
                             f'as a pickle; give a .pkl file name.')
        evaluators = cfg.test_evaluator
        if not isinstance(evaluators, (list, tuple)):
            evaluators = [evaluators]
        cfg.test_evaluator = [
            *evaluators,
            ConfigDict(type='DumpDetResults', out_file_path=out)
        ]
    else:
        cfg.test_evaluator['output_dir'] = out
        cfg.test_evaluator['keep_results'] = True
