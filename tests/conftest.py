"""Shared fixtures: synthetic datasets, one trained demo model, mmengine's log
records (constants and builders, e.g. the tiny SLaK: tests/common.py); and
``--reverse`` / ``--shuffle-seed`` to run the tests in another order."""
import contextlib
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time

import pytest

# The depthwise conv tuner (slak_mm.ops.dispatch) stores its choices in a
# temporary file during the tests (tool subprocesses inherit it), not in
# the user's cache.
os.environ.setdefault(
    'SLAK_MM_DWCONV_CACHE',
    os.path.join(tempfile.mkdtemp(prefix='slak_mm_tune_'), 'dwconv_tune.json'))

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # this checkout's `tests`, not an installed one
    sys.path.insert(0, ROOT)

from tests.common import DEMO_CONFIG  # noqa: E402


def pytest_addoption(parser):
    group = parser.getgroup('slak_mm order')
    group.addoption(
        '--reverse',
        action='store_true',
        help='run the collected tests in reverse order')
    group.addoption(
        '--shuffle-seed',
        type=int,
        help='run the collected tests in a random order from this seed')


def pytest_collection_modifyitems(config, items):
    # the files that read the demo training run last (stable otherwise):
    # the training starts with the session and runs beside the others
    demo_files = {
        item.nodeid.split('::')[0]
        for item in items if 'demo_trained' in item.fixturenames
    }
    items.sort(key=lambda item: item.nodeid.split('::')[0] in demo_files)
    if config.getoption('--shuffle-seed') is not None:
        random.Random(config.getoption('--shuffle-seed')).shuffle(items)
    if config.getoption('--reverse'):
        items.reverse()


@pytest.fixture(autouse=True)
def _ops_settings():
    """Each test gets the ops' settings back as they were: what it set
    with ``slak_mm.ops.configure`` or read anew with ``settings.reload()``
    (after ``monkeypatch.setenv``) does not leak into the next."""
    from slak_mm.ops import use
    with use():
        yield


@pytest.fixture(scope='session')
def repo_root():
    """The checkout's root folder."""
    return ROOT


def _files_state(root):
    state = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            stat = os.stat(path)
            state[os.path.relpath(path,
                                  root)] = (stat.st_size, stat.st_mtime_ns)
    return state


@contextlib.contextmanager
def _read_only(root):
    """The block's tests share ``root``: afterwards, fail naming what they
    added, changed or removed there."""
    before = _files_state(root)
    yield root
    after = _files_state(root)
    changed = sorted(name for name in before.keys() | after.keys()
                     if before.get(name) != after.get(name))
    assert not changed, f'tests changed the shared {root}: {changed[:10]}'


@pytest.fixture(scope='session')
def ade_root(tmp_path_factory):
    """Synthetic ADE20K at the generator's defaults (32 training, 8
    validation images of 128 x 128): the demo's data. Read only (checked
    at the end of the session), as all the shared roots."""
    with _synthetic(tmp_path_factory, 'ade20k') as root:
        yield root


def _synthetic(tmp_path_factory, kind, **sizes):
    """A read-only synthetic dataset of ``kind`` (``ade20k``, ``voc``,
    ``coco``) made by ``slak_mm.datasets.generate_<kind>``."""
    from slak_mm import datasets
    generate = getattr(datasets, f'generate_{kind}')
    return _read_only(generate(str(tmp_path_factory.mktemp(kind)), **sizes))


@pytest.fixture(scope='session')
def small_ade_root(tmp_path_factory):
    """Synthetic ADE20K, 4 training and 2 validation images of 64 x 64, for
    runs that only need the data path to work. Read only."""
    with _synthetic(
            tmp_path_factory, 'ade20k', num_train=4, num_val=2,
            img_size=64) as root:
        yield root


@pytest.fixture(scope='module')
def clean(tmp_path_factory):
    """The three layouts, 64x64, 2 images per split: name -> folder (one
    per test module, which may damage copies of them)."""
    from slak_mm.datasets import generate_all
    return generate_all(
        str(tmp_path_factory.mktemp('data')),
        num_train=2,
        num_val=2,
        img_size=64)


@pytest.fixture(scope='session')
def voc_root(tmp_path_factory):
    """Synthetic VOC, 8 training and 4 validation images. Read only."""
    with _synthetic(tmp_path_factory, 'voc', num_train=8, num_val=4) as root:
        yield root


@pytest.fixture(scope='session')
def coco_root(tmp_path_factory):
    """Synthetic COCO, 8 training and 4 validation images. Read only."""
    with _synthetic(tmp_path_factory, 'coco', num_train=8, num_val=4) as root:
        yield root


