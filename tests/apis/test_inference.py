"""demo/image_demo.py on synthetic images: segmentation (UperNet) and
detection (Faster R-CNN) overlays of one image (--out) and of a folder
(--out-dir), with checkpoints of the demo models made here (randomly
initialised: this checks the path and the drawing, not accuracy). The script
runs once as its own process (its smoke run); the other runs are in-process
(tests/tool_runner.py)."""
import os
import os.path as osp

import mmcv
import numpy as np
import pytest
import torch

from slak_mm.apis import (build_inferencer, build_model, config_dataset_meta,
                          infer_images)
from slak_mm.config import adapt_to_device, load_config
from slak_mm.datasets import generate_ade20k, generate_voc
from tests.common import DEMO_CONFIG as SEG
from tests.common import DEMO_VOC_CONFIG as DET
from tests.tool_runner import run_tool

# a random detector scores every class about 1/21, under the config's 0.05
DET_OPTIONS = ['--cfg-options', 'model.test_cfg.rcnn.score_thr=0']

DEMO_SCRIPT = 'demo/image_demo.py'


def run_demo(*args, **kwargs):
    """The script (in this process unless ``fresh_process=True``); returns
    its stdout."""
    return run_tool(DEMO_SCRIPT, *args, timeout=600, **kwargs).stdout


def demo_error(*args):
    """The script's exit message, asserting it failed."""
    proc = run_tool(DEMO_SCRIPT, *args, expect_ok=False)
    assert proc.returncode == 1, proc.log[-2000:]
    return proc.stderr.strip().splitlines()[-1]


def make_checkpoint(config, path, with_meta):
    """Save a randomly initialised demo model as tools/train.py would
    (``state_dict`` and, optionally, ``meta.dataset_meta``)."""
    cfg = load_config(config)
    torch.manual_seed(0)
    model = build_model(cfg)
    model.init_weights()
    ckpt = dict(state_dict=model.state_dict())
    if with_meta:
        ckpt['meta'] = dict(dataset_meta=config_dataset_meta(cfg))
    torch.save(ckpt, path)
    return path


def assert_overlay(out, image):
    assert osp.isfile(out), out
    drawn, original = mmcv.imread(out), mmcv.imread(image)
    assert drawn.shape == original.shape
    # something was drawn (JPEG round trips differ by a few levels only)
    diff = np.abs(drawn.astype(int) - original.astype(int))
    assert (diff > 40).mean() > 0.01, diff.max()


@pytest.fixture(scope='module')
def seg_data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('seg')
    root = generate_ade20k(str(tmp / 'data'), num_train=1, num_val=3)
    ckpt = make_checkpoint(SEG, str(tmp / 'seg.pth'), with_meta=True)
    return osp.join(root, 'images', 'validation'), ckpt


@pytest.fixture(scope='module')
def det_data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('det')
    root = generate_voc(str(tmp / 'data'), num_train=1, num_val=2)
    images = osp.join(root, 'VOC2007', 'JPEGImages')
    # no meta: the classes come from the config's VOC dataset
    ckpt = make_checkpoint(DET, str(tmp / 'det.pth'), with_meta=False)
    return images, ckpt


def test_seg_demo_one_image_and_folder(seg_data, tmp_path):
    folder, ckpt = seg_data
    images = sorted(os.listdir(folder))
    image = osp.join(folder, images[0])
    out = str(tmp_path / 'one.png')
    run_demo(
        image, SEG, ckpt, '--out', out, '--device', 'cpu', fresh_process=True)
    assert_overlay(out, image)

    out_dir = str(tmp_path / 'all')
    stdout = run_demo(folder, SEG, ckpt, '--out-dir', out_dir, '--opacity',
                      '0.7')
    assert sorted(os.listdir(out_dir)) == images
    for name in images:
        assert_overlay(osp.join(out_dir, name), osp.join(folder, name))
    assert stdout.count('Overlay written to') == len(images)


