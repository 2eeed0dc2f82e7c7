"""Damaged or inconsistent datasets: a clear stop naming the file, or a
correct run, never a silent wrong metric (issue 15, section 2).

Tiny synthetic datasets (64x64, 2 images per split) are damaged one file at
a time. The tools run in this process (``runpy``, ``sys.argv`` patched), so
each case costs a model build, not an interpreter start; a run trains for at
most 2 iterations.
"""
import argparse
import copy
import glob
import json
import os.path as osp
import re
import resource
import shutil
import xml.etree.ElementTree as ET
from unittest import mock

import cv2
import mmcv
import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch

from slak_mm.apis import build_model
from slak_mm.cli import add_cfg_options_arg
from slak_mm.config import check_datasets, load_config
from slak_mm.datasets import (DatasetError, check_dataset_files,
                              install_data_checks)
from slak_mm.datasets.checks.rle import rle_counts, rle_problem
from slak_mm.datasets.transforms import (CheckedLoadAnnotations,
                                         CheckedLoadImageFromFile)
from slak_mm.utils.image_formats import image_size_from_header
from tests.common import DEMO_COCO_CONFIG as COCO
from tests.common import DEMO_CONFIG as SEG
from tests.common import DEMO_VOC_CONFIG as VOC
from tests.tool_runner import ROOT, refusal, run_tool

SHORT = ['train_cfg.max_iters=2', 'train_cfg.val_begin=1000']


def private_copy(folder, tmp_path):
    """A copy of a clean dataset, for one test to damage."""
    return shutil.copytree(folder, str(tmp_path / osp.basename(folder)))


@pytest.fixture
def ade(clean, tmp_path):
    return private_copy(clean['ade20k'], tmp_path)


@pytest.fixture(scope='module')
def seg_checkpoint(tmp_path_factory):
    """Weights of the untrained demo segmentor (enough to run a test)."""
    path = str(tmp_path_factory.mktemp('ckpt') / 'seg.pth')
    torch.save(
        dict(state_dict=build_model(load_config(SEG)).state_dict(), meta={}),
        path)
    return path


def ade_file(root, kind, split, index=0):
    sub = 'images' if kind == 'image' else 'annotations'
    suffix = '.jpg' if kind == 'image' else '.png'
    return sorted(glob.glob(osp.join(root, sub, split, '*' + suffix)))[index]


def write_labels(path, edit):
    label = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    edit(label)
    assert cv2.imwrite(path, label)


def add_out_of_range(label):
    label[:3, :] = 200  # 3 rows of 64 pixels: 192 pixels
    label[5, :4] = 255  # raw 255 is ignored by reduce_zero_label: allowed


# ----------------------------------------------------------------------------
# ADE20K label values
# ----------------------------------------------------------------------------
def test_out_of_range_labels_in_validation_are_an_error(
        ade, seg_checkpoint, tmp_path):
    """Was: test.py exit 0 with another aAcc (6.40 vs 3.12), no warning."""
    ann = ade_file(ade, 'annotation', 'validation', 1)
    write_labels(ann, add_out_of_range)
    error = refusal('tools/test.py', SEG, seg_checkpoint, '--work-dir',
                    tmp_path, '--cfg-options', f'data_root={ade}')
    missing = [
        p for p in (ann, '[200]', '192 pixels', '0..150 and 255',
                    "out_of_range='ignore'") if str(p) not in error
    ]
    assert not missing, (missing, error)
    assert not (tmp_path / 'test_metrics.json').exists()


def test_out_of_range_labels_in_training_name_the_file(ade, tmp_path):
    """Was: a raw ``IndexError: Target 199 is out of bounds``. The demo
    config's 2 DataLoader workers raise it: still one line."""
    ann = ade_file(ade, 'annotation', 'training', 1)
    write_labels(ann, add_out_of_range)
    error = refusal('tools/train.py', SEG, '--work-dir', tmp_path,
                    '--cfg-options', f'data_root={ade}', *SHORT)
    missing = [
        p for p in (ann, '[200]', '192 pixels', 'DataLoader worker')
        if str(p) not in error
    ]
    assert not missing, (missing, error)
    assert 'IndexError' not in error


def test_out_of_range_ignore_switch_warns_with_count_and_completes(
        ade, tmp_path):
    ann = ade_file(ade, 'annotation', 'training', 1)
    write_labels(ann, add_out_of_range)
    result = run_tool('tools/train.py', SEG, '--work-dir', tmp_path,
                      '--cfg-options', f'data_root={ade}', *SHORT,
                      'data_checks.out_of_range=ignore')
    assert osp.isfile(tmp_path / 'iter_2.pth')
    warnings = [
        line for line in result.log.splitlines()
        if 'WARNING' in line and ann in line
    ]
    assert warnings, result.log[-3000:]
    assert all('192 pixels with label values [200]' in w and 'set to 255' in w
               for w in warnings), warnings


