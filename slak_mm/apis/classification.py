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
from typing import Dict, Optional

from mmengine.config import Config
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner

from slak_mm.checkpoint import atomic_local_writes, load_official_classifier
from slak_mm.config import RunOptions, prepare_run_config
from slak_mm.fileio import write_json_atomic
from slak_mm.models.classifiers import HAS_MMPRETRAIN

__all__ = ['evaluate_classifier']


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
    options = RunOptions(
        config_path,
        work_dir=work_dir,
        launcher=launcher,
        checkpoint=checkpoint,
        out=out)
    with prepare_run_config(cfg, 'evaluate', options) as run:
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
            run.metrics_file)
    return metrics
