"""A kill -9 at any step of a checkpoint save, in real tools/train.py runs of
the demo config (a checkpoint every iteration, max_keep_ckpts=1), never
loses the last good checkpoint: ``--resume`` continues from it with its
masks and zero pattern, and leaves no temp file. Also: a second live run in
the same work_dir is refused in one line; a stale lock is taken over.
(The kill points: tests/crash_points.py.)"""
import os
import signal

import pytest
import torch

from slak_mm.checkpoint import checkpoint_problem, load_checkpoint_safely
from slak_mm.engine.work_dir_lock import (LOCK_NAME, SHARED_WORK_DIR_ENV,
                                          WorkDirLock)
from slak_mm.fileio import TEMP_FILE_PATTERN
from tests.common import DEMO_CONFIG as DEMO
from tests.crash_points import CRASH_ENV
from tests.tool_runner import run_tool

MAX_ITERS = 4


@pytest.fixture(scope='module')
def config(tmp_path_factory):
    """The demo, tiny: 4 iterations of batch 2, a checkpoint every
    iteration, one kept; the crash points loaded."""
    path = tmp_path_factory.mktemp('config') / 'crash_demo.py'
    path.write_text(
        f'_base_ = [{DEMO!r}]\n'
        "custom_imports = dict(imports=['slak_mm', 'tests.crash_points'], "
        'allow_failed_imports=False)\n'
        f'train_cfg = dict(max_iters={MAX_ITERS}, val_interval=1000)\n'
        'default_hooks = dict(logger=dict(interval=1), '
        'checkpoint=dict(interval=1, max_keep_ckpts=1))\n'
        'train_dataloader = dict(batch_size=2, num_workers=0)\n'
        'val_dataloader = dict(num_workers=0)\n')
    return str(path)


def train(config,
          small_ade_root,
          work_dir,
          *options,
          resume=False,
          expect_ok=True,
          fresh_process=False,
          **env):
    """tools/train.py CONFIG with ``--cfg-options data_root=... *options``
    (and ``--resume``); ``fresh_process`` for a run to be killed."""
    return run_tool(
        'tools/train.py',
        config,
        '--work-dir',
        str(work_dir),
        *(['--resume'] if resume else []),
        '--cfg-options',
        f'data_root={small_ade_root}',
        *options,
        expect_ok=expect_ok,
        fresh_process=fresh_process,
        **env)


def masks_and_weights(path):
    state = load_checkpoint_safely(str(path))['state_dict']
    return {
        k[:-len('_mask')]: (state[k], state[k[:-len('_mask')]])
        for k in state if k.endswith('_mask')
    }


def temp_files(work_dir):
    return [n for n in os.listdir(work_dir) if TEMP_FILE_PATTERN.match(n)]


def plain_mode():
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


# (kill point, the checkpoint last_checkpoint then names, what else is on
# disk, the iteration --resume continues from)
KILLS = [
    # inside the atomic write of iter_3.pth: its temp file holds the data
    ('temp_write:iter_3.pth', 2, dict(temp='.iter_3.pth.'), 2),
    # the third pointer (to iter_3) written to its temp file, not renamed
    # (as when the disk filled up after iter_3.pth): the newer complete
    # file beside the one named is taken
    ('before_replace:last_checkpoint:3', 2,
     dict(temp='.last_checkpoint.', newer=True), 3),
    # iter_2.pth pruned (mmengine pruned it before saving iter_3)
    ('after_remove:iter_2.pth', 3, dict(), 3),
    # iter_3.pth complete, the pointer not yet replaced; then emptied, as a
    # kill inside mmengine's plain open(..., 'w') left it: the newest
    # complete file is used
    ('after_replace:iter_3.pth', 2, dict(empty_pointer=True), 3),
]


