"""Raw tracebacks where one line is due: a work_dir that is a file or
cannot be written, ONNX export of a refused checkpoint, convert of a state
dict holding numpy arrays, a config with a syntax or name error, an image
or checkpoint given as the config, ``--cfg-options`` values of the wrong
type."""
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
from tests.tool_runner import refusal, run_tool


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


@pytest.mark.parametrize(
    'files,file,line,error', [
        ({
            'top.py': 'a = 1\nb = (\n'
        }, 'top.py', 2, "SyntaxError: '(' was never closed (in: b = ()"),
        ({
            'top.py': "_base_ = ['base.py']\n",
            'base.py': 'a = 1\nb = [1,, 2]\n'
        }, 'base.py', 2, 'SyntaxError: invalid syntax'),
        ({
            'top.py': "_base_ = ['base.py']\nc = 3\n",
            'base.py': 'a = 1\nb = undefined_name + 1\n'
        }, 'base.py', 2, "NameError: name 'undefined_name' is not defined"),
    ],
    ids=['syntax', 'syntax_in_base', 'name_error_in_base'])
def test_config_error_names_file_and_line(tmp_path, files, file, line, error):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    assert refusal('tools/train.py', tmp_path / 'top.py') == (
        f'error: config {tmp_path / file}, line {line}: {error}' +
        ('' if '(in:' in error else
         f' (in: {files[file].splitlines()[line - 1]})') + '; fix the file')


def test_traceback_switch_shows_the_stack(tmp_path):
    config = tmp_path / 'top.py'
    config.write_text('a = (\n')
    proc = run_tool(
        'tools/train.py', config, expect_ok=False, SLAK_MM_TRACEBACK='1')
    assert proc.returncode == 1 and 'Traceback' in proc.stderr
    assert not proc.stderr.strip().splitlines()[-1].startswith('error: ')


def test_config_that_imports_a_missing_module_is_one_line(tmp_path):
    config = tmp_path / 'top.py'
    config.write_text("custom_imports = dict(imports=['no_such_module'], "
                      'allow_failed_imports=False)\n')
    assert refusal('tools/train.py', config) == (
        f'error: config {config}: ModuleNotFoundError: No module named '
        "'no_such_module' (a module its custom_imports name); install it "
        'or fix the name')


def test_image_or_checkpoint_as_the_config_is_named_with_the_usage(tmp_path):
    image, ckpt = tmp_path / 'dog.jpg', tmp_path / 'model.pth'
    image.write_bytes(b'\xff\xd8\xff')
    ckpt.write_bytes(b'PK')
    # image_demo.py IMAGE CONFIG CHECKPOINT with the first two swapped
    assert refusal('demo/image_demo.py', DEMO, image, ckpt) == (
        f'error: {image} is an image, not a config; usage: image_demo.py '
        f'image config checkpoint [options]')
    assert refusal('tools/test.py', ckpt, DEMO) == (
        f'error: {ckpt} is a checkpoint, not a config; usage: test.py '
        f'config checkpoint [options]')


@pytest.mark.parametrize(
    'option,error', [
        ('optim_wrapper.optimizer.lr=abc',
         "optim_wrapper.optimizer.lr='abc': expected a number (the config "
         'has optim_wrapper.optimizer.lr=0.002)'),
        ('model.backbone.sparse=yes',
         "model.backbone.sparse='yes': expected True or False (the config "
         'has model.backbone.sparse=True)'),
        ('model.backbone=SLaK',
         "model.backbone='SLaK': the config has a dict there; set its keys "
         'one by one (model.backbone.KEY=VALUE)'),
    ],
    ids=['number', 'bool', 'dict'])
def test_cfg_option_of_the_wrong_type_is_refused_before_the_run(
        tmp_path, option, error):
    """mmengine keeps what it cannot parse as a string: ``lr=abc`` failed
    in the optimizer with a traceback, after the work_dir was made."""
    line = refusal('tools/train.py', DEMO, '--work-dir', tmp_path / 'w',
                   '--cfg-options', option)
    assert line.startswith(f'error: --cfg-options {error}'), line
    assert not (tmp_path / 'w').exists()


def test_dict_cfg_option_names_the_key_and_its_items():
    """``dict(...)`` with a comma inside sent mmengine's ``DictAction``
    into a RecursionError; without one it became a string."""
    value = "dict(type='SLaK',arch=dict(depths=[1,1,1,1]),sparse=True)"
    result = run_tool(
        'tools/train.py',
        DEMO,
        '--cfg-options',
        f'model.backbone={value}',
        expect_ok=False)
    assert result.returncode == 2 and 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f'train.py: error: --cfg-options model.backbone={value}: a dict '
        'cannot be given as one value (only numbers, strings, '
        'True/False/None, [lists] and (tuples)); set its keys one by one: '
        'model.backbone.type=SLaK model.backbone.arch.depths=[1,1,1,1] '
        'model.backbone.sparse=True, or write a config that inherits this '
        'one (_base_) and sets the dict')


@pytest.mark.parametrize('tool', ['train', 'test'])
def test_refused_run_leaves_no_work_dir(tmp_path, tool):
    """A run a pre-run check refuses removes the work_dir it made (was: an
    empty work_dir left behind, one per refused try); a work_dir that
    existed is left as it was."""
    checkpoint = tmp_path / 'model.pth'
    torch.save({'state_dict': {}}, checkpoint)
    given = [checkpoint] if tool == 'test' else []
    args = [
        f'tools/{tool}.py', DEMO, *given, '--cfg-options',
        'model.decode_head.num_classes=7'
    ]
    new = tmp_path / 'new' / 'run'
    assert 'num_classes=7' in refusal(*args, '--work-dir', new)
    assert not (tmp_path / 'new').exists()
    kept = tmp_path / 'kept'
    (kept / 'old').mkdir(parents=True)
    refusal(*args, '--work-dir', kept)
    assert sorted(os.listdir(kept)) == ['old']
    empty = tmp_path / 'empty'
    empty.mkdir()
    refusal(*args, '--work-dir', empty)
    assert empty.is_dir()
