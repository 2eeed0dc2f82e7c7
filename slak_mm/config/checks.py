"""Checks of a config before a run, from the config alone (nothing built).

* a missing dataset folder stops with the path and the expected layout
  instead of an error deep inside a dataset class; an empty folder or a
  file that is no image (its first bytes) stops before training, and so do
  damaged or inconsistent annotation files (:func:`check_datasets` calls
  the dataset-file checks of :mod:`slak_mm.datasets.checks`);
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
from typing import Any, Iterable, Iterator, List, Set, Tuple

from mmengine.config import Config
from mmengine.logging import print_log

from slak_mm.datasets.checks import (check_dataset_files, check_dataset_paths,
                                     dataset_classes, leaf_dataset_cfgs)
from slak_mm.registry import type_name

__all__ = [
    'CHECKS', 'checks_to_run', 'check_datasets', 'check_num_classes',
    'check_train_cfg', 'head_num_classes'
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


def check_datasets(cfg: Config, splits=('train', 'val', 'test')) -> None:
    """The ``datasets`` pre-run check: the paths the datasets read (the
    expected layout named for a missing one, empty folders, files that are
    no images), then their annotation files (references, pairs, label maps),
    by :mod:`slak_mm.datasets.checks`.

    Args:
        cfg (Config): The config.
        splits (tuple[str]): Which ``{split}_dataloader`` entries to check.

    Raises:
        FileNotFoundError: Naming the missing path, the dataset type and the
            layout it expects.
        ValueError: Files of an image folder that are no images;
            :class:`~slak_mm.datasets.DatasetError` for damaged or
            inconsistent annotation files.
    """
    check_dataset_paths(cfg, splits)
    check_dataset_files(cfg, splits)  # annotations: references, pairs


#: Model parts whose ``num_classes`` is not the datasets' class count (as
#: mmdet's ``NumClassCheckHook`` skips the RPN head, a VGG backbone and
#: HTC's ``FusedSemanticHead``).
_NOT_CLASS_COUNTS = ('backbone', 'neck', 'rpn_head', 'semantic_head')
#: Heads whose ``num_classes`` is their own task's, whatever the data:
#: STDC's detail head tells boundary from not (``num_classes=2``).
_OWN_CLASS_COUNT_HEADS = ('STDCHead', )


def head_num_classes(node: Any,
                     where: str = 'model') -> Iterator[Tuple[str, int]]:
    """``(key, num_classes)`` of every part of a model config whose
    ``num_classes`` is the datasets' class count (cascade stages and inner
    heads included; not those of :data:`_NOT_CLASS_COUNTS` and
    :data:`_OWN_CLASS_COUNT_HEADS`).

    Args:
        node (Any): The model config (or a part of it).
        where (str): Its key, the prefix of the keys yielded.

    Yields:
        tuple[str, int]: Dotted key (``'model.roi_head.bbox_head.0
        .num_classes'``) and value.
    """
    if isinstance(node, dict):
        if isinstance(node.get('num_classes'),
                      int) and type_name(node) not in _OWN_CLASS_COUNT_HEADS:
            yield f'{where}.num_classes', node['num_classes']
        for key, value in node.items():
            if key not in _NOT_CLASS_COUNTS:
                yield from head_num_classes(value, f'{where}.{key}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from head_num_classes(value, f'{where}.{i}')


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
