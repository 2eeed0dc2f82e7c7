"""tools/train.py and tools/test.py end to end on synthetic ADE20K.

Also the learning test: the demo config, trained for its short CPU schedule,
must reach an mIoU far above chance. Measured: mIoU 71.1 (aAcc 95.8) after
300 iterations. A constant "wall" predictor scores about 96 / 7 = 14 mIoU
(7 classes present), so 40 is a clear margin on both sides.
"""
import json
import os
import os.path as osp

import pytest
import torch

from slak_mm.datasets import generate_ade20k
from slak_mm.engine import SegPredictionWriter
from tests.common import DEMO_CONFIG as DEMO
from tests.common import disk_full_for, free_port, special_file
from tests.tool_runner import refusal, run_tool

MIN_MIOU = 40.0


@pytest.fixture(scope='module')
def trained(demo_trained):
    """(work_dir, checkpoint) of the session's demo training (read only)."""
    return demo_trained['work_dir'], demo_trained['checkpoint']


def test_train_then_test_reports_miou_and_learns(trained, ade_root, tmp_path):
    work_dir, checkpoint = trained
    assert osp.isfile(checkpoint)
    show_dir = str(tmp_path / 'show')
    proc = run_tool('tools/test.py', DEMO, checkpoint, '--work-dir',
                    str(tmp_path), '--show-dir', show_dir, '--cfg-options',
                    f'data_root={ade_root}')
    assert 'mIoU' in proc.stdout
    with open(tmp_path / 'test_metrics.json') as f:
        metrics = json.load(f)['metrics']
    assert {'aAcc', 'mIoU', 'mAcc'} <= set(metrics)
    assert metrics['mIoU'] > MIN_MIOU, metrics
    images = [
        f for _, _, files in os.walk(show_dir) for f in files
        if f.endswith('.png')
    ]
    assert len(images) == 8  # one painted prediction per validation image


def test_dist_test_reports_metrics_once(trained, ade_root, tmp_path):
    _, checkpoint = trained
    proc = run_tool(
        'tools/dist_test.sh',
        DEMO,
        checkpoint,
        '2',
        '--work-dir',
        str(tmp_path),
        '--cfg-options',
        f'data_root={ade_root}',
        PORT=free_port())
    printed = [
        line for line in proc.stdout.splitlines() if line.startswith('mIoU:')
    ]
    assert len(printed) == 1, proc.stdout[-2000:]  # rank 0 only
    with open(tmp_path / 'test_metrics.json') as f:
        assert json.load(f)['metrics']['mIoU'] > MIN_MIOU


def test_test_tool_tta_out_and_relative_show_dir(trained, ade_root, tmp_path):
    _, checkpoint = trained
    out = tmp_path / 'raw'
    proc = run_tool('tools/test.py', DEMO, checkpoint, '--work-dir',
                    str(tmp_path), '--tta', '--out', str(out), '--show-dir',
                    'painted', '--cfg-options', f'data_root={ade_root}')
    assert 'SegTTAModel' in proc.log or 'TestTimeAug' in proc.log
    with open(tmp_path / 'test_metrics.json') as f:
        assert json.load(f)['metrics']['mIoU'] > MIN_MIOU
    raw = [f for _, _, files in os.walk(out) for f in files]
    assert len(raw) == 8 and all(f.endswith('.png') for f in raw)
    painted = [
        f for _, _, files in os.walk(tmp_path / 'painted') for f in files
        if f.endswith('.png')
    ]
    assert len(painted) == 8  # relative --show-dir: under the work_dir


def test_out_on_a_full_disk_keeps_the_previous_predictions(
        trained, ade_root, tmp_path, monkeypatch):
    """mmseg's IoUMetric saved the PNGs in place: a full disk left a
    truncated one instead of the previous run's."""
    _, checkpoint = trained
    out = tmp_path / 'raw'
    out.mkdir()
    names = sorted(
        osp.splitext(name)[0] + '.png'
        for name in os.listdir(osp.join(ade_root, 'images', 'validation')))
    for name in names:
        (out / name).write_bytes(b'previous prediction')
    disk_full_for(monkeypatch, '*.png')
    error = refusal('tools/test.py', DEMO, checkpoint, '--work-dir',
                    str(tmp_path / 'work_dir'), '--out', str(out),
                    '--cfg-options', f'data_root={ade_root}')
    assert error.startswith(f'error: no space left on device writing {out}/')
    assert 'MiB free in' in error
    assert sorted(os.listdir(out)) == names  # no temp file left
    assert {(out / n).read_bytes() for n in names} == {b'previous prediction'}


