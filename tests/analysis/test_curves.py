"""tools/analysis/plot_curves.py on the scalars of a short real training run
of the segmentation demo (4 iterations, validated at the end), and the
scalar parsing of a detection-style (epoch-based) file."""
import json
import os.path as osp

import pytest

from slak_mm.analysis.curves import (default_keys, load_scalars, plot_curves,
                                     resolve_keys)
from tests.common import DEMO_CONFIG as DEMO
from tests.tool_runner import run_tool

ITERS = 4
TOOL = 'tools/analysis/plot_curves.py'


@pytest.fixture(scope='module')
def work_dir(tmp_path_factory, small_ade_root):
    work_dir = str(tmp_path_factory.mktemp('curves') / 'work_dir')
    run_tool('tools/train.py', DEMO, '--work-dir', work_dir, '--cfg-options',
             f'data_root={small_ade_root}', f'train_cfg.max_iters={ITERS}',
             f'train_cfg.val_interval={ITERS}',
             'default_hooks.logger.interval=1', 'custom_hooks.0.interval=1')
    return work_dir


def test_scalars_of_a_training_run(work_dir):
    scalars = load_scalars(work_dir)
    assert scalars.path.endswith(osp.join('vis_data', 'scalars.json'))
    for key in ('loss', 'lr', 'density'):
        steps, values = scalars.series[key]
        assert steps == list(range(1, ITERS + 1)), key
    assert scalars.series['density'][1][-1] == pytest.approx(0.6, abs=0.01)
    steps, values = scalars.series['mIoU']
    assert steps == [ITERS] and 0 <= values[0] <= 100
    assert 'mIoU' in scalars.val_keys and 'loss' not in scalars.val_keys
    assert scalars.x_label('mIoU') == 'iteration'
    assert default_keys(scalars) == ['loss', 'lr', 'density', 'mIoU']


def test_plot_tool_writes_png(work_dir, tmp_path):
    stdout = run_tool(TOOL, work_dir).stdout
    out = osp.join(work_dir, 'curves.png')
    with open(out, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    assert 'written to' in stdout

    out = str(tmp_path / 'two.png')
    plot_curves(load_scalars(work_dir), ['loss', 'mIoU'], out)
    assert osp.getsize(out) > 1000


def test_clear_errors(tmp_path, work_dir):
    missing = str(tmp_path / 'no_run')
    with pytest.raises(FileNotFoundError, match='LocalVisBackend') as e:
        load_scalars(missing)
    assert missing in str(e.value)
    proc = run_tool(TOOL, missing, expect_ok=False)
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[-1].startswith(
        'error: No scalars.json found')
    with pytest.raises(KeyError, match='logged'):
        resolve_keys(load_scalars(work_dir), ['bbox_mAP'])


def test_epoch_based_detection_scalars(tmp_path):
    """mmdet's by-epoch runs: train lines with epoch, metrics at epochs;
    the latest run with scalars wins (a later test run has none)."""
    old = tmp_path / '20250101_000000' / 'vis_data'
    new = tmp_path / '20250102_000000' / 'vis_data'
    test_run = tmp_path / '20250103_000000' / 'vis_data'
    for folder in (old, new, test_run):
        folder.mkdir(parents=True)
    (old / 'scalars.json').write_text(
        json.dumps(dict(lr=1.0, loss=9.0, iter=1, epoch=1, step=1)) + '\n')
    lines = [
        dict(lr=1e-3, loss=2.0 - i, epoch=e, iter=i, step=i)
        for i, e in ((10, 1), (20, 2))
    ]
    lines.insert(1, {
        'pascal_voc/mAP': 0.25,
        'pascal_voc/AP50': 0.25,
        'step': 1
    })
    lines.append({'pascal_voc/mAP': 0.5, 'step': 2})
    (new / 'scalars.json').write_text('\n'.join(map(json.dumps, lines)))
    scalars = load_scalars(str(tmp_path))
    assert scalars.path == str(new / 'scalars.json')
    assert scalars.series['pascal_voc/mAP'] == ([1, 2], [0.25, 0.5])
    assert scalars.series['loss'] == ([10, 20], [-8.0, -18.0])
    assert default_keys(scalars) == ['loss', 'lr', 'pascal_voc/mAP']
    assert scalars.x_label('pascal_voc/mAP') == 'epoch'
    assert scalars.x_label('loss') == 'iteration'
    assert resolve_keys(scalars, ['mAP']) == ['pascal_voc/mAP']
    out = plot_curves(scalars, out=str(tmp_path / 'det.png'))
    assert osp.isfile(out)
