"""ImageNet evaluation of official SLaK checkpoints
(``tools/test_imagenet.py``).

Runs an mmpretrain config (``configs/imagenet/slak_*_in1k_eval.py``:
``ImageClassifier`` with ``SLaKClsBackbone`` and ``SLaKClsHead``) through
mmengine's ``Runner.test`` after loading the official file with
:func:`slak_mm.checkpoint.load_official_classifier` (mmengine's
``load_from`` would neither read the official layout nor map its names).
Needs mmpretrain (``pip install -e .[cls]``).
"""
import numbers
import os.path as osp
from typing import Dict, Optional

from mmengine.config import Config
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner

from slak_mm.checkpoint import (atomic_local_writes, is_remote,
                                load_official_classifier)
from slak_mm.config import adapt_to_device, check_datasets, work_dir_for_run
from slak_mm.fileio import check_output_path, write_json_atomic
from slak_mm.models.classifiers import HAS_MMPRETRAIN

__all__ = ['IMAGENET_LAYOUT', 'evaluate_classifier']

#: Where the ImageNet images are expected, named when they are missing.
IMAGENET_LAYOUT = ('data_root/val/<class folder>/*.JPEG, one folder per '
                   'class (the 1000 wnids n01440764 ... for ImageNet-1K; '
                   'classes are indexed in sorted folder order)')


def evaluate_classifier(cfg: Config,
                        checkpoint: str,
                        config_path: str,
                        work_dir: Optional[str] = None,
                        use_ema: bool = False,
                        out: Optional[str] = None,
                        launcher: str = 'none') -> Dict[str, float]:
    """Evaluate a SLaK classifier checkpoint on the config's test set.

    Args:
        cfg (Config): Loaded mmpretrain config
            (``default_scope='mmpretrain'``).
        checkpoint (str): Official SLaK ImageNet file (``model`` / ``norm.*``
            / ``head.*``) or an mm classifier checkpoint.
        config_path (str): The config file, for the default work_dir.
        work_dir (str, optional): Logs and ``test_metrics.json`` go here.
            Default: ``./work_dirs/CONFIG_NAME``.
        use_ema (bool): Evaluate the file's ``model_ema`` weights.
        out (str, optional): Also dump every sample's prediction
            (``pred_score``, ``pred_label``, ``gt_label``, ``img_path``) to
            this ``.pkl`` (mmengine's ``DumpResults``).
        launcher (str): mmengine launcher (``'none'``, ``'pytorch'``,
            ``'slurm'``, ``'mpi'``). Default: ``'none'``.

    Returns:
        dict: The metrics, e.g. ``accuracy/top1`` and ``accuracy/top5`` (%).

    Raises:
        ModuleNotFoundError: Without mmpretrain.
        FileNotFoundError: If the checkpoint or the images are missing.
    """
    if not HAS_MMPRETRAIN:
        raise ModuleNotFoundError(
            'ImageNet evaluation needs mmpretrain: pip install -e ".[cls]" '
            '(onedl-mmpretrain)',
            name='mmpretrain')
    if not is_remote(checkpoint) and not osp.isfile(checkpoint):
        raise FileNotFoundError(
            f'Checkpoint not found: {checkpoint!r}. Download the official '
            f'SLaK ImageNet-1K file or pass its path.')
    if out is not None:  # refused before any work
        check_output_path(out, dict(checkpoint=checkpoint, config=config_path))
    cfg.launcher = launcher
    with work_dir_for_run(cfg, config_path, work_dir):
        metrics_file = osp.join(cfg.work_dir, 'test_metrics.json')
        check_output_path(metrics_file, dict(checkpoint=checkpoint))
        adapt_to_device(cfg)
        try:
            check_datasets(cfg, splits=('test', ))
        except FileNotFoundError as err:
            raise FileNotFoundError(
                f'{err}\nImageNet layout: {IMAGENET_LAYOUT}.') from err
    if out is not None:
        cfg.test_evaluator = [
            cfg.test_evaluator,
            dict(type='DumpResults', out_file_path=out)
        ]
    runner = Runner.from_cfg(cfg)
    model = runner.model.module if is_model_wrapper(
        runner.model) else runner.model
    load_official_classifier(model, checkpoint, use_ema=use_ema)
    with atomic_local_writes():  # the --out pickle: mmengine's dump
        results = runner.test()
    metrics = {
        k: float(v)
        for k, v in results.items() if isinstance(v, numbers.Real)
    }
    if runner.rank == 0:
        write_json_atomic(
            dict(config=config_path, checkpoint=checkpoint, metrics=metrics),
            metrics_file)
    return metrics
