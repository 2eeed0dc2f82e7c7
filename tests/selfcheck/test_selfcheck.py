"""``python -m slak_mm.selfcheck --quick`` (run in-process through its
``main``): the report has every section and passes here, a wrong
implementation makes it fail naming that implementation."""
import json
import os

import pytest
import torch

from slak_mm import selfcheck
from slak_mm.ops import Candidate, settings
from slak_mm.ops.registry import CANDIDATES
from tests.common import special_file


def _quick(tmp_path, *args):
    out = tmp_path / 'selfcheck.json'
    code = selfcheck.main(
        ['--quick', '--device', 'cpu', '--out',
         str(out), *args])
    return code, json.loads(out.read_text())


def test_quick_reports_every_section_and_passes(tmp_path, capsys):
    settings_before, environ_before = settings.current(), dict(os.environ)
    code, report = _quick(tmp_path)
    assert code == 0 and report['failed'] == 0
    assert set(selfcheck.SECTIONS) <= set(report['seconds'])
    assert report['environment']['torch'] == torch.__version__

    rows = report['correctness']
    assert all(r['status'] == 'PASS' for r in rows)
    for impl in ('torch', 'fft'):  # every op, dtype and layout
        assert {(r['op'], r['dtype'], r['layout'])
                for r in rows if r['impl'] == impl
                } == {(op, dtype, layout)
                      for op in ('multi', 'cross')
                      for dtype in ('fp32', 'bf16', 'autocast-bf16')
                      for layout in ('nchw', 'cl')}
    if 'triton' in CANDIDATES:  # the interpreter's fp32 case
        assert {(r['op'], r['dtype'])
                for r in rows if r['impl'] == 'triton'} == {('multi', 'fp32'),
                                                            ('cross', 'fp32')}

    choices = report['choices']
    assert [r['how'] for r in choices] == ['measured', 'measured', 'heuristic']
    assert all(r['choice'] in ('torch', 'fft') for r in choices)
    assert all(r['first_call_ms'] > 0 for r in choices)
    assert {'torch', 'fft', 'auto'} <= set(report['speed'][0]['ms'])
    backbone = report['backbone']
    assert backbone['ratio'] > 0 and len(backbone['auto_impl']) == 4
    assert set(backbone['ms']) == {'slak', 'convnext'}

    # the run's temporary cache and settings are gone; the environment
    # was not touched
    assert settings.current() == settings_before
    assert dict(os.environ) == environ_before
    stdout = capsys.readouterr().out
    assert 'What auto chooses' in stdout and 'PASS: 0 of' in stdout


def test_a_wrong_implementation_fails_by_name(tmp_path, monkeypatch, capsys):
    torch_impl = CANDIDATES['torch']

    def skewed(x, weights):
        return tuple(out * 1.01 for out in torch_impl.multi(x, weights))

    monkeypatch.setitem(
        CANDIDATES, 'skewed',
        Candidate(torch_impl.available, skewed, torch_impl.cross, 'nothing'))
    code, report = _quick(tmp_path, '--sections', 'correctness')
    assert code == 1
    failed = [r for r in report['correctness'] if r['status'] == 'FAIL']
    assert report['failed'] == len(failed) > 0
    assert {(r['impl'], r['op']) for r in failed} == {('skewed', 'multi')}
    # 1% off: beyond fp32's tolerance (1e-4), within bf16's (4e-2)
    assert {r['dtype'] for r in failed} == {'fp32'}
    assert all('out relative error 1.0e-02' in r['error'] for r in failed)
    stdout = capsys.readouterr().out
    assert 'skewed  multi' in stdout and f'FAIL: {len(failed)} of' in stdout


def test_a_crashing_implementation_fails_with_its_error(tmp_path, monkeypatch):

    def broken(*args):
        raise RuntimeError('no kernel image is available')

    monkeypatch.setitem(
        CANDIDATES, 'broken',
        Candidate(lambda x, w: True, broken, broken, 'nothing'))
    code, report = _quick(tmp_path, '--sections', 'correctness')
    assert code == 1
    failed = [r for r in report['correctness'] if r['status'] == 'FAIL']
    assert failed and all(r['impl'] == 'broken' for r in failed)
    assert failed[0]['error'] == ('RuntimeError: no kernel image is '
                                  'available')


def test_bad_device_is_one_line(capsys):
    with pytest.raises(SystemExit):
        selfcheck.main(['--device', 'tpu'])
    assert '--device tpu: choose cuda or cpu' in capsys.readouterr().err


def test_out_of_no_regular_file_is_refused_first(tmp_path, capsys):
    out = special_file(tmp_path, 'device')
    with pytest.raises(SystemExit):
        selfcheck.main(['--quick', '--device', 'cpu', '--out', out])
    assert (f'refusing to write {out}: it is a character device'
            in capsys.readouterr().err)


def test_a_section_that_raises_is_reported_and_fails_the_run(
        tmp_path, monkeypatch, capsys):

    def out_of_memory(quick, device):
        raise RuntimeError('CUDA out of memory')

    monkeypatch.setattr(selfcheck, 'op_timings', out_of_memory)
    code, report = _quick(tmp_path, '--sections', 'speed', 'choices')
    assert code == 1
    assert report['errors'] == {'speed': 'RuntimeError: CUDA out of memory'}
    assert len(report['choices']) == 3  # the other section still ran
    assert 'ERROR in speed: RuntimeError' in capsys.readouterr().out


def test_full_run_covers_the_issues_shapes_and_dtypes():
    """The full (GPU) run, dry: its cases and dtype settings, without
    running them (no GPU here)."""
    from slak_mm.selfcheck.correctness import correctness_cases, modes_for
    cases = correctness_cases(quick=False)
    maps = {(c.batch, c.channels, c.height, c.width, c.kernel) for c in cases}
    # SLaK-T (width 1.3) at 512x512, batch 2, and 800x1216, batch 1
    assert (2, 124, 128, 128, 51) in maps and (2, 998, 16, 16, 13) in maps
    assert {(1, 124, 200, 304, 51), (1, 249, 100, 152, 49),
            (1, 499, 50, 76, 47), (1, 998, 25, 38, 13)} <= maps
    assert {c.kernel for c in cases} >= {61, 59, 57, 51, 49, 47, 13}
    assert {c.small for c in cases} == {5}
    assert {c.op for c in cases} == {'multi', 'cross'}
    assert not any(c.interpret for c in cases)
    assert set(modes_for('cuda', quick=False)) == {
        'fp32-tf32', 'fp32-ieee', 'bf16', 'fp16', 'autocast-bf16',
        'autocast-fp16'
    }
