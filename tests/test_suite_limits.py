"""The suite's own limit: a test that hangs fails by its name and the run
goes on to the next test (setup.cfg's pytest-timeout settings, the limit
lowered here), instead of eating CI's time budget. A new pytest session is
the point, so it runs in a process of its own."""
import configparser
import os.path as osp
import sys
import time

from tests.common import ROOT
from tests.tool_runner import run_process

HANGING = '''
import threading


def test_hangs():
    threading.Event().wait()  # as a lock a killed worker held


def test_after_it():
    assert True
'''


def test_a_hanging_test_fails_by_name_and_the_run_goes_on(tmp_path):
    config = configparser.ConfigParser()
    config.read(osp.join(ROOT, 'setup.cfg'))
    assert int(config['tool:pytest']['timeout']) <= 900
    (tmp_path / 'test_hang.py').write_text(HANGING)
    start = time.monotonic()
    proc = run_process([
        sys.executable, '-m', 'pytest', '-c',
        osp.join(ROOT, 'setup.cfg'), '--rootdir',
        str(tmp_path), '-p', 'no:cacheprovider', '-o', 'timeout=3',
        str(tmp_path / 'test_hang.py')
    ],
                       cwd=str(tmp_path),
                       timeout=120)
    assert time.monotonic() - start < 60
    assert proc.returncode == 1, proc.stdout[-2000:]
    assert 'FAILED test_hang.py::test_hangs - Failed: Timeout' in proc.stdout
    assert '1 failed, 1 passed' in proc.stdout
