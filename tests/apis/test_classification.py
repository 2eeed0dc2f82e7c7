"""ImageNet check of official SLaK weights in mmpretrain:
tools/test_imagenet.py on a synthetic ImageNet-layout folder and an
official-format file (tiny arch) gives the predictions of an independent
PyTorch forward of the same weights after the official eval transform, and
mmpretrain's top-1/top-5 of them."""
import json
import os.path as osp
import pickle

import mmcv
import numpy as np
import pytest
import torch
from PIL import Image

import slak_mm  # noqa: F401  (registers SLaK)
import slak_mm.models.classifiers  # noqa: F401  (in mmpretrain if present)
from slak_mm.checkpoint import (classifier_filter_fn, load_checkpoint_safely,
                                load_official_classifier)
from slak_mm.config import load_config
from slak_mm.models import SLaK
from tests.common import tiny_slak_args
from tests.official_format import (model_shapes, official_classifier_forward,
                                   reference_shapes, write_official_checkpoint)
from tests.tool_runner import ROOT, run_python, run_tool

pytest.importorskip('mmpretrain')

EVAL_CFG = osp.join(ROOT, 'configs', 'imagenet', 'slak_t_in1k_eval.py')
TINY = tiny_slak_args(dims=[8, 8, 16, 16])
NUM_CLASSES = 6
# (H, W) whose shorter side scales to exactly 256 in every resize rounding
IMAGE_SIZES = [(128, 192), (160, 160)]
MEAN = torch.tensor([0.485, 0.456, 0.406]) * 255
STD = torch.tensor([0.229, 0.224, 0.225]) * 255


@pytest.fixture(scope='module')
def imagenet_root(tmp_path_factory):
    """``val/<wnid>/*.JPEG``: NUM_CLASSES folders, one image per size."""
    root = tmp_path_factory.mktemp('imagenet')
    rng = np.random.default_rng(0)
    for c in range(NUM_CLASSES):
        folder = root / 'val' / f'n{c:08d}'
        folder.mkdir(parents=True)
        for i, size in enumerate(IMAGE_SIZES):
            pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f'img_{i}.JPEG')
    return str(root)


@pytest.fixture(scope='module')
def tiny_config(tmp_path_factory):
    """The real eval config with a tiny SLaK and a NUM_CLASSES head."""
    path = tmp_path_factory.mktemp('cfg') / 'slak_tiny_eval.py'
    path.write_text(f'''_base_ = [{EVAL_CFG!r}]
model = dict(
    backbone=dict(arch=dict(_delete_=True, **{TINY['arch']!r}),
                  kernel_size={TINY['kernel_size']!r},
                  small_kernel={TINY['small_kernel']},
                  width_factor={TINY['width_factor']}),
    head=dict(in_channels=16, num_classes={NUM_CLASSES}))
test_dataloader = dict(batch_size=4, num_workers=0)
''')
    return str(path)


def _official_file(path, num_classes=NUM_CLASSES, **kwargs):
    """Official layout (``module.`` prefix, pre-2022-07 ``Decom1`` names);
    returns the weights under the current names."""
    shapes = model_shapes(SLaK(**TINY), num_classes=num_classes)
    return write_official_checkpoint(
        str(path),
        shapes,
        prefix='module.',
        rename=('.LoRA1.', '.Decom1.'),
        **kwargs)


def _reference_input(img_path):
    """The official eval transform, written out: shorter side to 256
    (bicubic, PIL), centre crop 224, RGB, ImageNet mean/std."""
    bgr = mmcv.imread(img_path)  # the decoder LoadImageFromFile uses
    img = Image.fromarray(np.ascontiguousarray(bgr[..., ::-1]))
    scale = 256 / min(img.size)
    img = img.resize((round(img.width * scale), round(img.height * scale)),
                     Image.BICUBIC)
    left, top = (img.width - 224) // 2, (img.height - 224) // 2
    img = img.crop((left, top, left + 224, top + 224))
    x = torch.from_numpy(np.asarray(img, dtype=np.float32)).permute(2, 0, 1)
    return ((x - MEAN[:, None, None]) / STD[:, None, None])[None]


def _topk_accuracy(scores, labels, k):
    topk = scores.topk(k, dim=1).indices
    return 100. * float((topk == labels[:, None]).any(1).float().mean())


