"""Effective receptive field (ERF) of a backbone, the way the SLaK paper
(and RepLKNet before it) measures it.

Per image (resized to ``SIZE x SIZE``, bicubic, normalised like the model's
training data): take the last feature map, ReLU it, sum its centre pixel
over the channels, back-propagate to the input, ReLU the input gradient and
sum it over the input channels. The maps are averaged over the images
(:func:`erf_contribution`). For the report the average is put on a log
scale, ``log10(1 + x)``, and rescaled to [0, 1] by its maximum
(:func:`normalise_scores`); :func:`high_contribution_area` then gives, for
each threshold ``t`` (20/30/50/99%), the smallest centred square holding
``t`` of the total: its side and its area ratio ``side**2 / SIZE**2``.
A larger ratio means that contributions spread further from the centre.

:mod:`.erf_compare` measures several models and writes the results;
``tools/analysis/erf.py`` is its command line.
"""
import os.path as osp
from collections import abc
from typing import (Dict, Iterable, List, Mapping, Optional, Sequence, Tuple,
                    Union)

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS, init_default_scope

from slak_mm.checkpoint import (extract_state_dict, load_backbone_weights,
                                load_checkpoint_file, require_checkpoint,
                                to_backbone_state_dict)
from slak_mm.config import load_config, replace_sync_bn
from slak_mm.datasets.synthetic import generate_ade20k
from slak_mm.models import SLaK
from slak_mm.utils import list_images
from .figures import save_figure

__all__ = [
    'DEFAULT_THRESHOLDS', 'MIN_SIZE', 'ERFImages', 'build_erf_backbone',
    'erf_contribution', 'find_images', 'format_area_table',
    'high_contribution_area', 'normalise_scores', 'plot_erf',
    'synthetic_images', 'threshold_key'
]

#: Fractions of the total contribution reported by the paper.
DEFAULT_THRESHOLDS = (0.2, 0.3, 0.5, 0.99)
#: Smallest input side: the backbones downsample by 32.
MIN_SIZE = 32
#: ImageNet mean / std in 0-255 units (RGB), for models without a config.
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)

Preprocess = Dict[str, Union[Tuple[float, ...], bool]]


def threshold_key(threshold: float) -> str:
    """Name of a threshold in tables and JSON: ``0.2 -> '20%'``."""
    return f'{threshold * 100:g}%'


def _check_size(size: int) -> int:
    if int(size) != size or size < MIN_SIZE:
        raise ValueError(f'The image size must be an integer >= {MIN_SIZE} '
                         f'(the backbones downsample by 32), got {size!r}')
    return int(size)


# ----------------------------------------------------------------- images
def find_images(folder: str, num_images: Optional[int] = None) -> List[str]:
    """The first ``num_images`` image files of a folder, sorted by name
    (see :func:`slak_mm.utils.list_images`).

    Args:
        folder (str): Image folder.
        num_images (int, optional): Keep the first ``num_images`` files.

    Returns:
        list[str]: Image paths.
    """
    if not osp.isdir(folder):
        raise FileNotFoundError(f'Image folder not found: {folder!r}')
    if num_images is not None and num_images < 1:
        raise ValueError(f'num_images must be >= 1, got {num_images}')
    return list_images(folder)[:num_images]


def synthetic_images(out_dir: str,
                     num_images: int,
                     size: int,
                     seed: int = 0) -> List[str]:
    """Write ``num_images`` synthetic ADE20K-style images of ``size x size``.

    The validation split of :func:`slak_mm.datasets.generate_ade20k`
    (textured backgrounds with a few coloured shapes).

    Args:
        out_dir (str): Root folder for the generated dataset.
        num_images (int): Number of images, >= 1.
        size (int): Image side, >= 32.
        seed (int): Generator seed. Defaults to 0.

    Returns:
        list[str]: Paths of the images.
    """
    root = generate_ade20k(
        out_dir,
        num_train=1,
        num_val=num_images,
        img_size=_check_size(size),
        seed=seed)
    return find_images(osp.join(root, 'images', 'validation'))


