"""Atomic writes that fail say why in one line and leave the old file;
only regular files are replaced, an output that is an input is refused,
and a small file is read without ever blocking on a FIFO or device."""
import errno
import os

import pytest

from slak_mm import fileio
from tests.common import SPECIAL_FILES, deadline, special_file


def _refuse_fsync(code):

    def fsync(fd):
        raise OSError(code, os.strerror(code))

    return fsync


@pytest.mark.parametrize('code', [errno.ENOSPC, errno.EDQUOT])
def test_disk_full_names_the_file_and_the_size(tmp_path, monkeypatch, code):
    target = tmp_path / 'iter_2.pth'
    target.write_bytes(b'old')
    # the kernel reports a full disk at write or at fsync (delayed
    # allocation); fsync is where a test can make it happen
    monkeypatch.setattr(fileio.os, 'fsync', _refuse_fsync(code))
    with pytest.raises(fileio.DiskFullError) as err:
        fileio.atomic_write_bytes(b'x' * 3 * 2**20, target)
    message = str(err.value)
    assert err.value.errno == code
    assert message.startswith(f'no space left on device writing {target}')
    assert 'it needs 3.0 MiB' in message and 'MiB free in' in message
    assert '\n' not in message
    assert target.read_bytes() == b'old'  # nothing replaced
    assert os.listdir(tmp_path) == ['iter_2.pth']  # no temp file left


def test_unwritable_folder_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(fileio.os, 'fsync', _refuse_fsync(errno.EROFS))
    with pytest.raises(fileio.UnwritableError) as err:
        fileio.write_json_atomic({'a': 1}, tmp_path / 'm.json')
    assert str(err.value).startswith(f'cannot write {tmp_path}/m.json: ')
    assert 'read-only' in str(err.value)


def test_other_errors_pass_unchanged(tmp_path, monkeypatch):
    monkeypatch.setattr(fileio.os, 'fsync', _refuse_fsync(errno.EIO))
    with pytest.raises(OSError) as err:
        fileio.atomic_write_bytes(b'x', tmp_path / 'f')
    assert not isinstance(err.value, fileio.WriteFailedError)
    assert err.value.errno == errno.EIO


@pytest.mark.parametrize('kind', sorted(SPECIAL_FILES))
def test_only_regular_files_are_replaced(tmp_path, kind):
    path = special_file(tmp_path, kind)
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(fileio.UnsafeOutputError) as err:
        fileio.atomic_write_bytes(b'new', path)
    message = str(err.value)
    assert message.startswith(
        f'refusing to write {path}: it is {SPECIAL_FILES[kind]}')
    assert 'not a regular file' in message and '\n' not in message
    assert fileio.file_kind(path).startswith(SPECIAL_FILES[kind])  # kept
    assert sorted(os.listdir(tmp_path)) == before  # no temp file either
    if kind == 'symlink':
        assert (tmp_path / 'target').read_bytes() == b'target'
    with pytest.raises(fileio.UnsafeOutputError):  # also before any work
        fileio.check_output_path(path)


@pytest.mark.parametrize('spelling',
                         ['same', 'other_spelling', 'symlink', 'hard_link'])
def test_an_output_that_is_an_input_is_refused(tmp_path, spelling):
    checkpoint = tmp_path / 'iter_2.pth'
    checkpoint.write_bytes(b'weights')
    (tmp_path / 'sub').mkdir()
    out = {
        'same': checkpoint,
        'other_spelling': tmp_path / 'sub' / '..' / '.' / 'iter_2.pth',
        'symlink': tmp_path / 'out.pth',
        'hard_link': tmp_path / 'out.pth',
    }[spelling]
    if spelling == 'symlink':
        out.symlink_to(checkpoint)
    elif spelling == 'hard_link':
        os.link(checkpoint, out)
    inputs = dict(config=str(tmp_path / 'missing.py'), checkpoint=checkpoint)
    with pytest.raises(fileio.UnsafeOutputError) as err:
        fileio.check_output_path(out, inputs)
    assert str(
        err.value).startswith(f'refusing to write {out}: it is the checkpoint')
    assert 'an input of this run' in str(err.value)
    assert checkpoint.read_bytes() == b'weights'
    # another file, a new one and remote paths pass
    fileio.check_output_path(tmp_path / 'deploy.pth', inputs)
    fileio.check_output_path('s3://bucket/iter_2.pth', inputs)


def test_output_folders(tmp_path):
    checkpoint = tmp_path / 'iter_2.pth'
    checkpoint.write_bytes(b'weights')
    fileio.check_output_folder(tmp_path / 'new')  # made later
    (tmp_path / 'linked').symlink_to(tmp_path)  # a linked folder is fine
    fileio.check_output_folder(tmp_path / 'linked')
    with pytest.raises(fileio.UnsafeOutputError, match='it is the checkpoint'):
        fileio.check_output_folder(checkpoint, '--out',
                                   dict(checkpoint=checkpoint))
    for path, kind in [(checkpoint, 'a file'),
                       (checkpoint / 'preds', 'a path below a file'),
                       (special_file(tmp_path, 'fifo'), 'a FIFO')]:
        with pytest.raises(fileio.UnsafeOutputError) as err:
            fileio.check_output_folder(path, '--show-dir')
        assert str(err.value).startswith(
            f'refusing to write into {path} (--show-dir): it is {kind}')


@pytest.mark.parametrize('kind', sorted(SPECIAL_FILES))
def test_read_regular_file_never_blocks(tmp_path, kind):
    path = special_file(tmp_path, kind)
    with deadline(10), pytest.raises(ValueError) as err:
        fileio.read_regular_file(path, 2**20)
    assert str(err.value).startswith(f'{path} is {SPECIAL_FILES[kind]}')


def test_read_regular_file_is_bounded(tmp_path):
    path = tmp_path / 'big.json'
    with open(path, 'wb') as f:
        f.truncate(17 * 2**20)  # sparse: costs no disk
    with pytest.raises(ValueError) as err:
        fileio.read_regular_file(path, 16 * 2**20)
    assert str(err.value) == (f'{path} holds 17.0 MiB, more than the 16 '
                              f'MiB accepted')
    path.write_bytes(b'{}')
    assert fileio.read_regular_file(path, 2) == b'{}'
