"""The synthetic datasets are read unchanged by mmseg's / mmdet's classes."""
import importlib.util
import json
import os
import os.path as osp
import sys
import types

import cv2
import numpy as np
import pytest
from mmengine.registry import init_default_scope

from slak_mm.datasets import synthetic as syn
from tests.common import ROOT

SIZE = (64, 80)  # (H, W): tiny, non-square to catch H/W mix-ups


def _files(root):
    out = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = osp.join(dirpath, name)
            with open(path, 'rb') as f:
                out[osp.relpath(path, root)] = f.read()
    return out


# ----------------------------------------------------------------------------
# ADE20K
# ----------------------------------------------------------------------------
@pytest.mark.filterwarnings('ignore:`reduce_zero_label` will be deprecated')
def test_ade20k_read_by_mmseg(tmp_path):
    from mmseg.datasets import ADE20KDataset
    init_default_scope('mmseg')
    out = syn.generate_ade20k(
        str(tmp_path), num_train=3, num_val=2, img_size=SIZE, seed=1)
    assert out == osp.join(str(tmp_path), 'ADEChallengeData2016')

    # our ids name the intended ADE20K classes
    classes = ADE20KDataset.METAINFO['classes']
    for cls in syn.ADE20K_CLASSES + (syn.ADE20K_BACKGROUND, ):
        assert classes[cls.dataset_id - 1] == cls.name

    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', reduce_zero_label=True),
        dict(type='PackSegInputs')
    ]
    allowed = {c.dataset_id - 1 for c in syn.ADE20K_CLASSES}
    allowed |= {syn.ADE20K_BACKGROUND.dataset_id - 1, 255}
    for split, num in (('training', 3), ('validation', 2)):
        ds = ADE20KDataset(
            data_root=out,
            data_prefix=dict(
                img_path=f'images/{split}',
                seg_map_path=f'annotations/{split}'),
            pipeline=pipeline)
        assert len(ds) == num
        for i in range(num):
            sample = ds[i]
            assert tuple(sample['inputs'].shape) == (3, *SIZE)
            gt = sample['data_samples'].gt_sem_seg.data.numpy()[0]
            labels = set(np.unique(gt).tolist())
            assert labels <= allowed
            # background is a class and most pixels are labelled
            assert syn.ADE20K_BACKGROUND.dataset_id - 1 in labels
            assert (gt != 255).mean() > 0.85

            # the label map is exactly what was drawn (ignoring the 0 ring)
            scene = syn.make_scene('ade20k', split, i, SIZE, seed=1)
            assert len(scene.objects) >= 1
            img = cv2.imread(ds.get_data_info(i)['img_path'])[..., ::-1]
            for obj in scene.objects:
                sel = obj.mask & (gt != 255)
                assert sel.sum() > 0.5 * obj.mask.sum()
                assert (gt[sel] == obj.cls.dataset_id - 1).all()
                # and the image shows the class colour there
                mean = img[sel].astype(float).mean(axis=0)
                assert np.abs(mean - obj.cls.color).max() < 40
            bg = ~np.any([o.mask for o in scene.objects], axis=0)
            assert (gt[bg] == syn.ADE20K_BACKGROUND.dataset_id - 1).all()


def test_regenerate_replaces_own_folder_only(tmp_path):
    syn.generate_ade20k(str(tmp_path), num_train=3, num_val=1, img_size=32)
    out = syn.generate_ade20k(
        str(tmp_path), num_train=1, num_val=1, img_size=32)
    # stale images of the first run are gone (ADE20KDataset lists folders)
    assert os.listdir(osp.join(out, 'images',
                               'training')) == ['ADE_train_00000001.jpg']
    # a folder that we did not write is never overwritten
    os.makedirs(tmp_path / 'coco')
    (tmp_path / 'coco' / 'real.json').write_text('{}')
    with pytest.raises(FileExistsError):
        syn.generate_coco(str(tmp_path), num_train=1, num_val=1)
    assert (tmp_path / 'coco' / 'real.json').read_text() == '{}'