class ERFImages(abc.Sequence):
    """Images as the model sees them, loaded lazily (1024 px inputs add up).

    Each item is a float32 tensor of shape (1, 3, size, size): the RGB
    image resized with bicubic interpolation (as the paper does), in the
    model's channel order, minus ``mean``, divided by ``std`` (0-255 units,
    in that channel order, like mm data preprocessors).

    Args:
        paths (Sequence[str]): Image files.
        size (int): Side after resizing, >= 32.
        mean (Sequence[float]): Per-channel mean. Defaults to ImageNet's.
        std (Sequence[float]): Per-channel std. Defaults to ImageNet's.
        rgb (bool): Feed RGB (True) or BGR (False). Defaults to True.
    """

    def __init__(self,
                 paths: Sequence[str],
                 size: int,
                 mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD,
                 rgb: bool = True):
        if not paths:
            raise ValueError('ERFImages needs at least one image path')
        self.paths = list(paths)
        self.size = _check_size(size)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
        self.rgb = rgb

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        from PIL import Image
        with Image.open(self.paths[index]) as img:
            img = img.convert('RGB').resize((self.size, self.size),
                                            Image.BICUBIC)
            array = np.asarray(img, dtype=np.float32)
        x = torch.from_numpy(array.copy()).permute(2, 0, 1)
        if not self.rgb:
            x = x.flip(0)
        return ((x - self.mean) / self.std).unsqueeze(0)


# --------------------------------------------------------------- backbones
def _load_mm_backbone(backbone: nn.Module, checkpoint: str) -> None:
    """Weights of ``checkpoint`` (official SLaK file or mm checkpoint)."""
    loaded = load_checkpoint_file(checkpoint)  # the safe loader, no fallback
    if isinstance(backbone, SLaK):
        # checks every shape first; masks from the file (or its zeros)
        load_backbone_weights(
            backbone, extract_state_dict(loaded), source=checkpoint)
        return
    state_dict = to_backbone_state_dict(extract_state_dict(loaded))
    own = backbone.state_dict()
    matched = [k for k in state_dict if k in own]
    if not matched:
        raise ValueError(
            f'No key of {checkpoint!r} matches the backbone '
            f'{type(backbone).__name__} (first keys in the file: '
            f'{sorted(state_dict)[:5]}, in the model: {sorted(own)[:5]})')
    backbone.load_state_dict({k: state_dict[k] for k in matched}, strict=False)


def build_erf_backbone(
        spec: str,
        checkpoint: Optional[str] = None,
        cfg_options: Optional[dict] = None) -> Tuple[nn.Module, Preprocess]:
    """Build the backbone to analyse, in eval mode, float32, on the CPU.

    ``spec`` is either an mm config path (its ``model.backbone``, with
    ``SyncBN`` turned into ``BN``; ``init_cfg`` dropped so that no file is
    read unless ``checkpoint`` is given) or ``timm:NAME`` (timm's
    ``features_only`` model, e.g. ``timm:convnext_tiny``). Without a
    checkpoint the weights are the model's own random initialisation (seed
    torch beforehand for repeatable maps).

    Args:
        spec (str): Config path or ``timm:NAME``.
        checkpoint (str, optional): Official SLaK or mm checkpoint (configs;
            an mm checkpoint's ``backbone.*`` weights are taken), or a timm
            weights file (``timm:`` specs).
        cfg_options (dict, optional): ``--cfg-options`` for a config.

    Returns:
        tuple[nn.Module, dict]: The backbone and its input normalisation,
        ``dict(mean=..., std=..., rgb=...)`` (0-255 units), read from the
        config's ``data_preprocessor`` (timm: the model's pretrained_cfg).
    """
    if checkpoint is not None:
        require_checkpoint(checkpoint)
    if spec.startswith('timm:'):
        backbone, preprocess = _build_timm(spec[len('timm:'):], checkpoint)
    elif spec.endswith('.py'):
        backbone, preprocess = _build_from_config(spec, checkpoint,
                                                  cfg_options)
    else:
        raise ValueError(
            f'Unknown model spec {spec!r}: give an mm config file (*.py, '
            f'its model.backbone is analysed) or timm:NAME (e.g. '
            f'timm:convnext_tiny)')
    return backbone.float().eval(), preprocess