def test_unknown_data_checks_setting_is_refused(ade, tmp_path):
    error = refusal('tools/train.py', SEG, '--work-dir', tmp_path,
                    '--cfg-options', f'data_root={ade}',
                    'data_checks.out_of_range=clip')
    missing = [
        p for p in ('out_of_range', "'error', 'ignore'") if str(p) not in error
    ]
    assert not missing, (missing, error)


def _seg_transform(**kwargs):
    return CheckedLoadAnnotations(**dict(dict(num_classes=150), **kwargs))


def _seg_results(ann, shape=(64, 64), reduce_zero_label=True, **extra):
    return dict(
        seg_map_path=ann,
        ori_shape=shape,
        seg_fields=[],
        reduce_zero_label=reduce_zero_label,
        **extra)


def test_label_check_runs_after_reduce_zero_label(tmp_path):
    """ADE20K: raw 0 and 255 -> 255 (ignore), raw v -> v-1; so raw 150 is
    class 149 (allowed), raw 151 is class 150 (outside 150 classes)."""
    path = str(tmp_path / 'l.png')
    label = np.zeros((64, 64), np.uint8)
    label[0, :3] = (1, 150, 255)
    cv2.imwrite(path, label)
    out = _seg_transform().transform(_seg_results(path))['gt_seg_map']
    assert out[0, :3].tolist() == [0, 149, 255] and out[1, 0] == 255
    label[1, 1] = 151
    cv2.imwrite(path, label)
    with pytest.raises(DatasetError, match=r'\[151\] in 1 pixels'):
        _seg_transform().transform(_seg_results(path))
    # without reduce_zero_label: 0..149 and the ignore index 255
    with pytest.raises(DatasetError, match=r'\[150, 151\].*0\.\.149 and 255'):
        _seg_transform().transform(_seg_results(path, reduce_zero_label=False))
    # the dataset's label_map (custom classes) applies before the check
    out = _seg_transform(num_classes=2).transform(
        _seg_results(path, label_map={
            0: 0,
            149: 1,
            150: 255
        }))
    assert sorted(np.unique(out['gt_seg_map'])) == [0, 1, 255]


def test_16_bit_and_multi_channel_label_maps_are_refused(tmp_path):
    """mmseg casts to uint8: 256 would silently become 0 (ignored)."""
    path = str(tmp_path / 'l16.png')
    cv2.imwrite(path, np.full((64, 64), 256, np.uint16))
    with pytest.raises(DatasetError, match=r'\[256\] in 4096 pixels'):
        _seg_transform().transform(_seg_results(path))
    cv2.imwrite(path, np.ones((64, 64, 3), np.uint8))
    with pytest.raises(DatasetError, match='has 3 channels'):
        _seg_transform().transform(_seg_results(path))


# ----------------------------------------------------------------------------
# ADE20K annotation files
# ----------------------------------------------------------------------------
def test_annotation_of_another_size_is_found_before_training(ade, tmp_path):
    """Was: ``stack expects each tensor to be equal size`` (train),
    ``The shape of the mask ...`` (test), no file named."""
    ann = ade_file(ade, 'annotation', 'training', 0)
    cv2.imwrite(ann, np.ones((48, 64), np.uint8))
    error = refusal('tools/train.py', SEG, '--work-dir', tmp_path,
                    '--cfg-options', f'data_root={ade}', *SHORT)
    missing = [
        p for p in (ann, '64x48 (WxH)', ade_file(ade, 'image', 'training', 0),
                    '64x64') if str(p) not in error
    ]
    assert not missing, (missing, error)
    assert not glob.glob(str(tmp_path / '*.pth'))


def test_annotation_of_another_size_is_found_where_it_is_decoded(ade):
    """Damaged after the scan, or a pipeline run without it: the decoded
    sizes are compared too."""
    ann = ade_file(ade, 'annotation', 'validation', 0)
    cv2.imwrite(ann, np.ones((48, 64), np.uint8))
    with pytest.raises(DatasetError, match=r'64x48 \(WxH\).*64x64'):
        _seg_transform().transform(_seg_results(ann, img_path='the image'))


@pytest.mark.parametrize('damage,message', [
    ('empty', 'is empty (0 bytes)'),
    ('garbage', 'is not an image'),
    ('missing', 'annotation files are missing'),
    ('colour', 'is a colour PNG'),
])
def test_damaged_annotation_png_stops_before_training(ade, tmp_path, damage,
                                                      message):
    """Was: ``UnidentifiedImageError ... <_io.BytesIO object>`` (file never
    named) or a raw worker traceback; the pre-run scan read images only."""
    ann = ade_file(ade, 'annotation', 'training', 1)
    if damage == 'missing':
        shutil.move(ann, ann + '.moved')
    elif damage == 'colour':  # a painted (RGB) map instead of class indices
        cv2.imwrite(ann, np.ones((64, 64, 3), np.uint8))
    else:
        with open(ann, 'wb') as f:
            f.write(b'' if damage == 'empty' else b'<html>oops</html>' * 9)
    error = refusal('tools/train.py', SEG, '--work-dir', tmp_path,
                    '--cfg-options', f'data_root={ade}', *SHORT)
    missing = [p for p in (ann, message) if str(p) not in error]
    assert not missing, (missing, error)


