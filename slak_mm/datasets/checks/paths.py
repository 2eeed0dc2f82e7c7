"""The paths a config's datasets read: each exists (else the expected
layout is named, and the synthetic-data generator where it writes that
layout), no folder is empty, and every file of an image folder starts like
an image (its first bytes only: a fast scan before training)."""
import os
import os.path as osp
from importlib.util import find_spec
from typing import Any, List, Sequence

from slak_mm.registry import type_name
from slak_mm.utils.image_formats import IMG_EXTENSIONS, looks_like_image
from ..synthetic import SYNTHETIC_LAYOUTS, synthetic_kind
from .configs import leaf_dataset_cfgs, pipeline_transforms

__all__ = ['DATASET_LAYOUTS', 'IMAGENET_LAYOUT', 'check_dataset_paths']

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

#: Where the ImageNet evaluation (``tools/test_imagenet.py``) expects the
#: images, named when they are missing.
IMAGENET_LAYOUT = ('data_root/val/<class folder>/*.JPEG, one folder per '
                   'class (the 1000 wnids n01440764 ... for ImageNet-1K; '
                   'classes are indexed in sorted folder order)')


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
            if not looks_like_image(head):
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


def check_dataset_paths(
    cfg: Any, splits: Sequence[str] = ('train', 'val', 'test')) -> None:
    """Stop early, with the expected layout, if a dataset path is missing;
    and on an empty folder or an image folder holding a file that is no
    image (its first bytes).

    Only the paths the run opens are checked: a ``data_prefix`` of
    segmentation maps only where the pipeline loads them (mmdet's instance
    configs inherit ``seg`` from panoptic bases and never read it).

    Args:
        cfg (Config): The config (``{split}_dataloader`` entries).
        splits (Sequence[str]): Which dataloaders to check.

    Raises:
        FileNotFoundError: Naming the missing path, the dataset type and the
            layout it expects; or the empty folder.
        ValueError: Naming files of an image folder that are no images.
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
