"""Checks of a config before a run, from the config alone (nothing built).

* a missing dataset folder stops with the path and the expected layout
  instead of an error deep inside a dataset class; an empty folder or a
  file that is no image (its first bytes) stops before training, and so do
  damaged or inconsistent annotation files
  (:func:`slak_mm.datasets.check_dataset_files`);
* a head whose ``num_classes`` is not the number of classes of a dataset
  the run reads is refused (more logits than classes skew the metrics
  silently; fewer fail on the first label beyond them);
* a schedule that would train nothing (``max_iters=-5``) is refused.

The fit of the neck and heads to the backbone is checked in
:mod:`.model_checks`. Each check can be turned off (:data:`CHECKS`):
``skip_checks=['model']`` in the config or ``--skip-checks model`` on
``tools/train.py`` / ``tools/test.py``.
"""
import logging
import os
import os.path as osp
from importlib.util import find_spec
from typing import Any, Iterable, Iterator, List, Optional, Set, Tuple

from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.registry import DATASETS

from slak_mm.datasets.checks import (check_dataset_files, leaf_dataset_cfgs,
                                     pipeline_transforms)
from slak_mm.datasets.synthetic import SYNTHETIC_LAYOUTS, synthetic_kind
from slak_mm.registry import registered_class
from slak_mm.utils.images import IMG_EXTENSIONS
from .model_checks import type_name

__all__ = [
    'CHECKS', 'DATASET_LAYOUTS', 'checks_to_run', 'check_datasets',
    'check_num_classes', 'check_train_cfg', 'dataset_classes',
    'head_num_classes'
]

#: The pre-run checks, by the name ``skip_checks`` / ``--skip-checks`` use.
CHECKS = {
    'model': 'the neck and heads fit the SLaK backbone (channels, strides, '
    "in_index) and the heads' num_classes the datasets' classes",
    'datasets': 'dataset paths exist; images and annotation files are '
    'readable and consistent, before the run',
    'loading': 'loaders that name a damaged file and check label values '
    'while the run reads them',
    'schedule': 'train_cfg would train at least one iteration',
}


def checks_to_run(cfg: Config, skip: Iterable[str] = ()) -> Set[str]:
    """The names of the :data:`CHECKS` to run: all but those in the
    config's ``skip_checks`` and in ``skip`` (the tools' ``--skip-checks``).
    The union is written back to ``cfg.skip_checks`` (the run's config dump
    records it) and logged.

    Args:
        cfg (Config): The config.
        skip (Iterable[str]): More names to skip.

    Returns:
        set[str]: The checks to run.

    Raises:
        ValueError: A name that is no check.
    """
    listed = cfg.get('skip_checks') or []
    if isinstance(listed, str):
        listed = [listed]
    skipped = sorted(set(listed) | set(skip or ()))
    unknown = [name for name in skipped if name not in CHECKS]
    if unknown:
        raise ValueError(
            f'skip_checks: unknown check(s) {unknown}; the checks are '
            f'{sorted(CHECKS)} (e.g. --skip-checks model or '
            f"skip_checks=['model'] in the config).")
    if skipped:
        cfg.skip_checks = skipped
        print_log(
            f'pre-run checks skipped: {", ".join(skipped)}',
            logger='current',
            level=logging.WARNING)
    return set(CHECKS) - set(skipped)


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
    'coco/{train,val}2017/*.jpg (HTC also coco/stuffthingmaps/'
    '{train,val}2017/*.png)',
    'CocoPanopticDataset':
    'coco/annotations/panoptic_{train,val}2017.json, '
    'coco/annotations/panoptic_{train,val}2017/*.png and '
    'coco/{train,val}2017/*.jpg',
    'ImageNet':
    'train/<wnid>/*.JPEG and val/<wnid>/*.JPEG (one folder per class), '
    'or the images with meta/{train,val}.txt',
    'CustomDataset':
    'one folder per class: train/<class>/*.JPEG and val/<class>/*.JPEG '
    '(ImageNet style), or the images with an ann_file of "path label" '
    'lines',
}

#: First bytes of the image formats the datasets read.
_IMAGE_MAGIC = (b'\xff\xd8\xff', b'\x89PNG', b'BM', b'II*\x00', b'MM\x00*',
                b'RIFF')


def _unreadable_images(folder: str) -> list:
    """Image files under ``folder`` that are empty or not images at all
    (read their first bytes only; a fast scan before training)."""
    bad = []
    for parent, _, names in os.walk(folder):
        for name in names:
            if not name.lower().endswith(IMG_EXTENSIONS):
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


