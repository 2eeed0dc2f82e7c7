"""One family of the sweep: SLaK put into its representative config as a
user would, then one training step and one test step on a CPU.

1. the user's config (:func:`.recipe.user_config`) is written to a file;
2. the pre-run check of the neck and heads
   (:func:`slak_mm.config.backbone_neck_problems`) is asked; while it
   refuses with a fix, the first fix it names is applied (what a user sets
   after reading the message), at most :data:`MAX_FIXES` times;
3. scaled down for the CPU: a small SLaK with the SLaK-T output widths
   (one block per stage, 7 x 7 kernels: the user's ``in_channels`` stay
   right), synthetic data (:mod:`.data`), 64-128 px, batches of 2, no
   pretrained weights (nothing is downloaded);
4. :func:`slak_mm.apis.train` for one iteration (one epoch of one batch),
   then :func:`slak_mm.apis.test` of the checkpoint on one image.

The run happens in this process; :mod:`.sweep` gives each family its own.
"""
import glob
import os
import os.path as osp
import sys
import time
import traceback
from typing import Any, Dict, Optional

from mmengine.config import Config

from slak_mm.apis import test, train
from slak_mm.checkpoint import UNSAFE_LOAD_ENV
from slak_mm.config import (backbone_neck_problems, load_config,
                            packaged_config_folder, scale_down)
from slak_mm.config.model_checks import format_value
from slak_mm.datasets.checks import leaf_dataset_cfgs
from slak_mm.fileio import atomic_write_bytes
from .applicability import not_applicable
from .causes import classify
from .data import IMAGE_SIZES, use_synthetic_data
from .recipe import user_config
from .result import Result

__all__ = ['MAX_FIXES', 'SMALL_SLAK', 'one_line', 'raised_at', 'run_trial']

#: How many fixes of the check are applied before the run gives up.
MAX_FIXES = 4
#: The scaled-down SLaK: SLaK-T's widths (124, 249, 499, 998 channels, so
#: the user's in_channels stay right), one block per stage, 7 x 7 kernels,
#: no checkpoint.
SMALL_SLAK = dict(
    arch=dict(depths=[1, 1, 1, 1], dims=[96, 192, 384, 768]),
    kernel_size=(7, 7, 7, 7),
    small_kernel=3,
    drop_path_rate=0.0,
    init_cfg=None)


def one_line(err: BaseException) -> str:
    """An exception as one line: its type and first non-empty line.

    Args:
        err (BaseException): The exception.

    Returns:
        str: ``'Type: message'``, at most 300 characters.
    """
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    text = f'{type(err).__name__}: {lines[0] if lines else ""}'.rstrip(': ')
    return text if len(text) <= 300 else text[:297] + '...'


def raised_at(err: BaseException) -> str:
    """The deepest frame of the error's traceback outside torch's module
    machinery, as ``package/path.py:line``.

    Args:
        err (BaseException): The exception.

    Returns:
        str: The place; empty without a traceback.
    """
    frames = traceback.extract_tb(err.__traceback__)
    for frame in reversed(frames):
        path = frame.filename.replace(os.sep, '/')
        if '/torch/nn/modules/module.py' in path:
            continue
        for anchor in ('/site-packages/', '/slak_mm/'):
            if anchor in path:
                path = path.split(anchor, 1)[1]
                path = ('slak_mm/' + path) if anchor == '/slak_mm/' else path
                break
        return f'{path}:{frame.lineno}'
    return ''