# ----------------------------------------------------------------------------
# VOC
# ----------------------------------------------------------------------------
def test_voc_read_by_mmdet(tmp_path):
    from mmdet.datasets import VOCDataset
    init_default_scope('mmdet')
    out = syn.generate_voc(
        str(tmp_path), num_train=3, num_val=2, img_size=SIZE, seed=2)
    assert out == osp.join(str(tmp_path), 'VOCdevkit')
    classes = VOCDataset.METAINFO['classes']
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True)
    ]
    for year, split, num in (('VOC2007', 'trainval', 3),
                             ('VOC2007', 'test', 2), ('VOC2012', 'trainval',
                                                      3)):
        ds = VOCDataset(
            data_root=out,
            ann_file=f'{year}/ImageSets/Main/{split}.txt',
            data_prefix=dict(sub_data_root=f'{year}/'),
            pipeline=pipeline)
        assert len(ds) == num
        assert ds.metainfo['dataset_type'] == year
        for i in range(num):
            res = ds[i]
            assert res['img'].shape == (*SIZE, 3)
            scene = syn.make_scene('voc', f'{year}/{split}', i, SIZE, seed=2)
            assert len(scene.objects) >= 1
            # mmdet subtracts 1 from VOC's 1-based inclusive coordinates
            expected = np.array([o.bbox for o in scene.objects], np.float32)
            np.testing.assert_array_equal(res['gt_bboxes'].numpy(), expected)
            names = [classes[k] for k in res['gt_bboxes_labels']]
            assert names == [o.cls.name for o in scene.objects]
            assert not res['gt_ignore_flags'].any()


# ----------------------------------------------------------------------------
# COCO
# ----------------------------------------------------------------------------
def test_coco_categories_are_real():
    from mmdet.datasets import CocoDataset
    names = [c['name'] for c in syn.COCO_CATEGORIES]
    assert tuple(names) == CocoDataset.METAINFO['classes']
    ids = {c['name']: c['id'] for c in syn.COCO_CATEGORIES}
    assert ids['person'] == 1 and ids['car'] == 3 and ids['dog'] == 18
    assert ids['toothbrush'] == 90 and ids['dining table'] == 67
    for cls in syn.COCO_CLASSES:
        assert ids[cls.name] == cls.dataset_id


@pytest.mark.filterwarnings('ignore:__array__ implementation')
def test_coco_read_by_mmdet(tmp_path):
    from mmdet.datasets import CocoDataset
    from pycocotools import mask as mask_utils
    init_default_scope('mmdet')
    out = syn.generate_coco(
        str(tmp_path), num_train=3, num_val=2, img_size=SIZE, seed=3)
    assert out == osp.join(str(tmp_path), 'coco')
    classes = CocoDataset.METAINFO['classes']
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True, with_mask=True)
    ]
    h, w = SIZE
    for split, num in (('train2017', 3), ('val2017', 2)):
        ds = CocoDataset(
            data_root=out,
            ann_file=f'annotations/instances_{split}.json',
            data_prefix=dict(img=f'{split}/'),
            pipeline=pipeline)
        assert len(ds) == num
        with open(osp.join(out, 'annotations',
                           f'instances_{split}.json')) as f:
            raw = json.load(f)
        assert len({a['id']
                    for a in raw['annotations']}) == len(raw['annotations'])
        n_inst = 0
        for i in range(num):
            res = ds[i]
            assert res['img'].shape == (*SIZE, 3)
            scene = syn.make_scene('coco', split, i, SIZE, seed=3)
            assert len(scene.objects) >= 1
            n_inst += len(scene.objects)
            expected = np.array(
                [[x0, y0, x1 + 1, y1 + 1]
                 for x0, y0, x1, y1 in (o.bbox for o in scene.objects)],
                np.float32)
            np.testing.assert_array_equal(res['gt_bboxes'].numpy(), expected)
            names = [classes[k] for k in res['gt_bboxes_labels']]
            assert names == [o.cls.name for o in scene.objects]
            # mmdet rasterised the polygons (with pycocotools) on loading
            bitmaps = res['gt_masks'].masks.astype(bool)
            assert bitmaps.shape == (len(scene.objects), h, w)
            img_id = ds.get_data_info(i)['img_id']
            anns = [a for a in raw['annotations'] if a['image_id'] == img_id]
            assert len(anns) == len(scene.objects)
            for ann, bitmap, box, obj in zip(anns, bitmaps, expected,
                                             scene.objects):
                assert ann['iscrowd'] == 0 and ann['area'] == obj.area
                rle = mask_utils.merge(
                    mask_utils.frPyObjects(ann['segmentation'], h, w))
                m = mask_utils.decode(rle).astype(bool)
                assert (m == bitmap).all()
                ys, xs = np.nonzero(m)
                # the polygon mask fills its box (pycocotools may add a
                # pixel at sharp vertices, where its rule differs from the
                # pixel-centre rule used to draw) ...
                assert abs(xs.min() - box[0]) <= 1
                assert abs(ys.min() - box[1]) <= 1
                assert abs(xs.max() + 1 - box[2]) <= 1
                assert abs(ys.max() + 1 - box[3]) <= 1
                box_area = (box[2] - box[0]) * (box[3] - box[1])
                assert m.sum() > 0.4 * box_area
                # ... and is the drawn object
                iou = (m & obj.mask).sum() / (m | obj.mask).sum()
                assert iou > 0.95
        assert len(raw['annotations']) == n_inst


