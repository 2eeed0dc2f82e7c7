"""slak_mm.config.prepare_run_config: the one way from a loaded config to
the run's; its steps run in the listed order and each changes what it
says (run step by step on the demo config and its synthetic data)."""
import copy
import os.path as osp

import pytest
import torch

from slak_mm.config import (LOAD_CHECK_HOOK, RUN_STEPS, PreparedRun,
                            RunOptions, load_config, prepare_run_config)
from slak_mm.engine.work_dir_lock import LOCK_NAME, WorkDirLock
from tests.common import DEMO_CONFIG

#: The steps of each action, in order (docs/development.md names them).
ORDER = dict(
    train=[
        'mixed_precision', 'work_dir', 'ops_settings', 'launcher', 'device',
        'load_check', 'checks', 'data_checks', 'model_checks',
        'dataset_checks', 'schedule_check', 'auto_scale_lr', 'resume',
        'process_group', 'work_dir_lock', 'auto_resume'
    ],
    test=[
        'checkpoint_exists', 'prediction_dump', 'work_dir', 'ops_settings',
        'launcher', 'device', 'load_check', 'checks', 'data_checks',
        'model_checks', 'dataset_checks', 'metrics_file', 'load_from',
        'visualization', 'tta', 'process_group'
    ],
    evaluate=[
        'checkpoint_exists', 'output_path', 'launcher', 'work_dir',
        'metrics_file', 'device', 'dataset_checks', 'result_dump',
        'process_group'
    ])

#: The top-level keys of the demo config each step changes, with every
#: option that step reads given (on a CPU machine: the device step
#: changes nothing where CUDA is).
PIPELINES = [
    'test_dataloader', 'train_dataloader', 'tta_pipeline', 'val_dataloader'
]
DEVICE = [] if torch.cuda.is_available() else ['env_cfg', 'model_wrapper_cfg']
CHANGES = dict(
    train=dict(
        mixed_precision=['optim_wrapper'],
        work_dir=['work_dir'],
        launcher=['launcher'],
        device=DEVICE,
        load_check=['default_hooks'],
        checks=['skip_checks'],
        data_checks=PIPELINES,
        auto_scale_lr=['auto_scale_lr'],
        resume=['resume'],
        auto_resume=['resume']),
    test=dict(
        prediction_dump=['test_evaluator'],
        work_dir=['work_dir'],
        launcher=['launcher'],
        device=DEVICE,
        load_check=['default_hooks'],
        data_checks=PIPELINES,
        load_from=['load_from'],
        visualization=['default_hooks', 'visualizer'],
        tta=['model', 'test_dataloader']))


def test_steps_are_listed_in_order():
    assert {
        mode: [s.name for s in steps]
        for mode, steps in RUN_STEPS.items()
    } == ORDER


def _demo_cfg(data_root, **options):
    # the demo config has its load check: removed, to see the step add it
    return load_config(DEMO_CONFIG, {
        'data_root': data_root,
        'default_hooks.load_check': None,
        **options
    })


def _step_by_step(run):
    """Apply ``run``'s steps one at a time: step -> changed keys."""
    changed = {}
    for step in RUN_STEPS[run.mode]:
        before = copy.deepcopy(run.cfg._cfg_dict.to_dict())
        step.apply(run)
        after = run.cfg._cfg_dict.to_dict()
        keys = sorted(
            k for k in set(before) | set(after)
            if before.get(k, KeyError) != after.get(k, KeyError))
        if keys:
            changed[step.name] = keys
    return changed


def test_train_steps_change_what_they_say(small_ade_root, tmp_path):
    # max_iters=-5 passes: the schedule check is skipped by name
    cfg = _demo_cfg(
        small_ade_root,
        auto_scale_lr=dict(base_batch_size=16),
        **{'train_cfg.max_iters': -5})
    work_dir = tmp_path / 'work'
    options = RunOptions(
        DEMO_CONFIG,
        work_dir=str(work_dir),
        amp=True,
        auto_scale_lr=True,
        resume='auto',
        skip_checks=['schedule'])
    with PreparedRun(cfg, 'train', options) as run:
        assert _step_by_step(run) == CHANGES['train']
        assert (work_dir / LOCK_NAME).is_file()  # held until closed
    assert cfg.optim_wrapper.type == ('AmpOptimWrapper'
                                      if torch.cuda.is_available() else
                                      'CPUAmpOptimWrapper')
    assert cfg.work_dir == str(work_dir) and cfg.launcher == 'none'
    assert cfg.default_hooks.load_check == LOAD_CHECK_HOOK
    assert cfg.skip_checks == ['schedule']
    assert run.checks == {'loading', 'model', 'datasets'}
    assert cfg.train_dataloader.dataset.pipeline[0].type == \
        'CheckedLoadImageFromFile'
    assert cfg.auto_scale_lr.enable is True
    # --resume auto with nothing to resume: the run starts from scratch
    assert cfg.resume is False and cfg.load_from is None
    assert 'training starts from scratch' in run.notes[-1]
    with WorkDirLock(str(work_dir)):  # released at close
        pass


def test_test_steps_change_what_they_say(small_ade_root, tmp_path):
    checkpoint = str(tmp_path / 'model.pth')
    torch.save({}, checkpoint)
    cfg = _demo_cfg(small_ade_root)
    options = RunOptions(
        DEMO_CONFIG,
        work_dir=str(tmp_path / 'work'),
        checkpoint=checkpoint,
        out=str(tmp_path / 'predictions'),
        show_dir='vis',
        tta=True)
    run = PreparedRun(cfg, 'test', options)
    assert _step_by_step(run) == CHANGES['test']
    assert run.metrics_file == str(tmp_path / 'work' / 'test_metrics.json')
    assert cfg.load_from == checkpoint
    assert cfg.test_evaluator[-1].type == 'SegPredictionWriter'
    assert cfg.visualizer.save_dir == str(tmp_path / 'work' / 'vis')
    assert cfg.model.type == cfg.tta_model.type
    assert cfg.test_dataloader.dataset.pipeline == cfg.tta_pipeline


def test_prepare_runs_the_steps_and_a_refusal_undoes_the_work_dir(
        small_ade_root, tmp_path):
    cfg = _demo_cfg(small_ade_root)
    with prepare_run_config(
            cfg, 'train',
            RunOptions(DEMO_CONFIG, work_dir=str(tmp_path / 'a'))) as run:
        assert run.done == ORDER['train']
    # refused at the resume step: the work_dir it made is removed again
    cfg = _demo_cfg(small_ade_root, load_from='x.pth')
    work_dir = tmp_path / 'b' / 'c'
    with pytest.raises(ValueError, match='are both set'):
        prepare_run_config(
            cfg, 'train',
            RunOptions(DEMO_CONFIG, work_dir=str(work_dir), resume='y.pth'))
    assert not osp.exists(tmp_path / 'b')
    with pytest.raises(ValueError, match="mode='deploy'"):
        prepare_run_config(cfg, 'deploy', RunOptions(DEMO_CONFIG))


def test_a_failure_after_the_lock_releases_it(small_ade_root, tmp_path,
                                              monkeypatch):
    from slak_mm.config import run_config

    def broken(cfg):
        raise OSError('disk gone')

    monkeypatch.setattr(run_config, 'resolve_auto_resume', broken)
    work_dir = str(tmp_path / 'work')
    with pytest.raises(OSError, match='disk gone'):
        prepare_run_config(
            _demo_cfg(small_ade_root), 'train',
            RunOptions(DEMO_CONFIG, work_dir=work_dir, resume='auto'))
    with WorkDirLock(work_dir):  # free again
        pass
