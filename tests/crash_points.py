"""Test-only: kill the training process (SIGKILL, as ``kill -9``) at a chosen
step of a checkpoint save. Loaded with ``custom_imports``; does nothing
unless ``SLAK_MM_TEST_CRASH=POINT:NAME[:NTH]`` is set, where NAME is a file
name and POINT one of

- ``temp_write``: the temp file of an atomic write of NAME holds all its
  data, before fsync and rename (a kill inside the write);
- ``before_replace`` / ``after_replace``: just before / after the rename
  that puts NAME in place;
- ``after_remove``: just after NAME was deleted;
- ``enospc``: the fsync of NAME's temp file fails with ``ENOSPC`` (a full
  disk; the process lives on).

NTH (default 1) picks the n-th matching call. With
``SLAK_MM_TEST_CRASH_SIGNAL=NAME`` (``SIGINT``, ``SIGTERM``) the point sends
that signal to the process group instead (the run and its DataLoader
workers, as Ctrl-C in a terminal or ``scancel`` do) and the process goes
on.
"""
import errno
import fnmatch
import os
import os.path as osp
import signal

CRASH_ENV = 'SLAK_MM_TEST_CRASH'
SIGNAL_ENV = 'SLAK_MM_TEST_CRASH_SIGNAL'


def _kill():
    name = os.environ.get(SIGNAL_ENV)
    if name:
        os.killpg(os.getpgrp(), signal.Signals[name])
    else:
        os.kill(os.getpid(), signal.SIGKILL)


def _install(point: str, name: str, nth: int) -> None:
    calls = [0]
    pattern = f'.{name}.*.tmp' if point in ('temp_write', 'enospc') \
        else name

    def hit(path) -> bool:
        if not fnmatch.fnmatch(osp.basename(path), pattern):
            return False
        calls[0] += 1
        return calls[0] == nth

    def wrap(func, path_of, before):

        def wrapper(*args, **kwargs):
            crash = hit(path_of(*args))
            if crash and before:
                _kill()
            result = func(*args, **kwargs)
            if crash and not before:
                _kill()
            return result

        return wrapper

    if point == 'enospc':
        fsync = os.fsync

        def full(fd):
            if hit(os.readlink(f'/proc/self/fd/{fd}')):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return fsync(fd)

        os.fsync = full
    elif point == 'temp_write':  # the fd's file name, from /proc
        os.fsync = wrap(os.fsync,
                        lambda fd: os.readlink(f'/proc/self/fd/{fd}'), True)
    elif point in ('before_replace', 'after_replace'):
        os.replace = wrap(os.replace, lambda src, dst: dst,
                          point == 'before_replace')
    elif point == 'after_remove':
        os.remove = wrap(os.remove, lambda path: path, False)
    else:
        raise ValueError(f'{CRASH_ENV}: unknown crash point {point!r}')


if os.environ.get(CRASH_ENV):
    _point, _name, *_nth = os.environ[CRASH_ENV].split(':')
    _install(_point, _name, int(_nth[0]) if _nth else 1)
