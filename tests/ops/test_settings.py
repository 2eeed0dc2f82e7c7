"""The ops' settings (``slak_mm.ops.settings``): the environment read once
at the boundary, ``use`` / ``configure`` for code (restored after a block,
also after an exception, nested, re-entered), and no package steering them
by writing ``os.environ``."""
import ast
import os
import os.path as osp

import pytest

from slak_mm.ops import OpsSettings, configure, settings, use
from slak_mm.ops.settings import (CACHE_ENV, CPU_LAYOUT_ENV, ENV_NAMES,
                                  IMPL_ENV, MAX_TUNED_ENV, RETUNE_ENV,
                                  TRITON_INTERPRET_ENV, TUNE_ENV)
from tests.common import DEMO_CONFIG, ROOT
from tests.tool_runner import refusal


def test_environment_is_parsed_into_one_object():
    assert settings.from_environ(
        {'XDG_CACHE_HOME':
         '/xdg'}) == OpsSettings(cache='/xdg/slak_mm/dwconv_tune.json')
    read = settings.from_environ({
        IMPL_ENV: 'fft',
        TUNE_ENV: '0',
        RETUNE_ENV: '1',
        CACHE_ENV: '/c.json',
        MAX_TUNED_ENV: '5',
        CPU_LAYOUT_ENV: 'nchw',
        TRITON_INTERPRET_ENV: '1'
    })
    assert read == OpsSettings('fft', False, True, '/c.json', 5, 'nchw', True)
    assert read.from_environment == set(ENV_NAMES)
    assert read.source('impl') == f'${IMPL_ENV}'
    # an unparsable cap is the default, as before
    assert settings.from_environ({MAX_TUNED_ENV: 'many'}).max_tuned == 32


@pytest.mark.parametrize('name, value, what', [
    (IMPL_ENV, 'cudnn', 'depthwise conv implementation'),
    (CPU_LAYOUT_ENV, 'nhwc', 'CPU layout'),
])
def test_unknown_value_is_one_line_naming_the_variable(name, value, what):
    with pytest.raises(ValueError) as err:
        settings.from_environ({name: value})
    assert str(err.value).startswith(f"Unknown {what} '{value}' (${name}); "
                                     f'choose one of ')


def test_a_bad_variable_is_refused_before_the_run(monkeypatch, tmp_path):
    """Read at the run's first use (the pre-run check): one line, no work
    folder (was: a failure at the first forward, inside the run)."""
    monkeypatch.setenv(CPU_LAYOUT_ENV, 'nhwc')
    line = refusal('tools/train.py', DEMO_CONFIG, '--work-dir', tmp_path / 'w')
    assert line == (f"error: Unknown CPU layout 'nhwc' (${CPU_LAYOUT_ENV}); "
                    f'choose one of channels_last, nchw')
    assert not (tmp_path / 'w').exists()


def test_read_once_until_reload(monkeypatch):
    monkeypatch.setenv(IMPL_ENV, 'fft')
    settings.reload()
    assert settings.current().impl == 'fft'
    monkeypatch.setenv(IMPL_ENV, 'torch')  # too late for this process
    assert settings.current().impl == 'fft'
    settings.reload()
    assert settings.current().impl == 'torch'
    # a bad value refuses every use until fixed, and is not cached
    monkeypatch.setenv(IMPL_ENV, 'cudnn')
    settings.reload()
    for _ in range(2):
        with pytest.raises(ValueError, match=IMPL_ENV):
            settings.current()
    monkeypatch.delenv(IMPL_ENV)
    assert settings.current().impl == 'auto'


def test_use_restores_also_after_an_exception_and_nests():
    before = settings.current()
    with use(impl='fft', tune=False) as inner:
        assert settings.current() is inner
        assert (inner.impl, inner.tune) == ('fft', False)
        assert inner.cache == before.cache  # the rest as it was
        with use(impl='torch'):
            assert (settings.current().impl,
                    settings.current().tune) == ('torch', False)
        assert settings.current() is inner
        with pytest.raises(KeyError):
            with use(cpu_layout='nchw'):
                configure(max_tuned=1)  # undone with the block
                raise KeyError('inside')
        assert settings.current() is inner
    assert settings.current() == before
    # one object entered again (a benchmark's context per step), and nested
    nchw = use(cpu_layout='nchw')
    for _ in range(2):
        with nchw:
            with nchw:
                assert settings.current().cpu_layout == 'nchw'
        assert settings.current() == before


