"""The sweep's data: tiny synthetic datasets, and a config pointed at them.

A config whose datasets the generator writes (COCO instances / stuff /
panoptic, ADE20K, VOC, ImageNet folders) only gets its ``data_root``
changed, as a user would. Any other dataset (Cityscapes, LVIS, CIFAR, ...)
is replaced by the synthetic one of the same task, the config's pipelines
kept: COCO instances for mmdet (``CocoMetric``), ADE20K for mmseg
(``IoUMetric``), the ImageNet-style folders for mmpretrain
(``Accuracy``). The stand-in gets the replaced dataset's number of classes
(``metainfo``: the classes the synthetic images show first), so the model
stays as it is; only where the stand-in has fewer classes (LVIS, COCO-Stuff)
the heads' ``num_classes`` follow it. The swap is the sweep's scaffolding
(the question is the model with SLaK, not the dataset class), and the
table says where it was made.
"""
import json
import os
import os.path as osp
import pickle
from typing import Dict, List, Optional

import numpy as np
from mmengine.config import Config, ConfigDict

from slak_mm.config import head_num_classes, rebind_value
from slak_mm.datasets.checks import (dataset_classes, dataset_paths,
                                     leaf_dataset_cfgs, pipeline_transforms)
from slak_mm.datasets.synthetic import (ADE20K_BACKGROUND, ADE20K_CLASSES,
                                        COCO_CATEGORIES, COCO_CLASSES,
                                        IMAGENET_CLASSES, generate_ade20k,
                                        generate_coco, generate_imagenet,
                                        generate_voc, synthetic_kind)
from slak_mm.fileio import atomic_write_bytes
from slak_mm.registry import type_name

__all__ = ['IMAGE_SIZES', 'generate_sweep_data', 'use_synthetic_data']

#: Image side of the sweep's runs per framework (64-128 px: a step takes
#: seconds on a CPU core; detectors need objects of a few strides).
IMAGE_SIZES = dict(mmdet=128, mmseg=64, mmpretrain=64)
#: The dataset that stands in for one the generator does not write.
_STAND_INS = dict(mmdet='coco', mmseg='ade20k', mmpretrain='imagenet')
_NAMES = dict(coco='COCO', ade20k='ADE20K', imagenet='ImageNet folders')


def generate_sweep_data(root: str) -> Dict[str, str]:
    """Write the synthetic datasets the sweep reads: 2 training images
    (one batch: one training step) and 1 test image (one test step) each.

    Args:
        root (str): Output folder.

    Returns:
        dict[str, str]: Generator name -> dataset folder.
    """
    det, small = IMAGE_SIZES['mmdet'], IMAGE_SIZES['mmseg']
    roots = dict(
        coco=generate_coco(root, num_train=2, num_val=1, img_size=det),
        voc=generate_voc(root, num_train=2, num_val=1, img_size=det),
        ade20k=generate_ade20k(root, num_train=2, num_val=1, img_size=small),
        # one image of each of the 6 classes, so no class folder is empty
        # (mmpretrain refuses one); the batch is all of them
        imagenet=generate_imagenet(
            root, num_train=6, num_val=6, img_size=small))
    for split in ('train2017', 'val2017'):
        _write_proposals(roots['coco'], split)
    return roots


def _write_proposals(coco: str, split: str) -> None:
    """``proposals/SPLIT.pkl`` as mmdet's ``proposal_file`` holds an RPN's
    (Fast R-CNN, Cascade RPN, Libra R-CNN, Guided Anchoring read one): per
    image its boxes, each ground-truth box and two shifted copies, with
    falling scores."""
    with open(osp.join(coco, 'annotations', f'instances_{split}.json')) as f:
        ann = json.load(f)
    proposals = {}
    for image in ann['images']:
        boxes = []
        for obj in ann['annotations']:
            if obj['image_id'] == image['id']:
                x, y, w, h = obj['bbox']
                for dx in (0, w / 4, -w / 4):
                    boxes.append([x + dx, y, x + dx + w, y + h])
        bboxes = np.clip(
            np.array(boxes, np.float32).reshape(-1, 4), 0,
            [image['width'], image['height']] * 2)
        proposals[f'{split}/{image["file_name"]}'] = dict(
            bboxes=bboxes,
            scores=np.linspace(1, 0.5, len(bboxes), dtype=np.float32))
    os.makedirs(osp.join(coco, 'proposals'), exist_ok=True)
    atomic_write_bytes(
        pickle.dumps(proposals), osp.join(coco, 'proposals', f'{split}.pkl'))


