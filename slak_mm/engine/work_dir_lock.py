"""One training run per work_dir.

Two runs in one work_dir would interleave its logs and overwrite each
other's checkpoints and ``last_checkpoint``. ``train()`` (rank 0) therefore
holds ``WORK_DIR/.slak_mm_train.lock`` for the whole run: an exclusive
``fcntl.flock`` on a file that holds the owner's pid. The kernel drops the
flock when its process dies, so a lock file left by a crash is taken over
without a word; only a live owner makes a second run refuse.
``SLAK_MM_ALLOW_SHARED_WORK_DIR=1`` in the environment skips the lock.
"""
import errno
import fcntl
import os
import os.path as osp
from contextlib import nullcontext
from typing import ContextManager, Optional

import torch.distributed as torch_dist

LOCK_NAME = '.slak_mm_train.lock'
#: Environment variable that lets a run share a work_dir with a live one.
SHARED_WORK_DIR_ENV = 'SLAK_MM_ALLOW_SHARED_WORK_DIR'


class WorkDirBusyError(RuntimeError):
    """Another live training run holds the work_dir."""


def shared_work_dir_allowed() -> bool:
    """Whether ``SLAK_MM_ALLOW_SHARED_WORK_DIR=1`` lifts the lock."""
    return os.environ.get(SHARED_WORK_DIR_ENV, '') == '1'


class WorkDirLock:
    """Exclusive lock of a work_dir for one training run (a context manager).

    Args:
        work_dir (str): The run's work_dir; created if missing.
    """

    def __init__(self, work_dir: str):
        self.work_dir = work_dir
        self.path = osp.join(work_dir, LOCK_NAME)
        self._fd: Optional[int] = None

    def acquire(self) -> 'WorkDirLock':
        """Take the lock and write this process's pid into it.

        Returns:
            WorkDirLock: ``self``.

        Raises:
            WorkDirBusyError: A live process holds the lock.
        """
        os.makedirs(self.work_dir, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise WorkDirBusyError(
                f'work_dir {self.work_dir} is in use by another training run '
                f'(pid {self._owner_pid()}, lock {self.path}); wait for it, '
                'pick another --work-dir, or set '
                f'{SHARED_WORK_DIR_ENV}=1 to share it') from None
        # a stale file (its owner died, the kernel freed the flock) is reused
        os.ftruncate(fd, 0)
        os.write(fd, f'{os.getpid()}\n'.encode())
        self._fd = fd
        return self

    def _owner_pid(self) -> str:
        try:
            with open(self.path) as f:
                return f.read().strip() or 'unknown'
        except OSError:
            return 'unknown'

    def release(self) -> None:
        """Drop the lock (the file stays, emptied)."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing releases the flock
            self._fd = None

    def __enter__(self) -> 'WorkDirLock':
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


#: Where each launcher puts the global rank before the process group exists.
_RANK_ENV = dict(
    pytorch=('RANK', ),
    slurm=('SLURM_PROCID', ),
    mpi=('OMPI_COMM_WORLD_RANK', 'PMI_RANK'))


def _global_rank(launcher: str) -> int:
    if torch_dist.is_available() and torch_dist.is_initialized():
        return torch_dist.get_rank()
    for name in _RANK_ENV.get(launcher, ()):
        if name in os.environ:
            return int(os.environ[name])
    return 0


def lock_for_training(work_dir: str, launcher: str = 'none') -> ContextManager:
    """The lock a training run holds on ``work_dir``: a :class:`WorkDirLock`
    on global rank 0, nothing on other ranks or with
    ``SLAK_MM_ALLOW_SHARED_WORK_DIR=1``.

    Args:
        work_dir (str): The run's work_dir.
        launcher (str): ``none``, ``pytorch``, ``slurm`` or ``mpi`` (where
            to read the rank from before the process group starts).

    Returns:
        ContextManager: Enter it before the runner is built.
    """
    if shared_work_dir_allowed() or _global_rank(launcher) != 0:
        return nullcontext()
    return WorkDirLock(work_dir)