@pytest.mark.parametrize('kill, pointed, state, resumed', KILLS)
def test_kill_during_save_then_resume(config, small_ade_root, tmp_path, kill,
                                      pointed, state, resumed):
    work_dir = tmp_path / 'work'
    crashed = train(
        config,
        small_ade_root,
        work_dir,
        expect_ok=False,
        fresh_process=True,  # it kills itself
        **{CRASH_ENV: kill})
    assert crashed.returncode == -signal.SIGKILL, crashed.log[-3000:]
    pointer = work_dir / 'last_checkpoint'
    assert pointer.read_text() == str(work_dir / f'iter_{pointed}.pth')
    assert checkpoint_problem(pointer.read_text()) is None
    if state.get('temp'):
        assert [n for n in temp_files(work_dir) if n.startswith(state['temp'])]
    if state.get('empty_pointer'):
        assert checkpoint_problem(str(work_dir / 'iter_3.pth')) is None
        pointer.write_text('')
    source = work_dir / f'iter_{resumed}.pth'
    before = masks_and_weights(source)
    # a lock file whose flock is free, naming a live pid (not the run's):
    # stale
    (work_dir / LOCK_NAME).write_text(f'{os.getppid()}\n')

    # another seed: masks drawn afresh would differ from the checkpoint's
    log = train(
        config, small_ade_root, work_dir, 'randomness.seed=1', resume=True).log
    assert f'resumed epoch: 0, iter: {resumed}' in log
    if state.get('empty_pointer'):
        assert 'Auto resume:' in log and 'is empty' in log
        assert f'newest complete checkpoint instead: {source}' in log
    if state.get('temp'):
        assert 'interrupted' in log
    if state.get('newer'):
        assert f'{source} is newer and complete' in log
    assert temp_files(work_dir) == []
    final = work_dir / f'iter_{MAX_ITERS}.pth'
    assert pointer.read_text() == str(final)
    assert sorted(n for n in os.listdir(work_dir) if n.endswith('.pth')) == [
        final.name
    ]  # max_keep_ckpts=1, the leftovers of the kill pruned
    after = masks_and_weights(final)
    assert after.keys() == before.keys() and len(after) > 10
    for key, (mask, weight) in after.items():
        assert torch.equal(mask, before[key][0]), key
        assert not weight[~mask].any(), key
    assert any(not torch.equal(w, before[k][1])
               for k, (_, w) in after.items())  # it did train on
    for path in (final, pointer):
        assert os.stat(path).st_mode & 0o777 == plain_mode(), path


def test_disk_full_at_the_pointer_is_one_line_and_resume_continues(
        config, small_ade_root, tmp_path):
    """iter_2.pth saved, then the disk is full for last_checkpoint: one
    line naming the file and the space, exit 1; once there is space,
    --resume takes the newest complete checkpoint (iter_2), not the one
    the stale pointer names."""
    work_dir = tmp_path / 'work'
    full = train(
        config,
        small_ade_root,
        work_dir,
        expect_ok=False,
        fresh_process=True,  # the crash point patches os.fsync
        **{CRASH_ENV: 'enospc:last_checkpoint:2'})
    pointer = work_dir / 'last_checkpoint'
    assert full.returncode == 1, full.log[-3000:]
    assert full.stderr.strip().splitlines()[-1].startswith(
        f'error: no space left on device writing {pointer}: it needs ')
    assert 'Traceback' not in full.stderr
    assert pointer.read_text() == str(work_dir / 'iter_1.pth')
    assert temp_files(work_dir) == []
    log = train(config, small_ade_root, work_dir, resume=True).log
    assert f'{work_dir / "iter_2.pth"} is newer and complete' in log
    assert 'resumed epoch: 0, iter: 2' in log
    assert pointer.read_text() == str(work_dir / f'iter_{MAX_ITERS}.pth')


def test_second_run_in_a_busy_work_dir_is_refused(config, small_ade_root,
                                                  tmp_path):
    work_dir = tmp_path / 'busy'
    with WorkDirLock(str(work_dir)):
        proc = train(config, small_ade_root, work_dir, expect_ok=False)
        lines = proc.log.strip().splitlines()
        assert proc.returncode == 1
        assert lines[-1] == (
            f'error: work_dir {work_dir} is in use by another training run '
            f'(pid {os.getpid()}, lock {work_dir / LOCK_NAME}); wait for it, '
            f'pick another --work-dir, or set {SHARED_WORK_DIR_ENV}=1 to '
            'share it')
        assert 'Traceback' not in proc.log
        assert sorted(os.listdir(work_dir)) == [LOCK_NAME]  # nothing ran