def _build_timm(name: str, checkpoint: Optional[str]):
    import timm
    if not name or name not in timm.list_models():
        raise ValueError(f'Unknown timm model {name!r} in model spec '
                         f'"timm:{name}"; see timm.list_models()')
    kwargs = {}
    if checkpoint is not None:
        # timm loads the file into the classifier model, then wraps it
        kwargs = dict(
            pretrained=True, pretrained_cfg_overlay=dict(file=checkpoint))
    model = timm.create_model(name, features_only=True, **kwargs)
    cfg = getattr(model, 'pretrained_cfg', None) or {}
    mean = tuple(float(m) * 255 for m in cfg.get('mean', ())) or IMAGENET_MEAN
    std = tuple(float(s) * 255 for s in cfg.get('std', ())) or IMAGENET_STD
    return model, dict(mean=mean, std=std, rgb=True)


def _build_from_config(path: str, checkpoint: Optional[str],
                       cfg_options: Optional[dict]):
    cfg = load_config(path, cfg_options)
    replace_sync_bn(cfg)  # SyncBN needs a process group
    model_cfg = cfg.get('model') or {}
    if 'backbone' not in model_cfg:
        raise ValueError(f'{path!r} has no model.backbone to analyse')
    backbone_cfg = model_cfg['backbone'].copy()
    backbone_cfg.pop('init_cfg', None)
    backbone_cfg.pop('pretrained', None)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    backbone = MODELS.build(backbone_cfg)
    if hasattr(backbone, 'init_weights'):
        backbone.init_weights()  # the model's own random init
    if checkpoint is not None:
        _load_mm_backbone(backbone, checkpoint)
    preprocessor = model_cfg.get('data_preprocessor') or cfg.get(
        'data_preprocessor') or {}
    mean = tuple(preprocessor.get('mean') or IMAGENET_MEAN)
    std = tuple(preprocessor.get('std') or IMAGENET_STD)
    # mm pipelines load BGR; the preprocessor flips it when asked to
    rgb = bool(
        preprocessor.get('bgr_to_rgb', False)
        or preprocessor.get('rgb_to_bgr', False))
    if not preprocessor:
        rgb = True
    return backbone, dict(mean=mean, std=std, rgb=rgb)


# --------------------------------------------------------------------- ERF
def _feature_map(out, feature_index: int) -> torch.Tensor:
    if isinstance(out, Mapping):
        out = list(out.values())
    if isinstance(out, (list, tuple)):
        out = out[feature_index]
    if not isinstance(out, torch.Tensor) or out.dim() != 4:
        raise TypeError('The backbone must return a (N, C, H, W) tensor or '
                        'a sequence/dict of them')
    return out


