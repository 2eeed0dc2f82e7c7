"""One training run per work_dir.

Two runs in one work_dir would interleave its logs and overwrite each
other's checkpoints and ``last_checkpoint``. ``train()`` (rank 0) therefore
holds ``WORK_DIR/.slak_mm_train.lock`` for the whole run: an exclusive
POSIX record lock (``fcntl.lockf``) on a file that holds the owner's pid.
The kernel drops it when the owner dies, so a lock file left by a crash is
taken over without a word; only a live owner makes a second run refuse.

Why a record lock and not ``flock``: a ``flock`` belongs to the open file,
which forked DataLoader workers share, so after a kill -9 of the main
process its workers held the work_dir for seconds more and a prompt
restart was refused naming a dead pid. Record locks belong to the process
and are not inherited by ``fork``. Their catch: closing *any* descriptor
of the file drops the process's lock, so this process never opens the
file a second time while it holds it (a second lock of the same work_dir
in one process is refused from :data:`_HELD` instead).
``SLAK_MM_ALLOW_SHARED_WORK_DIR=1`` in the environment skips the lock.
"""
import errno
import fcntl
import os
import os.path as osp
from contextlib import nullcontext
from typing import ContextManager, Dict, Optional

from slak_mm.utils.dist import rank_and_world

LOCK_NAME = '.slak_mm_train.lock'
#: Environment variable that lets a run share a work_dir with a live one.
SHARED_WORK_DIR_ENV = 'SLAK_MM_ALLOW_SHARED_WORK_DIR'

#: Lock files this process holds (real path -> descriptor).
_HELD: Dict[str, int] = {}


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
        self._key: Optional[str] = None

    def acquire(self) -> 'WorkDirLock':
        """Take the lock and write this process's pid into it.

        Returns:
            WorkDirLock: ``self``.

        Raises:
            WorkDirBusyError: A live process holds the lock.
        """
        os.makedirs(self.work_dir, exist_ok=True)
        key = osp.realpath(self.path)
        if key in _HELD:  # reopening would drop our own record lock
            raise self._busy(self._read_pid(_HELD[key]))
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            owner = self._read_pid(fd)
            os.close(fd)
            if err.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise self._busy(owner) from None
        # a stale file (its owner died, the kernel freed the lock) is reused
        os.ftruncate(fd, 0)
        os.pwrite(fd, f'{os.getpid()}\n'.encode(), 0)
        self._fd, self._key = fd, key
        _HELD[key] = fd
        return self

    def _busy(self, owner: str) -> WorkDirBusyError:
        return WorkDirBusyError(
            f'work_dir {self.work_dir} is in use by another training run '
            f'(pid {owner}, lock {self.path}); wait for it, pick another '
            f'--work-dir, or set {SHARED_WORK_DIR_ENV}=1 to share it')

    @staticmethod
    def _read_pid(fd: int) -> str:
        """The owner's pid, read through ``fd`` (never a new descriptor)."""
        try:
            return os.pread(fd, 64, 0).decode(errors='replace').strip() or \
                'unknown'
        except OSError:
            return 'unknown'

    def release(self) -> None:
        """Drop the lock (the file stays, emptied)."""
        if self._fd is not None:
            _HELD.pop(self._key, None)
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing releases the record lock
            self._fd = None

    def __enter__(self) -> 'WorkDirLock':
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


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
    if shared_work_dir_allowed() or rank_and_world(launcher)[0] != 0:
        return nullcontext()
    return WorkDirLock(work_dir)
