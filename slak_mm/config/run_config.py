"""The run's config: what happens to a user's config between loading it
and building the runner, as one ordered list of named steps per action.

``tools/train.py``, ``tools/test.py`` and ``tools/test_imagenet.py`` (via
:mod:`slak_mm.apis`) call :func:`prepare_run_config`; :data:`RUN_STEPS`
lists its steps, in the order they run (``tests/config/test_run_config.py``
holds each step to what it changes). Each step is a small function of the
:class:`PreparedRun`: it edits the config in place (the edits themselves
live where their subject does: :mod:`.adapt`, :mod:`.checks`,
:mod:`slak_mm.datasets`, :mod:`slak_mm.checkpoint`) or refuses it, in one
line, before anything is built.

The refusals come first where they cost nothing (a missing checkpoint, an
unusable ``--out``), then the work_dir is made; a refusal after that
removes the folders it made (:func:`~.adapt.remove_created_folders`). A CPU
process group is started after every refusal; a training run then holds
its work_dir (:func:`~slak_mm.engine.work_dir_lock.lock_for_training`)
until :meth:`PreparedRun.close`, and only then reads which checkpoint an
automatic resume continues from.
"""
import os.path as osp
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Set

import torch
import torch.distributed as torch_dist
from mmengine.config import Config, ConfigDict

from slak_mm.checkpoint import (is_remote, require_checkpoint,
                                resolve_auto_resume)
from slak_mm.datasets import install_data_checks
from slak_mm.datasets.checks import IMAGENET_LAYOUT
from slak_mm.engine.work_dir_lock import lock_for_training
from slak_mm.fileio import check_output_path
from slak_mm.ops import check_impl_env
from .adapt import (adapt_amp, adapt_to_device, add_load_check, enable_tta,
                    enable_visualization, remove_created_folders,
                    save_predictions, set_work_dir)
from .checks import (check_datasets, check_num_classes, check_train_cfg,
                     checks_to_run)
from .model_checks import check_backbone_neck

__all__ = [
    'MODES', 'PreparedRun', 'RUN_STEPS', 'RunOptions', 'Step',
    'prepare_run_config'
]


@dataclass
class RunOptions:
    """What the command line asks of a run (the tools' flags).

    Args:
        config_path (str): The config file (the default work_dir's name).
        work_dir (str, optional): ``--work-dir``.
        launcher (str): ``none``, ``pytorch``, ``slurm`` or ``mpi``.
        skip_checks (Sequence[str]): ``--skip-checks`` (names of
            :data:`~.checks.CHECKS`), besides the config's ``skip_checks``.
        amp (bool): train: ``--amp``.
        auto_scale_lr (bool): train: ``--auto-scale-lr``.
        resume (str, optional): train: ``--resume`` (``'auto'`` or a file).
        checkpoint (str, optional): test / evaluate: the weights.
        out (str, optional): test / evaluate: ``--out``.
        show_dir (str, optional): test: ``--show-dir``.
        show (bool): test: ``--show``.
        wait_time (float): test: ``--wait-time``.
        tta (bool): test: ``--tta``.
    """
    config_path: str
    work_dir: Optional[str] = None
    launcher: str = 'none'
    skip_checks: Sequence[str] = ()
    amp: bool = False
    auto_scale_lr: bool = False
    resume: Optional[str] = None
    checkpoint: Optional[str] = None
    out: Optional[str] = None
    show_dir: Optional[str] = None
    show: bool = False
    wait_time: float = 2.
    tta: bool = False


@dataclass
class PreparedRun:
    """A config on its way to the runner, and what its steps found.

    Args:
        cfg (Config): The config; the steps change it in place.
        mode (str): One of :data:`MODES`.
        options (RunOptions): The tools' flags.
        checks (set[str]): The pre-run checks that run (after the
            ``checks`` step).
        metrics_file (str, optional): test / evaluate: where the metrics
            go (``WORK_DIR/test_metrics.json``).
        notes (list[str]): Warnings for the run's log (why an automatic
            resume picked its checkpoint).
        done (list[str]): The names of the steps that ran, in order.
    """
    cfg: Config
    mode: str
    options: RunOptions
    checks: Set[str] = field(default_factory=set)
    metrics_file: Optional[str] = None
    notes: List[str] = field(default_factory=list)
    done: List[str] = field(default_factory=list)
    # the folders the work_dir step made (a refusal removes them), and what
    # the run holds until it ends (the work_dir lock)
    _made: List[str] = field(default_factory=list, repr=False)
    _held: ExitStack = field(default_factory=ExitStack, repr=False)

    @property
    def splits(self) -> tuple:
        """The dataloaders the run reads: train (and val with a
        ``val_cfg``), or test."""
        if self.mode != 'train':
            return ('test', )
        return ('train', 'val') if self.cfg.get('val_cfg') else ('train', )

    def close(self) -> None:
        """Release what the run holds (the work_dir lock)."""
        self._held.close()

    def __enter__(self) -> 'PreparedRun':
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class Step(NamedTuple):
    """One step of :func:`prepare_run_config`.

    Args:
        name (str): What the tests and the docs call it.
        apply (callable): Changes ``run.cfg`` (or ``run``) or raises.
    """
    name: str
    apply: Callable[[PreparedRun], None]