def test_out_and_show_dir_are_refused_before_any_work(trained, ade_root,
                                                      tmp_path):
    _, checkpoint = trained
    run = ('tools/test.py', DEMO, checkpoint, '--work-dir',
           str(tmp_path / 'work_dir'), '--cfg-options',
           f'data_root={ade_root}')
    error = refusal(*run, '--out', checkpoint)
    assert error == (f'error: refusing to write {checkpoint}: it is the '
                     f'checkpoint, an input of this run; write the output to '
                     f'another path')
    fifo = special_file(tmp_path, 'fifo')
    error = refusal(*run, '--show-dir', fifo)
    assert error.startswith(f'error: refusing to write into {fifo} '
                            f'(--show-dir): it is a FIFO'), error
    assert not osp.exists(tmp_path / 'work_dir' / 'test_metrics.json')


def test_prediction_pngs_are_mmseg_iou_metrics(tmp_path):
    """SegPredictionWriter (--out) writes the files IoUMetric(output_dir)
    would, byte for byte, atomically."""
    from mmseg.evaluation import IoUMetric
    gen = torch.Generator().manual_seed(0)
    samples = [
        dict(
            pred_sem_seg=dict(
                data=torch.randint(0, 7, (1, 6, 5), generator=gen)),
            img_path=f'/data/images/validation/ADE_val_{i}.jpg',
            reduce_zero_label=reduce) for i, reduce in enumerate([True, False])
    ]
    mmseg = IoUMetric(output_dir=str(tmp_path / 'mmseg'), format_only=True)
    mmseg.dataset_meta = dict(classes=[str(c) for c in range(7)])
    mmseg.process({}, samples)
    ours = SegPredictionWriter(output_dir=str(tmp_path / 'ours'))
    ours.process({}, samples)
    names = sorted(os.listdir(tmp_path / 'mmseg'))
    assert names == ['ADE_val_0.png', 'ADE_val_1.png']
    assert sorted(os.listdir(tmp_path / 'ours')) == names
    for name in names:
        assert (tmp_path / 'ours' / name).read_bytes() == (tmp_path / 'mmseg' /
                                                           name).read_bytes()
    assert ours.compute_metrics(ours.results) == {}


def test_auto_scale_lr_rescales_to_the_real_batch(ade_root, tmp_path):
    proc = run_tool('tools/train.py', DEMO, '--work-dir', str(tmp_path),
                    '--auto-scale-lr', '--cfg-options',
                    f'data_root={ade_root}', 'train_cfg.max_iters=1',
                    'train_cfg.val_interval=1000')
    # demo: 4 images per step against the base batch of 16
    assert 'Scaling the original LR by 0.25' in proc.log, proc.log[-3000:]


def test_resume_continues_from_checkpoint(trained, ade_root, copy_work_dir):
    # a copy: the shared work_dir and its checkpoint stay as trained
    work_dir = copy_work_dir(trained[0])
    checkpoint = osp.join(work_dir, osp.basename(trained[1]))
    proc = run_tool('tools/train.py', DEMO, '--work-dir', work_dir, '--resume',
                    checkpoint, '--cfg-options', f'data_root={ade_root}',
                    'train_cfg.max_iters=302', 'train_cfg.val_interval=1000')
    log = proc.stdout + proc.stderr
    assert 'resumed epoch: 0, iter: 300' in log, log[-2000:]
    assert osp.isfile(osp.join(work_dir, 'iter_302.pth'))


def test_missing_dataset_folder_names_path_and_layout(tmp_path):
    missing = str(tmp_path / 'no_such_ade')
    proc = run_tool(
        'tools/train.py',
        DEMO,
        '--work-dir',
        str(tmp_path),
        '--cfg-options',
        f'data_root={missing}',
        timeout=300,
        expect_ok=False)
    assert proc.returncode != 0
    assert missing in proc.stderr
    assert 'ADEChallengeData2016/images/{training,validation}' in proc.stderr


def test_dataset_problems_are_found_before_training(tmp_path):
    from slak_mm.config import check_datasets, load_config
    root = tmp_path / 'ADEChallengeData2016'
    for sub in ('images/training', 'images/validation', 'annotations/training',
                'annotations/validation'):
        (root / sub).mkdir(parents=True)
    cfg = load_config(DEMO, {'data_root': str(root)})
    with pytest.raises(FileNotFoundError, match='images/training.* is empty'):
        check_datasets(cfg)
    data = generate_ade20k(
        str(tmp_path / 'ok'), num_train=2, num_val=1, img_size=(32, 32))
    (tmp_path / 'ok' / 'ADEChallengeData2016' / 'images' / 'training' /
     'ADE_train_broken.jpg').write_bytes(b'')
    cfg = load_config(DEMO, {'data_root': data})
    with pytest.raises(ValueError, match='ADE_train_broken.jpg'):
        check_datasets(cfg, ('train', ))
    # a data_root that ends in the layout's top folder is not named twice
    missing = str(tmp_path / 'nowhere' / 'ADEChallengeData2016')
    cfg = load_config(DEMO, {'data_root': missing})
    with pytest.raises(FileNotFoundError) as err:
        check_datasets(cfg)
    assert 'data root: images/{training,validation}' in str(err.value)
