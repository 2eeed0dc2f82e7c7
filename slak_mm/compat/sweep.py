"""Run the trials of many families, each in a child process of its own.

A config that hangs, crashes the interpreter or eats the memory must not
stop the sweep or take the machine down: each trial runs in a process
forked from this one (the frameworks are imported once, here, so a child
starts in milliseconds), with a wall-time limit (killed past it) and an
address-space limit (``RLIMIT_AS``: allocations past it fail inside the
child with ``MemoryError`` / ``bad_alloc``). At most ``jobs`` run at once.
The child writes its :class:`.trial.Result` as JSON; a child that dies
first is reported with how it died.
"""
import faulthandler
import importlib
import json
import multiprocessing
import os
import os.path as osp
import resource
import shutil
import signal
import sys
import time
from fnmatch import fnmatch
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from slak_mm.fileio import write_json_atomic
from slak_mm.ops import configure
from .data import generate_sweep_data
from .families import PACKAGES, Family, packaged_families, representative
from .result import Result
from .trial import run_trial

__all__ = ['RESULTS_FILE', 'import_frameworks', 'run_families', 'run_sweep']

#: The rows of the last runs, in the sweep's work_dir.
RESULTS_FILE = 'results.json'

#: Seconds between looks at the children.
_POLL = 0.2


def import_frameworks(packages: Sequence[str]) -> None:
    """Import every module of the frameworks (their registries filled), so
    that the forked children do not import them again.

    Args:
        packages (Sequence[str]): Framework module names.
    """
    for package in packages:
        importlib.import_module(f'{package}.utils').register_all_modules(
            init_default_scope=False)


def _address_space() -> int:
    """This process's mapped address space in bytes (the frameworks and
    torch map about 4 GB before any work)."""
    with open('/proc/self/statm') as f:
        return int(f.read().split()[0]) * resource.getpagesize()


def _child(family: Family, roots: Dict[str, str], work_dir: str,
           limit_bytes: int) -> None:
    """The child's body: limits, its own log, the trial, its result file."""
    os.makedirs(work_dir, exist_ok=True)
    resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))
    log = os.open(
        osp.join(work_dir, 'log.txt'), os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
        0o644)
    os.dup2(log, 1)  # C level (torch, mmcv)
    os.dup2(log, 2)
    # Python level too: the parent's streams may not be the fds (pytest)
    sys.stdout = sys.stderr = open(log, 'w', buffering=1, closefd=False)
    faulthandler.enable(sys.stderr)  # a crash's stacks into the log too
    # compatibility, not speed: no measuring of the depthwise convs (each
    # new shape stalled a child ~0.2 s), the stored choice or the heuristic
    configure(tune=False)
    result = run_trial(family.package, family.config, roots, work_dir,
                       family.label)
    write_json_atomic(result.to_dict(), osp.join(work_dir, 'result.json'))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # no atexit handlers of the parent's state


def _died(family: Family, code: Optional[int], seconds: float, timed_out: bool,
          timeout: float) -> Result:
    if timed_out:
        message = f'killed after the {timeout:.0f} s time limit'
    elif code is not None and code < 0:
        message = f'the process died of signal {signal.Signals(-code).name}'
    else:
        message = f'the process exited with status {code} and no result'
    return Result(
        family=family.label,
        config=family.config,
        stage='process',
        message=message,
        seconds=round(seconds, 1))


def _not_run(family: Family) -> Result:
    """A family without a config to try."""
    return Result(
        family=family.label,
        config='',
        outcome='fail' if family.note.startswith('no config loads') else 'n/a',
        stage='config',
        message=family.note)


