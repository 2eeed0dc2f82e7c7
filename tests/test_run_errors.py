"""Raw tracebacks where one line is due: a work_dir that is a file or
cannot be written, ONNX export of a refused checkpoint, convert of a state
dict holding numpy arrays."""
import errno
import os

import numpy as np
import pytest
import torch
from mmengine.config import Config

from slak_mm.checkpoint import convert_official_checkpoint
from slak_mm.config import adapt as config_adapt
from slak_mm.config import set_work_dir
from slak_mm.fileio import UnwritableError
from tests.common import DEMO_CONFIG as DEMO
from tests.tool_runner import run_tool


@pytest.mark.parametrize('below', ['', 'run'])
def test_work_dir_naming_a_file_is_refused(tmp_path, below):
    existing = tmp_path / 'notes.txt'
    existing.write_text('keep me')
    work_dir = str(existing / below) if below else str(existing)
    with pytest.raises(NotADirectoryError) as err:
        set_work_dir(Config(), 'x.py', work_dir)
    assert str(err.value) == (
        f'work_dir {work_dir} is not a folder: {existing} is a file; pass '
        f'another --work-dir')
    assert existing.read_text() == 'keep me'


def test_unwritable_work_dir_is_one_line(tmp_path, monkeypatch):

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    # root writes through permission bits, so a read-only filesystem is
    # what the test plays
    monkeypatch.setattr(config_adapt.tempfile, 'TemporaryFile', read_only)
    with pytest.raises(UnwritableError) as err:
        set_work_dir(Config(), 'x.py', str(tmp_path / 'w'))
    assert str(err.value).startswith(
        f'cannot write to work_dir {tmp_path / "w"}: Read-only file system')
    assert '--work-dir' in str(err.value)


def test_convert_takes_numpy_weights(tmp_path):
    weight = np.random.default_rng(0).standard_normal(
        (3, 1, 5, 5)).astype(np.float32)
    weight[0] = 0
    key = 'stages.0.0.large_kernel.LoRA1.conv.weight'
    src, dst = str(tmp_path / 'np.pth'), str(tmp_path / 'out.pth')
    torch.save({'model': {key: weight}}, src)
    convert_official_checkpoint(src, dst)
    out = torch.load(dst, weights_only=True)['state_dict']
    assert torch.equal(out['backbone.' + key], torch.from_numpy(weight))
    assert out['backbone.' + key + '_mask'].sum() == 2 * 25


def test_convert_names_a_value_that_is_no_weight(tmp_path):
    src = str(tmp_path / 'bad.pth')
    torch.save({'model': {'stages.0.0.gamma': 'text'}}, src)
    with pytest.raises(ValueError, match="'stages.0.0.gamma' is a str"):
        convert_official_checkpoint(src, str(tmp_path / 'out.pth'))


def test_export_onnx_of_a_refused_checkpoint_is_one_line(tmp_path):
    evil = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': {}, 'meta': {'x': slice(1)}}, evil)
    proc = run_tool(
        'tools/export_onnx.py',
        DEMO,
        evil,
        tmp_path / 'out.onnx',
        '--no-verify',
        expect_ok=False)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr
    message = proc.stderr.strip().splitlines()[-1]  # the exit message
    assert message.startswith(f'error: Refused to load {evil!r}')
    assert '`slice`' in message
    assert not (tmp_path / 'out.onnx').exists()
