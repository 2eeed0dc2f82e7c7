"""Train and test entry points behind ``tools/train.py`` / ``tools/test.py``.

One pair of functions serves segmentation and detection: the config's
``default_scope`` (``mmseg`` or ``mmdet``) selects the registries, models,
datasets and metrics.
"""
import numbers
from typing import Dict, Optional, Sequence

from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.runner import Runner

from slak_mm.checkpoint import atomic_local_writes, find_resume_checkpoint
from slak_mm.config import RunOptions, prepare_run_config
from slak_mm.engine.stop_signals import as_stop, stop_on_signals
from slak_mm.fileio import write_json_atomic

__all__ = ['test', 'train']


def _resume_hint(runner: Runner) -> str:
    hook = runner.cfg.get('default_hooks', {}).get('checkpoint') or {}
    tmpl = hook.get('filename_tmpl') or ('epoch_{}.pth' if hook.get(
        'by_epoch', True) else 'iter_{}.pth')
    path, _ = find_resume_checkpoint(runner.work_dir, tmpl)
    return (f'--resume continues from {path}' if path else
            'no checkpoint was written yet: a rerun starts from scratch')


def train(
    cfg: Config,
    config_path: str,
    work_dir: Optional[str] = None,
    resume: Optional[str] = None,
    amp: bool = False,
    launcher: str = 'none',
    auto_scale_lr: bool = False,
    skip_checks: Sequence[str] = ()) -> Runner:
    """Train a segmentor or detector described by ``cfg``.

    Args:
        cfg (Config): Loaded config (``--cfg-options`` applied).
        config_path (str): The config file, for the default work_dir.
        work_dir (str, optional): Where logs and checkpoints go.
        resume (str, optional): ``'auto'`` resumes from the latest
            complete checkpoint in work_dir (``last_checkpoint``, else the
            newest complete ``iter_N``/``epoch_N``), a path resumes from that
            file.
        amp (bool): Mixed precision: mmengine's ``AmpOptimWrapper`` on a
            GPU (float16 with dynamic loss scaling, or
            ``optim_wrapper.dtype``), bfloat16 autocast on the CPU
            (``CPUAmpOptimWrapper``); see :func:`slak_mm.config.adapt_amp`.
        launcher (str): ``none``, ``pytorch``, ``slurm`` or ``mpi``.
        auto_scale_lr (bool): Scale the lr by the real total batch size over
            the config's ``auto_scale_lr.base_batch_size`` (mmengine's
            linear rule).
        skip_checks (Sequence[str]): Pre-run checks not to run, besides the
            config's ``skip_checks`` (names: ``slak_mm.config.CHECKS``).

    Returns:
        Runner: The runner after training.

    Raises:
        WorkDirBusyError: Another live run trains in the work_dir (set
            ``SLAK_MM_ALLOW_SHARED_WORK_DIR=1`` to share it).
        TrainingStopped: SIGTERM or SIGINT (Ctrl-C) arrived (logged with
            the checkpoint ``--resume`` continues from).
    """
    options = RunOptions(
        config_path,
        work_dir=work_dir,
        launcher=launcher,
        skip_checks=skip_checks,
        amp=amp,
        auto_scale_lr=auto_scale_lr,
        resume=resume)
    # holds the work_dir (rank 0) until the run ends
    with prepare_run_config(cfg, 'train', options) as run:
        runner = Runner.from_cfg(cfg)
        for note in run.notes:  # why auto resume took its checkpoint
            runner.logger.warning(note)
        with stop_on_signals() as signals:
            try:
                runner.train()
            except (Exception, KeyboardInterrupt) as err:
                stop = as_stop(err, signals)
                if stop is None:
                    raise
                runner.logger.warning(f'{stop}: training stopped; '
                                      f'{_resume_hint(runner)}')
                raise stop from None
    return runner


#: The AP items mmdet's CocoMetric reports by default.
_COCO_AP_ITEMS = ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l')


