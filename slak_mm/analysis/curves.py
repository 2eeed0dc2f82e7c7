"""Training curves from mmengine's logged scalars
(``tools/analysis/plot_curves.py``).

mmengine's ``LocalVisBackend`` writes ``WORK_DIR/<timestamp>/vis_data/
scalars.json``, one JSON object per line: training lines (every
``default_hooks.logger.interval`` iterations) with ``step`` (the
iteration), ``iter``, ``lr``, ``loss``, the loss terms, ``density`` (from
``SparseMaskHook``) and, for epoch-based runs, ``epoch``; validation lines
with the metrics (``mIoU``, ``pascal_voc/mAP``, ``coco/bbox_mAP``...) and a
``step`` that is the iteration, or the epoch when metrics are logged by
epoch (mmdet's default).
"""
import glob
import json
import math
import os.path as osp
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from .figures import save_figure

__all__ = [
    'DEFAULT_METRICS', 'DEFAULT_TRAIN_KEYS', 'Scalars', 'default_keys',
    'find_scalars', 'load_scalars', 'plot_curves', 'resolve_keys'
]

#: Training scalars plotted by default, in this order, when present.
DEFAULT_TRAIN_KEYS = ('loss', 'lr', 'density')
#: Validation metrics plotted by default: keys equal to one of these or
#: ending with ``/`` + one of these (``pascal_voc/mAP``, ``coco/bbox_mAP``).
DEFAULT_METRICS = ('mIoU', 'mAP', 'bbox_mAP', 'segm_mAP')
#: Bookkeeping entries of every line, never plotted as curves.
_NOT_CURVES = ('step', 'iter', 'epoch')


@dataclass
class Scalars:
    """Scalar series of one training run.

    Attributes:
        path (str): The ``scalars.json`` read.
        series (dict): Key to ``(steps, values)`` lists.
        val_keys (set): Keys that came from validation lines.
        by_epoch (bool): The run was epoch-based (training lines carry
            ``epoch``); validation steps are then epochs.
    """
    path: str
    series: Dict[str, Tuple[List[float],
                            List[float]]] = field(default_factory=dict)
    val_keys: set = field(default_factory=set)
    by_epoch: bool = False

    def x_label(self, key: str) -> str:
        """Axis label of the steps of ``key``."""
        if key in self.val_keys and self.by_epoch:
            return 'epoch'
        return 'iteration'


def find_scalars(work_dir: str) -> str:
    """The ``scalars.json`` of the latest run in ``work_dir``.

    Args:
        work_dir (str): A work dir (``WORK_DIR/<timestamp>/vis_data/
            scalars.json`` inside), one run's ``<timestamp>`` folder, or the
            ``scalars.json`` file itself.

    Returns:
        str: Path of the file. The latest run is the last timestamp folder
        (``YYYYMMDD_HHMMSS`` sorts by time) that has one; test runs, which
        log no scalars, are skipped that way.

    Raises:
        FileNotFoundError: No ``scalars.json`` there, naming the paths
            searched.
    """
    if osp.isfile(work_dir):
        return work_dir
    direct = osp.join(work_dir, 'vis_data', 'scalars.json')
    if osp.isfile(direct):
        return direct
    pattern = osp.join(work_dir, '*', 'vis_data', 'scalars.json')
    found = sorted(glob.glob(pattern))
    if not found:
        raise FileNotFoundError(
            f'No scalars.json found: searched {pattern!r} and {direct!r}. '
            f'Give the work dir of a tools/train.py run; the scalars are '
            f'written by mmengine\'s LocalVisBackend (visualizer.vis_backends'
            f' = [dict(type=\'LocalVisBackend\')], as in the configs here).')
    return found[-1]


def load_scalars(work_dir: str) -> Scalars:
    """Read the scalar series of the latest training run in ``work_dir``.

    Args:
        work_dir (str): See :func:`find_scalars`.

    Returns:
        Scalars: Every numeric key of the file as a ``(steps, values)``
        series (a key logged again at an earlier step, after a resume,
        keeps both points, in file order).
    """
    path = find_scalars(work_dir)
    scalars = Scalars(path=path)
    with open(path) as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                # the last line of a run killed while writing
                raise ValueError(f'{path}:{number}: not JSON ({e})') from e
            step = record.get('step', record.get('iter'))
            if step is None:
                continue
            # training lines carry the lr (LoggerHook's train tag)
            is_train = 'lr' in record or 'iter' in record
            if is_train and 'epoch' in record:
                scalars.by_epoch = True
            for key, value in record.items():
                if key in _NOT_CURVES or isinstance(value, bool) or \
                        not isinstance(value, (int, float)):
                    continue
                steps, values = scalars.series.setdefault(key, ([], []))
                steps.append(step)
                values.append(float(value))
                if not is_train:
                    scalars.val_keys.add(key)
    return scalars


