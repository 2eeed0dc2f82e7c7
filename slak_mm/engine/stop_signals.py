"""A training run that SIGTERM or SIGINT (Ctrl-C) stops cleanly.

Slurm and Kubernetes send SIGTERM first and SIGKILL after a grace period.
Python's default for SIGTERM ends the process at once with no word (exit
143); for SIGINT it raises ``KeyboardInterrupt`` wherever the main thread
is, with a traceback. :func:`stop_on_signals` turns either into
:class:`TrainingStopped` raised in the main thread, so the run unwinds
(hooks' files closed, the work_dir lock released), one log line says where
it stopped and which checkpoint ``--resume`` continues from, and the tool
exits with the conventional ``128 + signal`` status. Further signals while
it unwinds are ignored (SIGKILL still ends it).

A checkpoint save runs :func:`uninterrupted`: a signal that arrives during
it stops the run when the save is complete (checkpoint, ``last_checkpoint``
and pruning), so ``--resume`` continues from the checkpoint just written.
Raised inside the save it would be caught on the way: mmengine formats the
config for the checkpoint with a bare ``except:`` that turned the stop into
"SyntaxError: Failed to format the config file". Outside a save nothing is
lost either: checkpoints are written atomically, so a stop leaves the
previous one whole.

Slurm's ``scancel`` signals every process of the step, DataLoader workers
included (Ctrl-C in a terminal signals the whole foreground process group
alike); a worker that dies of the signal makes torch raise ``RuntimeError:
DataLoader worker (pid N) is killed by signal: Terminated`` (``Interrupt``)
in the main process, possibly before the main process's own signal
arrives. :func:`as_stop` reads that error as the same stop.
"""
import os
import signal
from contextlib import contextmanager
from typing import Iterator, Optional, Tuple

__all__ = [
    'STOP_SIGNALS', 'StopState', 'TrainingStopped', 'as_interruption',
    'as_stop', 'stop_on_signals', 'uninterrupted'
]

#: The signals that stop training cleanly: SIGTERM (Slurm, Kubernetes) and
#: SIGINT (Ctrl-C).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


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
    (None while none arrived); ``pending`` while its stop waits for an
    :func:`uninterrupted` block to end.

    Args:
        signals (tuple[int]): The signals handled.
    """

    def __init__(self, signals: Tuple[int, ...] = STOP_SIGNALS):
        self.signals = tuple(signals)
        self.signum: Optional[int] = None
        self.pending = False
        self.uninterrupted = 0  # depth of uninterrupted() blocks

    def handler(self, signum, frame):
        if self.signum is not None:  # a later one: the stop is under way
            return
        self.signum = signum
        _expect_worker_deaths()
        if self.uninterrupted:
            self.pending = True  # raised when the block ends
        else:
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


# Signals the innermost stop_on_signals block handles now, and its state.
_handled: Tuple[int, ...] = ()
_active: Optional[StopState] = None
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
    global _handled, _active
    for s in _handled:
        signal.signal(s, signal.SIG_DFL)
    _handled, _active = (), None
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
    if state.signum is None and isinstance(err, RuntimeError):
        # torch: "DataLoader worker (pid N) is killed by signal: Interrupt"
        for signum in state.signals:
            if f'is killed by signal: {signal.strsignal(signum)}' in str(err):
                state.signum = signum
    if state.signum is None:
        return None
    _expect_worker_deaths()
    return TrainingStopped(state.signum)


def as_interruption(err: BaseException) -> Optional[TrainingStopped]:
    """``err`` as the stop it stands for when a signal ended a tool outside
    training: a :class:`TrainingStopped`, or Ctrl-C's ``KeyboardInterrupt``,
    also one that code on the way re-raised as another error (mmengine's
    config formatting turns it into a ``SyntaxError``).

    Args:
        err (BaseException): What ended the tool.

    Returns:
        TrainingStopped | None: The stop, else None.
    """
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, TrainingStopped):
            return err
        if isinstance(err, KeyboardInterrupt):
            return TrainingStopped(signal.SIGINT)
        err = err.__cause__ or err.__context__
    return None


@contextmanager
def stop_on_signals(
        signals: Tuple[int, ...] = STOP_SIGNALS) -> Iterator[StopState]:
    """Raise :class:`TrainingStopped` in the main thread on the first of
    ``signals`` while the block runs (at the end of an
    :func:`uninterrupted` block where one runs); ignore the ones after it
    (the previous handlers are put back when the block ends).

    Args:
        signals (tuple[int]): Signals to catch. Default:
            :data:`STOP_SIGNALS` (SIGTERM, SIGINT).

    Yields:
        StopState: Which signal arrived (for :func:`as_stop`).
    """
    global _handled, _active
    state = StopState(signals)
    previous = {s: signal.signal(s, state.handler) for s in signals}
    outer = _handled, _active
    _handled, _active = tuple(signals), state
    try:
        yield state
    finally:
        _handled, _active = outer
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextmanager
def uninterrupted() -> Iterator[None]:
    """Let the block finish before a stop signal takes effect: one that
    arrives inside raises :class:`TrainingStopped` when the block has
    ended (without an error of its own). Blocks nest; outside
    :func:`stop_on_signals` this does nothing.

    Yields:
        None
    """
    state = _active
    if state is None:
        yield
        return
    state.uninterrupted += 1
    try:
        yield
    finally:
        state.uninterrupted -= 1
    if state.pending and not state.uninterrupted:
        state.pending = False
        raise TrainingStopped(state.signum)