@pytest.fixture
def panopticapi_rgb2id(monkeypatch):
    """mmdet's ``LoadPanopticAnnotations`` takes ``rgb2id`` from
    panopticapi, which is not on PyPI (a git install) and so not in the
    test environment: where it is missing, its four-line ``rgb2id``
    (segment id = R + 256 G + 256^2 B) stands in; everything else is
    mmdet's."""
    try:
        import panopticapi.utils  # noqa: F401
        return
    except ModuleNotFoundError:
        pass

    def rgb2id(color):
        color = color.astype(np.int32)
        return color[..., 0] + 256 * color[..., 1] + 65536 * color[..., 2]

    utils = types.ModuleType('panopticapi.utils')
    utils.rgb2id = rgb2id
    package = types.ModuleType('panopticapi')
    package.utils = utils
    monkeypatch.setitem(sys.modules, 'panopticapi', package)
    monkeypatch.setitem(sys.modules, 'panopticapi.utils', utils)


def test_coco_panoptic_read_by_mmdet(tmp_path, panopticapi_rgb2id):
    """The panoptic PNGs and JSON give mmdet's CocoPanopticDataset and
    LoadPanopticAnnotations exactly the drawn objects (things) and the
    background stuff."""
    from mmdet.datasets import CocoPanopticDataset
    init_default_scope('mmdet')
    out = syn.generate_coco(
        str(tmp_path), num_train=2, num_val=1, img_size=SIZE, seed=3)
    classes = CocoPanopticDataset.METAINFO['classes']
    assert [c['name'] for c in syn.COCO_PANOPTIC_CATEGORIES] == list(classes)
    background = classes.index(syn.COCO_BACKGROUND.name)
    ds = CocoPanopticDataset(
        data_root=out,
        ann_file='annotations/panoptic_train2017.json',
        data_prefix=dict(
            img='train2017/', seg='annotations/panoptic_train2017/'),
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadPanopticAnnotations')
        ])
    assert len(ds) == 2
    for i in range(2):
        res = ds[i]
        scene = syn.make_scene('coco', 'train2017', i, SIZE, seed=3)
        names = [classes[k] for k in res['gt_bboxes_labels']]
        assert names == [o.cls.name for o in scene.objects]
        masks = res['gt_masks'].masks.astype(bool)
        for mask, obj in zip(masks, scene.objects):
            assert (mask == obj.mask).all()
        expected = np.full(SIZE, background)
        for obj in scene.objects:
            expected[obj.mask] = classes.index(obj.cls.name)
        np.testing.assert_array_equal(res['gt_seg_map'], expected)


@pytest.mark.parametrize(
    'config', [
        'htc/htc_r50_fpn_1x_coco.py',
        'panoptic_fpn/panoptic-fpn_r50_fpn_1x_coco.py',
        'mask2former/mask2former_r50_8xb2-lsj-50e_coco-panoptic.py'
    ],
    ids=['htc', 'panoptic_fpn', 'mask2former_panoptic'])