def _fill_empty_coco_metrics(cfg: Config, metrics: Dict[str, float]) -> dict:
    """mmdet's ``CocoMetric`` returns no number at all when the model
    detects nothing ("The testing results of the whole dataset is empty"):
    the AP is 0.0 then, so its keys are set to 0.0 (in place) and a note
    says why. Returns ``{'note': ...}``, or ``{}`` if nothing was missing.
    """
    evaluators = cfg.get('test_evaluator')
    if not isinstance(evaluators, (list, tuple)):
        evaluators = [evaluators]
    filled = []
    for evaluator in evaluators:
        if not isinstance(evaluator, dict) or evaluator.get('format_only') \
                or not str(evaluator.get('type')).endswith('CocoMetric'):
            continue
        prefix = evaluator.get('prefix') or 'coco'
        kinds = evaluator.get('metric', 'bbox')
        for kind in [kinds] if isinstance(kinds, str) else kinds:
            if kind not in ('bbox', 'segm') or any(
                    k.startswith(f'{prefix}/{kind}_') for k in metrics):
                continue
            for item in evaluator.get('metric_items') or _COCO_AP_ITEMS:
                metrics[f'{prefix}/{kind}_{item}'] = 0.0
                filled.append(f'{prefix}/{kind}_{item}')
    if not filled:
        return {}
    note = (f'the model detected nothing on the test set, so the '
            f'CocoMetric reported no AP: {", ".join(filled)} are 0.0')
    print_log(note, logger='current', level=30)  # WARNING
    return dict(note=note)


def test(
    cfg: Config,
    config_path: str,
    checkpoint: str,
    work_dir: Optional[str] = None,
    show_dir: Optional[str] = None,
    launcher: str = 'none',
    show: bool = False,
    wait_time: float = 2.,
    tta: bool = False,
    out: Optional[str] = None,
    skip_checks: Sequence[str] = ()
) -> Dict[str, float]:
    """Evaluate ``checkpoint`` on the config's test set.

    Metrics (mIoU/aAcc/mAcc for segmentation, bbox mAP for VOC, bbox and
    segm AP for COCO) are logged and written to
    ``WORK_DIR/test_metrics.json``.

    Args:
        cfg (Config): Loaded config.
        config_path (str): The config file, for the default work_dir.
        checkpoint (str): Model checkpoint to evaluate.
        work_dir (str, optional): Where logs and metrics go.
        show_dir (str, optional): Save painted predictions here (relative
            to the work_dir unless absolute).
        launcher (str): Job launcher.
        show (bool): Show each prediction in a window.
        wait_time (float): Seconds a shown window stays open.
        tta (bool): Test-time augmentation (``tta_pipeline``/``tta_model``).
        out (str, optional): Keep the raw predictions (a folder of PNGs for
            segmentation, a .pkl for detection).
        skip_checks (Sequence[str]): Pre-run checks not to run, besides the
            config's ``skip_checks`` (names: ``slak_mm.config.CHECKS``).

    Returns:
        dict: Metric name to value.
    """
    options = RunOptions(
        config_path,
        work_dir=work_dir,
        launcher=launcher,
        skip_checks=skip_checks,
        checkpoint=checkpoint,
        out=out,
        show_dir=show_dir,
        show=show,
        wait_time=wait_time,
        tta=tta)
    with prepare_run_config(cfg, 'test', options) as run:
        runner = Runner.from_cfg(cfg)
        # mmdet's --out pickle and --show-dir images are written through
        # mmengine's fileio: atomically within the block
        with atomic_local_writes():
            metrics = runner.test()
    metrics_file = run.metrics_file
    # numpy scalars (np.float32 from mmseg) are numbers.Real, not float
    metrics = {
        k: float(v)
        for k, v in metrics.items() if isinstance(v, numbers.Real)
    }
    notes = _fill_empty_coco_metrics(cfg, metrics)
    if runner.rank == 0:
        write_json_atomic(
            dict(
                config=config_path,
                checkpoint=checkpoint,
                metrics=metrics,
                **notes), metrics_file)
        print_log(
            f'Test metrics written to {metrics_file}: {metrics}',
            logger='current')
    return metrics
