"""Adapting a loaded config to the run: work_dir, device, load check,
visualisation, test-time augmentation, prediction dumps and mixed precision.

What the mm tools do (work_dir, show-dir, ``--tta``, ``--out``), plus: on
machines without CUDA, ``SyncBN`` becomes ``BN`` and distributed runs use
the gloo backend with CPU DDP (:func:`adapt_to_device`), and
``AmpOptimWrapper`` becomes bfloat16 autocast (:func:`adapt_amp`). Each
function changes the config in place; the train / test / ImageNet actions
call them as steps of :func:`slak_mm.config.prepare_run_config`, inference,
deploy and the analysis tools by name.
"""
import os
import os.path as osp
import tempfile
from typing import Any, Iterator, List, Mapping, Optional

import torch
from mmengine.config import Config, ConfigDict
from mmengine.device import get_device
from mmengine.visualization import LocalVisBackend

from slak_mm.engine.optimizers import CPUAmpOptimWrapper
from slak_mm.engine.outputs import AtomicLocalVisBackend, SegPredictionWriter
from slak_mm.fileio import (UnwritableError, check_output_folder,
                            check_output_path)

__all__ = [
    'LOAD_CHECK_HOOK', 'adapt_amp', 'adapt_to_device', 'add_load_check',
    'enable_tta', 'enable_visualization', 'iter_dicts', 'partial_load_allowed',
    'remove_created_folders', 'replace_sync_bn', 'save_predictions',
    'set_work_dir'
]


def set_work_dir(cfg: Config,
                 config_path: str,
                 work_dir: Optional[str] = None) -> List[str]:
    """Set ``cfg.work_dir``: ``work_dir``, else the config's, else
    ``./work_dirs/CONFIG_NAME``, and make it.

    Args:
        cfg (Config): The config; changed in place.
        config_path (str): The config file (its name for the default).
        work_dir (str, optional): ``--work-dir``.

    Returns:
        list[str]: The folders it created, outermost first (none when the
        work_dir existed).

    Raises:
        NotADirectoryError: The work_dir (or a folder above it) is a file.
        UnwritableError: It cannot be created or written (read-only
            filesystem, permissions).
    """
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(config_path))[0])
    return _check_writable(str(cfg.work_dir))


def remove_created_folders(created: List[str]) -> None:
    """Undo :func:`set_work_dir` for a run refused before it started:
    remove the folders it created, innermost first, while they are empty
    (a refused run leaves no empty work_dir behind; a work_dir that existed
    before is not among them, and one that holds files by then, a run that
    got as far as writing its log, stays).

    Args:
        created (list[str]): :func:`set_work_dir`'s result.
    """
    for folder in reversed(created):  # innermost first
        try:
            os.rmdir(folder)  # only while empty
        except OSError:
            break


def _check_writable(work_dir: str) -> List[str]:
    """Refuse a work_dir that is a file or cannot be written, in one line,
    before any run writes its logs there; make it and return the folders
    made, outermost first."""
    if '://' in work_dir:  # a remote backend: not ours to probe
        return []
    path = work_dir
    missing = []
    while path and not osp.exists(path):  # the nearest existing ancestor
        missing.append(path)
        path = osp.dirname(path.rstrip(osp.sep)) if path != osp.sep else ''
    if path and not osp.isdir(path):
        raise NotADirectoryError(
            f'work_dir {work_dir} is not a folder: {path} is a file; pass '
            f'another --work-dir')
    try:
        os.makedirs(work_dir, exist_ok=True)
        with tempfile.TemporaryFile(dir=work_dir):
            pass
    except OSError as err:
        raise UnwritableError(
            err.errno or 0, f'cannot write to work_dir {work_dir}: '
            f'{err.strerror or err} (read-only filesystem or another '
            f"user's folder?); pass a writable --work-dir") from None
    return missing[::-1]


def iter_dicts(node: Any) -> Iterator[dict]:
    """Every dict in a config tree (lists and tuples included), parents
    before children.

    Args:
        node: A config, ``ConfigDict`` or any part of one.

    Yields:
        dict: Each dict (changes to it change the config).
    """
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from iter_dicts(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from iter_dicts(value)


#: Synchronised batch norms (torch's and mmcv's, which mmdet's Simple
#: Copy-Paste heads use): they need a process group.
SYNC_BN_TYPES = ('SyncBN', 'MMSyncBN')


def replace_sync_bn(cfg: Config) -> None:
    """Turn every ``SyncBN`` / ``MMSyncBN`` of ``cfg`` into ``BN``
    (single-process runs: they need a process group, SyncBN also CUDA).

    Args:
        cfg (Config): The config; changed in place.
    """
    for node in iter_dicts(cfg._cfg_dict):
        if node.get('type') in SYNC_BN_TYPES:
            node['type'] = 'BN'


def adapt_to_device(cfg: Config) -> None:
    """Make GPU configs run where CUDA is missing.

    ``SyncBN`` (CUDA only) and mmcv's ``MMSyncBN`` become ``BN``;
    distributed runs use gloo and DDP without ``device_ids``. Nothing
    changes when CUDA is available. Call it before building the model of a
    GPU config on a CPU-only machine.

    Args:
        cfg (Config): The config; changed in place.
    """
    if torch.cuda.is_available():
        return
    replace_sync_bn(cfg)
    cfg.setdefault('env_cfg', ConfigDict())
    cfg.env_cfg.setdefault('dist_cfg', ConfigDict())
    cfg.env_cfg.dist_cfg.backend = 'gloo'
    cfg.model_wrapper_cfg = ConfigDict(
        type='MMDistributedDataParallel',
        device_ids=None,
        broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))


