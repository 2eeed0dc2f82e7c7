"""docs/reliability.md's table of surfaces stays true: every test it names
exists, every checkpoint scheme mmengine's ``CheckpointLoader`` has
registered is a row, and so is every ``SLAK_MM_*`` variable the package
reads. A surface added later (a new mmengine scheme, a new variable) fails
here until it is written down with its guarantee and its proof."""
import ast
import os
import os.path as osp
import re

import pytest
from mmengine.runner import CheckpointLoader

import slak_mm  # noqa: F401  (the loader's schemes as a user has them)
from tests.common import ROOT

DOC = osp.join(ROOT, 'docs', 'reliability.md')
TESTS = osp.join(ROOT, 'tests')


@pytest.fixture(scope='module')
def doc():
    with open(DOC) as f:
        return f.read()


def _test_functions(path):
    with open(path) as f:
        tree = ast.parse(f.read())
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and node.name.startswith('test')
    }


def test_every_named_test_exists(doc):
    # a file below tests/, with its folder where it has one
    # a file below tests/ (with its folder, `tests/` where the folder is
    # also one of the repository's: `tests/tools/test_seg.py`), not a tool
    # of the repository (`tools/test_imagenet.py`)
    pattern = r'`(tests/)?((?:\w+/)*test_\w+\.py)(?:::(test_\w+))?`'
    named = [(file, function)
             for in_tests, file, function in re.findall(pattern, doc)
             if in_tests or function or not osp.isfile(osp.join(ROOT, file))]
    assert len(named) > 50  # the table is there
    missing = []
    for file, function in named:
        path = osp.join(TESTS, file)
        if not osp.isfile(path):
            missing.append(file)
        elif function and function not in _test_functions(path):
            missing.append(f'{file}::{function}')
    assert not missing, f'docs/reliability.md names tests that do not ' \
        f'exist: {sorted(set(missing))}'


def test_every_registered_checkpoint_scheme_is_a_row(doc):
    # '(\\S+\\:)?s3://' is written s3:// in the doc
    schemes = {
        re.sub(r'^\(.*?\)\?', '', prefix)
        for prefix in CheckpointLoader._schemes if prefix
    }
    absent = sorted(s for s in schemes if f'`{s}`' not in doc)
    assert not absent, (
        f'checkpoint schemes registered in mmengine but not in '
        f'docs/reliability.md: {absent}')


def test_every_environment_variable_is_a_row(doc):
    read = set()
    for folder, _, names in os.walk(osp.join(ROOT, 'slak_mm')):
        for name in names:
            if name.endswith('.py'):
                with open(osp.join(folder, name)) as f:
                    read |= set(re.findall(r'\bSLAK_MM_[A-Z_]+\b', f.read()))
    with open(osp.join(ROOT, 'tools', 'setup_env.sh')) as f:
        read |= set(re.findall(r'\bSLAK_MM_[A-Z_]+\b', f.read()))
    assert 'SLAK_MM_UNSAFE_LOAD' in read
    absent = sorted(v for v in read if f'`{v}`' not in doc)
    assert not absent, (
        f'environment variables the package reads but docs/reliability.md '
        f'does not list: {absent}')