# ----------------------------------------------------------------------------
# the steps, in the order of the tools
# ----------------------------------------------------------------------------
def _checkpoint_exists(run: PreparedRun) -> None:
    require_checkpoint(run.options.checkpoint)


def _official_checkpoint_exists(run: PreparedRun) -> None:
    checkpoint = run.options.checkpoint
    if not is_remote(checkpoint) and not osp.isfile(checkpoint):
        raise FileNotFoundError(
            f'Checkpoint not found: {checkpoint!r}. Download the official '
            f'SLaK ImageNet-1K file or pass its path.')


def _inputs(run: PreparedRun) -> dict:
    """The run's input files, which no output may be."""
    return dict(
        checkpoint=run.options.checkpoint, config=run.options.config_path)


def _prediction_dump(run: PreparedRun) -> None:
    """``--out`` (refused before any work): mmseg's PNG writer or mmdet's
    ``DumpDetResults``."""
    if run.options.out:
        save_predictions(run.cfg, run.options.out, _inputs(run))


def _mixed_precision(run: PreparedRun) -> None:
    """``--amp``: mmengine's ``AmpOptimWrapper``, made to train on this
    device (bfloat16 on the CPU) or refused."""
    if run.options.amp:
        run.cfg.optim_wrapper.type = 'AmpOptimWrapper'
        run.cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    adapt_amp(run.cfg)


def _work_dir(run: PreparedRun) -> None:
    """``cfg.work_dir`` set and made; removed again if a later step
    refuses the run."""
    run._made = set_work_dir(run.cfg, run.options.config_path,
                             run.options.work_dir)


def _ops_settings(run: PreparedRun) -> None:
    """``$SLAK_MM_DWCONV_IMPL=triton`` without a GPU, ... refused."""
    check_impl_env()


def _launcher(run: PreparedRun) -> None:
    run.cfg.launcher = run.options.launcher


def _device(run: PreparedRun) -> None:
    adapt_to_device(run.cfg)  # SyncBN -> BN, gloo, CPU DDP without CUDA


def _load_check(run: PreparedRun) -> None:
    add_load_check(run.cfg)  # a checkpoint that does not fit is an error


def _checks(run: PreparedRun) -> None:
    run.checks = checks_to_run(run.cfg, run.options.skip_checks)


def _data_checks(run: PreparedRun) -> None:
    if 'loading' in run.checks:
        install_data_checks(run.cfg)  # loaders that name a damaged file


def _model_checks(run: PreparedRun) -> None:
    if 'model' in run.checks:
        check_backbone_neck(run.cfg)  # before any process group or model
        check_num_classes(run.cfg, run.splits)


def _dataset_checks(run: PreparedRun) -> None:
    if 'datasets' in run.checks:
        check_datasets(run.cfg, run.splits)


def _imagenet_dataset_checks(run: PreparedRun) -> None:
    try:
        check_datasets(run.cfg, run.splits)
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f'{err}\nImageNet layout: {IMAGENET_LAYOUT}.') from err


def _schedule_check(run: PreparedRun) -> None:
    if 'schedule' in run.checks:
        check_train_cfg(run.cfg)


def _auto_scale_lr(run: PreparedRun) -> None:
    if not run.options.auto_scale_lr:
        return
    if not (run.cfg.get('auto_scale_lr') or {}).get('base_batch_size'):
        raise ValueError(
            '--auto-scale-lr needs auto_scale_lr=dict(base_batch_size=N) '
            'in the config (the batch size its lr was set for).')
    run.cfg.auto_scale_lr.enable = True


def _resume(run: PreparedRun) -> None:
    """``--resume``: a file, or ``auto`` (resolved under the lock)."""
    cfg, resume = run.cfg, run.options.resume
    if resume is not None and cfg.get('load_from'):
        raise ValueError(
            f'--resume {resume} and load_from={cfg.load_from!r} are both '
            f'set: a resume continues a run (weights, optimizer, iteration) '
            f'and would ignore load_from. Drop one (e.g. --cfg-options '
            f'load_from=None).')
    if resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif resume is not None:
        cfg.resume, cfg.load_from = True, resume


def _metrics_file(run: PreparedRun) -> None:
    run.metrics_file = osp.join(run.cfg.work_dir, 'test_metrics.json')
    check_output_path(run.metrics_file,
                      dict(checkpoint=run.options.checkpoint))


def _load_from(run: PreparedRun) -> None:
    run.cfg.load_from = run.options.checkpoint


def _visualization(run: PreparedRun) -> None:
    options = run.options
    if options.show_dir or options.show:
        enable_visualization(run.cfg, options.show_dir, options.show,
                             options.wait_time)


