"""Running the repository's command-line tools from the tests.

``run_tool`` runs a tool in this process by default: its command line
(``sys.argv``), its exit (``SystemExit`` or an uncaught exception, as the
interpreter would report them) and everything it writes to stdout and stderr
(Python and C level), in the repository root, with one OpenMP thread. That
saves the 10-15 s import of torch + mmdet + mmseg + timm a new process pays.
What a run changes in this process is put back afterwards: the environment,
the working directory, ``sys.argv`` / ``sys.path``, warning filters, logging
handlers, SIGTERM / SIGINT handlers, thread counts and random states,
mmengine's global instances (MMLogger, MessageHub, DefaultScope,
Visualizer), which the run does not see either, as in a new process, and
the settings of ``slak_mm.ops``, which the run reads from its environment
as a new process would.

``fresh_process=True`` (and every ``.sh`` script) runs a real process: for
the tests where the process boundary is the point (kill -9, several ranks,
a clean interpreter) and for one smoke run per tool.
"""
import contextlib
import logging
import multiprocessing
import os
import os.path as osp
import random
import runpy
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass, field
from typing import List

from slak_mm.ops import settings as ops_settings
from tests.common import ROOT

__all__ = [
    'ROOT', 'ToolResult', 'error_line', 'refusal', 'run_process', 'run_python',
    'run_tool', 'start_tool'
]


@dataclass
class ToolResult:
    """What a tool run left: like ``subprocess.CompletedProcess``.

    Attributes:
        args (list): The command line.
        returncode (int): Exit status; ``-N`` for a process killed by
            signal N.
        stdout (str): Everything written to stdout.
        stderr (str): Everything written to stderr.
        in_process (bool): Whether it ran in this process.
    """
    args: List[str]
    returncode: int
    stdout: str
    stderr: str
    in_process: bool = field(default=True)

    @property
    def log(self) -> str:
        """stdout + stderr."""
        return self.stdout + self.stderr


def run_tool(*args, timeout=900, expect_ok=True, fresh_process=False, **env):
    """Run ``python ARGS`` (``bash ARGS`` for a ``.sh`` script) in the
    repository root with one OpenMP thread.

    Args:
        *args (str): The tool (a path relative to the repository root or
            absolute) and its arguments.
        timeout (float): Seconds before a new process is killed and the test
            fails (in-process runs are not interrupted).
        expect_ok (bool): Assert a zero exit status (showing the output's
            tail otherwise).
        fresh_process (bool): Run a new interpreter with this checkout on
            ``PYTHONPATH`` instead of running in this process.
        **env (str): Extra environment variables, for this run only.

    Returns:
        ToolResult: Exit status, stdout, stderr and ``log`` (both).
    """
    args = [str(a) for a in args]
    if fresh_process or args[0].endswith('.sh'):
        cmd = ['bash' if args[0].endswith('.sh') else sys.executable, *args]
        result = run_process(cmd, timeout=timeout, **env)
    else:
        result = _run_here(args, env)
    if expect_ok:
        assert result.returncode == 0, (
            result.stdout[-3000:] + result.stderr[-3000:])
    return result


def refusal(*args):
    """Run a tool that must refuse; the one ``error: ...`` line it ended
    with (the test fails showing the output otherwise)."""
    error = error_line(run_tool(*args, expect_ok=False))
    assert error.startswith('error: '), error
    return error


def error_line(result):
    """The one ``error: ...`` line a refused tool run ended with (exit
    status 1); otherwise its exit status and output tail, which no check of
    the form ``error.startswith('error: ')`` accepts."""
    lines = result.stderr.strip().splitlines()
    if result.returncode == 1 and lines and lines[-1].startswith(
            'error: ') and 'Traceback' not in lines[-1]:
        return lines[-1]
    return f'exit {result.returncode}, output: {result.log[-3000:]}'


