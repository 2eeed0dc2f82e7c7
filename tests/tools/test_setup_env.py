"""tools/setup_env.sh's install branches, run against a stub interpreter.

A user's machine has no prebuilt onedl-mmcv wheel, so the script builds the
PyPI source package; CI always finds the cached wheel and never took that
branch (a relative venv path broke it once, unseen). Here the venv's
``bin/python`` is a small stub that records every call and plays the part of
pip and the import checks, so the script's control flow runs in seconds
without downloading or compiling anything.
"""
import json
import os
import os.path as osp
import stat
import subprocess
import sys
import textwrap

from tests.common import free_port
from tests.tool_runner import ROOT

STUB = textwrap.dedent('''\
    #!{python}
    """Stub venv interpreter for tools/setup_env.sh (see the test)."""
    import json, os, re, sys, tarfile, io
    state = os.environ['STUB_STATE']
    args = sys.argv[1:]
    with open(os.path.join(state, 'calls.jsonl'), 'a') as f:
        f.write(json.dumps(dict(cwd=os.getcwd(), args=args)) + '\\n')
    built = os.path.join(state, 'mmcv_built')
    if args[:1] == ['-c']:
        code = args[1]
        if 'mmcv.ops' in code:
            sys.exit(0 if os.path.exists(built) else 1)
        if 'torch.__version__' in code:  # "is torch >= 2.14?"
            sys.exit(0 if os.environ.get('STUB_TORCH_NEW', '1') == '1' else 1)
        if 'import slak_mm' in code:
            print('[setup_env] ready: stub')
        sys.exit(0)
    if args[:2] == ['-m', 'pip']:
        if 'download' in args:  # a minimal sdist like onedl-mmcv's
            dest = args[args.index('-d') + 1]
            setup = b"extra_compile_args = ['-std=c++17']\\n"
            with tarfile.open(os.path.join(dest, 'onedl_mmcv-2.3.6.tar.gz'),
                              'w:gz') as tar:
                info = tarfile.TarInfo('onedl_mmcv-2.3.6/setup.py')
                info.size = len(setup)
                tar.addfile(info, io.BytesIO(setup))
        elif 'install' in args and '.' in args:  # the source build
            with open('setup.py') as f:
                flags = re.findall(r'-std=c\\+\\+\\d+', f.read())
            with open(os.path.join(state, 'build.json'), 'w') as f:
                json.dump(dict(cwd=os.getcwd(), flags=flags,
                               env=os.environ.get('MMCV_WITH_OPS')), f)
            open(built, 'w').close()
        sys.exit(0)
    sys.exit(0)
    ''')


def _run_setup(tmp_path, venv, **env):
    """Run setup_env.sh from ``tmp_path`` with the stub as ``venv``'s python.

    Returns the process and the list of recorded interpreter calls.
    """
    state = tmp_path / 'state'
    state.mkdir()
    bin_dir = tmp_path / venv / 'bin'
    bin_dir.mkdir(parents=True)
    stub = bin_dir / 'python'
    stub.write_text(STUB.format(python=sys.executable))
    stub.chmod(stub.stat().st_mode | stat.S_IXUSR)
    proc = subprocess.run(
        ['bash', osp.join(ROOT, 'tools', 'setup_env.sh'), venv],
        cwd=tmp_path,
        env=dict(os.environ, STUB_STATE=str(state), **env),
        capture_output=True,
        text=True,
        timeout=120)
    calls_file = state / 'calls.jsonl'
    calls = [json.loads(line) for line in calls_file.read_text().splitlines()
             ] if calls_file.exists() else []
    return proc, calls, state


def test_source_build_with_relative_venv_path(tmp_path):
    empty_wheels = tmp_path / 'no_wheels'
    empty_wheels.mkdir()
    proc, calls, state = _run_setup(
        tmp_path, 'rel/venv', SLAK_MM_WHEELS=str(empty_wheels))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'building onedl-mmcv' in proc.stdout
    build = json.loads((state / 'build.json').read_text())
    # built from inside the unpacked sdist, with the C++20 switch and ops on
    assert osp.basename(build['cwd']) == 'onedl_mmcv-2.3.6'
    assert build['flags'] == ['-std=c++20']
    assert build['env'] == '1'
    assert not osp.exists(build['cwd'])  # the build folder is removed
    # the editable install of the repo and the final import check ran last
    assert any(c['args'][:4] ==
               ['-m', 'pip', 'install', '--disable-pip-version-check']
               and '-e' in c['args'] for c in calls)
    assert 'ready: stub' in proc.stdout


def test_source_build_keeps_cxx17_for_older_torch(tmp_path):
    empty_wheels = tmp_path / 'no_wheels'
    empty_wheels.mkdir()
    proc, _, state = _run_setup(
        tmp_path,
        '.venv',
        SLAK_MM_WHEELS=str(empty_wheels),
        STUB_TORCH_NEW='0')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(
        (state / 'build.json').read_text())['flags'] == ['-std=c++17']


def test_unusable_prebuilt_wheel_falls_back_to_source(tmp_path):
    wheels = tmp_path / 'wheels'
    wheels.mkdir()
    (wheels / 'onedl_mmcv-2.3.6-cp311-cp311-linux_x86_64.whl').write_bytes(b'')
    proc, calls, state = _run_setup(
        tmp_path, '.venv', SLAK_MM_WHEELS=str(wheels))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'trying prebuilt' in proc.stdout
    # the wheel's ops did not import: it is uninstalled, then built
    uninstall = [i for i, c in enumerate(calls) if 'uninstall' in c['args']]
    download = [i for i, c in enumerate(calls) if 'download' in c['args']]
    assert uninstall and download and uninstall[0] < download[0]
    assert (state / 'build.json').exists()


def _launch(tmp_path, **env):
    """Run a 2-rank script through tools/dist_launch.sh; each rank writes
    the interpreter it runs in to a file of its own (their prints into one
    pipe can interleave). Returns the process and ``{rank: executable}``."""
    script = tmp_path / 'whoami.py'
    script.write_text(
        'import os, sys\n'
        'out = os.path.join(os.path.dirname(__file__), os.environ["RANK"])\n'
        'open(out + ".rank", "w").write(sys.executable)\n')
    base = {
        k: v
        for k, v in os.environ.items() if k not in ('PYTHON', 'VIRTUAL_ENV')
    }
    base['PATH'] = '/usr/bin:/bin'  # no venv on PATH, as outside `activate`
    proc = subprocess.run(
        ['bash',
         osp.join(ROOT, 'tools', 'dist_launch.sh'), '2',
         str(script)],
        env=dict(base, PORT=free_port(), **env),
        capture_output=True,
        text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {f.stem: f.read_text() for f in tmp_path.glob('*.rank')}


def test_launcher_runs_the_active_venv_python_without_activation(tmp_path):
    venv = osp.dirname(osp.dirname(sys.executable))
    ranks = _launch(tmp_path, VIRTUAL_ENV=venv)
    assert ranks == {'0': sys.executable, '1': sys.executable}


def test_launcher_honours_PYTHON(tmp_path):
    ranks = _launch(
        tmp_path, PYTHON=sys.executable, VIRTUAL_ENV='/nonexistent')
    assert ranks == {'0': sys.executable, '1': sys.executable}