#: ``data_prefix`` keys of segmentation maps: only a loader of
#: segmentation annotations opens them.
_SEG_PREFIXES = ('seg', 'seg_map_path')


def _reads_seg_maps(ds: dict, scope: Any) -> bool:
    """Whether the dataset's pipeline loads segmentation maps: mmseg's
    ``LoadAnnotations`` always does, mmdet's with ``with_seg=True``, its
    ``LoadPanopticAnnotations`` unless ``with_seg=False``. Without a
    pipeline in the config: assumed."""
    if 'pipeline' not in ds:
        return True
    for transform in pipeline_transforms(ds['pipeline']):
        kind = transform.get('type')
        if not isinstance(kind, str):
            continue
        package = kind.split('.')[0] if '.' in kind else scope
        name = type_name(transform)
        if name == 'LoadAnnotations' and (package == 'mmseg'
                                          or transform.get('with_seg')):
            return True
        if name == 'LoadPanopticAnnotations' and transform.get(
                'with_seg', True):
            return True
    return False


def _generator_hint(ds_type: str, root: str, paths: List[str]) -> str:
    """The synthetic-data advice, only where the generator writes every
    path the dataset reads (ADE20K, VOC, COCO instances / stuff maps /
    panoptic, ImageNet class folders); empty otherwise."""
    kind = synthetic_kind(ds_type,
                          [osp.relpath(p, root or '.') for p in paths])
    if kind is None:
        return ''
    folder = SYNTHETIC_LAYOUTS[kind][0]
    hint = (f', or make synthetic data with python '
            f'tools/generate_synthetic_data.py DIR --datasets {kind} and '
            f'set data_root=DIR/{folder}')
    if ds_type == 'CocoPanopticDataset' and find_spec('panopticapi') is None:
        hint += (' (mmdet reads panoptic maps with panopticapi: pip install '
                 'git+https://github.com/cocodataset/panopticapi.git)')
    return hint


def _missing_path_message(split: str, ds: dict, root: str, path: str,
                          paths: List[str]) -> str:
    ds_type = type_name(ds) or '?'
    layout = DATASET_LAYOUTS.get(ds_type,
                                 'the layout the dataset class documents')
    # a root that already ends in the layout's top folder
    # (.../ADEChallengeData2016) is named once, not twice
    top = osp.basename(osp.normpath(root)) if root else ''
    if top and layout.startswith(top + '/'):
        layout = layout.replace(top + '/', '')
    return (f'{split} dataset ({ds_type}) path not found: {path!r} '
            f'(data_root={root!r}). Expected layout under the data root: '
            f'{layout}. Point the config at it with --cfg-options '
            f'data_root=PATH{_generator_hint(ds_type, root, paths)}.')