def _matches(key: str, name: str) -> bool:
    return key == name or key.endswith('/' + name)


def default_keys(scalars: Scalars) -> List[str]:
    """``loss``, ``lr``, ``density`` and the main validation metrics
    (:data:`DEFAULT_METRICS`) that ``scalars`` holds, in that order."""
    keys = [k for k in DEFAULT_TRAIN_KEYS if k in scalars.series]
    for name in DEFAULT_METRICS:
        keys += sorted(
            k for k in scalars.val_keys if _matches(k, name) and k not in keys)
    return keys


def resolve_keys(scalars: Scalars, keys: Sequence[str]) -> List[str]:
    """Map requested names to logged keys (``mAP`` finds
    ``pascal_voc/mAP``).

    Raises:
        KeyError: A name matches no logged key; the message lists them.
    """
    resolved = []
    for name in keys:
        matched = ([name] if name in scalars.series else sorted(
            k for k in scalars.series if _matches(k, name)))
        if not matched:
            raise KeyError(f'{name!r} is not logged in {scalars.path}; '
                           f'logged: {sorted(scalars.series)}')
        resolved += [k for k in matched if k not in resolved]
    return resolved


def plot_curves(scalars: Scalars,
                keys: Optional[Sequence[str]] = None,
                out: str = 'curves.png',
                title: Optional[str] = None,
                ncols: int = 2,
                dpi: int = 100) -> str:
    """Plot one subplot per key into a PNG.

    Args:
        scalars (Scalars): From :func:`load_scalars`.
        keys (Sequence[str], optional): Keys or metric names
            (see :func:`resolve_keys`); default :func:`default_keys`.
        out (str): Output image (the extension picks the format).
        title (str, optional): Figure title; default the run's folder.
        ncols (int): Subplots per row.
        dpi (int): Resolution.

    Returns:
        str: ``out``.

    Raises:
        ValueError: Nothing to plot.
    """
    import matplotlib

    # no display needed (tools run on servers); pyplot is only imported here
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    keys = (resolve_keys(scalars, keys) if keys else default_keys(scalars))
    if not keys:
        raise ValueError(f'None of {DEFAULT_TRAIN_KEYS + DEFAULT_METRICS} '
                         f'is logged in {scalars.path}; pick keys from '
                         f'{sorted(scalars.series)}')
    ncols = max(1, min(ncols, len(keys)))
    nrows = math.ceil(len(keys) / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(5 * ncols, 3.2 * nrows), squeeze=False)
    # iteration axes share the range of the plotted training scalars, so a
    # metric evaluated a few times sits where it was measured in the run
    iter_steps = [
        s for k in keys if scalars.x_label(k) == 'iteration'
        for s in scalars.series[k][0]
    ]
    for ax, key in zip(axes.flat, keys):
        steps, values = scalars.series[key]
        # markers where there are few points (a metric evaluated once)
        ax.plot(
            steps,
            values,
            marker='o' if len(steps) <= 30 else None,
            markersize=4)
        ax.set_title(f'{key} (last {values[-1]:.4g})')
        ax.set_xlabel(scalars.x_label(key))
        if scalars.x_label(key) == 'iteration' and len(set(iter_steps)) > 1:
            pad = 0.04 * (max(iter_steps) - min(iter_steps))
            ax.set_xlim(min(iter_steps) - pad, max(iter_steps) + pad)
        ax.grid(alpha=0.3)
        ax.ticklabel_format(axis='y', style='sci', scilimits=(-3, 4))
    for ax in list(axes.flat)[len(keys):]:
        ax.set_visible(False)
    if title is None:
        run = osp.dirname(osp.dirname(osp.abspath(scalars.path)))
        title = osp.join(osp.basename(osp.dirname(run)), osp.basename(run))
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, out, dpi=dpi)
    plt.close(fig)
    return out
