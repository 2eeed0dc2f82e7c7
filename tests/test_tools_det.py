"""tools/train.py and tools/test.py end to end for the detection demos on
synthetic VOC (Faster R-CNN, bbox mAP) and COCO (Cascade Mask R-CNN, bbox and
segm AP). One short epoch each: this checks the whole path and that the
metrics are reported, not accuracy (the segmentation test checks learning)."""
import json
import os.path as osp

import pytest

from slak_mm.datasets import generate_coco, generate_voc
from tests.tool_runner import run_tool


@pytest.mark.parametrize(
    'config,generate,metric_keys', [
        ('configs/demo/faster_rcnn_slak_demo_synthetic_voc.py', generate_voc,
         {'pascal_voc/mAP'}),
        ('configs/demo/cascade_mask_rcnn_slak_demo_synthetic_coco.py',
         generate_coco, {'coco/bbox_mAP', 'coco/segm_mAP'}),
    ],
    ids=['faster_rcnn_voc', 'cascade_mask_rcnn_coco'])
def test_detection_train_and_test(config, generate, metric_keys, tmp_path):
    data_root = generate(str(tmp_path / 'data'), num_train=8, num_val=4)
    work_dir = str(tmp_path / 'work_dir')
    options = [f'data_root={data_root}', 'train_cfg.max_epochs=1']
    run_tool('tools/train.py', config, '--work-dir', work_dir, '--cfg-options',
             *options)
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    assert osp.isfile(checkpoint)
    # after one epoch scores are low: keep every box so that the metric
    # has detections to score (an empty result set yields no AP at all)
    proc = run_tool('tools/test.py', config, checkpoint, '--work-dir',
                    work_dir, '--cfg-options', f'data_root={data_root}',
                    'model.test_cfg.rcnn.score_thr=0.0')
    with open(osp.join(work_dir, 'test_metrics.json')) as f:
        metrics = json.load(f)['metrics']
    assert metric_keys <= set(metrics), metrics
    for key in metric_keys:
        assert 0.0 <= metrics[key] <= 1.0
        assert key in proc.stdout


def test_voc_test_with_tta_dumps_results(tmp_path):
    import pickle
    config = 'configs/demo/faster_rcnn_slak_demo_synthetic_voc.py'
    data_root = generate_voc(str(tmp_path / 'data'), num_train=4, num_val=2)
    work_dir = str(tmp_path / 'work_dir')
    options = [f'data_root={data_root}', 'train_cfg.max_epochs=1']
    run_tool('tools/train.py', config, '--work-dir', work_dir,
             '--cfg-options', *options)
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    out = str(tmp_path / 'results.pkl')
    proc = run_tool('tools/test.py', config, checkpoint, '--work-dir',
                    work_dir, '--tta', '--out', out, '--cfg-options',
                    f'data_root={data_root}',
                    'model.test_cfg.rcnn.score_thr=0.0')
    assert 'pascal_voc/mAP' in proc.stdout
    with open(out, 'rb') as f:  # our own file, written just now
        results = pickle.load(f)
    assert len(results) == 2 and 'pred_instances' in results[0]