def erf_contribution(backbone: nn.Module,
                     images: Iterable[torch.Tensor],
                     feature_index: int = -1,
                     device: Union[str, torch.device, None] = None,
                     progress: bool = False) -> np.ndarray:
    """Average contribution of every input pixel to the centre output.

    The backbone is put in eval mode (BatchNorm running statistics) and
    float32, on ``device``. For each batch the chosen feature map is ReLU'd,
    its centre pixel (``H // 2, W // 2``) summed over the channels and
    back-propagated to the input; the input gradient is ReLU'd, summed over
    the channels and averaged over all images.

    Args:
        backbone (nn.Module): Returns a feature map or a sequence of them.
        images (Iterable[torch.Tensor]): Normalised images, (3, H, W) or
            (N, 3, H, W), all of the same size (e.g. :class:`ERFImages`).
        feature_index (int): Which output of a multi-output backbone.
            Defaults to -1 (the last stage).
        device (str | torch.device, optional): Defaults to the backbone's.
        progress (bool): Show a progress bar (tqdm, on stderr).

    Returns:
        np.ndarray: float64 (H, W) map of mean non-negative contributions.
    """
    from tqdm import tqdm
    if device is None:
        param = next(backbone.parameters(), None)
        device = param.device if param is not None else 'cpu'
    backbone.to(device).float().eval()
    total, count = None, 0
    total_len = len(images) if hasattr(images, '__len__') else None
    for x in tqdm(images, total=total_len, disable=not progress, desc='ERF'):
        x = x.unsqueeze(0) if x.dim() == 3 else x
        x = x.to(device, torch.float32).requires_grad_(True)
        feat = _feature_map(backbone(x), feature_index)
        h, w = feat.shape[-2:]
        centre = F.relu(feat[:, :, h // 2, w // 2]).sum()
        if centre.requires_grad:
            grad, = torch.autograd.grad(centre, x)
        else:  # every centre activation was <= 0: no contribution
            grad = torch.zeros_like(x)
        # in eval mode the images of a batch are independent, so summing
        # their gradients is summing the per-image maps
        contrib = F.relu(grad).sum(dim=(0, 1)).double().cpu()
        if total is None:
            total = contrib
        elif total.shape != contrib.shape:
            raise ValueError(f'All images must have the same size; got '
                             f'{tuple(total.shape)} and '
                             f'{tuple(contrib.shape)}')
        else:
            total += contrib
        count += x.shape[0]
    if total is None:
        raise ValueError('erf_contribution got no images')
    return (total / count).numpy()


def normalise_scores(scores: np.ndarray) -> np.ndarray:
    """``log10(1 + x)`` rescaled to [0, 1] by its maximum (the paper's
    report scale; the raw contributions span orders of magnitude).

    Args:
        scores (np.ndarray): Non-negative (H, W) map.

    Returns:
        np.ndarray: float64 map in [0, 1].
    """
    data = np.asarray(scores, dtype=np.float64)
    if data.ndim != 2:
        raise ValueError(f'ERF scores must be a 2-D map, got shape '
                         f'{data.shape}')
    if not np.isfinite(data).all() or (data < 0).any():
        raise ValueError('ERF scores must be finite and non-negative')
    data = np.log10(1 + data)
    peak = data.max()
    if peak <= 0:
        raise ValueError('ERF scores are all zero: no input pixel reaches '
                         'the centre output (dead ReLUs or a zero model?)')
    return data / peak


def high_contribution_area(
        scores: np.ndarray,
        thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
        normalise: bool = True) -> Dict[float, Dict[str, float]]:
    """Smallest centred squares that hold given fractions of the ERF.

    Squares of odd side ``2r + 1`` are centred on pixel ``(H // 2, W // 2)``;
    if even the largest one that fits misses the target (even image sides
    leave one row and column out), the whole map is reported.

    Args:
        scores (np.ndarray): (H, W) map from :func:`erf_contribution`.
        thresholds (Sequence[float]): Fractions in (0, 1]. Defaults to
            (0.2, 0.3, 0.5, 0.99).
        normalise (bool): Apply :func:`normalise_scores` first (the paper
            does). Defaults to True.

    Returns:
        dict: ``{t: {'side': int, 'area_ratio': float}}`` per threshold,
        ``area_ratio = side**2 / (H * W)`` (at most 1).
    """
    data = normalise_scores(scores) if normalise else np.asarray(
        scores, dtype=np.float64)
    if data.ndim != 2:
        raise ValueError(f'ERF scores must be a 2-D map, got shape '
                         f'{data.shape}')
    total = data.sum()
    if not total > 0:
        raise ValueError('ERF scores sum to zero')
    h, w = data.shape
    integral = np.zeros((h + 1, w + 1))
    integral[1:, 1:] = data.cumsum(0).cumsum(1)
    cy, cx = h // 2, w // 2
    radii = np.arange(min(cy, cx, h - 1 - cy, w - 1 - cx) + 1)
    top, bottom = cy - radii, cy + radii + 1
    left, right = cx - radii, cx + radii + 1
    fractions = (integral[bottom, right] - integral[top, right] -
                 integral[bottom, left] + integral[top, left]) / total
    out = {}
    for t in thresholds:
        if not 0 < t <= 1:
            raise ValueError(f'Thresholds must be in (0, 1], got {t}')
        # tolerance: the full sum may differ from `total` in the last bits
        hit = np.flatnonzero(fractions >= t - 1e-12)
        side = int(2 * hit[0] + 1) if hit.size else max(h, w)
        out[t] = dict(side=side, area_ratio=min(side * side / (h * w), 1.0))
    return out


# ---------------------------------------------------------------- reports
def format_area_table(named_areas: Mapping[str, Mapping[float, dict]]) -> str:
    """Text table: one row per model, ``side (area ratio)`` per threshold.

    Args:
        named_areas (Mapping): ``{name: high_contribution_area(...)}``.

    Returns:
        str: The table.
    """
    thresholds = sorted({t for areas in named_areas.values() for t in areas})
    width = max([len('model')] + [len(n) for n in named_areas])
    head = f'{"model":<{width}}' + ''.join(f'  {"t=" + threshold_key(t):>16}'
                                           for t in thresholds)
    lines = [head, '-' * len(head)]
    for name, areas in named_areas.items():
        cells = []
        for t in thresholds:
            a = areas.get(t)
            cell = (f'{a["side"]} ({a["area_ratio"]:.2%})'
                    if a is not None else '-')
            cells.append(f'  {cell:>16}')
        lines.append(f'{name:<{width}}' + ''.join(cells))
    lines.append('side of the smallest centred square holding t of the '
                 'contribution (area ratio = side^2 / image area)')
    return '\n'.join(lines)


def plot_erf(named_scores: Mapping[str, np.ndarray],
             path: str,
             areas: Optional[Mapping[str, Mapping[float, dict]]] = None,
             title_thresholds: Sequence[float] = (0.2, 0.99),
             cmap: str = 'RdYlGn',
             panel_inches: float = 3.2,
             dpi: int = 100) -> str:
    """Heatmaps of normalised ERFs, side by side, written as an image.

    Each panel shows :func:`normalise_scores` of one map on a shared [0, 1]
    colour scale, titled with the model name and its area ratios at
    ``title_thresholds``.

    Args:
        named_scores (Mapping[str, np.ndarray]): ``{name: raw (H, W) map}``.
        path (str): Output file (PNG by extension); folders are created.
        areas (Mapping, optional): ``{name: high_contribution_area(...)}``;
            computed when missing.
        title_thresholds (Sequence[float]): Ratios named in the titles.
        cmap (str): Matplotlib colormap. Defaults to 'RdYlGn' (the paper's).
        panel_inches (float): Width of one panel. Defaults to 3.2.
        dpi (int): Resolution. Defaults to 100.

    Returns:
        str: ``path``.
    """
    # Figure without pyplot: no global state, no GUI backend
    from matplotlib.figure import Figure
    if not named_scores:
        raise ValueError('plot_erf needs at least one ERF map')
    areas = dict(areas or {})
    n = len(named_scores)
    fig = Figure(
        figsize=(panel_inches * n + 1.0, panel_inches + 1.0),
        layout='constrained')
    axes = fig.subplots(1, n, squeeze=False)[0]
    image = None
    # wrap long config names so that neighbouring titles do not overlap
    chars = max(int(panel_inches * 12), 16)
    for ax, (name, scores) in zip(axes, named_scores.items()):
        if name not in areas:
            areas[name] = high_contribution_area(scores, title_thresholds)
        image = ax.imshow(normalise_scores(scores), cmap=cmap, vmin=0, vmax=1)
        ratios = ', '.join(
            f'{threshold_key(t)}: {areas[name][t]["area_ratio"]:.1%}'
            for t in title_thresholds if t in areas[name])
        title = '\n'.join(name[i:i + chars]
                          for i in range(0, len(name), chars))
        ax.set_title(f'{title}\narea ratio {ratios}', fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(image, ax=list(axes), shrink=0.8)
    return save_figure(fig, path, dpi=dpi, bbox_inches='tight')
