"""tools/train.py and tools/test.py end to end for the detection demos on
synthetic VOC (Faster R-CNN, bbox mAP) and COCO (Cascade Mask R-CNN, bbox and
segm AP). One short epoch each: this checks the whole path and that the
metrics are reported, not accuracy (the segmentation test checks learning).
An --out pickle that is an input or no regular file is refused first."""
import json
import os
import os.path as osp

import pytest

from tests.common import DEMO_COCO_CONFIG, DEMO_VOC_CONFIG
from tests.tool_runner import refusal, run_tool

CASES = {
    'faster_rcnn_voc': (DEMO_VOC_CONFIG, 'voc_root', {'pascal_voc/mAP'}),
    'cascade_mask_rcnn_coco':
    (DEMO_COCO_CONFIG, 'coco_root', {'coco/bbox_mAP', 'coco/segm_mAP'}),
}


@pytest.fixture(scope='module')
def trained(request, tmp_path_factory):
    """``trained(case)``: (config, data_root, work_dir, checkpoint) of one
    epoch of tools/train.py, once per case and module (read only)."""
    cache = {}

    def train(case):
        if case not in cache:
            config, data_fixture, _ = CASES[case]
            data_root = request.getfixturevalue(data_fixture)
            work_dir = str(tmp_path_factory.mktemp(case))
            run_tool('tools/train.py', config, '--work-dir', work_dir,
                     '--cfg-options', f'data_root={data_root}',
                     'train_cfg.max_epochs=1')
            with open(osp.join(work_dir, 'last_checkpoint')) as f:
                cache[case] = (config, data_root, work_dir, f.read().strip())
        return cache[case]

    return train


@pytest.mark.parametrize('case', list(CASES))
def test_detection_train_and_test(case, trained, tmp_path):
    config, data_root, _, checkpoint = trained(case)
    metric_keys = CASES[case][2]
    assert osp.isfile(checkpoint)
    # after one epoch scores are low: keep every box so that the metric
    # has detections to score (an empty result set yields no AP at all)
    work_dir = str(tmp_path / 'work_dir')
    proc = run_tool('tools/test.py', config, checkpoint, '--work-dir',
                    work_dir, '--cfg-options', f'data_root={data_root}',
                    'model.test_cfg.rcnn.score_thr=0.0')
    with open(osp.join(work_dir, 'test_metrics.json')) as f:
        metrics = json.load(f)['metrics']
    assert metric_keys <= set(metrics), metrics
    for key in metric_keys:
        assert 0.0 <= metrics[key] <= 1.0
        assert key in proc.stdout


def test_voc_test_with_tta_dumps_results(trained, tmp_path):
    import pickle
    config, data_root, _, checkpoint = trained('faster_rcnn_voc')
    out = str(tmp_path / 'results.pkl')
    proc = run_tool('tools/test.py', config, checkpoint, '--work-dir',
                    str(tmp_path / 'work_dir'), '--tta', '--out', out,
                    '--cfg-options', f'data_root={data_root}',
                    'model.test_cfg.rcnn.score_thr=0.0')
    assert 'pascal_voc/mAP' in proc.stdout
    with open(out, 'rb') as f:  # our own file, written just now
        results = pickle.load(f)
    with open(osp.join(data_root, 'VOC2007', 'ImageSets', 'Main',
                       'test.txt')) as f:
        num_val = len(f.read().split())
    assert len(results) == num_val and 'pred_instances' in results[0]


def test_out_pickle_is_refused_before_any_work(tmp_path):
    checkpoint = tmp_path / 'model.pkl'  # refused before it is read
    checkpoint.write_bytes(b'weights')
    link = tmp_path / 'results.pkl'
    link.symlink_to(checkpoint)
    fifo = tmp_path / 'fifo.pkl'
    os.mkfifo(fifo)
    run = ('tools/test.py', DEMO_VOC_CONFIG, str(checkpoint), '--work-dir',
           str(tmp_path / 'work_dir'), '--out')
    assert refusal(*run, str(link)).startswith(
        f'error: refusing to write {link}: it is the checkpoint {checkpoint}')
    assert refusal(
        *run,
        str(fifo)).startswith(f'error: refusing to write {fifo}: it is a FIFO')
    assert checkpoint.read_bytes() == b'weights'
    assert not osp.exists(tmp_path / 'work_dir')  # before any work