def run_process(cmd, cwd=ROOT, timeout=600, pythonpath=ROOT, **env):
    """Run ``cmd`` as a new process with one OpenMP thread.

    Args:
        cmd (list[str]): The command line.
        cwd (str): Its working directory. Default: the repository root.
        timeout (float): Seconds before it is killed and the test fails,
            showing its output and (a Python process) the stacks of its
            threads.
        pythonpath (str, optional): ``PYTHONPATH``; None keeps this
            process's. Default: the repository root (this checkout).
        **env (str): Extra environment variables.

    Returns:
        ToolResult: Exit status, stdout, stderr.
    """
    with subprocess.Popen([str(c) for c in cmd],
                          cwd=cwd,
                          env=_process_env(pythonpath, env),
                          stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE,
                          text=True) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            # SIGABRT: faulthandler (PYTHONFAULTHANDLER) prints where every
            # thread of a Python process is, then it dies
            proc.send_signal(signal.SIGABRT)
            try:
                stdout, stderr = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                stdout, stderr = proc.communicate()
            raise AssertionError(
                f'{cmd} did not end within {timeout} s; its output:\n'
                f'{stdout[-3000:]}\n{stderr[-6000:]}') from None
    return ToolResult(list(cmd), proc.returncode, stdout, stderr, False)


def start_tool(*args, log, new_session=False, **env):
    """Start ``python ARGS`` as :func:`run_tool` with ``fresh_process=True``
    would run it, without waiting: a long run beside the tests.

    Args:
        *args (str): The tool and its arguments.
        log (file): Where its stdout and stderr go.
        new_session (bool): Start it in a session (and process group) of
            its own, as a job: ``os.killpg(proc.pid, ...)`` signals it with
            its DataLoader workers.
        **env (str): Extra environment variables.

    Returns:
        subprocess.Popen: The process.
    """
    return subprocess.Popen([sys.executable, *map(str, args)],
                            cwd=ROOT,
                            env=_process_env(ROOT, env),
                            stdout=log,
                            stderr=subprocess.STDOUT,
                            start_new_session=new_session)


def _process_env(pythonpath, env):
    env = dict(
        os.environ,
        PYTHON=sys.executable,
        OMP_NUM_THREADS='1',
        PYTHONFAULTHANDLER='1',
        **env)
    if pythonpath is not None:
        env['PYTHONPATH'] = pythonpath
    return env


def run_python(code, **kwargs):
    """``python -c CODE`` in a new interpreter (:func:`run_process`'s
    arguments): for checks that need a clean one (imports, import-time
    effects)."""
    return run_process([sys.executable, '-c', code], **kwargs)


# (second, work_dir) of the last in-process run: mmengine names a run's log
# folder WORK_DIR/YYYYMMDD_HHMMSS by the second it starts in.
_last_start = [(0, None)]


def _run_here(args, env):
    script = args[0] if osp.isabs(args[0]) else osp.join(ROOT, args[0])
    work_dir = args[args.index('--work-dir') +
                    1] if '--work-dir' in args[:-1] else None
    second = int(time.time())
    if work_dir and _last_start[0] == (second, work_dir):
        time.sleep(second + 1 - time.time())  # not the last run's folder
    _last_start[0] = (int(time.time()), work_dir)
    with _restored_state(), _captured_output() as output:
        os.environ.update(OMP_NUM_THREADS='1', **env)
        ops_settings.reload()  # read at its first use, as in a new process
        os.chdir(ROOT)
        sys.argv = [script, *args[1:]]
        sys.path.insert(0, osp.dirname(script))  # as `python SCRIPT` does
        _fresh_warnings()
        import torch
        torch.set_num_threads(1)
        returncode = 0
        try:
            runpy.run_path(script, run_name='__main__')
        except SystemExit as exit_:
            returncode = _exit_status(exit_.code)
        except Exception:  # the interpreter's report of an uncaught error
            traceback.print_exc()
            returncode = 1
    return ToolResult([sys.executable, *args], returncode, output['stdout'],
                      output['stderr'], True)