def _with_masks(pipeline) -> bool:
    return any(t.get('with_mask') for t in pipeline_transforms(pipeline or []))


def _names(drawn: List[str], others: List[str], count: int) -> tuple:
    """``count`` class names, those the synthetic images show first."""
    rest = [n for n in others if n not in drawn]
    return tuple((drawn + rest)[:count])


def _coco_classes_shown(coco: str) -> List[str]:
    """The classes the synthetic COCO images show, those in both splits
    first: a stand-in with fewer classes (a one-class detector) keeps ones
    its one test image shows."""
    shown = []
    for split in ('train2017', 'val2017'):
        with open(osp.join(coco, 'annotations',
                           f'instances_{split}.json')) as f:
            shown.append(
                {a['category_id']
                 for a in json.load(f)['annotations']})
    in_both = shown[0] & shown[1]
    return [
        c.name for c in sorted(
            COCO_CLASSES, key=lambda c: c.dataset_id not in in_both)
    ]


def _stand_in(package: str, split: str, ds: dict, roots: Dict[str, str],
              count: Optional[int]) -> Optional[dict]:
    """The synthetic dataset of the task in place of ``ds`` (its pipeline
    kept), with ``count`` classes: the classes the synthetic images show,
    then others of the stand-in's (mmdet and mmseg take a subset of their
    classes through ``metainfo``); None where the stand-in has fewer
    classes than ``count`` (or fewer than it draws)."""
    train = split == 'train'
    pipeline = ds.get('pipeline', [])
    if package == 'mmdet':
        names = _names(
            _coco_classes_shown(roots['coco']),
            [c['name'] for c in COCO_CATEGORIES], count or 80)
        part = 'train2017' if train else 'val2017'
        return None if len(names) < (count or 80) else dict(
            type='CocoDataset',
            data_root=roots['coco'],
            ann_file=f'annotations/instances_{part}.json',
            data_prefix=dict(img=f'{part}/'),
            metainfo=dict(classes=names),
            filter_cfg=dict(filter_empty_gt=False, min_size=0),
            test_mode=not train,
            pipeline=pipeline)
    if package == 'mmseg':
        from mmseg.datasets import ADE20KDataset
        ade = list(ADE20KDataset.METAINFO['classes'])
        drawn = [ade[c.dataset_id - 1] for c in ADE20K_CLASSES]
        names = _names([ade[ADE20K_BACKGROUND.dataset_id - 1]] + drawn, ade,
                       count or len(ade))
        part = 'training' if train else 'validation'
        return None if len(names) < (count or len(ade)) else dict(
            type='ADE20KDataset',
            data_root=roots['ade20k'],
            data_prefix=dict(
                img_path=f'images/{part}', seg_map_path=f'annotations/{part}'),
            metainfo=dict(classes=names),
            pipeline=pipeline)
    names = [type_name(t) for t in pipeline_transforms(pipeline)]
    if 'LoadImageFromFile' not in names:  # CIFAR / MNIST hold arrays
        pipeline = [
            dict(type='LoadImageFromFile'),
            dict(type='ResizeEdge', scale=IMAGE_SIZES[package], edge='short'),
            dict(type='CenterCrop', crop_size=IMAGE_SIZES[package]),
            dict(type='PackInputs')
        ]
    drawn = [c.name for c in IMAGENET_CLASSES]
    count = count or len(drawn)
    if count < len(drawn):
        return None
    part = 'train' if train else 'val'
    return dict(
        type='CustomDataset',
        data_root=roots['imagenet'],
        data_prefix=part,
        ann_file=f'meta/{part}.txt',  # labels 0-5 of the ImageNet list
        metainfo=dict(classes=drawn +
                      [f'class_{i}' for i in range(len(drawn), count)]),
        pipeline=pipeline)


