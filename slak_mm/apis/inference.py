"""Image inference with a trained model (``demo/image_demo.py``).

Segmentation configs (``default_scope='mmseg'``) run through mmseg's
``MMSegInferencer`` (prediction drawn by ``SegLocalVisualizer``), detection
configs (``default_scope='mmdet'``) through mmdet's ``DetInferencer``
(``DetLocalVisualizer``). The config is read with
:func:`slak_mm.config.load_config` (so
``--cfg-options data_root=...`` style re-binding works) and adapted to the
device (``SyncBN`` -> ``BN`` without CUDA) before the inferencer gets it.

Class names and palette come from the checkpoint's ``meta.dataset_meta``
(what ``tools/train.py`` saves); a checkpoint without it falls back to the
metainfo of the config's test dataset, instead of the frameworks' defaults
(Cityscapes / COCO classes), which do not match our configs' heads.
"""
import copy
import logging
import os.path as osp
import warnings
from typing import List, Optional, Sequence, Union

import mmcv
import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.registry import DATASETS, init_default_scope

from slak_mm.checkpoint import (atomic_local_writes, fit_checkpoint,
                                require_checkpoint)
from slak_mm.config import adapt_to_device, load_config, partial_load_allowed
from slak_mm.fileio import check_output_path
from slak_mm.utils.image_formats import IMG_EXTENSIONS
from slak_mm.utils.images import list_images

__all__ = [
    'MIN_IMAGE_SIDE', 'build_inferencer', 'config_dataset_meta', 'infer_images'
]


def config_dataset_meta(cfg: Config) -> dict:
    """``classes`` and ``palette`` of the config's test (else val) dataset.

    The dataset is built lazily (no annotation file is read, its folders
    need not exist), as mmdet's ``DetInferencer`` does for the palette.

    Args:
        cfg (Config): Loaded config.

    Returns:
        dict: ``classes`` and ``palette`` (None where the dataset has none).

    Raises:
        ValueError: The config has no test or val dataloader.
    """
    loader = cfg.get('test_dataloader') or cfg.get('val_dataloader')
    if not loader:
        raise ValueError('The config has no test_dataloader/val_dataloader '
                         'to take class names from, and the checkpoint has '
                         'no meta.dataset_meta.')
    ds_cfg = copy.deepcopy(loader['dataset'])
    # wrappers (ConcatDataset, RepeatDataset): the first leaf dataset
    while 'datasets' in ds_cfg or 'dataset' in ds_cfg:
        ds_cfg = (
            ds_cfg['datasets'][0]
            if 'datasets' in ds_cfg else ds_cfg['dataset'])
    ds_cfg['lazy_init'] = True
    # the dataset class lives in the config's scope (mmseg or mmdet)
    ds_cfg.setdefault('_scope_', cfg.get('default_scope', 'mmseg'))
    meta = DATASETS.build(ds_cfg).metainfo
    return dict(classes=meta.get('classes'), palette=meta.get('palette'))


def _has_dataset_meta(checkpoint: Optional[dict]) -> bool:
    meta = (checkpoint or {}).get('meta') or {}
    return bool((meta.get('dataset_meta') or {}).get('classes'))


def build_inferencer(cfg: Config, checkpoint: str, device: str):
    """The framework's inferencer (mmseg's ``MMSegInferencer`` or mmdet's
    ``DetInferencer``, by ``cfg.default_scope``) for ``checkpoint``.

    A checkpoint without ``meta.dataset_meta`` gets the class names and
    palette of the config's test dataset, not the framework's Cityscapes /
    COCO defaults.

    Args:
        cfg (Config): Loaded config (device-adapted).
        checkpoint (str): Checkpoint path.
        device (str): ``'cpu'`` or ``'cuda'``.

    Returns:
        BaseInferencer: The inferencer.
    """
    scope = cfg.get('default_scope', 'mmseg')
    if scope == 'mmseg':
        from mmseg.apis import MMSegInferencer as Inferencer
    elif scope == 'mmdet':
        from mmdet.apis import DetInferencer as Inferencer
    else:
        raise ValueError(f'default_scope {scope!r} of the config is neither '
                         f'mmseg nor mmdet')

    class _Inferencer(Inferencer):

        def _load_weights_to_model(self, model, ckpt, model_cfg):
            if ckpt is not None:  # refuse a file that does not fit
                fit_checkpoint(model, ckpt, checkpoint,
                               partial_load_allowed(cfg))
            with warnings.catch_warnings():
                # the framework's default classes are replaced just below
                warnings.filterwarnings('ignore', 'dataset_meta or class')
                super()._load_weights_to_model(model, ckpt, model_cfg)
            if not _has_dataset_meta(ckpt):
                model.dataset_meta = config_dataset_meta(model_cfg)

    return _Inferencer(
        cfg, checkpoint, device=device, scope=scope, show_progress=False)


