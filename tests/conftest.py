import os
import sys
import tempfile

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

# The depthwise conv tuner (slak_mm.ops.dispatch) stores its choices in a
# temporary file during the tests (tool subprocesses inherit it), not in
# the user's cache.
os.environ.setdefault(
    'SLAK_MM_DWCONV_CACHE',
    os.path.join(tempfile.mkdtemp(prefix='slak_mm_tune_'), 'dwconv_tune.json'))


@pytest.fixture(scope='session')
def repo_root():
    return REPO_ROOT


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