def run_families(
        families: List[Family],
        roots: Dict[str, str],
        work_root: str,
        jobs: int = 2,
        timeout: float = 600.,
        memory_gb: float = 6.,
        report: Callable[[Result, int, int], None] = None) -> List[Result]:
    """Pick each family's config and run its trial in a child process.

    Args:
        families (list[Family]): The families
            (:func:`.families.packaged_families`).
        roots (dict[str, str]): The synthetic datasets
            (:func:`.data.generate_sweep_data`).
        work_root (str): Each family's folder goes here
            (``package__name/``: the user's config, ``log.txt``, the run's
            logs, ``result.json``; the checkpoint is deleted once tested).
        jobs (int): Children at once.
        timeout (float): Seconds a child may run before it is killed.
        memory_gb (float): Address space a child may add to what the
            frameworks map already (``RLIMIT_AS``).
        report (callable, optional): Called with each result, its number
            and the count, as results come in.

    Returns:
        list[Result]: One per family, in the families' order.
    """
    import_frameworks(sorted({f.package for f in families}))
    limit = _address_space() + int(memory_gb * 2**30)
    fork = multiprocessing.get_context('fork')
    results: Dict[int, Result] = {}
    pending = list(enumerate(families))
    running = {}  # index -> (process, start, work_dir)

    def done(index: int, result: Result) -> None:
        results[index] = result
        if report:
            report(result, len(results), len(families))

    while pending or running:
        while pending and len(running) < jobs:
            index, family = pending.pop(0)
            if family.config is None:
                representative(family)
            if family.config is None:
                done(index, _not_run(family))
                continue
            work_dir = osp.join(work_root, f'{family.package}__{family.name}')
            shutil.rmtree(work_dir, ignore_errors=True)  # an earlier sweep's
            proc = fork.Process(
                target=_child, args=(family, roots, work_dir, limit))
            proc.start()
            running[index] = (proc, time.monotonic(), work_dir)
        time.sleep(_POLL)
        for index, (proc, start, work_dir) in list(running.items()):
            seconds = time.monotonic() - start
            timed_out = proc.is_alive() and seconds > timeout
            if timed_out:
                proc.kill()
            elif proc.is_alive():
                continue
            proc.join()
            del running[index]
            path = osp.join(work_dir, 'result.json')
            if not timed_out and osp.exists(path):
                with open(path) as f:
                    done(index, Result(**json.load(f)))
            else:
                done(
                    index,
                    _died(families[index], proc.exitcode, seconds, timed_out,
                          timeout))
    return [results[i] for i in range(len(families))]


def run_sweep(
    work_dir: str,
    packages: Sequence[str] = PACKAGES,
    patterns: Sequence[str] = (),
    jobs: int = 2,
    timeout: float = 600.,
    memory_gb: float = 6.,
    report: Callable[[Result, int, int], None] = None
) -> Tuple[List[Result], bool]:
    """The sweep: every family of ``packages`` (or those matching
    ``patterns``), the synthetic data written first.

    The rows are kept in ``work_dir/results.json``: a run of some families
    replaces their rows there and keeps the others, so one family can be
    rerun after a fix. The trials are forked from this process: call it
    from one that has not run a backward pass (``tools/compat_sweep.py``),
    since torch refuses autograd in a fork of such a process.

    Args:
        work_dir (str): Data, one folder per family, ``results.json``.
        packages (Sequence[str]): Frameworks to sweep.
        patterns (Sequence[str]): ``fnmatch`` patterns of
            ``package/family`` (``'mmdet/yolo*'``); empty: all.
        jobs (int): Trials at once.
        timeout (float): Seconds per trial.
        memory_gb (float): Address space per trial on top of the
            frameworks'.
        report (callable, optional): Called with each result as it comes.

    Returns:
        tuple[list[Result], bool]: Every row known (this run's and kept
        ones) in table order, and whether every family has a row.
    """
    families = [
        f for f in packaged_families(packages)
        if not patterns or any(fnmatch(f.label, p) for p in patterns)
    ]
    if not families:
        raise ValueError(f'no packaged family of {list(packages)} matches '
                         f'{list(patterns)}')
    # absolute: the trials join paths under the data roots (proposal files)
    work_dir = osp.abspath(work_dir)
    os.makedirs(work_dir, exist_ok=True)
    roots = generate_sweep_data(osp.join(work_dir, 'data'))
    fresh = run_families(families, roots, work_dir, jobs, timeout, memory_gb,
                         report)
    path = osp.join(work_dir, RESULTS_FILE)
    rows = {}
    if osp.exists(path):
        with open(path) as f:
            rows = {r['family']: Result(**r) for r in json.load(f)}
    rows.update((r.family, r) for r in fresh)
    order = [f.label for f in packaged_families(packages)]
    results = [rows[label] for label in order if label in rows]
    write_json_atomic([r.to_dict() for r in results], path, indent=1)
    return results, len(results) == len(order)
