"""tools/benchmark.py on the CPU at small sizes: it runs both benchmarks,
checks the op it times against nn.Conv2d and writes the JSON. (Speeds are
measured on real sizes; see docs/benchmarks.md.)"""
import json

from tests.common import DEMO_CONFIG, DEMO_VOC_CONFIG
from tests.tool_runner import run_tool


def run_benchmark(*args, **kwargs):
    return run_tool('tools/benchmark.py', *args, timeout=600, **kwargs).stdout


def test_op_benchmark(tmp_path):
    out = tmp_path / 'op.json'
    # untuned, auto takes the heuristic's choice (no timing decides it), and
    # the tool names that choice; its smoke run as its own process
    stdout = run_benchmark(
        'op',
        '--device',
        'cpu',
        '--batch',
        '1',
        '--shape',
        '128',
        '--stages',
        '0',
        '3',
        '--backward',
        '--min-run-time',
        '0.01',
        '--rounds',
        '2',
        '--out',
        str(out),
        fresh_process=True,
        SLAK_MM_DWCONV_TUNE='0')
    assert 'auto chose' in stdout and 'total fp32' in stdout
    data = json.loads(out.read_text())
    assert data['environment']['torch']
    rows = data['results']
    assert [(r['channels'], r['height'], r['kernel'])
            for r in rows] == [(124, 32, 51), (998, 4, 13)]
    # training on the CPU: FFT for a 51-tap kernel on a 32x32 map, torch
    # for the 13-tap one on 4x4 (slak_mm.ops.dispatch.heuristic)
    assert [r['auto_impl'] for r in rows] == ['fft', 'torch']
    for r in rows:
        assert r['mode'] == 'fwd+bwd'
        assert set(r['ms']) == {'torch', 'fft', 'auto'}  # no Triton on CPU
        assert all(t > 0 for t in r['ms'].values())
        assert r['best_impl'] in ('torch', 'fft')
        assert all(e < 1e-5 for e in r['max_rel_diff'].values())
        assert abs(r['speedup'] - r['ms']['torch'] / r['ms']['auto']) < 1e-9


def test_model_benchmark_variants(tmp_path):
    out = tmp_path / 'model.json'
    stdout = run_benchmark('model', DEMO_CONFIG, '--variants', 'nchw',
                           'default', 'fft', 'deploy', '--shape', '64', '64',
                           '--min-run-time', '0.01', '--rounds', '2', '--out',
                           str(out))
    rows = json.loads(out.read_text())['results']
    assert [r['variant'] for r in rows] == ['nchw', 'default', 'fft', 'deploy']
    assert set(rows[2]['auto_impl'].values()) == {'fft'}
    assert set(rows[1]['auto_impl']) == {'0', '1', '2', '3'}
    assert rows[0]['ratio_to_first'] == 1.0
    assert all(r['part'] == 'backbone' and r['ms'] > 0 for r in rows)
    assert 'x nchw' in stdout


def test_model_benchmark_whole_detector_backward(tmp_path):
    out = tmp_path / 'det.json'
    run_tool(
        'tools/benchmark.py',
        'model',
        DEMO_VOC_CONFIG,
        '--whole-model',
        '--backward',
        '--shape',
        '64',
        '64',
        '--min-run-time',
        '0.01',
        '--rounds',
        '1',
        '--out',
        str(out),
        timeout=600)
    (row, ) = json.loads(out.read_text())['results']
    assert row['part'] == 'model' and row['mode'] == 'fwd+bwd'
    assert row['ms'] > 0 and row['ratio_to_first'] == 1.0


def test_op_benchmark_takes_the_model_benchmarks_shape(tmp_path):
    out = tmp_path / 'op.json'
    run_benchmark('op', '--device', 'cpu', '--batch', '1', '--shape', '64',
                  '128', '--stages', '3', '--impls', 'torch', '--min-run-time',
                  '0.01', '--rounds', '1', '--out', str(out))
    (row, ) = json.loads(out.read_text())['results']
    assert (row['height'], row['width']) == (2, 4)
