"""No checkpoint can forge memory through numpy.

A pickle that may call ``np.ndarray``/``np.dtype`` can build an object
array over bytes of its choosing: its "pointers" are dereferenced when the
array is copied or printed (``tools/train.py --resume`` segfaulted, exit
139). The loader must refuse every way of making an object-holding dtype,
name the file and what it refused, and keep plain numpy data loading.
"""
import collections
import io
import os
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.logging import MessageHub

from slak_mm.checkpoint import (DamagedCheckpointError, UnsafeCheckpointError,
                                load_checkpoint_safely)
from tests.checkpoint.test_safe_loading import ENTRY_POINTS
from tests.tool_runner import run_tool

try:
    from numpy._core.multiarray import _reconstruct, scalar
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct, scalar

FORGED_BYTES = b'A' * 16  # two "pointers" 0x4141414141414141
OBJECT = np.dtype('O')


class _Reduce:
    """Pickles as whatever ``__reduce__`` tuple it is given: how a hostile
    file is written (numpy itself never writes these)."""

    def __init__(self, *reduce):
        self.reduce = reduce

    def __reduce__(self):
        return self.reduce


def _reconstructed(dtype, data=FORGED_BYTES, shape=(2, )):
    """``_reconstruct`` + BUILD with a chosen dtype and raw bytes."""
    return _Reduce(_reconstruct, (np.ndarray, (0, ), b'b'),
                   (1, shape, dtype, False, data))


FORGERIES = {
    # np.ndarray(shape, dtype, buffer): the road in the issue
    'ndarray_constructor':
    _Reduce(np.ndarray, ((2, ), np.dtype('O8', False, True), FORGED_BYTES)),
    'ndarray_new':
    _Reduce(np.ndarray.__new__, (np.ndarray, (2, ), OBJECT, FORGED_BYTES)),
    'reconstruct_object':
    _reconstructed(OBJECT),
    'structured_object_field':
    _reconstructed(np.dtype([('a', 'O'), ('b', 'f8')]), data=b'A' * 32),
    'subarray_of_objects':
    _reconstructed(np.dtype(('O', (2, ))), data=b'A' * 32),
    # BUILD on a void dtype turning it into one with an object field
    'dtype_setstate':
    _reconstructed(
        _Reduce(np.dtype, ('V8', False, True), (3, '|', None, ('a', ), {
            'a': (OBJECT, 0)
        }, 8, 1, 63))),
    'object_scalar':
    _Reduce(scalar, (OBJECT, FORGED_BYTES[:8])),
    # object arrays pickle their items as a list: still an object dtype
    'object_array_as_list':
    _reconstructed(OBJECT, data=[1, 2]),
}

PLACES = {
    'meta': lambda forged: {
        'meta': {
            'note': forged
        },
        'state_dict': {}
    },
    'message_hub': lambda forged: {
        'meta': {},
        'state_dict': {},
        'message_hub': {
            'log_scalars': {},
            'runtime_info': {
                'x': forged
            },
            'resumed_keys': {}
        }
    },
    'optimizer': lambda forged: {
        'meta': {},
        'state_dict': {},
        'optimizer': {
            'state': {
                0: {
                    'exp_avg': forged
                }
            },
            'param_groups': []
        }
    },
}


def _save(obj, path):
    torch.save(obj, str(path))
    return str(path)


@pytest.mark.parametrize('place', sorted(PLACES))
@pytest.mark.parametrize('forgery', sorted(FORGERIES))
def test_loader_refuses_object_dtypes(forgery, place, tmp_path):
    path = _save(PLACES[place](FORGERIES[forgery]), tmp_path / 'forged.pth')
    with pytest.raises(UnsafeCheckpointError) as err:
        load_checkpoint_safely(path)
    message = str(err.value)
    assert message.startswith(f'Refused to load {path!r}')
    assert 'numpy' in message or 'ndarray' in message, message
    assert '--unsafe-load' in message and '\n' not in message


PLAIN = {
    'float':
    np.arange(6.).reshape(2, 3),
    'fortran_big_endian':
    np.asfortranarray(np.arange(6, dtype='>i4').reshape(2, 3)),
    'bool':
    np.array([True, False]),
    'complex':
    np.array([1 + 2j]),
    'str':
    np.array(['ab', 'c']),
    'bytes':
    np.array([b'xy']),
    'void':
    np.frombuffer(b'abcdefgh' * 2, dtype='V8'),
    'structured':
    np.array([(1.5, 2)], dtype=[('a', '<f4'), ('b', '<i2')]),
    'subarray_field':
    np.zeros(2, dtype=[('v', '<f4', (3, ))]),
    'zero_dim':
    np.array(7),
    'empty':
    np.zeros((0, 4), dtype=np.uint8),
    'float_scalar':
    np.float64(3.5),
    'bool_scalar':
    np.bool_(True),
    'int_scalar':
    np.int64(-3),
    'dtype':
    np.dtype('<f4'),
}


