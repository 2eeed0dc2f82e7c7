"""The in-process tool runner reports a run as a new process would and puts
back what the run changed."""
import logging
import os
import sys
import warnings

import pytest

from tests.tool_runner import ROOT, run_tool

SCRIPT = '''
import logging, os, sys, warnings
from mmengine.logging import MMLogger, print_log
print('out', sys.argv[1:], os.getcwd())
print_log('logged', logger='current')
os.environ['SLAK_MM_RUNNER_TEST'] = 'set by the tool'
os.environ.pop('SLAK_MM_RUNNER_GONE', None)
os.chdir('/')
sys.path.insert(0, '/nowhere')
warnings.warn('a tool warning')
os.write(2, b'fd-level\\n')
MMLogger.get_instance('runner_test_logger')
logging.getLogger('slak_mm_runner_test').addHandler(logging.StreamHandler())
action = os.environ.get('ACTION')
if action == 'exit_message':
    sys.exit('error: one line')
if action == 'exit_code':
    sys.exit(3)
if action == 'raise':
    raise RuntimeError('a bug')
'''


@pytest.fixture
def script(tmp_path):
    path = tmp_path / 'tool.py'
    path.write_text(SCRIPT)
    return str(path)


@pytest.mark.parametrize('action,code', [('ok', 0), ('exit_message', 1),
                                         ('exit_code', 3), ('raise', 1)])
def test_exit_status_and_output(script, action, code, monkeypatch):
    from mmengine.logging import MMLogger
    monkeypatch.setenv('SLAK_MM_RUNNER_GONE', 'kept')
    current = MMLogger.get_current_instance()
    path, cwd = sys.path[:], os.getcwd()
    with warnings.catch_warnings(record=True) as recorded:
        proc = run_tool(script, 'a', 'b', expect_ok=False, ACTION=action)
    assert proc.returncode == code and proc.in_process
    assert proc.stdout.startswith(f"out ['a', 'b'] {ROOT}\n")
    assert 'logged' in proc.stdout  # a fresh current logger, on this stdout
    assert 'UserWarning: a tool warning' in proc.stderr and not recorded
    assert 'fd-level' in proc.stderr
    if action == 'exit_message':
        assert proc.stderr.splitlines()[-1] == 'error: one line'
    if action == 'raise':
        assert 'Traceback' in proc.stderr
        assert proc.stderr.splitlines()[-1] == 'RuntimeError: a bug'
    # put back: environment, folder, sys.path, mmengine's loggers
    assert 'SLAK_MM_RUNNER_TEST' not in os.environ
    assert 'ACTION' not in os.environ
    assert os.environ['SLAK_MM_RUNNER_GONE'] == 'kept'
    assert os.getcwd() == cwd and sys.path == path
    assert MMLogger.get_current_instance() is current
    assert not MMLogger.check_instance_created('runner_test_logger')
    # a handler left on the run's stderr now writes to this process's
    handler = logging.getLogger('slak_mm_runner_test').handlers.pop()
    assert handler.stream is sys.stderr


def test_the_same_run_in_a_new_process(script):
    here = run_tool(script, 'a', expect_ok=False, ACTION='exit_message')
    there = run_tool(
        script,
        'a',
        expect_ok=False,
        fresh_process=True,
        ACTION='exit_message')
    assert not there.in_process
    assert here.returncode == there.returncode == 1
    assert here.stdout.splitlines()[0] == there.stdout.splitlines()[0]
    assert 'logged' in here.stdout and 'logged' in there.stdout
    assert here.stderr.splitlines()[-1] == there.stderr.splitlines()[-1]
    assert 'UserWarning: a tool warning' in there.stderr


def test_expect_ok_shows_the_output(script):
    with pytest.raises(AssertionError, match='error: one line'):
        run_tool(script, ACTION='exit_message')