def test_stock_stuff_and_panoptic_configs_read_the_data(
        tmp_path, panopticapi_rgb2id, config):
    """HTC (instances + COCO-Stuff maps), Panoptic FPN and Mask2Former
    panoptic: their stock configs, only data_root changed, pass the
    pre-run dataset checks and build their train and val sets with their
    own pipelines on the generated COCO folder."""
    from mmengine.registry import DATASETS

    from slak_mm.config import check_datasets, load_config
    out = syn.generate_coco(
        str(tmp_path), num_train=2, num_val=1, img_size=SIZE, seed=3)
    cfg = load_config(f'mmdet::{config}', {'data_root': out + '/'})
    check_datasets(cfg)
    init_default_scope('mmdet')
    scene = syn.make_scene('coco', 'train2017', 0, SIZE, seed=3)
    panoptic = 'htc' not in config
    for split, num in (('train', 2), ('val', 1)):
        ds = DATASETS.build(cfg[f'{split}_dataloader'].dataset)
        assert len(ds) == num
        # Mask2Former's training crop is random (numpy's global generator):
        # the same crop whatever ran before, one that keeps every object
        np.random.seed(0)
        sample = ds[0]['data_samples']
        assert len(sample.gt_instances) >= 1
        if split == 'train':
            assert len(sample.gt_instances) == len(scene.objects)
            sem_seg = set(np.unique(sample.gt_sem_seg.sem_seg.numpy()))
            if panoptic:  # things 0..79, stuff 80..132
                classes = ds.metainfo['classes']
                want = {classes.index(syn.COCO_BACKGROUND.name)}
                want |= {classes.index(o.cls.name) for o in scene.objects}
            else:  # COCO-Stuff maps: category id - 1, 255 padding
                want = {syn.COCO_BACKGROUND.dataset_id - 1}
                want |= {o.cls.dataset_id - 1 for o in scene.objects}
            assert sem_seg - {255} == want


def test_imagenet_read_by_mmpretrain(tmp_path):
    """Class folders as mmpretrain's CustomDataset reads them: image i
    shows class i % 6 only, its label the folder's sorted index (the
    class's ImageNet-1K label)."""
    mmpretrain_datasets = pytest.importorskip('mmpretrain.datasets')
    out = syn.generate_imagenet(
        str(tmp_path), num_train=7, num_val=2, img_size=SIZE, seed=2)
    wnids = [c.name for c in syn.IMAGENET_CLASSES]
    assert wnids == sorted(wnids)
    assert [c.dataset_id for c in syn.IMAGENET_CLASSES] == list(range(6))
    for split, num in (('train', 7), ('val', 2)):
        ds = mmpretrain_datasets.CustomDataset(
            data_root=out, data_prefix=split, lazy_init=False)
        assert len(ds) == num and ds.CLASSES == tuple(wnids)
        for k in range(num):
            info = ds.get_data_info(k)
            index = int(osp.basename(info['img_path']).split('_')[-1][:-5])
            scene = syn.make_scene('imagenet', split, index - 1, SIZE, seed=2)
            assert {o.cls.name
                    for o in scene.objects} == {wnids[info['gt_label']]
                                                } == {wnids[(index - 1) % 6]}
    # mmpretrain's ImageNet (the packaged configs' type) reads meta/*.txt:
    # the same images and labels, among ImageNet-1K's 1000 classes
    for split, num in (('train', 7), ('val', 2)):
        imagenet = mmpretrain_datasets.ImageNet(
            data_root=out, split=split, lazy_init=False)
        folders = mmpretrain_datasets.CustomDataset(
            data_root=out, data_prefix=split, lazy_init=False)
        assert len(imagenet.CLASSES) == 1000 and len(imagenet) == num
        assert sorted((info['img_path'], info['gt_label'])
                      for info in imagenet.load_data_list()) == sorted(
                          (info['img_path'], info['gt_label'])
                          for info in folders.load_data_list())


