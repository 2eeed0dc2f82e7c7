"""A training run that SIGTERM (or SIGINT) stops cleanly.

Slurm and Kubernetes send SIGTERM first and SIGKILL after a grace period.
Python's default for SIGTERM ends the process at once with no word (exit
143). :func:`stop_on_signals` turns the signal into :class:`TrainingStopped`
raised in the main thread, so the run unwinds (hooks' files closed, the
work_dir lock released), one log line says where it stopped and which
checkpoint ``--resume`` continues from, and the tool exits with the
conventional ``128 + signal`` status. Nothing is lost: checkpoints are
written atomically, so an interrupted save leaves the previous one whole.
Further signals while it unwinds are ignored (SIGKILL still ends it).

Slurm's ``scancel`` signals every process of the step, DataLoader workers
included; a worker that dies of SIGTERM makes torch raise ``RuntimeError:
DataLoader worker (pid N) is killed by signal: Terminated`` in the main
process, possibly before the main process's own signal arrives.
:func:`as_stop` reads that error as the same stop.
"""
import os
import signal
from contextlib import contextmanager
from typing import Iterator, Optional, Tuple

__all__ = ['StopState', 'TrainingStopped', 'as_stop', 'stop_on_signals']


class TrainingStopped(Exception):
    """Training was stopped by a signal.

    Args:
        signum (int): The signal.
    """

    def __init__(self, signum: int):
        self.signum = signum
        self.exit_status = 128 + signum
        super().__init__(f'{signal.Signals(signum).name} received')


class StopState:
    """What :func:`stop_on_signals` saw: ``signum`` is the first signal
    (None while none arrived)."""

    def __init__(self):
        self.signum: Optional[int] = None

    def handler(self, signum, frame):
        if self.signum is None:  # the first: stop; later ones: unwinding
            self.signum = signum
            _expect_worker_deaths()
            raise TrainingStopped(signum)


def _expect_worker_deaths() -> None:
    """Stop torch's SIGCHLD handler from raising "DataLoader worker ...
    is killed" while the stop unwinds: the workers die of the same signal
    (a raise from there would replace the stop, at any line)."""
    # a Python no-op, not SIG_DFL: a SIGCHLD already pending would
    # otherwise print "Signal 17 ignored due to race condition"
    signal.signal(signal.SIGCHLD, _ignore)


def _ignore(signum, frame):
    pass


# Signals the innermost stop_on_signals block handles now.
_handled: Tuple[int, ...] = ()
_mask_before_fork = None


def _block_before_fork() -> None:
    global _mask_before_fork
    if _handled:
        _mask_before_fork = signal.pthread_sigmask(signal.SIG_BLOCK, _handled)


def _unblock_in_parent() -> None:
    global _mask_before_fork
    if _mask_before_fork is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, _mask_before_fork)
        _mask_before_fork = None


def _default_in_child() -> None:
    """A forked child (DataLoader worker, mmdet's mAP pool) dies of the
    signal, as it would without the block. The signal is blocked from just
    before the fork until the default is back: one that arrives in between
    stays pending and ends the child then. (Left to Python's handler it was
    dropped: CPython clears signals received in a child before its
    after-fork hooks run. mmdet's pool terminates workers that way right
    after starting them; the one that missed its SIGTERM waited forever on
    the lock of a killed sibling, and training hung in ``Pool.join``.)"""
    global _handled
    for s in _handled:
        signal.signal(s, signal.SIG_DFL)
    _handled = ()
    _unblock_in_parent()


os.register_at_fork(
    before=_block_before_fork,
    after_in_parent=_unblock_in_parent,
    after_in_child=_default_in_child)


def as_stop(err: BaseException, state: StopState) -> Optional[TrainingStopped]:
    """``err`` as the :class:`TrainingStopped` it stands for, or None.

    Args:
        err (BaseException): What ended the training.
        state (StopState): The block's state.

    Returns:
        TrainingStopped | None: The stop (a signal arrived, or a DataLoader
        worker was killed by SIGTERM), else None (a real error).
    """
    if isinstance(err, TrainingStopped):
        return err
    if state.signum is None and isinstance(err, RuntimeError) and \
            'is killed by signal: Terminated' in str(err):
        state.signum = signal.SIGTERM
    if state.signum is None:
        return None
    _expect_worker_deaths()
    return TrainingStopped(state.signum)


@contextmanager
def stop_on_signals(signals: Tuple[int, ...] = (
    signal.SIGTERM, )) -> Iterator[StopState]:
    """Raise :class:`TrainingStopped` in the main thread on the first of
    ``signals`` while the block runs; ignore the ones after it (the
    previous handlers are put back when the block ends).

    Args:
        signals (tuple[int]): Signals to catch. Default: ``SIGTERM``.

    Yields:
        StopState: Which signal arrived (for :func:`as_stop`).
    """
    global _handled
    state = StopState()
    previous = {s: signal.signal(s, state.handler) for s in signals}
    outer, _handled = _handled, tuple(signals)
    try:
        yield state
    finally:
        _handled = outer
        for s, handler in previous.items():
            signal.signal(s, handler)