def _stand_in_evaluator(package: str, cfg: Config, roots: Dict[str,
                                                               str]) -> dict:
    if package == 'mmdet':
        pipeline = ((cfg.get('train_dataloader') or {}).get('dataset')
                    or {}).get('pipeline')
        metrics = ['bbox', 'segm'] if _with_masks(
            pipeline if isinstance(pipeline, list) else []) else ['bbox']
        return dict(
            type='CocoMetric',
            ann_file=osp.join(roots['coco'],
                              'annotations/instances_val2017.json'),
            metric=metrics)
    if package == 'mmseg':
        return dict(type='IoUMetric', iou_metrics=['mIoU'])
    return dict(type='Accuracy', topk=(1, ))


def _swap_leaves(node, cfg: Config, package: str, split: str,
                 roots: Dict[str, str], swapped: List[str]):
    """The dataset tree ``node`` with each leaf the generator does not
    write replaced by the stand-in (wrappers kept; a ``ConcatDataset``
    keeps its first dataset)."""
    if not isinstance(node, dict):
        return node
    if 'datasets' in node:
        node['datasets'] = [
            _swap_leaves(node['datasets'][0], cfg, package, split, roots,
                         swapped)
        ]
        return node
    if 'dataset' in node:
        node['dataset'] = _swap_leaves(node['dataset'], cfg, package, split,
                                       roots, swapped)
        return node
    if synthetic_kind(type_name(node), dataset_paths(node)):
        return node
    classes = dataset_classes(node, cfg.get('default_scope'))
    # unknown (a class file, read from the annotations): the heads say
    heads = [n for _, n in head_num_classes(cfg.get('model'))]
    count = len(classes) if classes else (heads[0] if heads else None)
    stand_in = _stand_in(package, split, node, roots, count)
    if stand_in is None:  # fewer classes: the heads follow the stand-in
        stand_in = _stand_in(package, split, node, roots, None)
        _set_num_classes(cfg, len(stand_in['metainfo']['classes']))
    if node.get('proposal_file'):
        stand_in['proposal_file'] = node['proposal_file']  # set below
    swapped.append(type_name(node) or '?')
    return ConfigDict(stand_in)


def _set_num_classes(cfg: Config, count: int) -> None:
    for key, _ in list(head_num_classes(cfg.get('model'))):
        cfg.merge_from_dict({key: count})


def use_synthetic_data(cfg: Config, package: str,
                       roots: Dict[str, str]) -> Optional[str]:
    """Point the config's train and test data at the synthetic datasets
    (validation is left out: one training step, then one test step).

    Args:
        cfg (Config): The config; changed in place.
        package (str): Its framework (which stand-in replaces a dataset
            the generator does not write).
        roots (dict[str, str]): :func:`generate_sweep_data`'s folders.

    Returns:
        str | None: What was replaced (``'CityscapesDataset -> synthetic
        ADE20K'``), None where only ``data_root`` changed.
    """
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    swapped: List[str] = []
    for split in ('train', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        if not isinstance(loader, dict):
            continue
        loader.dataset = _swap_leaves(
            loader.get('dataset'), cfg, package, split, roots, swapped)
    # the datasets the generator writes: their data_root (and the paths
    # built from it, as the evaluators' ann_file) moved to the synthetic one
    for split in ('train', 'test'):
        loader = cfg.get(f'{split}_dataloader') or {}
        for ds in leaf_dataset_cfgs(loader.get('dataset')):
            if ds.get('proposal_file'):  # an RPN's boxes: the sweep's
                ds['proposal_file'] = osp.join(
                    roots['coco'], 'proposals',
                    'train2017.pkl' if split == 'train' else 'val2017.pkl')
            kind = synthetic_kind(type_name(ds), dataset_paths(ds))
            old = ds.get('data_root')
            new = roots[kind] if kind else None
            if isinstance(old, str) and new and old.rstrip('/') != new:
                for key in list(cfg.keys()):
                    cfg[key] = rebind_value(cfg[key], old, new)
            elif new and not old:
                ds['data_root'] = new
    if not swapped:
        return None
    cfg.test_evaluator = _stand_in_evaluator(package, cfg, roots)
    leaf = next(leaf_dataset_cfgs(cfg.train_dataloader.dataset))
    return (f'{", ".join(sorted(set(swapped)))} -> synthetic '
            f'{_NAMES[_STAND_INS[package]]} '
            f'({len(leaf.metainfo.classes)} classes)')