def test_det_demo_one_image_and_folder(det_data, tmp_path):
    folder, ckpt = det_data
    images = sorted(os.listdir(folder))
    image = osp.join(folder, images[0])
    out = str(tmp_path / 'one.jpg')
    run_demo(image, DET, ckpt, '--out', out, '--score-thr', '0', *DET_OPTIONS)
    assert_overlay(out, image)

    out_dir = str(tmp_path / 'all')
    run_demo(folder, DET, ckpt, '--out-dir', out_dir, '--score-thr', '0',
             *DET_OPTIONS)
    assert sorted(os.listdir(out_dir)) == images
    for name in images:
        assert_overlay(osp.join(out_dir, name), osp.join(folder, name))


def test_config_dataset_meta_fallback():
    seg = config_dataset_meta(load_config(SEG))
    assert len(seg['classes']) == 150 and len(seg['palette']) == 150
    det = config_dataset_meta(load_config(DET))
    assert len(det['classes']) == 20 and det['classes'][0] == 'aeroplane'


def test_checkpoint_without_meta_uses_config_classes(det_data):
    cfg = load_config(DET)
    adapt_to_device(cfg)
    inferencer = build_inferencer(cfg, det_data[1], 'cpu')
    classes = inferencer.model.dataset_meta['classes']
    assert len(classes) == 20 and classes[0] == 'aeroplane'  # not COCO's
    assert inferencer.visualizer.dataset_meta['classes'] == classes


def test_clear_errors(seg_data, tmp_path):
    folder, ckpt = seg_data
    image = osp.join(folder, sorted(os.listdir(folder))[0])
    with pytest.raises(FileNotFoundError, match='Checkpoint not found'):
        infer_images(SEG, str(tmp_path / 'nope.pth'), image, out='x.png')
    with pytest.raises(FileNotFoundError, match='Image not found'):
        infer_images(SEG, ckpt, str(tmp_path / 'nope.jpg'), out='x.png')
    empty = tmp_path / 'empty'
    empty.mkdir()
    (empty / 'notes.txt').write_text('not an image')
    with pytest.raises(FileNotFoundError, match='No image'):
        infer_images(SEG, ckpt, str(empty), out_dir=str(tmp_path / 'o'))
    with pytest.raises(ValueError, match='names one file'):
        infer_images(SEG, ckpt, folder, out=str(tmp_path / 'x.png'))
    # the script reports it in one line
    missing = str(tmp_path / 'missing.jpg')
    assert demo_error(missing, SEG, ckpt).startswith('error: Image not found')


def test_bad_images_are_skipped_and_reported(seg_data, tmp_path):
    folder, ckpt = seg_data
    good = osp.join(folder, sorted(os.listdir(folder))[0])
    mixed = tmp_path / 'mixed'
    mixed.mkdir()
    mmcv.imwrite(mmcv.imread(good), str(mixed / 'a_good.png'))
    mmcv.imwrite(np.zeros((1, 1, 3), np.uint8), str(mixed / 'b_tiny.png'))
    (mixed / 'c_empty.png').write_bytes(b'')
    out_dir = tmp_path / 'vis'
    assert '2 of 3 images skipped' in demo_error(
        str(mixed), SEG, ckpt, '--out-dir', str(out_dir), '--device', 'cpu')
    # the good image is still drawn; the bad ones are named
    assert sorted(os.listdir(out_dir)) == ['a_good.png']
    written = infer_images(SEG, ckpt, str(mixed), out_dir=str(out_dir))
    assert written == [str(out_dir / 'a_good.png')]
    # one bad image alone: one clear error
    with pytest.raises(ValueError, match='1x1 px'):
        infer_images(
            SEG, ckpt, str(mixed / 'b_tiny.png'), out=str(tmp_path / 't.png'))
    with pytest.raises(ValueError, match='cannot be read as an image'):
        infer_images(
            SEG, ckpt, str(mixed / 'c_empty.png'), out=str(tmp_path / 'e.png'))


def test_bad_out_is_refused_before_inference(seg_data, tmp_path):
    folder, ckpt = seg_data
    image = osp.join(folder, sorted(os.listdir(folder))[0])
    with pytest.raises(ValueError, match='is a folder'):
        infer_images(SEG, ckpt, image, out=str(tmp_path))
    with pytest.raises(ValueError, match='no image extension'):
        infer_images(SEG, ckpt, image, out=str(tmp_path / 'overlay'))
