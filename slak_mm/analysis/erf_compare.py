"""The ERF of several models on the same images, written to a folder
(``tools/analysis/erf.py`` is its command line).

Each model (an mm config's ``model.backbone`` or ``timm:NAME``, with
random weights or a checkpoint) is measured by
:func:`~slak_mm.analysis.erf.erf_contribution` on the same images, after
the same seed, and gets ``<name>_erf.npy`` (the mean contribution map) and
``<name>_erf.png``; then ``erf_compare.png`` (all side by side) and
``erf_area_ratios.json`` (per threshold, the side and area ratio of the
smallest centred square holding it: :func:`high_contribution_area`).
"""
import gc
import io
import os.path as osp
import random
import re
import tempfile
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from slak_mm.checkpoint import is_remote
from slak_mm.fileio import (atomic_write_bytes, check_output_folder,
                            write_json_atomic)
from slak_mm.utils import log_message
from .erf import (DEFAULT_THRESHOLDS, ERFImages, build_erf_backbone,
                  erf_contribution, find_images, high_contribution_area,
                  plot_erf, synthetic_images, threshold_key)

__all__ = ['ERFModel', 'ERFResults', 'compare_erfs', 'erf_models']


class ERFModel(NamedTuple):
    """One model of a comparison.

    Args:
        name (str): Its file stem (unique within the comparison).
        spec (str): A config file (``*.py``) or ``timm:NAME``.
        checkpoint (str, optional): Its weights; None: random ones.
    """
    name: str
    spec: str
    checkpoint: Optional[str]


class ERFResults(NamedTuple):
    """What :func:`compare_erfs` wrote.

    Args:
        report (dict): The content of ``erf_area_ratios.json``.
        areas (dict): Per model name, :func:`high_contribution_area`'s
            result (for :func:`~slak_mm.analysis.erf.format_area_table`).
        json_path (str): ``erf_area_ratios.json``.
        figure_path (str): ``erf_compare.png``.
    """
    report: dict
    areas: Dict[str, Dict[float, dict]]
    json_path: str
    figure_path: str


def erf_models(models: Sequence[str],
               checkpoints: Optional[Sequence[str]] = None) -> List[ERFModel]:
    """The models of a comparison, named after their config / timm name
    and checkpoint (unique file stems).

    Args:
        models (Sequence[str]): ``SPEC`` or ``SPEC=CHECKPOINT``, SPEC a
            config file or ``timm:NAME``.
        checkpoints (Sequence[str], optional): One checkpoint per model
            (``'none'``: random weights), instead of ``=CHECKPOINT``.

    Returns:
        list[ERFModel]: One per model, in order.

    Raises:
        ValueError: A model given a checkpoint twice.
    """
    entries, seen = [], {}
    for i, model in enumerate(models):
        spec, _, ckpt = model.partition('=')
        if checkpoints and checkpoints[i].lower() != 'none':
            if ckpt:
                raise ValueError(f'{model!r}: checkpoint given twice (=CKPT '
                                 f'and --checkpoints)')
            ckpt = checkpoints[i]
        if spec.startswith('timm:'):
            name = 'timm_' + spec[len('timm:'):]
        else:
            name = osp.splitext(osp.basename(spec))[0]
        if ckpt:
            name += '-' + osp.splitext(osp.basename(ckpt))[0]
        name = re.sub(r'[^\w.+-]', '_', name)
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            name = f'{name}_{seen[name]}'
        entries.append(ERFModel(name, spec, ckpt or None))
    return entries


def _check_models(models: Sequence[ERFModel]) -> None:
    """Refuse a model that cannot be built, before any model runs."""
    for _, spec, ckpt in models:
        if spec.startswith('timm:'):
            import timm
            if spec[len('timm:'):] not in timm.list_models():
                raise ValueError(f'unknown timm model in {spec!r}; see '
                                 f'timm.list_models()')
        elif not spec.endswith('.py'):
            raise ValueError(f'unknown model spec {spec!r}: give a config '
                             f'file (*.py) or timm:NAME')
        elif not osp.isfile(spec):
            raise FileNotFoundError(f'config file not found: {spec!r}')
        if ckpt and not is_remote(ckpt) and not osp.isfile(ckpt):
            raise FileNotFoundError(f'checkpoint not found: {ckpt!r}')