def _demo_folder(tmp_path_factory):
    """Where the demo training's status lives: one folder for the whole
    run, shared by its pytest-xdist workers (their base temp folders'
    parent), so the demo trains once per run, not once per worker."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get('PYTEST_XDIST_WORKER'):
        base = base.parent
    return base / 'demo_training'


@pytest.fixture(scope='session', autouse=True)
def _demo_training(request, tmp_path_factory):
    """Starts the demo training as soon as a session whose tests need
    ``demo_trained`` begins: a process of its own (one OpenMP thread) on the
    core the tests leave idle, while they run. Under pytest-xdist the first
    worker starts it and the others wait for it (``demo_trained``)."""
    folder = _demo_folder(tmp_path_factory)
    if not any('demo_trained' in item.fixturenames
               for item in request.session.items):
        yield None
        return
    try:
        folder.mkdir()
    except FileExistsError:  # another worker of this run trains it
        yield dict(folder=folder)
        return
    from slak_mm.fileio import write_json_atomic
    from tests.tool_runner import start_tool
    ade_root = request.getfixturevalue('ade_root')
    run = dict(
        work_dir=str(tmp_path_factory.mktemp('demo_work_dir')),
        data_root=ade_root,
        log=str(folder / 'train.log'))
    with open(run['log'], 'w') as log:
        proc = start_tool(
            'tools/train.py',
            DEMO_CONFIG,
            '--work-dir',
            run['work_dir'],
            '--cfg-options',
            f'data_root={ade_root}',
            log=log)
    write_json_atomic(run, folder / 'run.json')

    def report_exit():  # for every worker: the exit status, once known
        write_json_atomic(proc.wait(), folder / 'returncode.json')

    threading.Thread(target=report_exit, daemon=True).start()
    try:
        yield dict(folder=folder)
    finally:
        if os.environ.get('PYTEST_XDIST_WORKER'):
            proc.wait(timeout=3600)  # another worker may still need it
        elif proc.poll() is None:  # the session ended before it did
            proc.kill()
            proc.wait()


def _wait_for_json(path, timeout=3600):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f'{path} not written in time'
        time.sleep(0.5)
    with open(path) as f:
        return json.load(f)


@pytest.fixture(scope='session')
def demo_trained(_demo_training, request, tmp_path_factory):
    """The segmentation demo trained once per run with tools/train.py
    (its 300 iterations on ``ade_root``, started with the session).

    Returns:
        dict: ``work_dir``, ``checkpoint`` (the final one) and
        ``data_root``. Read only: a test that trains on copies the work_dir
        (``copy_work_dir``).
    """
    if _demo_training is None:  # asked for by getfixturevalue: train now
        from tests.tool_runner import run_tool
        run = dict(
            work_dir=str(tmp_path_factory.mktemp('demo_work_dir')),
            data_root=request.getfixturevalue('ade_root'))
        run_tool('tools/train.py', DEMO_CONFIG, '--work-dir', run['work_dir'],
                 '--cfg-options', f'data_root={run["data_root"]}')
    else:
        folder = _demo_training['folder']
        run = _wait_for_json(folder / 'run.json')
        returncode = _wait_for_json(folder / 'returncode.json')
        with open(run['log']) as f:
            assert returncode == 0, f.read()[-3000:]
    with open(os.path.join(run['work_dir'], 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    with _read_only(run['work_dir']):
        yield dict(
            work_dir=run['work_dir'],
            checkpoint=checkpoint,
            data_root=run['data_root'])


@pytest.fixture(autouse=True)
def _default_scope_of_its_own():
    """A test that sets mmengine's default scope (``init_default_scope``)
    does not leave it to the next: registries resolve names through it (a
    leaked ``mmpretrain`` scope failed a later file's builds in CI order)."""
    from mmengine.registry import DefaultScope
    saved = dict(DefaultScope._instance_dict)
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(saved)


@pytest.fixture
def copy_work_dir(tmp_path):
    """``copy_work_dir(work_dir)``: a copy under this test's tmp_path, with
    ``last_checkpoint`` pointing into the copy.

    Returns:
        callable: ``work_dir -> str`` (the copy).
    """

    def copy(work_dir):
        dst = str(tmp_path / 'work_dir_copy')
        shutil.copytree(work_dir, dst)
        pointer = os.path.join(dst, 'last_checkpoint')
        if os.path.exists(pointer):
            with open(pointer) as f:
                target = f.read().strip()
            with open(pointer, 'w') as f:
                f.write(target.replace(work_dir, dst, 1))
        return dst

    return copy


@pytest.fixture
def mm_log():
    """Records logged to mmengine's current logger during the test."""
    import logging

    from mmengine.logging import MMLogger

    records = []

    class ListHandler(logging.Handler):

        def emit(self, record):
            records.append(record)

    logger = MMLogger.get_current_instance()
    handler = ListHandler(level=logging.DEBUG)
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)