def _tta(run: PreparedRun) -> None:
    if run.options.tta:
        enable_tta(run.cfg)


def _result_dump(run: PreparedRun) -> None:
    """``--out`` of the ImageNet evaluation: every sample's prediction
    (mmengine's ``DumpResults``; the path was checked first)."""
    if run.options.out is not None:
        run.cfg.test_evaluator = [
            run.cfg.test_evaluator,
            ConfigDict(type='DumpResults', out_file_path=run.options.out)
        ]


def _output_path(run: PreparedRun) -> None:
    if run.options.out is not None:  # refused before any work
        check_output_path(run.options.out, _inputs(run))


def _process_group(run: PreparedRun) -> None:
    """The gloo process group of a CPU-only ``pytorch`` launch.

    mmengine's ``init_dist`` calls ``torch.cuda.set_device``
    unconditionally, which fails without a GPU; once a process group
    exists the Runner uses it and skips its own initialisation.
    """
    if (run.options.launcher != 'pytorch' or torch.cuda.is_available()
            or torch_dist.is_initialized()):
        return
    torch_dist.init_process_group(backend='gloo')


def _work_dir_lock(run: PreparedRun) -> None:
    """Rank 0 holds the work_dir for the run (until :meth:`close`)."""
    run._held.enter_context(
        lock_for_training(run.cfg.work_dir, run.options.launcher))


def _auto_resume(run: PreparedRun) -> None:
    """``resume=True`` without ``load_from``: the checkpoint to continue
    from, chosen under the lock (mmengine never reads the pointer)."""
    run.notes += resolve_auto_resume(run.cfg)


#: What training and testing share: the work_dir, the machine, the checks.
_WORK_DIR_AND_CHECKS = (
    Step('work_dir', _work_dir),
    Step('ops_settings', _ops_settings),
    Step('launcher', _launcher),
    Step('device', _device),
    Step('load_check', _load_check),
    Step('checks', _checks),
    Step('data_checks', _data_checks),
    Step('model_checks', _model_checks),
    Step('dataset_checks', _dataset_checks),
)

#: The steps of each action, in the order they run.
RUN_STEPS: Dict[str, tuple] = dict(
    train=(
        Step('mixed_precision', _mixed_precision),
        *_WORK_DIR_AND_CHECKS,
        Step('schedule_check', _schedule_check),
        Step('auto_scale_lr', _auto_scale_lr),
        Step('resume', _resume),
        Step('process_group', _process_group),
        Step('work_dir_lock', _work_dir_lock),
        Step('auto_resume', _auto_resume),
    ),
    test=(
        Step('checkpoint_exists', _checkpoint_exists),
        Step('prediction_dump', _prediction_dump),
        *_WORK_DIR_AND_CHECKS,
        Step('metrics_file', _metrics_file),
        Step('load_from', _load_from),
        Step('visualization', _visualization),
        Step('tta', _tta),
        Step('process_group', _process_group),
    ),
    # the ImageNet evaluation of official files (tools/test_imagenet.py):
    # the weights are loaded by slak_mm's official loader, not load_from
    evaluate=(
        Step('checkpoint_exists', _official_checkpoint_exists),
        Step('output_path', _output_path),
        Step('launcher', _launcher),
        Step('work_dir', _work_dir),
        Step('metrics_file', _metrics_file),
        Step('device', _device),
        Step('dataset_checks', _imagenet_dataset_checks),
        Step('result_dump', _result_dump),
        Step('process_group', _process_group),
    ))

#: The actions :func:`prepare_run_config` prepares a config for.
MODES = tuple(RUN_STEPS)


def prepare_run_config(cfg: Config, mode: str,
                       options: RunOptions) -> PreparedRun:
    """Turn a loaded config into the run's: the steps of
    :data:`RUN_STEPS` ``[mode]``, in order.

    A step that refuses the run raises before anything is built; the
    folders the ``work_dir`` step made are then removed, and whatever the
    run held is released.

    Args:
        cfg (Config): The loaded config (``--cfg-options`` applied);
            changed in place.
        mode (str): ``'train'``, ``'test'`` or ``'evaluate'``.
        options (RunOptions): The tools' flags.

    Returns:
        PreparedRun: ``cfg`` and what the steps found (checks, metrics
        file, notes for the log). Use it as a context manager around the
        run: a training run holds its work_dir until it is closed.

    Raises:
        ValueError: An unknown mode, or a step's refusal (as do
            FileNotFoundError, NotADirectoryError, ...), in one line.
    """
    if mode not in RUN_STEPS:
        raise ValueError(f'mode={mode!r}: expected one of {MODES}')
    run = PreparedRun(cfg, mode, options)
    try:
        for step in RUN_STEPS[mode]:
            step.apply(run)
            run.done.append(step.name)
    except BaseException:
        run.close()
        remove_created_folders(run._made)
        raise
    return run