def _measure(model: ERFModel, paths: Sequence[str], size: int, out_dir: str,
             seed: int, device: str, cfg_options: Optional[dict], cmap: str,
             dpi: int, progress: bool) -> Tuple[np.ndarray, dict]:
    """One model's map and areas, its ``.npy`` and ``.png`` written."""
    # the same random weights whatever the order of the models
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    backbone, preprocess = build_erf_backbone(model.spec, model.checkpoint,
                                              cfg_options)
    images = ERFImages(paths, size, **preprocess)
    log_message(f'{model.name}: {model.spec}' +
                (f' with {model.checkpoint}' if model.
                 checkpoint else ' (random weights)'))
    scores = erf_contribution(
        backbone, images, device=device, progress=progress)
    del backbone
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    areas = high_contribution_area(scores, DEFAULT_THRESHOLDS)
    array = io.BytesIO()
    np.save(array, scores)
    atomic_write_bytes(array.getvalue(),
                       osp.join(out_dir, f'{model.name}_erf.npy'))
    plot_erf({model.name: scores},
             osp.join(out_dir, f'{model.name}_erf.png'),
             areas={model.name: areas},
             cmap=cmap,
             dpi=dpi)
    return scores, areas


def compare_erfs(models: Sequence[ERFModel],
                 out_dir: str,
                 images: Optional[str] = None,
                 synthetic: Optional[int] = None,
                 num_images: int = 50,
                 size: int = 1024,
                 device: Union[str, torch.device] = 'cpu',
                 seed: int = 0,
                 cfg_options: Optional[dict] = None,
                 cmap: str = 'RdYlGn',
                 dpi: int = 100,
                 progress: bool = False) -> ERFResults:
    """Measure the ERF of each model on the same images and write the maps,
    figures and area ratios to ``out_dir`` (see the module doc).

    Everything that can be refused (a model, a checkpoint, the image
    folder, ``out_dir``) is refused before the first model runs.

    Args:
        models (Sequence[ERFModel]): From :func:`erf_models`.
        out_dir (str): Where the files go.
        images (str, optional): A folder of images (the first
            ``num_images`` by name).
        synthetic (int, optional): Instead, this many synthetic ADE20K-style
            images (at most ``num_images``).
        num_images (int): Images at most. Paper: 50.
        size (int): Images are resized (bicubic) to ``size x size``.
            Paper: 1024.
        device (str | torch.device): Where the models run.
        seed (int): Seed of the random weights (reset before each model)
            and of the synthetic images.
        cfg_options (dict, optional): Overrides for the configs.
        cmap (str): Matplotlib colour map.
        dpi (int): Dots per inch of the PNGs.
        progress (bool): Progress bars (tqdm, on stderr).

    Returns:
        ERFResults: The report, the areas and the comparison's files.

    Raises:
        ValueError: Not one of ``images`` / ``synthetic``, an unknown model.
        FileNotFoundError: A missing config, checkpoint or image folder.
    """
    if (images is None) == (synthetic is None):
        raise ValueError('give an image folder or a number of synthetic '
                         'images (one of the two)')
    _check_models(models)
    if images is not None:
        find_images(images)
    check_output_folder(out_dir, '--out-dir')  # before any work
    named_scores, named_areas, report = {}, {}, {}
    with tempfile.TemporaryDirectory(prefix='slak_erf_') as tmp:
        if synthetic is not None:
            paths = synthetic_images(tmp, min(synthetic, num_images), size,
                                     seed)
            source = f'{len(paths)} synthetic images'
        else:
            paths = find_images(images, num_images)
            source = f'{len(paths)} images from {images}'
        log_message(f'ERF at {size}x{size} on {source}, device {device}')
        for model in models:
            scores, areas = _measure(model, paths, size, out_dir, seed, device,
                                     cfg_options, cmap, dpi, progress)
            named_scores[model.name], named_areas[model.name] = scores, areas
            report[model.name] = dict(
                spec=model.spec,
                checkpoint=model.checkpoint,
                areas={
                    threshold_key(t):
                    dict(
                        threshold=t,
                        side=a['side'],
                        area_ratio=a['area_ratio'])
                    for t, a in areas.items()
                })
    figure = plot_erf(
        named_scores,
        osp.join(out_dir, 'erf_compare.png'),
        areas=named_areas,
        cmap=cmap,
        dpi=dpi)
    json_path = osp.join(out_dir, 'erf_area_ratios.json')
    summary = dict(
        size=size,
        num_images=len(paths),
        images='synthetic' if synthetic is not None else images,
        seed=seed,
        thresholds=list(DEFAULT_THRESHOLDS),
        models=report)
    write_json_atomic(summary, json_path)
    return ERFResults(summary, named_areas, json_path, figure)
