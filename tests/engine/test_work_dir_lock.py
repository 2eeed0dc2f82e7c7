"""One training run per work_dir: the lock refuses a live owner, takes over
a stale file, and only rank 0 takes it. (A refused tools/train.py run:
checkpoint/test_crash_resume.py.)"""
import os
from contextlib import nullcontext

import pytest

from slak_mm.engine.work_dir_lock import (LOCK_NAME, SHARED_WORK_DIR_ENV,
                                          WorkDirBusyError, WorkDirLock,
                                          lock_for_training)


def test_second_lock_refused_while_first_held(tmp_path):
    work_dir = str(tmp_path / 'run')
    with WorkDirLock(work_dir):
        assert (tmp_path / 'run' / LOCK_NAME).read_text() == f'{os.getpid()}\n'
        with pytest.raises(WorkDirBusyError) as err:
            WorkDirLock(work_dir).acquire()
    message = str(err.value)
    assert '\n' not in message
    assert f'work_dir {work_dir} is in use' in message
    assert f'(pid {os.getpid()},' in message
    assert f'{SHARED_WORK_DIR_ENV}=1' in message
    # released: the next run takes it
    with WorkDirLock(work_dir):
        pass
    assert (tmp_path / 'run' / LOCK_NAME).read_text() == ''


@pytest.mark.parametrize('content', ['999999999\n', 'garbage', ''])
def test_stale_lock_file_taken_over(tmp_path, content):
    """A file whose flock is free (its owner died) is reused, whatever pid
    it names."""
    (tmp_path / LOCK_NAME).write_text(content)
    with WorkDirLock(str(tmp_path)):
        assert (tmp_path / LOCK_NAME).read_text() == f'{os.getpid()}\n'


def test_only_rank_zero_locks(tmp_path, monkeypatch):
    monkeypatch.setenv('RANK', '1')
    assert isinstance(lock_for_training(str(tmp_path), 'pytorch'), nullcontext)
    monkeypatch.setenv('SLURM_PROCID', '0')
    assert isinstance(lock_for_training(str(tmp_path), 'slurm'), WorkDirLock)
    monkeypatch.setenv('RANK', '0')
    assert isinstance(lock_for_training(str(tmp_path), 'pytorch'), WorkDirLock)
    monkeypatch.setenv(SHARED_WORK_DIR_ENV, '1')
    assert isinstance(lock_for_training(str(tmp_path), 'pytorch'), nullcontext)


_HOLD_AND_FORK = '''
import importlib.util, os, sys, time
spec = importlib.util.spec_from_file_location('work_dir_lock', sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
module.WorkDirLock(sys.argv[2]).acquire()
child = os.fork()  # as a DataLoader worker: inherits every descriptor
if child == 0:
    time.sleep(120)
    os._exit(0)
print(child, flush=True)
time.sleep(120)
'''


def test_lock_freed_at_kill_while_forked_children_live(tmp_path):
    """A kill -9 of the owner frees the work_dir at once even while its
    forked children (DataLoader workers) still run: the lock is the
    process's (a record lock), not the shared open file's (flock)."""
    import signal
    import subprocess
    import sys

    from slak_mm.engine import work_dir_lock
    work_dir = str(tmp_path / 'run')
    owner = subprocess.Popen([
        sys.executable, '-c', _HOLD_AND_FORK, work_dir_lock.__file__, work_dir
    ],
                             stdout=subprocess.PIPE,
                             text=True)
    # the pid line, after what importing the stack prints (onedl's notes)
    child = next(int(line) for line in owner.stdout if line.strip().isdigit())
    try:
        with pytest.raises(WorkDirBusyError, match=f'pid {owner.pid},'):
            WorkDirLock(work_dir).acquire()
        owner.kill()
        owner.wait(timeout=30)
        os.kill(child, 0)  # the child still lives (raises if it does not)
        with WorkDirLock(work_dir):
            assert (tmp_path / 'run' / LOCK_NAME).read_text() == \
                f'{os.getpid()}\n'
    finally:
        os.kill(child, signal.SIGKILL)
        owner.stdout.close()