def _exit_status(code):
    """``sys.exit(code)`` as the interpreter turns it into an exit
    status (a message goes to stderr, status 1)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _fresh_warnings():
    """The warning filters of a new interpreter, printed to stderr (pytest
    records them instead), each shown again as in a new process."""
    warnings.resetwarnings()  # also forgets what was shown already
    warnings.showwarning = _print_warning
    for category in (ResourceWarning, ImportWarning, PendingDeprecationWarning,
                     DeprecationWarning):
        warnings.filterwarnings('ignore', category=category)
    warnings.filterwarnings(
        'default', category=DeprecationWarning, module='__main__')


def _print_warning(message, category, filename, lineno, file=None, line=None):
    sys.stderr.write(
        warnings.formatwarning(message, category, filename, lineno, line))


@contextlib.contextmanager
def _captured_output():
    """stdout and stderr of this process, at the file descriptors (C-level
    writes too) and ``sys.stdout`` / ``sys.stderr``; the texts are in the
    yielded dict after the block."""
    output = {}
    saved_streams = sys.stdout, sys.stderr
    for stream in saved_streams:
        stream.flush()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        saved_fds = os.dup(1), os.dup(2)
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        run_streams = tuple(
            open(
                fd,
                'w',
                buffering=1,
                encoding='utf-8',
                errors='backslashreplace',
                closefd=False) for fd in (1, 2))
        sys.stdout, sys.stderr = run_streams
        try:
            yield output
        finally:
            for stream in run_streams:
                stream.flush()
                stream.close()  # closefd=False: fds 1 and 2 stay open
            sys.stdout, sys.stderr = saved_streams
            _redirect_log_handlers(run_streams, saved_streams)
            os.dup2(saved_fds[0], 1)
            os.dup2(saved_fds[1], 2)
            for fd in saved_fds:
                os.close(fd)
            for name, file in (('stdout', out), ('stderr', err)):
                file.seek(0)
                output[name] = file.read().decode('utf-8', 'backslashreplace')


def _redirect_log_handlers(old_streams, new_streams):
    """Point logging handlers a run left on its (closed) streams at this
    process's (a library imported during the run may add one)."""
    loggers = [logging.getLogger()] + [
        logger for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    for logger in loggers:
        for handler in logger.handlers:
            if (isinstance(handler, logging.StreamHandler)
                    and handler.stream in old_streams):
                # not setStream(): it flushes the closed stream
                handler.stream = new_streams[old_streams.index(handler.stream)]


def _manager_classes():
    """mmengine's ManagerMixin classes (each keeps its named instances)."""
    from mmengine.utils import ManagerMixin
    found, todo = [], [ManagerMixin]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


@contextlib.contextmanager
def _fresh_managers():
    """An empty set of mmengine global instances for the run; afterwards the
    run's are dropped (their log files closed) and the old ones are back."""
    saved = {}
    for cls in _manager_classes():
        saved[cls] = dict(cls._instance_dict)
        cls._instance_dict.clear()
    try:
        yield
    finally:
        from mmengine.logging import MMLogger
        for cls in _manager_classes():
            for instance in cls._instance_dict.values():
                if isinstance(instance, MMLogger):
                    for handler in list(instance.handlers):
                        instance.removeHandler(handler)
                        handler.close()
            cls._instance_dict.clear()
            cls._instance_dict.update(saved.get(cls, {}))


@contextlib.contextmanager
def _restored_state():
    """Put back what a tool run changes in this process."""
    import cv2
    import numpy as np
    import torch
    environ = dict(os.environ)
    cwd = os.getcwd()
    argv, path = sys.argv[:], sys.path[:]
    root = logging.getLogger()
    root_state = root.level, root.handlers[:]
    threads, cv2_threads = torch.get_num_threads(), cv2.getNumThreads()
    rng = (random.getstate(), np.random.get_state(),
           torch.random.get_rng_state())
    torch_flags = (torch.are_deterministic_algorithms_enabled(),
                   torch.is_deterministic_algorithms_warn_only_enabled(),
                   torch.backends.cudnn.benchmark,
                   torch.backends.cudnn.deterministic,
                   torch.get_default_dtype())
    start_method = multiprocessing.get_start_method(allow_none=True)
    # (not SIGCHLD: torch sets its DataLoader handler once per process)
    handlers = {
        s: signal.getsignal(s)
        for s in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        with warnings.catch_warnings(), _fresh_managers(), \
                ops_settings.use():
            yield
    finally:
        for name in set(os.environ) - set(environ):
            del os.environ[name]
        os.environ.update(environ)
        os.chdir(cwd)
        sys.argv[:], sys.path[:] = argv, path
        root.setLevel(root_state[0])
        root.handlers[:] = root_state[1]
        torch.set_num_threads(threads)
        cv2.setNumThreads(cv2_threads)
        random.setstate(rng[0])
        np.random.set_state(rng[1])
        torch.random.set_rng_state(rng[2])
        torch.use_deterministic_algorithms(
            torch_flags[0], warn_only=torch_flags[1])
        torch.backends.cudnn.benchmark = torch_flags[2]
        torch.backends.cudnn.deterministic = torch_flags[3]
        torch.set_default_dtype(torch_flags[4])
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
        if multiprocessing.get_start_method(allow_none=True) != start_method:
            multiprocessing.set_start_method(start_method, force=True)