def test_tool_evaluates_official_weights(imagenet_root, tiny_config, tmp_path):
    ckpt = tmp_path / 'SLaK_tiny_official.pth'
    weights = _official_file(ckpt)
    preds = str(tmp_path / 'preds.pkl')
    # F.conv2d as in the reference: 'auto' may pick the FFT convs, whose
    # rounding differs (the random weights give large logits)
    proc = run_tool(
        'tools/test_imagenet.py',
        tiny_config,
        str(ckpt),
        '--data-root',
        imagenet_root,
        '--work-dir',
        str(tmp_path / 'work'),
        '--out',
        preds,
        timeout=600,
        fresh_process=True,  # the tool's smoke run
        SLAK_MM_DWCONV_IMPL='torch')
    assert 'accuracy/top1' in proc.stdout and 'accuracy/top5' in proc.stdout
    with open(tmp_path / 'work' / 'test_metrics.json') as f:
        metrics = json.load(f)['metrics']
    with open(preds, 'rb') as f:
        results = pickle.load(f)
    assert len(results) == NUM_CLASSES * len(IMAGE_SIZES)

    scores, ref_scores, labels = [], [], []
    for res in results:
        # labels follow the sorted class folders, as ImageFolder's do
        folder = osp.basename(osp.dirname(res['img_path']))
        assert int(res['gt_label']) == int(folder[1:])
        with torch.no_grad():
            logits = official_classifier_forward(
                weights, _reference_input(res['img_path']),
                TINY['arch']['depths'], TINY['kernel_size'],
                TINY['small_kernel'])
        scores.append(res['pred_score'])
        ref_scores.append(logits.softmax(1)[0])
        labels.append(int(res['gt_label']))
    scores, ref_scores = torch.stack(scores), torch.stack(ref_scores)
    # the file's head (and body) really ran, after the official transform
    torch.testing.assert_close(scores, ref_scores, rtol=1e-4, atol=1e-5)
    labels = torch.tensor(labels)
    assert metrics['accuracy/top1'] == pytest.approx(
        _topk_accuracy(ref_scores, labels, 1), abs=1e-3)
    assert metrics['accuracy/top5'] == pytest.approx(
        _topk_accuracy(ref_scores, labels, 5), abs=1e-3)


def _build_classifier(config):
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    return MODELS.build(load_config(config).model).eval()


@pytest.mark.parametrize('bad,match', [
    (dict(num_classes=1000),
     r'head.fc.weight: checkpoint \(1000, 16\) vs model \(6, 16\)'),
    (dict(without_head=True), 'no classifier weights'),
])
def test_unfit_head_is_refused_before_loading(tiny_config, tmp_path, bad,
                                              match):
    ckpt = tmp_path / 'bad.pth'
    _official_file(ckpt, num_classes=bad.get('num_classes', NUM_CLASSES))
    if bad.get('without_head'):  # a backbone-only file, official names
        state = load_checkpoint_safely(str(ckpt))['model']
        torch.save(
            {
                k: v
                for k, v in state.items() if not k.startswith('module.head.')
            }, ckpt)
    model = _build_classifier(tiny_config)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=match):
        load_official_classifier(model, str(ckpt))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize('name,arch', [('t', 'tiny'), ('s', 'small'),
                                       ('b', 'base')])
def test_eval_configs_fit_the_official_files(name, arch):
    """Every key and shape of the official SLaK-T/S/B files, mapped, is the
    classifier's, and nothing else."""
    model = _build_classifier(
        osp.join(ROOT, 'configs', 'imagenet', f'slak_{name}_in1k_eval.py'))
    official = reference_shapes(arch)
    mapped = classifier_filter_fn(dict.fromkeys(official))
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == {m: official[k] for m, k in zip(mapped, official)}


def test_classifier_filter_fn_names():
    w = torch.zeros(1)
    mapped = classifier_filter_fn({
        'module.stages.0.0.gamma': w,
        'module.norm.weight': w,
        'module.head.bias': w
    })
    assert list(mapped) == [
        'backbone.stages.0.0.gamma', 'head.norm.weight', 'head.fc.bias'
    ]
    mm = {'backbone.stages.0.0.gamma': w, 'head.fc.bias': w}
    assert classifier_filter_fn(mm) == mm  # mm names pass unchanged


def test_slak_mm_imports_without_mmpretrain():
    code = '''
import sys
sys.modules['mmpretrain'] = None  # import mmpretrain now raises
import slak_mm
from mmseg.registry import MODELS
from slak_mm.models import classifiers
from slak_mm.apis import evaluate_classifier
assert MODELS.get('SLaK') is not None and not classifiers.HAS_MMPRETRAIN
try:
    evaluate_classifier(None, 'x.pth', 'cfg.py')
except ModuleNotFoundError as err:
    print('refused:', err)
'''
    proc = run_python(code, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'refused:' in proc.stdout and '.[cls]' in proc.stdout