def test_plain_numpy_data_keeps_loading(tmp_path):
    path = _save(dict(PLAIN), tmp_path / 'plain.pth')
    loaded = load_checkpoint_safely(path)
    assert set(loaded) == set(PLAIN)
    for key, expected in PLAIN.items():
        got = loaded[key]
        assert type(got) is type(expected), key
        if isinstance(expected, np.dtype):
            assert got == expected
            continue
        assert got.dtype == expected.dtype, key
        assert np.array_equal(got, expected), key
        if isinstance(expected, np.ndarray):
            assert got.flags.f_contiguous == expected.flags.f_contiguous
            assert got.flags.writeable, key  # a copy, not the file's bytes


def test_message_hub_history_round_trips(tmp_path):
    hub = MessageHub.get_instance('test_numpy_forgery_hub')
    for value in (1.0, 2.0, 6.0):
        hub.update_scalar('train/loss', value)
    hub.update_info('iter', 3)
    path = _save({'message_hub': hub.state_dict()}, tmp_path / 'hub.pth')
    state = load_checkpoint_safely(path)['message_hub']
    restored = MessageHub.get_instance('test_numpy_forgery_hub_restored')
    restored.load_state_dict(state)
    assert restored.get_scalar('train/loss').mean() == pytest.approx(3.0)
    assert restored.get_scalar('train/loss').current() == 6.0
    assert restored.get_info('iter') == 3


class _OrderedDictSubclass(collections.OrderedDict):
    pass


@pytest.mark.parametrize('obj, expected', [
    (_Reduce(os.system, ('true', )), '`posix.system`'),
    (collections.defaultdict(int), 'collections.defaultdict'),
    (_OrderedDictSubclass(a=1), f'{__name__}._OrderedDictSubclass'),
    (slice(1, 2), '`slice`'),
])
def test_refusal_names_the_real_global(obj, expected, tmp_path):
    path = _save({'meta': {'x': obj}}, tmp_path / 'other.pth')
    with pytest.raises(UnsafeCheckpointError) as err:
        load_checkpoint_safely(path)
    assert expected in str(err.value)
    assert '`GLOBAL`' not in str(err.value)


def test_in_memory_forgery_is_refused():
    buffer = io.BytesIO()
    torch.save({'meta': FORGERIES['reconstruct_object']}, buffer)
    buffer.seek(0)
    with pytest.raises(UnsafeCheckpointError, match='in-memory checkpoint'):
        load_checkpoint_safely(buffer)


# ------------------------------------------------------------ entry points
@pytest.fixture(scope='module')
def forged_env(tmp_path_factory, small_ade_root):
    """Tiny data and a checkpoint whose meta and message hub hold forged
    object arrays (refused before any weight is looked at)."""
    root = tmp_path_factory.mktemp('forged')
    data = small_ade_root
    forged = FORGERIES['ndarray_constructor']
    checkpoint = PLACES['message_hub'](forged)
    checkpoint['meta'] = {'iter': 1, 'epoch': 0, 'forged': forged}
    evil = _save(checkpoint, root / 'forged.pth')
    image = osp.join(data, 'images', 'validation', 'ADE_val_00000001.jpg')
    assert osp.isfile(image)
    return dict(data=data, evil=evil, image=image, root=root)


def _assert_refused_in_one_line(proc, path):
    # exit 1 from run_cli: not 139 (SIGSEGV) from a dereferenced pointer
    assert proc.returncode == 1, proc.log[-2000:]
    assert f'Refused to load {path!r}' in proc.stderr, proc.log[-2000:]
    assert 'numpy' in proc.stderr and 'Traceback' not in proc.stderr
    assert 'AAAA' not in proc.log and '4141414141414141' not in proc.log


@pytest.mark.parametrize('entry', ['resume_path', 'test'])
def test_forged_array_stops_tools_with_exit_1(forged_env, entry, tmp_path):
    """A process of its own: what is tested is the exit status (a forged
    pointer dereferenced would kill the interpreter with SIGSEGV)."""
    proc = run_tool(
        *ENTRY_POINTS[entry](forged_env, str(tmp_path)),
        timeout=600,
        expect_ok=False,
        fresh_process=True)
    _assert_refused_in_one_line(proc, forged_env['evil'])
    assert not osp.exists(tmp_path / 'test_metrics.json')


@pytest.mark.parametrize('entry',
                         sorted(set(ENTRY_POINTS) - {'resume_path', 'test'}))
def test_forged_array_is_refused_by_every_entry_point(forged_env, entry,
                                                      tmp_path):
    proc = run_tool(
        *ENTRY_POINTS[entry](forged_env, str(tmp_path)),
        timeout=600,
        expect_ok=False)
    _assert_refused_in_one_line(proc, forged_env['evil'])


def test_path_objects_are_paths(tmp_path):
    """A ``pathlib.Path`` is checked as the file it names (was: taken for
    a file object, so an empty file got torch's raw error)."""
    path = tmp_path / 'plain.pth'
    torch.save({'w': torch.ones(2)}, path)
    assert torch.equal(load_checkpoint_safely(path)['w'], torch.ones(2))
    with pytest.raises(FileNotFoundError, match='Checkpoint not found'):
        load_checkpoint_safely(tmp_path / 'missing.pth')
    (tmp_path / 'empty.pth').write_bytes(b'')
    with pytest.raises(DamagedCheckpointError, match='empty.pth'):
        load_checkpoint_safely(tmp_path / 'empty.pth')