@pytest.mark.filterwarnings('ignore:__array__ implementation')
def test_scene_polygons_match_drawn_pixels():
    from pycocotools import mask as mask_utils
    h, w = 96, 112
    shapes = set()
    for i in range(12):
        scene = syn.make_scene('coco', 'train2017', i, (h, w), max_objects=6)
        assert 1 <= len(scene.objects) <= 6
        assert scene.image.shape == (h, w, 3) and scene.image.dtype == np.uint8
        union = np.zeros((h, w), int)
        for obj in scene.objects:
            shapes.add(obj.cls.shape)
            union += obj.mask
            x0, y0, x1, y1 = obj.bbox
            ys, xs = np.nonzero(obj.mask)
            assert (xs.min(), ys.min(), xs.max(), ys.max()) == obj.bbox
            assert min(x1 - x0, y1 - y0) + 1 >= 20  # objects are not tiny
            rle = mask_utils.frPyObjects([obj.polygon.ravel().tolist()], h, w)
            m = mask_utils.decode(rle)[..., 0].astype(bool)
            if obj.cls.shape == 'rectangle':  # exactly the drawn pixels
                assert (m == obj.mask).all()
                px0, py0 = obj.polygon.min(axis=0)
                px1, py1 = obj.polygon.max(axis=0)
                assert (px0, py0, px1 - 1, py1 - 1) == obj.bbox
            assert (m & obj.mask).sum() / (m | obj.mask).sum() > 0.95
        assert union.max() == 1  # objects never overlap
    assert shapes == {
        'rectangle', 'ellipse', 'triangle', 'diamond', 'hexagon', 'pentagon'
    }


# ----------------------------------------------------------------------------
# determinism, arguments, CLI
# ----------------------------------------------------------------------------
def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    kw = dict(num_train=2, num_val=1, img_size=48)
    a = syn.generate_all(str(tmp_path / 'a'), seed=5, **kw)
    syn.generate_all(str(tmp_path / 'b'), seed=5, **kw)
    syn.generate_all(str(tmp_path / 'c'), seed=6, **kw)
    assert set(a) == {'ade20k', 'voc', 'coco', 'imagenet'}
    fa, fb, fc = (_files(tmp_path / k) for k in 'abc')
    assert len(fa) > 20
    assert fa == fb
    assert set(fa) == set(fc)
    differing = [k for k in fa if fa[k] != fc[k]]
    assert any(k.endswith('.jpg') for k in differing)
    assert any(k.endswith('.png') for k in differing)
    assert any(k.endswith('.xml') for k in differing)
    assert any(k.endswith('.json') for k in differing)


@pytest.mark.parametrize('fn, kwargs, name', [
    (syn.generate_ade20k, dict(num_train=0), 'num_train'),
    (syn.generate_ade20k, dict(num_val=-1), 'num_val'),
    (syn.generate_ade20k, dict(num_train=2.5), 'num_train'),
    (syn.generate_voc, dict(img_size=(31, 64)), 'img_size height'),
    (syn.generate_voc, dict(img_size=16), 'img_size'),
    (syn.generate_coco, dict(img_size=(64, 64, 3)), 'img_size'),
    (syn.generate_coco, dict(max_objects=0), 'max_objects'),
    (syn.generate_coco, dict(seed=-1), 'seed'),
    (syn.generate_all, dict(datasets=['cityscapes']), 'datasets'),
])
def test_bad_arguments(tmp_path, fn, kwargs, name):
    with pytest.raises(ValueError, match=name) as info:
        fn(str(tmp_path), **kwargs)
    if name != 'datasets':
        assert '[' in str(info.value)  # names the allowed range
    assert os.listdir(tmp_path) == []  # nothing was written


def test_cli(tmp_path, capsys):
    path = osp.join(ROOT, 'tools', 'generate_synthetic_data.py')
    spec = importlib.util.spec_from_file_location('gen_synth_cli', path)
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    cli.main([
        str(tmp_path), '--datasets', 'voc', 'coco', '--num-train', '2',
        '--num-val', '1', '--img-size', '48', '64', '--seed', '4'
    ])
    printed = capsys.readouterr().out
    assert f'voc: {tmp_path / "VOCdevkit"}' in printed
    assert f'coco: {tmp_path / "coco"}' in printed
    assert sorted(os.listdir(tmp_path)) == ['VOCdevkit', 'coco']
    img = cv2.imread(str(tmp_path / 'coco' / 'val2017' / '000000000003.jpg'))
    assert img.shape == (48, 64, 3)
    with pytest.raises(SystemExit):
        cli.main([str(tmp_path), '--num-train', '0'])