def check_datasets(cfg: Config, splits=('train', 'val', 'test')) -> None:
    """Stop early, with the expected layout, if a dataset path is missing.

    Only the paths the run opens are checked: a ``data_prefix`` of
    segmentation maps only where the pipeline loads them (mmdet's instance
    configs inherit ``seg`` from panoptic bases and never read it).

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
        for ds in leaf_dataset_cfgs(loader.get('dataset')):
            root = ds.get('data_root', '') or ''
            reads = [osp.join(root, ds['ann_file'])
                     ] if ds.get('ann_file') else []
            reads_seg = _reads_seg_maps(ds, cfg.get('default_scope'))
            # mmpretrain: data_prefix='train', or ImageNet's split='train'
            prefixes = ds.get('data_prefix') or ds.get('split') or {}
            if isinstance(prefixes, str):
                prefixes = dict(img_path=prefixes)
            folders = {
                key: osp.join(root, prefix)
                for key, prefix in prefixes.items()
                if isinstance(prefix, str) and prefix and (
                    reads_seg or key not in _SEG_PREFIXES)
            }
            reads += list(folders.values())
            for path in ([root] if root else []) + reads:
                if not osp.exists(path):
                    raise FileNotFoundError(
                        _missing_path_message(split, ds, root, path, reads))
            for key, folder in folders.items():
                _check_folder_content(split, ds.get('type', '?'), key, folder)
    check_dataset_files(cfg, splits)  # annotations: references, pairs


#: Model parts whose ``num_classes`` is not the datasets' class count (as
#: mmdet's ``NumClassCheckHook`` skips the RPN head, a VGG backbone and
#: HTC's ``FusedSemanticHead``).
_NOT_CLASS_COUNTS = ('backbone', 'neck', 'rpn_head', 'semantic_head')


def head_num_classes(node: Any,
                     where: str = 'model') -> Iterator[Tuple[str, int]]:
    """``(key, num_classes)`` of every part of a model config whose
    ``num_classes`` is the datasets' class count (cascade stages and inner
    heads included; not those of :data:`_NOT_CLASS_COUNTS`).

    Args:
        node (Any): The model config (or a part of it).
        where (str): Its key, the prefix of the keys yielded.

    Yields:
        tuple[str, int]: Dotted key (``'model.roi_head.bbox_head.0
        .num_classes'``) and value.
    """
    if isinstance(node, dict):
        if isinstance(node.get('num_classes'), int):
            yield f'{where}.num_classes', node['num_classes']
        for key, value in node.items():
            if key not in _NOT_CLASS_COUNTS:
                yield from head_num_classes(value, f'{where}.{key}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from head_num_classes(value, f'{where}.{i}')


def dataset_classes(ds: dict,
                    scope: Optional[str],
                    key: str = 'classes') -> Optional[tuple]:
    """The classes a dataset config yields: its ``metainfo['classes']``,
    else its class's ``METAINFO`` (what mmengine's ``BaseDataset`` merges).

    Args:
        ds (dict): A leaf dataset config.
        scope (str, optional): The config's ``default_scope``.
        key (str): The ``metainfo`` entry (``'thing_classes'`` of panoptic
            datasets).

    Returns:
        tuple | None: The class names; None where unknown (a class file, a
        dataset that reads them from its annotations).
    """
    metainfo = ds.get('metainfo')
    if isinstance(metainfo, dict) and key in metainfo:
        classes = metainfo[key]
    else:
        cls = registered_class(DATASETS, ds.get('type'), scope)
        classes = (getattr(cls, 'METAINFO', None) or {}).get(key)
    return tuple(classes) if isinstance(classes, (list, tuple)) and \
        classes else None


def check_num_classes(cfg: Config, splits=('train', 'val', 'test')) -> None:
    """Refuse a head whose ``num_classes`` differs from the number of
    classes of a dataset the run reads.

    mmseg's heads output one map per class and mmdet's one score per class
    (as mmdet's ``NumClassCheckHook`` checks, after the model and datasets
    are built): more logits than classes skew the metrics silently, fewer
    fail on the first label beyond them. Every ``num_classes`` under
    ``model`` is compared (not the backbone's, the neck's, the RPN head's
    or HTC's semantic head's) with each leaf dataset's classes
    (``metainfo=dict(classes=...)``, else the dataset class's).

    Args:
        cfg (Config): The config.
        splits (tuple[str]): Which ``{split}_dataloader`` entries to check.

    Raises:
        ValueError: Naming the keys, their values, the dataset and its
            class count.
    """
    heads = list(head_num_classes(cfg.get('model')))
    errors: List[str] = []
    seen = set()  # (keys, count): val and test often read the same data
    for split in splits:
        loader = cfg.get(f'{split}_dataloader') or {}
        for ds in leaf_dataset_cfgs(loader.get('dataset')):
            classes = dataset_classes(ds, cfg.get('default_scope'))
            if classes is None:
                continue
            # panoptic data (COCO: 80 things + 53 stuff): the instance
            # heads of Panoptic FPN count the things only
            things = dataset_classes(ds, cfg.get('default_scope'),
                                     'thing_classes') or classes
            wrong = [(key, n) for key, n in heads
                     if n not in (len(classes), len(things))]
            if not wrong:
                continue
            named = ', '.join(f'{key}={n}' for key, n in wrong)
            if (named, len(classes)) in seen:
                continue
            seen.add((named, len(classes)))
            errors.append(
                f'{named} but the {split} dataset ({ds.get("type")}) has '
                f'{len(classes)} classes ({", ".join(classes[:3])}'
                f'{", ..." if len(classes) > 3 else ""}): set num_classes='
                f'{len(classes)} there, or give the dataset '
                f'metainfo=dict(classes=[...]) with the classes of the data')
    if errors:
        raise ValueError('; '.join(errors))


def check_train_cfg(cfg: Config) -> None:
    """Refuse a schedule that would train nothing (``max_iters=-5`` runs
    zero iterations and exits 0).

    Args:
        cfg (Config): The config.

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