def test_bad_changes_are_refused_before_anything_changes():
    before = settings.current()
    with pytest.raises(TypeError, match='unknown slak_mm.ops setting'):
        with use(implementation='fft'):
            pass
    with pytest.raises(ValueError) as err:
        with use(impl='cudnn'):
            pass
    assert str(err.value) == (
        "Unknown depthwise conv implementation 'cudnn' (slak_mm.ops setting "
        'impl); choose one of auto, torch, fft, triton')
    with pytest.raises(ValueError, match='max_tuned=-1'):
        configure(max_tuned=-1)
    assert settings.current() is before


def test_a_changed_field_no_longer_names_its_variable(monkeypatch):
    monkeypatch.setenv(IMPL_ENV, 'fft')
    monkeypatch.setenv(TUNE_ENV, '0')
    settings.reload()
    with use(impl='torch') as changed:
        assert changed.from_environment == {'tune'} | (
            settings.from_environ().from_environment - {'impl'})
        assert changed.source('impl') == 'slak_mm.ops setting impl'
        assert changed.source('tune') == f'${TUNE_ENV}'


def _environ(node):
    """Whether ``node`` is ``os.environ`` (or a bare ``environ``)."""
    return ((isinstance(node, ast.Attribute) and node.attr == 'environ'
             and isinstance(node.value, ast.Name) and node.value.id == 'os')
            or (isinstance(node, ast.Name) and node.id == 'environ'))


_MUTATING = ('setdefault', 'update', 'pop', 'popitem', 'clear', '__setitem__',
             '__delitem__')


def environ_writes(source):
    """The lines of ``source`` that write the environment: item assignment
    or deletion, its mutating methods, ``os.putenv`` / ``os.unsetenv``,
    ``mock.patch.dict(os.environ, ...)``."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        targets = []
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)):
            targets = node.targets if hasattr(node,
                                              'targets') else [node.target]
        if any(
                isinstance(t, ast.Subscript) and _environ(t.value)
                for t in targets):
            lines.append(node.lineno)
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if not isinstance(func, ast.Attribute):
            continue
        mutates = _environ(func.value) and func.attr in _MUTATING
        sets_process_env = func.attr in ('putenv', 'unsetenv') and isinstance(
            func.value, ast.Name) and func.value.id == 'os'
        patches = func.attr == 'dict' and node.args and _environ(node.args[0])
        if mutates or sets_process_env or patches:
            lines.append(node.lineno)
    return sorted(lines)


#: The writes that are no steering of the ops: the process boundary of the
#: command lines (every rank and loader of a run must see them).
ALLOWED = {
    ('slak_mm/cli.py', 'os.environ[UNSAFE_LOAD_ENV] = '),  # --unsafe-load
    ('slak_mm/cli.py', "os.environ.setdefault('LOCAL_RANK'"),  # --local_rank
    # a compat trial's forked process of its own, as --unsafe-load
    ('slak_mm/compat/trial.py', 'os.environ[UNSAFE_LOAD_ENV] = '),
}


def test_environ_writes_are_found():
    assert environ_writes('import os\n'
                          'os.environ["A"] = "1"\n'
                          'del os.environ["A"]\n'
                          'os.environ.pop("A", None)\n'
                          'with mock.patch.dict(os.environ, {}):\n'
                          '    os.putenv("A", "1")\n'
                          'x = os.environ.get("A")\n') == [2, 3, 4, 5, 6]


def test_no_package_writes_the_environment():
    """The ops are steered through ``slak_mm.ops.use`` / ``configure``;
    no module of the package, the tools or the demo writes ``os.environ``
    but the command lines' process-wide flags (:data:`ALLOWED`)."""
    found = []
    for top in ('slak_mm', 'tools', 'demo'):
        for folder, _, names in os.walk(osp.join(ROOT, top)):
            for name in sorted(n for n in names if n.endswith('.py')):
                path = osp.join(folder, name)
                with open(path, encoding='utf-8') as f:
                    source = f.read()
                rel = osp.relpath(path, ROOT)
                text = source.splitlines()
                for line in environ_writes(source):
                    code = text[line - 1].strip()
                    if not any(rel == allowed_path and code.startswith(start)
                               for allowed_path, start in ALLOWED):
                        found.append(f'{rel}:{line}: {code}')
    assert not found, found
