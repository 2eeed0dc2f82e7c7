"""A config scaled down for a try-out on a CPU: small images, small
batches, a few iterations.

The packaged mmdet / mmseg / mmpretrain configs train at 224-1333 px with
batches of 2-256; a CPU takes minutes per step there. What a user trying a
config on a laptop changes, and what the tests and the compatibility sweep
(:mod:`slak_mm.compat`) change: every image size of the pipelines, the data
preprocessor (fixed-size padding, mmseg's ``size``, YOLOX's batch resize)
and mmseg's sliding-window test, the batch size and workers, and the
schedule. The model is left as it is.
"""
from typing import Any

from mmengine.config import Config

__all__ = ['SIZE_KEYS', 'scale_down', 'shrink_sizes']

#: Keys that hold an image size in pipelines and data preprocessors.
SIZE_KEYS = ('scale', 'crop_size', 'size', 'img_scale', 'random_size_range')


def _is_side(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _shrunk(value: Any, size: int) -> Any:
    """``value`` (a side, a ``(w, h)`` pair, or a sequence of them: the
    range of ``RandomResize``) at ``size``; None if it is no size."""
    if _is_side(value):
        return size
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(
            _is_side(v) for v in value):
        return (size, size)
    if isinstance(value, (list, tuple)) and value and all(
            _shrunk(v, size) is not None for v in value):
        return [_shrunk(v, size) for v in value]
    return None


def shrink_sizes(node: Any, size: int) -> None:
    """Make every image size under ``node`` ``size``: a ``(w, h)`` pair
    becomes ``(size, size)``, a single side (mmpretrain's ``ResizeEdge``,
    ``RandomResizedCrop``, ``CenterCrop``) ``size``, a sequence of them
    (``RandomResize``'s range) as many; a list of ``scales``
    (``RandomChoiceResize``, test-time augmentation) keeps one.

    Args:
        node (Any): A pipeline, transform, data preprocessor or any config
            node; changed in place.
        size (int): The side in pixels.
    """
    if isinstance(node, dict):
        for key, value in node.items():
            shrunk = _shrunk(value, size) if key in SIZE_KEYS else None
            if shrunk is not None:
                node[key] = shrunk
            elif key == 'scales' and isinstance(value, (list, tuple)):
                node[key] = [_shrunk(v, size) or v for v in value[:1]]
            else:
                shrink_sizes(value, size)
    elif isinstance(node, (list, tuple)):
        for item in node:
            shrink_sizes(item, size)


def _repeated_once(node: Any) -> None:
    """``RepeatDataset(times=N)`` wrappers made to pass over the data once
    (one epoch stays one pass)."""
    if isinstance(node, dict):
        if 'times' in node and 'dataset' in node:
            node['times'] = 1
        for value in node.values():
            _repeated_once(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _repeated_once(value)


def _schedulers_within(cfg: Config, end: int) -> None:
    """Drop the ``param_scheduler`` entries that would begin after the
    shortened schedule (``end`` iterations or epochs): mmengine refuses a
    scheduler whose default end, the schedule's, is not after its begin
    (a cosine decay from epoch 20 of a 1-epoch run)."""
    schedulers = cfg.get('param_scheduler')
    if isinstance(schedulers, dict):
        schedulers = [schedulers]
    if not isinstance(schedulers, list):
        return
    cfg.param_scheduler = [
        s for s in schedulers
        if not isinstance(s, dict) or (s.get('begin') or 0) < end
    ]


def scale_down(cfg: Config,
               size: int,
               batch_size: int = 2,
               iterations: int = 2) -> None:
    """Scale a config down for a CPU: images at ``size`` px, ``batch_size``
    images per batch, no worker processes, ``iterations`` training
    iterations (iteration-based loops) or one pass over the data (epoch
    loops, ``RepeatDataset`` repeating once); parameter schedulers that
    would begin after that are dropped.

    Args:
        cfg (Config): The config; changed in place.
        size (int): Image side in pixels (64-128 runs in seconds).
        batch_size (int): Images per batch of every dataloader.
        iterations (int): ``max_iters`` of an iteration-based loop.
    """
    train_cfg = cfg.get('train_cfg') or {}
    if 'max_iters' in train_cfg or train_cfg.get(
            'type') == 'IterBasedTrainLoop':
        train_cfg['max_iters'] = iterations
    elif train_cfg:
        train_cfg['max_epochs'] = 1
    _schedulers_within(cfg, iterations if 'max_iters' in train_cfg else 1)
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        if loader:
            shrink_sizes(loader.get('dataset'), size)
            _repeated_once(loader.get('dataset'))
            loader.update(
                batch_size=batch_size, num_workers=0, persistent_workers=False)
    model = cfg.get('model')
    if isinstance(model, dict):
        shrink_sizes(model.get('data_preprocessor'), size)
        shrink_sizes(model.get('test_cfg'), size)  # mmseg's slide window