@pytest.mark.parametrize('damage,message', [
    ('empty', 'is empty (0 bytes)'),
    ('garbage', 'cannot be decoded'),
    ('missing', 'not found'),
    ('truncated', 'truncated'),
])
def test_damaged_annotation_png_named_where_decoded(ade, damage, message):
    """The same files, damaged after the scan (or in a pipeline run
    without it): the transform names them."""
    ann = ade_file(ade, 'annotation', 'validation', 0)
    with open(ann, 'rb') as f:
        data = f.read()
    if damage == 'missing':
        shutil.move(ann, ann + '.moved')
    else:
        with open(ann, 'wb') as f:
            f.write({
                'empty': b'',
                'garbage': b'\x00garbage' * 16,
                'truncated': data[:len(data) // 2]
            }[damage])
    with pytest.raises(DatasetError, match=re.escape(message)) as err:
        _seg_transform().transform(_seg_results(ann))
    assert ann in str(err.value)


def test_jpeg_label_map_is_refused(ade):
    """Was: trained on (JPEG changes class indices along borders)."""
    ann = ade_file(ade, 'annotation', 'training', 0)
    label = cv2.imread(ann, cv2.IMREAD_UNCHANGED)
    ok, data = cv2.imencode('.jpg', label)
    with open(ann, 'wb') as f:
        f.write(data.tobytes())
    with pytest.raises(DatasetError, match='JPEG data under a .png name'):
        check_datasets(load_config(SEG, {'data_root': ade}), ('train', ))
    with pytest.raises(DatasetError, match='JPEG data under a .png name'):
        _seg_transform().transform(_seg_results(ann))


def exif_rotated(path, orientation=6):
    """Re-save a JPEG with an EXIF Orientation tag."""
    from PIL import Image
    with Image.open(path) as img:
        img.load()
    exif = Image.Exif()
    exif[0x0112] = orientation
    img.save(path, exif=exif.tobytes())


def test_exif_rotated_image_of_a_label_map_is_refused(ade):
    """mmcv's loader turns the image by its EXIF orientation, not the label
    map (read 'unchanged'): a square image was trained on misaligned."""
    img = ade_file(ade, 'image', 'training', 1)
    exif_rotated(img)
    with open(img, 'rb') as f:
        data = f.read()
    turned = mmcv.imfrombytes(data, flag='color')
    stored = mmcv.imfrombytes(data, flag='color_ignore_orientation')
    assert not np.array_equal(turned, stored)  # the premise
    cfg = load_config(SEG, {'data_root': ade})
    with pytest.raises(DatasetError, match='EXIF Orientation=6') as err:
        check_datasets(cfg, ('train', ))
    assert img in str(err.value) and 'exif_transpose' in str(err.value)
    # loading the stored pixels keeps the pair consistent
    cfg.train_dataloader.dataset.pipeline[0].color_type = \
        'color_ignore_orientation'
    check_datasets(cfg, ('train', ))


@pytest.mark.parametrize('kind', ['ade', 'coco', 'voc'])
def test_empty_split_is_one_line(clean, tmp_path, kind):
    """Was: passed the checks (an empty COCO val JSON looked like
    test-dev; an empty VOC list or image folder was not looked at)."""
    root = private_copy(clean[{'ade': 'ade20k'}.get(kind, kind)], tmp_path)
    if kind == 'ade':  # only files of another suffix in the folder
        for img in glob.glob(osp.join(root, 'images', 'validation', '*')):
            shutil.move(img, img[:-4] + '.bmp')
        config, where = SEG, osp.join(root, 'images', 'validation')
    elif kind == 'coco':
        where = osp.join(root, 'annotations', 'instances_val2017.json')
        edit_json(where, lambda data: data.update(images=[], annotations=[]))
        config = COCO
    else:
        where = osp.join(root, 'VOC2007', 'ImageSets', 'Main', 'test.txt')
        open(where, 'w').close()
        config = VOC
    with pytest.raises(DatasetError, match='an empty split') as err:
        check_datasets(load_config(config, {'data_root': root}), ('val', ))
    assert where in str(err.value)


def test_numeric_data_root_is_the_path_it_names(clean, tmp_path, monkeypatch):
    """``--cfg-options data_root=2016`` (mmengine's DictAction reads the
    number 2016) is the folder ``2016``, ``007`` the folder ``007``; a
    number given to load_config for a data_root is the path it spells
    (was: the datasets kept the config's path)."""
    parser = argparse.ArgumentParser()
    add_cfg_options_arg(parser)
    options = parser.parse_args([
        '--cfg-options', 'data_root=2016',
        'val_dataloader.dataset.data_root=007', 'train_cfg.max_iters=5'
    ]).cfg_options
    assert options == {
        'data_root': '2016',
        'val_dataloader.dataset.data_root': '007',
        'train_cfg.max_iters': 5
    }
    shutil.copytree(clean['ade20k'], str(tmp_path / '2016'))
    monkeypatch.chdir(tmp_path)
    cfg = load_config(SEG, dict(options, data_root=2016))
    assert cfg.train_dataloader.dataset.data_root == '2016'
    assert cfg.val_dataloader.dataset.data_root == '007'
    check_datasets(cfg, ('train', ))


def _noise_jpeg(path, side=256):
    """A JPEG of many scan bytes; returns its bytes."""
    rng = np.random.default_rng(0)
    img = cv2.resize(rng.integers(0, 255, (32, 32, 3), np.uint8), (side, side))
    img = (img + rng.integers(0, 40, img.shape)).clip(0, 255)
    assert cv2.imwrite(path, img.astype(np.uint8))
    with open(path, 'rb') as f:
        return f.read()


def test_truncated_jpeg_stops_with_its_name(ade, tmp_path):
    """Was: a raw worker traceback. The header is intact, so the pre-run
    scan (first bytes) passes and the decode names it."""
    img = ade_file(ade, 'image', 'training', 1)
    with open(img, 'rb') as f:
        data = f.read()
    with open(img, 'wb') as f:
        f.write(data[:len(data) * 2 // 3])
    check_datasets(load_config(SEG, {'data_root': ade}), ('train', ))
    error = refusal('tools/train.py', SEG, '--work-dir', tmp_path,
                    '--cfg-options', f'data_root={ade}', *SHORT)
    missing = [p for p in (img, 'is truncated') if str(p) not in error]
    assert not missing, (missing, error)


@pytest.mark.parametrize('backend', ['cv2', 'pillow'])
def test_truncated_jpeg_is_named_by_every_decoder(tmp_path, backend):
    path = str(tmp_path / 'big.jpg')
    data = _noise_jpeg(path)
    with open(path, 'wb') as f:
        f.write(data[:int(len(data) * 0.6)])
    with pytest.raises(DatasetError, match='is truncated'):
        CheckedLoadImageFromFile(imdecode_backend=backend).transform(
            dict(img_path=path))
    # a decoder that returns the cut image, its lower part grey (older
    # OpenCV, turbojpeg), does not make it pass
    grey = np.full((256, 256, 3), 128, np.uint8)
    with mock.patch('mmcv.imfrombytes', return_value=grey), \
            pytest.raises(DatasetError, match='is truncated'):
        CheckedLoadImageFromFile(imdecode_backend=backend).transform(
            dict(img_path=path))
    # bytes after the end marker (some cameras append data) are fine
    with open(path, 'wb') as f:
        f.write(data + b'\x00trailer\xff\xda' * 4)
    out = CheckedLoadImageFromFile(imdecode_backend=backend).transform(
        dict(img_path=path))
    assert out['img'].shape == (256, 256, 3)
    assert out['ori_shape'] == (256, 256)


@pytest.mark.parametrize('damage', ['empty', 'garbage', 'missing'])
def test_damaged_image_named_where_decoded(tmp_path, damage):
    path = str(tmp_path / 'x.jpg')
    if damage != 'missing':
        with open(path, 'wb') as f:
            f.write(b'' if damage == 'empty' else b'\xff\xd8\xff' + b'x' * 99)
    with pytest.raises(DatasetError) as err:
        CheckedLoadImageFromFile().transform(dict(img_path=path))
    assert path in str(err.value) and '\n' not in str(err.value)
    # mmcv's ignore_empty keeps its meaning: skip the sample
    assert CheckedLoadImageFromFile(ignore_empty=True).transform(
        dict(img_path=path)) is None


def test_image_size_from_header(tmp_path):
    path = str(tmp_path / 'a.jpg')
    cv2.imwrite(path, np.zeros((40, 70, 3), np.uint8))
    assert image_size_from_header(path) == (40, 70)
    cv2.imwrite(path[:-4] + '.png', np.zeros((41, 71), np.uint8))
    assert image_size_from_header(path[:-4] + '.png') == (41, 71)
    cv2.imwrite(path[:-4] + '.bmp', np.zeros((4, 7), np.uint8))
    assert image_size_from_header(path[:-4] + '.bmp') is None


# ----------------------------------------------------------------------------
# COCO
# ----------------------------------------------------------------------------
@pytest.fixture
def coco(clean, tmp_path):
    return private_copy(clean['coco'], tmp_path)


def edit_json(path, edit):
    with open(path) as f:
        data = json.load(f)
    edit(data)
    with open(path, 'w') as f:
        json.dump(data, f)


def coco_check(root, splits=('train', )):
    check_dataset_files(load_config(COCO, {'data_root': root}), splits)


def train_json(root):
    return osp.join(root, 'annotations', 'instances_train2017.json')


def test_coco_summary_counts_dropped_boxes(coco, mm_log):
    """Was: silently dropped. A negative-width box is dropped (as mmdet
    does), and the summary at the start says so."""

    def edit(data):
        data['annotations'][0]['bbox'][2] = -5

    edit_json(train_json(coco), edit)
    coco_check(coco)
    lines = [r.getMessage() for r in mm_log if ' images, ' in r.getMessage()]
    assert len(lines) == 1, lines
    assert train_json(coco) in lines[0]
    assert '2 images' in lines[0] and '1 dropped' in lines[0]
    assert 'box width or height < 1 px: 1' in lines[0]
    assert mm_log[-1].levelname == 'WARNING'


def test_coco_every_box_invalid_is_an_error(coco, tmp_path):
    """Was: exit 0 after training on empty images (all losses 0.0000)."""

    def edit(data):
        for ann in data['annotations']:
            ann['bbox'][2] = -abs(ann['bbox'][2])

    edit_json(train_json(coco), edit)
    error = refusal('tools/train.py', COCO, '--work-dir', tmp_path,
                    '--cfg-options', f'data_root={coco}',
                    'train_cfg.max_epochs=1')
    missing = [
        p for p in (train_json(coco), 'none of its',
                    'box width or height < 1 px') if str(p) not in error
    ]
    assert not missing, (missing, error)


@pytest.mark.parametrize('field,message', [
    ('category_id', 'category_id that is not in "categories"'),
    ('image_id', 'image_id that is not in "images"'),
])
def test_coco_unknown_reference_names_the_json(coco, field, message):

    def edit(data):
        data['annotations'][1][field] = 9999

    edit_json(train_json(coco), edit)
    with pytest.raises(DatasetError, match=message) as err:
        coco_check(coco)
    assert train_json(coco) in str(err.value) and '9999' in str(err.value)


@pytest.mark.parametrize('damage,message', [
    ('duplicate_id', 'annotation ids must be unique'),
    ('no_height', 'positive "width" and "height"'),
    ('no_bbox', 'a bbox of 4 numbers'),
    ('infinite_box', 'a bbox of 4 numbers'),
    ('duplicate_category', 'listed twice in "categories"'),
])
def test_coco_malformed_entries_name_the_json(coco, damage, message):
    """mmdet stops on these with a bare AssertionError / KeyError; trains
    on an infinite box; gives two categories of one id one label."""

    def edit(data):
        if damage == 'duplicate_id':
            data['annotations'][1]['id'] = data['annotations'][0]['id']
        elif damage == 'no_height':
            del data['images'][0]['height']
        elif damage == 'infinite_box':
            data['annotations'][0]['bbox'][2] = float('inf')
        elif damage == 'duplicate_category':
            data['categories'][1]['id'] = data['categories'][0]['id']
        else:
            del data['annotations'][0]['bbox']

    edit_json(train_json(coco), edit)
    with pytest.raises(DatasetError, match=re.escape(message)) as err:
        coco_check(coco)
    assert train_json(coco) in str(err.value)


def test_coco_invalid_json_names_the_file(coco, tmp_path):
    """Was: ``error: Expecting value: line 1 column 4047``, no file."""
    path = osp.join(coco, 'annotations', 'instances_val2017.json')
    with open(path, 'rb') as f:
        data = f.read()
    with open(path, 'wb') as f:  # an interrupted download
        f.write(data[:len(data) // 2])
    error = refusal('tools/train.py', COCO, '--work-dir', tmp_path,
                    '--cfg-options', f'data_root={coco}',
                    'train_cfg.max_epochs=1')
    missing = [
        p for p in (path, 'invalid JSON', 'line 1 column')
        if str(p) not in error
    ]
    assert not missing, (missing, error)


def test_coco_missing_image_is_named(coco):
    image = sorted(glob.glob(osp.join(coco, 'train2017', '*.jpg')))[0]
    shutil.move(image, image + '.moved')
    with pytest.raises(DatasetError, match=osp.basename(image)):
        coco_check(coco)


def summary_counts(mm_log, path):
    """(images, kept, ignored) of the start summary of ``path``."""
    lines = [
        r.getMessage() for r in mm_log if r.getMessage().startswith((
            'train ', 'val ', 'test ')) and f' {path}: ' in r.getMessage()
    ]
    assert lines, [r.getMessage() for r in mm_log]
    found = re.search(r': (\d+) images.*?, (\d+) \w+ kept(?:, (\d+) ignored)?',
                      lines[-1])
    return tuple(int(n or 0) for n in found.groups()), lines[-1]


def yielded(ds_cfg):
    """(images, gt instances, ignored instances) the real mmdet dataset
    yields through its pipeline (``data_samples.gt_instances`` and
    ``ignored_instances``)."""
    from mmdet.registry import DATASETS
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmdet'):
        # not serialized: that only packs the same samples, after a
        # gc.collect() that takes ~0.7 s in a test process
        dataset = DATASETS.build(
            dict(copy.deepcopy(ds_cfg), serialize_data=False))
        samples = [dataset[i]['data_samples'] for i in range(len(dataset))]
    return (len(dataset), sum(len(s.gt_instances) for s in samples),
            sum(len(s.ignored_instances) for s in samples))


def coco_rle(height, width, rows=slice(4, 20), cols=slice(4, 30)):
    """A compressed RLE (JSON-ready) of a rectangle."""
    mask = np.zeros((height, width), np.uint8, order='F')
    mask[rows, cols] = 1
    rle = mask_utils.encode(mask)
    return dict(size=rle['size'], counts=rle['counts'].decode())


def test_coco_summary_equals_what_mmdet_yields(coco, mm_log):
    """Was: "kept, none dropped" for a mask of < 3 points (mmdet ignores
    the instance) and for crowd regions. The summary counts by mmdet's
    rules; the real CocoDataset and train pipeline yield the same."""

    def edit(data):
        img = data['images'][0]
        a0, a1, a2 = data['annotations'][:3]
        a0['segmentation'] = [[1, 1, 5, 5]]  # 2 points: instance ignored
        a2['segmentation'].append([1, 2, 3, 4])  # one part left out
        extra = []
        for new_id, change in enumerate(
            [
                dict(
                    iscrowd=1,
                    segmentation=coco_rle(img['height'], img['width'])),
                dict(segmentation=coco_rle(img['height'], img['width'])),
                dict(bbox=[2, 2, 0.5, 9]),  # < 1 px: dropped
                dict(bbox=[900, 2, 9, 9]),  # outside its image: dropped
                dict(ignore=True),  # dropped
            ],
                9001):
            extra.append(
                dict(
                    copy.deepcopy(a1), id=new_id, image_id=img['id'],
                    **change))
        data['annotations'] += extra
        # an image without annotations: filter_empty_gt leaves it out
        data['images'].append(dict(img, id=999))

    path = train_json(coco)
    edit_json(path, edit)
    cfg = load_config(COCO, {'data_root': coco})
    check_dataset_files(cfg, ('train', ))
    counted, line = summary_counts(mm_log, path)
    assert counted == (2, 3, 2), line  # not equal by both being empty
    assert yielded(cfg.train_dataloader.dataset) == counted
    for part in ('(1 of 3 left out by filter_cfg)', 'crowd (iscrowd): 1',
                 'mask: no polygon of >= 3 points: 1', '3 dropped',
                 '1 mask polygons of < 3 points'):
        assert part in line, (part, line)


@pytest.mark.parametrize(
    'change,message',
    [
        # was: 10.4 GB allocated where the pipeline decodes it
        (dict(
            iscrowd=1,
            segmentation=dict(size=[100000, 100000], counts='0' * 9)),
         'RLE "size" [100000, 100000] is not its image\'s'),
        # was: pixels after the counts left uninitialised (any values)
        (dict(segmentation=dict(size=[64, 64], counts=[5, 3])),
         'add up to 8 pixels, not 64 x 64'),
        (dict(segmentation=dict(size=[64, 64], counts='ab')),
         'cannot be read (the string ends inside a count)'),
        (dict(segmentation=dict(size=[64, 64])), 'neither a compressed'),
        (dict(segmentation='1 2 3'), 'neither a list of polygons'),
    ])
def test_coco_damaged_rle_is_refused_before_decoding(coco, change, message):
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB

    def edit(data):
        data['annotations'][1].update(change)

    path = train_json(coco)
    edit_json(path, edit)
    with open(path) as f:
        data = json.load(f)
    ann = data['annotations'][1]
    file_name = [
        i['file_name'] for i in data['images'] if i['id'] == ann['image_id']
    ][0]
    with pytest.raises(DatasetError, match=re.escape(message)) as err:
        coco_check(coco)
    for part in (path, f'id {ann["id"]} ({file_name})', 'restore them'):
        assert part in str(err.value), (part, str(err.value))
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak
    assert grown < 100 * 1024, f'{grown} KiB more at the peak'


def test_rle_counts_read_as_pycocotools_writes_them():
    rng = np.random.default_rng(0)
    for trial in range(20):
        height, width = (int(v) for v in rng.integers(1, 90, 2))
        mask = rng.random((height, width)) < rng.random()
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        counts = rle_counts(rle['counts'].decode())
        assert sum(counts) == height * width
        assert sum(counts[1::2]) == int(mask.sum())
        assert rle_problem(
            dict(size=[height, width], counts=rle['counts'].decode()), height,
            width) is None
    assert rle_problem(dict(size=[4, 4], counts=[3, -1, 14]), 4,
                       4) == 'RLE "counts" holds a negative run length'
    with pytest.raises(ValueError, match='not part of the code'):
        rle_counts('0 1')


def test_coco_mask_model_needs_every_segmentation(coco):
    """Was: ``KeyError: 'mask'`` in mmdet's LoadAnnotations."""

    def edit(data):
        del data['annotations'][2]['segmentation']

    edit_json(train_json(coco), edit)
    with pytest.raises(DatasetError, match='with_mask=True') as err:
        coco_check(coco)
    assert train_json(coco) in str(err.value)
    assert 'no "segmentation"' in str(err.value)
    # a model without masks does not need them
    cfg = load_config(COCO, {'data_root': coco})
    for node in cfg.train_dataloader.dataset.pipeline:
        node.pop('with_mask', None)
    check_dataset_files(cfg, ('train', ))


def test_detection_that_detects_nothing_reports_map_zero(coco, tmp_path):
    """Was: exit 0 with ``"metrics": {}``."""
    checkpoint = str(tmp_path / 'det.pth')
    torch.save(
        dict(state_dict=build_model(load_config(COCO)).state_dict(), meta={}),
        checkpoint)
    run_tool('tools/test.py', COCO, checkpoint, '--work-dir', tmp_path,
             '--cfg-options', f'data_root={coco}',
             'model.test_cfg.rcnn.score_thr=1.01')  # nothing passes
    with open(tmp_path / 'test_metrics.json') as f:
        written = json.load(f)
    assert written['metrics']['coco/bbox_mAP'] == 0.0
    assert written['metrics']['coco/segm_mAP'] == 0.0
    assert 'detected nothing' in written['note']


# ----------------------------------------------------------------------------
# PASCAL VOC
# ----------------------------------------------------------------------------
@pytest.fixture
def voc(clean, tmp_path):
    return private_copy(clean['voc'], tmp_path)


def voc_xml(root, index=0):
    return sorted(
        glob.glob(osp.join(root, 'VOC2007', 'Annotations', '*.xml')))[index]


def edit_xml(path, old, new):
    with open(path) as f:
        text = f.read()
    assert old in text
    with open(path, 'w') as f:
        f.write(text.replace(old, new, 1))


def voc_check(root, **options):
    check_dataset_files(load_config(VOC, dict(data_root=root, **options)))


def test_voc_broken_xml_names_the_file(voc, tmp_path):
    xml = voc_xml(voc, 1)
    edit_xml(xml, '</annotation>', '</annot')
    error = refusal('tools/train.py', VOC, '--work-dir', tmp_path,
                    '--cfg-options', f'data_root={voc}',
                    'train_cfg.max_epochs=1')
    missing = [p for p in (xml, 'invalid XML') if str(p) not in error]
    assert not missing, (missing, error)


def test_voc_unknown_class_and_bad_box_name_the_file(voc):
    xml = voc_xml(voc, 0)
    with open(xml) as f:
        text = f.read()
    name = text.split('<name>')[1].split('</name>')[0]
    edit_xml(xml, f'<name>{name}</name>', '<name>persn</name>')
    with pytest.raises(DatasetError, match="class 'persn'") as err:
        voc_check(voc)
    assert xml in str(err.value)
    with open(xml, 'w') as f:
        f.write(text)
    xmin = text.split('<xmin>')[1].split('</xmin>')[0]
    edit_xml(xml, f'<xmin>{xmin}</xmin>', '<xmin>999</xmin>')
    with pytest.raises(DatasetError, match='empty or inverted box') as err:
        voc_check(voc)
    assert xml in str(err.value)


def test_voc_class_subset_drops_and_counts(voc, mm_log):
    """With ``metainfo.classes`` chosen in the config, other objects are
    dropped as mmdet does, and counted; none left is an error."""
    with open(voc_xml(voc, 0)) as f:
        dropped = f.read().split('<name>')[1].split('</name>')[0]
    cfg = load_config(VOC, dict(data_root=voc))
    val = cfg.val_dataloader.dataset
    val.metainfo = dict(
        classes=tuple(
            c for c in ('person', 'car', 'dog', 'bird', 'bottle', 'chair')
            if c != dropped))
    check_dataset_files(cfg, ('val', ))
    summary = [r for r in mm_log if ' images, ' in r.getMessage()][-1]
    assert summary.levelname == 'WARNING'
    assert "class not among the config's classes: " in summary.getMessage()
    val.metainfo = dict(classes=('cat', ))  # no object of the test set
    with pytest.raises(DatasetError, match='none of its .* objects'):
        check_dataset_files(cfg, ('val', ))


def test_voc_summary_equals_what_mmdet_yields(voc, mm_log):
    """Was: difficult objects and boxes under ``bbox_min_size`` (both in
    ``ignored_instances``) counted as kept, images left out by
    ``filter_empty_gt`` counted. The real VOCDataset and train pipeline
    yield what the summary says."""
    first, second = voc_xml(voc, 0), voc_xml(voc, 1)
    tree = ET.parse(first)
    obj = tree.getroot().find('object')
    difficult, small = copy.deepcopy(obj), copy.deepcopy(obj)
    difficult.find('difficult').text = '1'
    for key, value in zip(('xmin', 'ymin', 'xmax', 'ymax'), (5, 5, 8, 20)):
        small.find(f'bndbox/{key}').text = str(value)  # 3 px < 4
    tree.getroot().extend([difficult, small])
    tree.write(first)
    tree = ET.parse(second)
    for obj in tree.getroot().findall('object'):
        tree.getroot().remove(obj)  # no objects: filter_empty_gt
    tree.write(second)
    cfg = load_config(VOC, dict(data_root=voc))
    ds_cfg = cfg.train_dataloader.dataset.datasets[0]  # VOC2007 trainval
    assert ds_cfg.filter_cfg.bbox_min_size == 4
    check_dataset_files(cfg, ('train', ))
    path = osp.join(voc, 'VOC2007', 'ImageSets', 'Main', 'trainval.txt')
    counted, line = summary_counts(mm_log, path)
    kept = len(ET.parse(first).getroot().findall('object')) - 2
    assert counted == (1, kept, 2), line
    assert yielded(ds_cfg) == counted
    assert 'difficult: 1' in line and 'bbox_min_size=4: 1' in line, line


def test_voc_box_outside_its_image_is_refused(voc):
    """Was: kept, then clipped by the pipeline to an empty box."""
    xml = voc_xml(voc, 0)
    with open(xml) as f:
        text = f.read()
    xmin = text.split('<xmin>')[1].split('</xmin>')[0]
    xmax = text.split('<xmax>')[1].split('</xmax>')[0]
    edit_xml(xml, f'<xmin>{xmin}</xmin>', '<xmin>70</xmin>')
    edit_xml(xml, f'<xmax>{xmax}</xmax>', '<xmax>90</xmax>')
    with pytest.raises(DatasetError, match='outside its 64x64') as err:
        voc_check(voc)
    assert xml in str(err.value) and 'Fix or remove' in str(err.value)


# ----------------------------------------------------------------------------
# wiring
# ----------------------------------------------------------------------------
def test_install_data_checks_swaps_every_loading_transform(ade):
    cfg = load_config(SEG, {'data_root': ade})
    cfg.data_checks = dict(out_of_range='ignore')
    install_data_checks(cfg)
    before = copy.deepcopy(cfg._cfg_dict.to_dict())
    install_data_checks(cfg)  # idempotent
    assert cfg._cfg_dict.to_dict() == before
    used = {
        k: before[k]
        for k in ('train_dataloader', 'val_dataloader', 'test_dataloader',
                  'tta_pipeline')
    }
    text = json.dumps(used, default=str)
    assert '"LoadImageFromFile"' not in text
    assert '"LoadAnnotations"' not in text  # also inside TestTimeAug
    ann = cfg.train_dataloader.dataset.pipeline[1]
    assert ann.type == 'CheckedLoadAnnotations' and ann.num_classes == 150
    assert ann.out_of_range == 'ignore' and ann.ignore_index == 255
    # detection: the images are checked, mmdet's box loader is kept
    cfg = load_config(VOC)
    install_data_checks(cfg)
    pipeline = cfg.train_dataloader.dataset.datasets[0].pipeline
    assert [t.type for t in pipeline[:2]
            ] == ['CheckedLoadImageFromFile', 'LoadAnnotations']


def test_clean_datasets_pass(ade, coco, voc, mm_log):
    check_datasets(load_config(SEG, {'data_root': ade}))
    coco_check(coco, ('train', 'val', 'test'))
    voc_check(voc)
    summaries = [r for r in mm_log if ' images, ' in r.getMessage()]
    # COCO train/val/test and VOC's trainval/test lists each say so once
    assert len(summaries) >= 4, [r.getMessage() for r in mm_log]
    for record in summaries:
        assert record.levelname == 'INFO', record.getMessage()
        assert 'none dropped' in record.getMessage(), record.getMessage()


def test_seg_prefix_is_checked_only_where_maps_are_loaded(coco):
    """Was: mmdet's instance Mask2Former refused with ``path not found:
    .../annotations/panoptic_train2017/``, a ``data_prefix.seg`` inherited
    from the panoptic base that instance training never opens."""
    # a COCO instance download has no panoptic maps (the generator writes
    # them)
    shutil.rmtree(osp.join(coco, 'annotations', 'panoptic_train2017'))
    cfg = load_config(
        osp.join(ROOT, 'configs', 'integrations',
                 'mask2former_slak_t_coco_instance.py'),
        {'data_root': coco + '/'})
    dataset = cfg.train_dataloader.dataset
    assert dataset.data_prefix.seg == 'annotations/panoptic_train2017/'
    assert not osp.exists(osp.join(coco, dataset.data_prefix.seg))
    check_datasets(cfg, ('train', ))  # nothing reads it: no error
    loader = dataset.pipeline[1]
    assert loader.type == 'LoadAnnotations'
    loader.with_seg = True  # now the pipeline opens the maps
    with pytest.raises(FileNotFoundError, match='panoptic_train2017'):
        check_datasets(cfg, ('train', ))
