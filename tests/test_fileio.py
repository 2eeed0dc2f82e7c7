"""Atomic writes that fail say why in one line and leave the old file."""
import errno
import os

import pytest

from slak_mm import fileio


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