#: Devices mmengine's ``AmpOptimWrapper`` trains on.
_AMP_DEVICES = ('cuda', 'npu', 'mlu', 'musa')
#: Other spellings of the half types, as mmengine names them.
_DTYPE_NAMES = {'fp16': 'float16', 'half': 'float16', 'bf16': 'bfloat16'}


def adapt_amp(cfg: Config, device: Optional[str] = None) -> None:
    """Make ``optim_wrapper.type='AmpOptimWrapper'`` (``--amp``) train on
    the run's device, or refuse it in one line.

    On cuda / npu / mlu / musa mmengine's ``AmpOptimWrapper`` stays (float16
    with loss scaling unless ``optim_wrapper.dtype`` says otherwise). On the
    CPU it becomes :class:`~slak_mm.engine.optimizers.CPUAmpOptimWrapper`
    (bfloat16 autocast, no ``loss_scale``). Other optim wrappers are left
    alone.

    Args:
        cfg (Config): The train config; changed in place.
        device (str, optional): The device the runner trains on. Default:
            mmengine's ``get_device()``.

    Raises:
        ValueError: A half type the device lacks (float16 on the CPU,
            bfloat16 on a GPU without it) or a device without mixed
            precision (e.g. mps).
    """
    wrapper = cfg.get('optim_wrapper')
    if not wrapper or wrapper.get('type') != 'AmpOptimWrapper':
        return
    device = device or get_device()
    dtype = wrapper.get('dtype')
    if dtype is not None:
        dtype = str(dtype).replace('torch.', '')
        wrapper.dtype = dtype = _DTYPE_NAMES.get(dtype, dtype)
    if device in _AMP_DEVICES:
        if (device == 'cuda' and dtype == 'bfloat16'
                and not torch.cuda.is_bf16_supported()):
            raise ValueError(
                'optim_wrapper.dtype=bfloat16: this GPU has no bfloat16; '
                'leave optim_wrapper.dtype unset (float16)')
        return
    if device != 'cpu':
        raise ValueError(
            f'--amp (AmpOptimWrapper): no mixed precision on {device} '
            f'(mmengine has it on {", ".join(_AMP_DEVICES)}, slak_mm adds '
            f'bfloat16 on the CPU); train without --amp')
    if dtype not in (None, 'bfloat16'):
        raise ValueError(
            f'optim_wrapper.dtype={dtype}: mixed precision on the CPU is '
            f'bfloat16 only; set --cfg-options optim_wrapper.dtype=bfloat16 '
            f'(or leave it unset), or train on a GPU')
    op = _mmcv_cpu_op(cfg.get('model'))
    if op is not None:
        raise ValueError(
            f'--amp on the CPU (bfloat16): the model calls mmcv\'s compiled '
            f'{op}, whose CPU kernel has no bfloat16 ("expected scalar type '
            f'Float but found BFloat16"); train it without --amp on the '
            f'CPU, or with --amp on a GPU')
    wrapper.type = CPUAmpOptimWrapper.__name__
    wrapper.dtype = 'bfloat16'
    wrapper.pop('loss_scale', None)  # bfloat16 needs no loss scaling


#: mmcv ops compiled for the CPU in float32 only, by their config ``type``.
_MMCV_FP32_OPS = ('nms', 'soft_nms', 'RoIAlign', 'RoIPool', 'DeformConv2d',
                  'ModulatedDeformConv2d', 'DCN', 'DCNv2')


def _mmcv_cpu_op(model: Any) -> Optional[str]:
    """The first mmcv CPU op without bfloat16 a model config uses (its
    ``nms`` settings, RoI layers, deformable convs), or None."""
    for node in iter_dicts(model):
        kind = str(node.get('type', '')).split('.')[-1]
        if kind in _MMCV_FP32_OPS:
            return f'{kind} (type={kind!r})'
        if isinstance(node.get('nms'), dict):
            return f"nms (nms=dict(type={node['nms'].get('type')!r}))"
    return None


#: The checkpoint check every runner of the tools gets (see
#: :class:`slak_mm.engine.hooks.CheckpointLoadCheckHook`).
LOAD_CHECK_HOOK = dict(type='CheckpointLoadCheckHook', allow_partial=False)