def _no_downloads(node: Any) -> None:
    """Pretrained weights the config would fetch (``init_cfg`` of type
    ``Pretrained``, distillation teachers' ``teacher_ckpt``) are left out:
    the sweep downloads nothing."""
    if isinstance(node, dict):
        init = node.get('init_cfg')
        if isinstance(init, dict) and init.get('type') == 'Pretrained':
            node['init_cfg'] = None
        for key in ('teacher_ckpt', 'pretrained'):
            if isinstance(node.get(key), str):
                node[key] = None
        for value in node.values():
            _no_downloads(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _no_downloads(value)


def _for_the_cpu(path: str, options: dict, package: str,
                 roots: Dict[str, str]) -> Config:
    """The user's config with the fixes, scaled down (see the module
    docstring); returns it with the data swap note in ``_sweep_data``."""
    cfg = load_config(path, options)
    cfg.model.backbone.update(SMALL_SLAK)
    _no_downloads(cfg._cfg_dict)
    cfg.load_from = None
    wrapper = cfg.get('optim_wrapper')
    if isinstance(wrapper, dict) and wrapper.get('type') == 'AmpOptimWrapper':
        # float32 on the CPU (mixed precision is a GPU matter; the CPU's
        # bfloat16 lacks mmcv's nms / RoIAlign kernels)
        wrapper.type = 'OptimWrapper'
        for key in ('loss_scale', 'dtype'):
            wrapper.pop(key, None)
    note = use_synthetic_data(cfg, package, roots)
    # one batch of all the training images: mmpretrain's 6 (one per class)
    scale_down(
        cfg,
        IMAGE_SIZES[package],
        batch_size=6 if package == 'mmpretrain' else 2,
        iterations=1)
    test_loader = cfg.get('test_dataloader')
    if isinstance(test_loader, dict):
        test_loader.batch_size = 1
    return cfg, note


def run_trial(package: str,
              rel: str,
              roots: Dict[str, str],
              work_dir: str,
              family: Optional[str] = None) -> Result:
    """Try SLaK in one packaged config (the module docstring's steps).

    Args:
        package (str): ``'mmdet'``, ``'mmseg'`` or ``'mmpretrain'``.
        rel (str): The config, relative to the package's configs folder
            (a ``package::rel`` base), or the path of a config of one's own.
        roots (dict[str, str]): The synthetic datasets
            (:func:`.data.generate_sweep_data`).
        work_dir (str): A folder of its own (the user's config; the run's
            logs in ``run/``, its checkpoint only until it is tested).
        family (str, optional): The row's name; default ``package/folder``.

    Returns:
        Result: The row; errors are caught and described.

    Note:
        Runs in a process of its own (:mod:`.sweep` forks one per family):
        a config that reads a proposal file sets ``SLAK_MM_UNSAFE_LOAD`` in
        that process, as ``--unsafe-load`` does for a tool's.
    """
    start = time.monotonic()
    result = Result(
        family=family or f'{package}/{rel.split("/")[0]}', config=rel)
    stage = 'config'
    base = rel if osp.isabs(rel) else f'{package}::{rel}'
    try:
        stock = load_config(osp.join(packaged_config_folder(package), rel))
        reason = not_applicable(stock)
        if reason:
            result.outcome, result.message = 'n/a', reason
            return result
        text, result.user_sets = user_config(base, stock.model)
        os.makedirs(work_dir, exist_ok=True)
        path = osp.join(work_dir, 'user_config.py')
        atomic_write_bytes(text.encode(), path)
        stage = 'check'
        options = _apply_check_fixes(path, result)
        stage = 'train'
        cfg, result.data = _for_the_cpu(path, options, package, roots)
        result.data = result.data or ''
        run_dir = osp.join(work_dir, 'run')  # the runner dumps its config
        _allow_proposal_pickles(cfg, result)
        train(cfg, path, work_dir=run_dir)
        with open(osp.join(run_dir, 'last_checkpoint')) as f:
            checkpoint = f.read().strip()
        stage = 'test'
        cfg, _ = _for_the_cpu(path, options, package, roots)
        result.metrics = test(cfg, path, checkpoint, work_dir=run_dir)
        result.outcome, result.stage = 'pass', ''
    except Exception as err:
        result.outcome, result.stage = 'fail', stage
        result.message, result.where = one_line(err), raised_at(err)
        traceback.print_exc(file=sys.stderr)  # into the family's log
        cause = classify(result)
        if cause is not None and cause.kind == 'n/a':
            result.outcome = 'n/a'  # the reason is the cause's
    finally:
        # the checkpoints (0.1-1 GB with the stock heads) have been tested:
        # 245 of them would fill a disk
        for path in glob.glob(osp.join(work_dir, 'run', '*.pth')):
            os.remove(path)
        result.seconds = round(time.monotonic() - start, 1)
    return result


def _allow_proposal_pickles(cfg: Config, result: Result) -> None:
    """mmdet's proposal files are pickles (of numpy arrays), which
    slak_mm reads only with the opt-in: the user sets it (the sweep's own
    file), and the row says so. The trial's process is its own."""
    if any(
            ds.get('proposal_file') for split in ('train', 'test')
            for ds in leaf_dataset_cfgs((
                cfg.get(f'{split}_dataloader') or {}).get('dataset'))):
        os.environ[UNSAFE_LOAD_ENV] = '1'
        result.user_sets.append(f'{UNSAFE_LOAD_ENV}=1 (the proposal file '
                                f'is a pickle)')


class _Refused(Exception):
    """The check refuses and names no fix."""


def _apply_check_fixes(path: str, result: Result) -> Dict[str, Any]:
    """Ask the neck / head check; apply the first fix of the first problem
    that offers one, until it accepts. Returns the fixes as options."""
    options: Dict[str, Any] = {}
    for _ in range(MAX_FIXES + 1):
        problems = backbone_neck_problems(load_config(path, options))
        if not problems:
            return options
        fixable = [p for p in problems if p.fixes]
        if not fixable:
            raise _Refused(problems[0].message)
        fix = fixable[0].fixes[0]
        options.update(fix)
        result.user_sets += [
            f'{k.replace("model.", "", 1)}={format_value(v)}'
            for k, v in fix.items()
        ]
    raise _Refused(f'still refused after {MAX_FIXES} fixes: '
                   f'{problems[0].message}')
