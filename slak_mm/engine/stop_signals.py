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
        self.pid = os.getpid()

    def handler(self, signum, frame):
        if os.getpid() != self.pid:
            # a forked child (DataLoader worker, mmdet's mAP pool) inherited
            # this handler: it dies of the signal as it would have
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
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
    state = StopState()
    previous = {s: signal.signal(s, state.handler) for s in signals}
    try:
        yield state
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
