"""SIGTERM (what Slurm and Kubernetes send first) and SIGINT (Ctrl-C) stop
a training run cleanly: one log line naming the checkpoint ``--resume``
continues from, exit status 128 + signal, the checkpoint whole; a signal
during a checkpoint save lets the save finish. Its own process where a
signal to the process is the point."""
import multiprocessing
import operator
import os
import signal
import sys
import time

import pytest
from mmengine.config import Config

from slak_mm.checkpoint import checkpoint_problem
from slak_mm.cli import run_cli
from slak_mm.engine.stop_signals import (TrainingStopped, stop_on_signals,
                                         uninterrupted)
from tests.common import DEMO_CONFIG as DEMO
from tests.crash_points import CRASH_ENV, SIGNAL_ENV
from tests.tool_runner import start_tool


@pytest.mark.parametrize(
    'signum,inside_save', [(signal.SIGTERM, False), (signal.SIGINT, True)],
    ids=['SIGTERM_from_outside', 'SIGINT_inside_a_save'])
def test_signal_to_the_job_stops_training_cleanly(small_ade_root, tmp_path,
                                                  signum, inside_save):
    """To the whole process group (workers too, as ``scancel`` and Ctrl-C
    in a terminal signal every process): SIGTERM from outside, wherever the
    run is; SIGINT sent from inside the save of ``iter_2.pth`` (its temp
    file written, not yet renamed), which finishes before the run stops."""
    name = signal.Signals(signum).name
    work_dir = tmp_path / 'work'
    log_path = tmp_path / 'train.log'
    env = {CRASH_ENV: 'temp_write:iter_2.pth', SIGNAL_ENV: name} \
        if inside_save else {}
    config = tmp_path / 'demo.py'  # custom_imports are read from the file
    config.write_text(
        f'_base_ = [{DEMO!r}]\n'
        "custom_imports = dict(imports=['slak_mm', 'tests.crash_points'], "
        'allow_failed_imports=False)\n')
    with open(log_path, 'w') as log:
        proc = start_tool(
            'tools/train.py',
            config,
            '--work-dir',
            work_dir,
            '--cfg-options',
            f'data_root={small_ade_root}',
            'train_cfg.max_iters=1000',
            'train_cfg.val_interval=1000',
            'default_hooks.checkpoint.interval=1',
            'train_dataloader.num_workers=1',
            log=log,
            new_session=True,
            **env)
        try:
            deadline = time.time() + 600
            while not inside_save and not (work_dir / 'iter_1.pth').exists():
                assert proc.poll() is None, log_path.read_text()[-3000:]
                assert time.time() < deadline, 'no checkpoint in 10 min'
                time.sleep(0.5)
            if not inside_save:
                os.killpg(proc.pid, signum)
            status = proc.wait(timeout=300)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    text = log_path.read_text()
    assert status == 128 + signum, text[-3000:]
    lines = [ln for ln in text.splitlines() if f'{name} received' in ln]
    assert len(lines) == 1, text[-3000:]
    assert 'training stopped; --resume continues from' in lines[0]
    resume_from = lines[0].split('--resume continues from ')[1].strip()
    assert resume_from.startswith(str(work_dir / 'iter_'))
    assert checkpoint_problem(resume_from) is None
    if inside_save:  # the save that the signal landed in, complete
        assert resume_from == str(work_dir / 'iter_2.pth')
        assert (work_dir / 'last_checkpoint').read_text() == resume_from
        assert not [p for p in os.listdir(work_dir) if p.endswith('.tmp')]
    assert 'Traceback' not in text and 'SyntaxError' not in text, text[-3000:]


@pytest.mark.parametrize(
    'signum', [signal.SIGTERM, signal.SIGINT], ids=['SIGTERM', 'SIGINT'])
def test_signal_while_the_config_is_formatted_waits_for_the_save(signum):
    """A save formats the config (mmengine's ``Config.pretty_text``, yapf
    inside a bare ``except:``). A signal landing there stopped the run with
    "SyntaxError: Failed to format the config file"; inside
    :func:`uninterrupted` (every save of ``SafeCheckpointHook``) the text is
    made and the stop raised after it."""
    cfg = Config(dict(model=dict(type='SLaK', kernel_size=[51, 49, 47, 13])))
    sent = []

    def signal_inside_yapf(frame, event, arg):
        if event == 'call' and frame.f_code.co_name == 'FormatCode' and \
                not sent:
            sent.append(signum)
            os.kill(os.getpid(), signum)  # handled at the next bytecode

    texts = []
    with stop_on_signals() as state:
        with pytest.raises(TrainingStopped) as stop:
            with uninterrupted():
                sys.setprofile(signal_inside_yapf)
                try:
                    texts.append(cfg.pretty_text)
                finally:
                    sys.setprofile(None)
    assert sent == [signum] and state.signum == signum
    assert stop.value.exit_status == 128 + signum
    assert "type='SLaK'" in texts[0] and '47,' in texts[0]  # the whole text


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


def test_ctrl_c_outside_training_is_one_line(capsys):
    """Ctrl-C while a tool loads or tests (no training to stop): one line,
    exit 130; also when code on the way re-raised it as another error
    (mmengine's config formatting: a SyntaxError)."""

    def interrupted():
        raise KeyboardInterrupt

    def formatting_interrupted():
        try:
            interrupted()
        except:  # noqa: E722  (as mmengine's Config.pretty_text)
            raise SyntaxError('Failed to format the config file')

    for main in (interrupted, formatting_interrupted):
        with pytest.raises(SystemExit) as end:
            run_cli(main)
        assert end.value.code == 128 + signal.SIGINT
        assert capsys.readouterr().err == 'SIGINT received: stopped\n'
