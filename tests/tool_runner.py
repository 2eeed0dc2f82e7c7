"""Running the repository's command-line tools from the tests."""
import os
import os.path as osp
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def run_tool(*args, timeout=2400, expect_ok=True, **env):
    """Run ``python ARGS`` (``bash ARGS`` for a ``.sh`` script) in the
    repository root with this checkout on ``PYTHONPATH`` and one OpenMP
    thread (steady on a shared CPU).

    Args:
        *args (str): The tool and its arguments.
        timeout (float): Seconds before the test fails.
        expect_ok (bool): Assert a zero exit status (showing the output's
            tail otherwise).
        **env (str): Extra environment variables.

    Returns:
        subprocess.CompletedProcess: With ``log`` = stdout + stderr.
    """
    cmd = ['bash', *args
           ] if args[0].endswith('.sh') else [sys.executable, *args]
    env = dict(
        os.environ,
        PYTHONPATH=ROOT,
        PYTHON=sys.executable,
        OMP_NUM_THREADS='1',
        **env)
    proc = subprocess.run(
        cmd,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout)
    proc.log = proc.stdout + proc.stderr
    if expect_ok:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc
