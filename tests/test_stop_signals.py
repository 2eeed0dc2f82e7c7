"""SIGTERM (what Slurm and Kubernetes send first) stops a training run
cleanly: one log line naming the checkpoint ``--resume`` continues from,
exit status 143, the checkpoint whole. Its own process: a signal is the
point."""
import multiprocessing
import operator
import os
import signal
import time

from slak_mm.checkpoint import checkpoint_problem
from slak_mm.engine.stop_signals import stop_on_signals
from tests.common import DEMO_CONFIG as DEMO
from tests.tool_runner import start_tool


def test_sigterm_to_the_job_stops_training_cleanly(small_ade_root, tmp_path):
    data = small_ade_root
    work_dir = tmp_path / 'work'
    log_path = tmp_path / 'train.log'
    with open(log_path, 'w') as log:
        # workers too, as scancel signals every process of the job step
        proc = start_tool(
            'tools/train.py',
            DEMO,
            '--work-dir',
            work_dir,
            '--cfg-options',
            f'data_root={data}',
            'train_cfg.max_iters=1000',
            'train_cfg.val_interval=1000',
            'default_hooks.checkpoint.interval=1',
            'train_dataloader.num_workers=1',
            log=log,
            new_session=True)
        try:
            deadline = time.time() + 600
            while not (work_dir / 'iter_1.pth').exists():
                assert proc.poll() is None, log_path.read_text()[-3000:]
                assert time.time() < deadline, 'no checkpoint in 10 min'
                time.sleep(0.5)
            os.killpg(proc.pid, signal.SIGTERM)
            status = proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    text = log_path.read_text()
    assert status == 128 + signal.SIGTERM, text[-3000:]
    lines = [ln for ln in text.splitlines() if 'SIGTERM received' in ln]
    assert len(lines) == 1, text[-3000:]
    assert 'training stopped at iteration' in lines[0]
    resume_from = lines[0].split('--resume continues from ')[1].strip()
    assert resume_from.startswith(str(work_dir / 'iter_'))
    assert checkpoint_problem(resume_from) is None
    assert 'Traceback' not in text


def test_forked_child_dies_of_sigterm_as_before():
    """Children forked while the handler is set (DataLoader workers,
    mmdet's mAP pool, which terminates its workers with SIGTERM) are not
    stopped by it: they die of the signal, also of one sent at once after
    the fork; the parent trains on."""
    with stop_on_signals() as state:
        child = os.fork()
        if child == 0:  # pragma: no cover - the child
            time.sleep(60)
            os._exit(0)
        os.kill(child, signal.SIGTERM)
        _, status = os.waitpid(child, 0)
        assert os.WIFSIGNALED(status)
        assert os.WTERMSIG(status) == signal.SIGTERM
        assert state.signum is None


def test_pool_terminated_as_it_starts_does_not_hang():
    """mmdet's VOC mAP makes a ``Pool(4)``, closes it and drops it; the
    pool's finalizer SIGTERMs workers that may still be starting. Was: a
    worker whose SIGTERM came before CPython's after-fork reset lost it and
    waited forever on the queue lock of a killed sibling; training hung in
    ``Pool.join`` (a CI run stopped after 40 minutes). Before the fix a loop
    of such pools hung by its 3rd pool, 5 runs in 5."""

    def hung(signum, frame):
        for child in multiprocessing.active_children():
            child.kill()
        raise TimeoutError('Pool.terminate hung: a worker ignored SIGTERM')

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(60)
    try:
        with stop_on_signals() as state:
            for _ in range(10):
                pool = multiprocessing.get_context('fork').Pool(4)
                assert pool.starmap(operator.add, [(1, 2)] * 2) == [3, 3]
                pool.close()
                pool.terminate()  # what the finalizer does
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert state.signum is None