def infer_images(config: Union[str, Config],
                 checkpoint: str,
                 inputs: Union[str, Sequence[str]],
                 out: Optional[str] = None,
                 out_dir: Optional[str] = None,
                 device: Optional[str] = None,
                 opacity: float = 0.5,
                 score_thr: float = 0.3,
                 cfg_options: Optional[dict] = None) -> List[str]:
    """Predict on images and write the predictions drawn over them.

    Segmentation masks are blended over the image with ``opacity`` (class
    names at the segments); detections (boxes, masks of instance models)
    with a score of at least ``score_thr`` are drawn with their class and
    score. Each overlay has the size of its input image.

    Args:
        config (str | Config): Config file, or a config loaded with
            :func:`slak_mm.config.load_config`. A deploy checkpoint needs
            ``model.backbone.deploy=True`` in ``cfg_options``.
        checkpoint (str): Model checkpoint (e.g. from ``tools/train.py``).
        inputs (str | Sequence[str]): An image, a folder of images or a list
            of images.
        out (str, optional): Output file; only for a single input image.
        out_dir (str, optional): Output folder: one overlay per image, named
            as its input. Used when ``out`` is not given.
        device (str, optional): ``cpu``, ``cuda``, ``cuda:1``...; default
            CUDA when available, else the CPU.
        opacity (float): Opacity of segmentation masks, in [0, 1].
        score_thr (float): Detection score threshold for drawing.
        cfg_options (dict, optional): ``--cfg-options`` for a config path.

    Returns:
        list[str]: The written overlay files, in input order. An image
        that cannot be read or predicted is skipped with a WARNING naming
        it when there are several (a single image raises ``ValueError``).
    """
    require_checkpoint(checkpoint)
    if not 0 <= opacity <= 1:
        raise ValueError(f'opacity must be in [0, 1], got {opacity}')
    images = list_images(inputs)
    if out is not None:
        if osp.isdir(out):
            raise ValueError(f'out={out!r} is a folder; give a file name '
                             f'(e.g. overlay.png) or use out_dir / --out-dir.')
        if not out.lower().endswith(IMG_EXTENSIONS):
            raise ValueError(
                f'out={out!r} has no image extension; use one of '
                f'{", ".join(IMG_EXTENSIONS)} (the overlay is an image).')
        if len(images) != 1:
            raise ValueError(
                f'out={out!r} names one file but there are {len(images)} '
                f'images; give an output folder (out_dir / --out-dir).')
        outs = [out]
    elif out_dir is not None:
        names = [osp.basename(p) for p in images]
        if len(set(names)) != len(names):
            raise ValueError('Input images with the same file name would '
                             'overwrite each other in out_dir.')
        outs = [osp.join(out_dir, name) for name in names]
    else:
        raise ValueError('Give out (one image) or out_dir.')
    for image, path in zip(images, outs):  # refused before any work
        check_output_path(
            path,
            dict(
                checkpoint=checkpoint,
                config=config if isinstance(config, str) else None,
                **{'input image': image}))

    cfg = (
        load_config(config, cfg_options)
        if isinstance(config, str) else copy.deepcopy(config))
    adapt_to_device(cfg)
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    scope = cfg.get('default_scope', 'mmseg')
    init_default_scope(scope)
    inferencer = build_inferencer(cfg, checkpoint, device)
    kwargs = (
        dict(opacity=opacity) if scope == 'mmseg' else dict(
            pred_score_thr=score_thr, no_save_pred=True))

    written = []
    for image, path in zip(images, outs):
        try:
            _check_image(image)
            # one image per call: the overlay is returned (RGB) and written
            # under our name, not the inferencer's
            result = inferencer(image, return_vis=True, **kwargs)
            vis = result['visualization']
            vis = vis[0] if isinstance(vis, list) else vis
        except Exception as err:  # noqa: BLE001 (one bad image of many)
            reason = f'{type(err).__name__}: {err}'.splitlines()[0]
            if len(images) == 1:
                raise ValueError(f'{image!r}: {reason}') from None
            print_log(
                f'Skipped {image!r}: {reason}',
                logger='current',
                level=logging.WARNING)
            continue
        with atomic_local_writes():  # mmcv writes through mmengine's fileio
            mmcv.imwrite(vis[..., ::-1], path)
        written.append(path)
    return written


#: Smallest image side the models and visualizers handle (a 1 x 1 image
#: breaks the visualizers' label placement).
MIN_IMAGE_SIDE = 8


def _check_image(path: str) -> None:
    """Refuse, with the reason, an image that cannot be used."""
    img = mmcv.imread(path) if osp.getsize(path) else None
    if img is None:
        raise ValueError('cannot be read as an image (empty or damaged file)')
    if min(img.shape[:2]) < MIN_IMAGE_SIDE:
        raise ValueError(f'is {img.shape[1]}x{img.shape[0]} px; images '
                         f'need at least {MIN_IMAGE_SIDE} px per side')