def add_load_check(cfg: Config) -> None:
    """Give ``cfg`` the ``default_hooks.load_check`` entry if it lacks one
    (e.g. a framework config with SLaK swapped in), so a checkpoint that
    does not fit the model is an error and not a silent random model.

    Args:
        cfg (Config): The config; changed in place.
    """
    if cfg.get('default_hooks') is None:
        cfg.default_hooks = ConfigDict()
    if cfg.default_hooks.get('load_check') is None:
        cfg.default_hooks.load_check = ConfigDict(LOAD_CHECK_HOOK)


def partial_load_allowed(cfg: Config) -> bool:
    """The config's ``default_hooks.load_check.allow_partial`` (False if
    unset): the same opt-in for the runner, inference and deploy.

    Args:
        cfg (Config): The config.

    Returns:
        bool: Whether a checkpoint may load partially.
    """
    hook = (cfg.get('default_hooks') or {}).get('load_check') or {}
    return bool(hook.get('allow_partial', False))


def enable_visualization(cfg: Config,
                         show_dir: Optional[str] = None,
                         show: bool = False,
                         wait_time: float = 2.) -> None:
    """Draw test predictions (mmseg's and mmdet's visualization hooks).

    Args:
        cfg (Config): The config, ``work_dir`` set.
        show_dir (str, optional): Save the painted predictions here; a
            relative path is taken relative to the work_dir.
        show (bool): Also open a window per image (needs a display).
        wait_time (float): Seconds each window stays open.
    """
    hook = cfg.default_hooks.get('visualization')
    if hook is None:
        raise ValueError('--show/--show-dir need a `visualization` entry in '
                         'default_hooks (SegVisualizationHook or '
                         'DetVisualizationHook).')
    hook['draw'] = True
    if show:
        hook['show'] = True
        hook['wait_time'] = wait_time
    if cfg.get('default_scope') != 'mmdet':
        hook['interval'] = 1
    if not show_dir:
        return
    show_dir = osp.abspath(osp.join(cfg.work_dir, show_dir))
    check_output_folder(show_dir, '--show-dir')
    if cfg.get('default_scope') == 'mmdet':
        hook['test_out_dir'] = show_dir  # written by mmcv.imwrite: see test
        return
    cfg.visualizer['save_dir'] = show_dir
    # mmseg's hook hands the images to the visualizer's backends; the
    # local one writes with cv2.imwrite, ours atomically
    for backend in cfg.visualizer.get('vis_backends') or []:
        if backend.get('type') in ('LocalVisBackend', LocalVisBackend):
            backend['type'] = AtomicLocalVisBackend.__name__


def enable_tta(cfg: Config) -> None:
    """Test-time augmentation, as the frameworks' ``--tta``: the test set
    runs ``tta_pipeline`` and the model is wrapped in ``tta_model``.

    Args:
        cfg (Config): The test config; changed in place.

    Raises:
        ValueError: The config defines no ``tta_pipeline`` / ``tta_model``.
    """
    lacking = [k for k in ('tta_pipeline', 'tta_model') if k not in cfg]
    if lacking:
        raise ValueError(
            f'--tta needs {" and ".join(lacking)} in the config (the ADE20K '
            f'and VOC dataset bases here define them; Cascade Mask R-CNN has '
            f'no mask-merging TTA model in mmdet).')
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)


def save_predictions(cfg: Config,
                     out: str,
                     inputs: Optional[Mapping[str, str]] = None) -> None:
    """``--out``: keep the raw predictions, as the frameworks' tools do
    (mmseg: prediction PNGs in the folder ``out``, written by
    :class:`~slak_mm.engine.SegPredictionWriter`; mmdet: a pickle file of
    all results via ``DumpDetResults``). Call it before any work: an
    unusable ``out`` is refused here.

    Args:
        cfg (Config): The test config; changed in place.
        out (str): ``--out``: a folder (segmentation) or a ``.pkl`` file
            (detection).
        inputs (Mapping[str, str], optional): The run's input files by
            name (``checkpoint``, ``config``), which ``out`` must not be.

    Raises:
        ValueError: A detection ``out`` that is no ``.pkl`` file.
        UnsafeOutputError: ``out`` is an input, or no regular file (a
            pickle) or no folder (PNGs).
    """
    if cfg.get('default_scope') == 'mmdet':
        if not out.endswith(('.pkl', '.pickle')):
            raise ValueError(f'--out {out!r}: detection results are dumped '
                             f'as a pickle; give a .pkl file name.')
        check_output_path(out, inputs)
        writer = ConfigDict(type='DumpDetResults', out_file_path=out)
    else:
        check_output_folder(out, '--out', inputs)
        # not IoUMetric's output_dir: that writes in place (see the class)
        writer = ConfigDict(type=SegPredictionWriter.__name__, output_dir=out)
    evaluators = cfg.test_evaluator
    if not isinstance(evaluators, (list, tuple)):
        evaluators = [evaluators]
    cfg.test_evaluator = [*evaluators, writer]
