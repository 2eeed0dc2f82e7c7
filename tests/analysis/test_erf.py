"""ERF analysis (slak_mm/analysis/erf.py and erf_compare.py,
tools/analysis/erf.py) on the CPU at small sizes: larger kernels spread the
contribution further, the area computation is exact on known maps, and the
tool writes its files."""
import importlib.util
import json
import os.path as osp

import numpy as np
import pytest
import torch

from slak_mm.analysis.erf import (ERFImages, build_erf_backbone,
                                  erf_contribution, find_images,
                                  high_contribution_area, normalise_scores,
                                  plot_erf, synthetic_images)
from slak_mm.analysis.erf_compare import compare_erfs, erf_models
from slak_mm.models import SLaK
from tests.common import DEMO_CONFIG, tiny_slak
from tests.tool_runner import ROOT, run_tool

SIZE = 256


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    paths = synthetic_images(
        str(tmp_path_factory.mktemp('erf_data')), 2, SIZE, seed=0)
    return ERFImages(paths, SIZE)


def small_slak(kernel_size):
    torch.manual_seed(0)
    # layer scale 1 (as in the segmentation configs): with the default 1e-6
    # the random blocks are near-identity and the kernels would not matter
    model = tiny_slak(
        dims=[16, 32, 64, 64],
        kernel_size=kernel_size,
        layer_scale_init_value=1.0)
    model.init_weights()
    return model


@pytest.mark.parametrize('small,large', [((7, 7, 7, 7), (51, 51, 51, 51)),
                                         ((7, 7, 7, 5), (51, 49, 47, 13))])
def test_area_grows_with_kernel_size(images, small, large):
    areas = {}
    for ks in (small, large):
        scores = erf_contribution(small_slak(ks), images)
        assert scores.shape == (SIZE, SIZE) and (scores >= 0).all()
        areas[ks] = high_contribution_area(scores)
    for t in (0.5, 0.99):
        assert areas[large][t]['area_ratio'] > areas[small][t]['area_ratio']


def test_high_contribution_area_exact():
    scores = np.zeros((9, 9))
    scores[4, 4] = 1.
    areas = high_contribution_area(scores, normalise=False)
    assert all(a == dict(side=1, area_ratio=1 / 81) for a in areas.values())
    # uniform 9x9: a centred side s holds s^2/81 of the total
    areas = high_contribution_area(np.ones((9, 9)), (0.1, 0.5, 0.99, 1.0))
    assert [areas[t]['side'] for t in (0.1, 0.5, 0.99, 1.0)] == [3, 7, 9, 9]
    # even side: the odd squares stop at 7, then the whole map counts
    areas = high_contribution_area(np.ones((8, 8)), (0.99, ))
    assert areas[0.99] == dict(side=8, area_ratio=1.0)
    norm = normalise_scores(np.array([[0., 9.], [99., 0.]]))
    np.testing.assert_allclose(norm, [[0, 0.5], [1, 0]])
    with pytest.raises(ValueError, match='all zero'):
        high_contribution_area(np.zeros((4, 4)))
    with pytest.raises(ValueError, match='in \\(0, 1\\]'):
        high_contribution_area(np.ones((4, 4)), (1.5, ))


def test_errors_and_plot(tmp_path):
    with pytest.raises(ValueError, match='Unknown model spec'):
        build_erf_backbone('convnext_tiny')
    with pytest.raises(ValueError, match='Unknown timm model'):
        build_erf_backbone('timm:no_such_net')
    with pytest.raises(FileNotFoundError, match='No image'):
        find_images(str(tmp_path))
    with pytest.raises(ValueError, match='>= 32'):
        ERFImages(['x.jpg'], 16)
    out = plot_erf({
        'a': np.random.rand(32, 32),
        'b': np.ones((32, 32))
    }, str(tmp_path / 'sub' / 'p.png'))
    assert open(out, 'rb').read(8) == b'\x89PNG\r\n\x1a\n'


def test_build_backbones_and_checkpoints(tmp_path):
    backbone, prep = build_erf_backbone(DEMO_CONFIG)
    assert isinstance(backbone, SLaK) and not backbone.training
    assert backbone.kernel_size == [13, 11, 9, 7]
    assert prep == dict(
        mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375), rgb=True)
    # an mm checkpoint of the whole model: its backbone.* weights are loaded
    state = {f'backbone.{k}': v * 2 for k, v in backbone.state_dict().items()}
    state['decode_head.conv_seg.weight'] = torch.zeros(1)
    torch.save(dict(state_dict=state), tmp_path / 'mm.pth')
    loaded, _ = build_erf_backbone(DEMO_CONFIG, str(tmp_path / 'mm.pth'))
    key = 'downsample_layers.0.0.weight'
    assert torch.equal(loaded.state_dict()[key], state[f'backbone.{key}'])

    import timm
    torch.manual_seed(1)
    classifier = timm.create_model('convnext_atto')
    torch.save(classifier.state_dict(), tmp_path / 'atto.pth')
    feats, prep = build_erf_backbone('timm:convnext_atto',
                                     str(tmp_path / 'atto.pth'))
    assert torch.equal(feats.stem_0.weight, classifier.stem[0].weight)
    assert prep['rgb'] and prep['mean'] == pytest.approx(
        (123.675, 116.28, 103.53))
    with pytest.raises(FileNotFoundError):
        build_erf_backbone(DEMO_CONFIG, str(tmp_path / 'missing.pth'))


def test_cli_end_to_end(tmp_path):
    out = tmp_path / 'erf'
    proc = run_tool(
        'tools/analysis/erf.py',
        DEMO_CONFIG,
        'timm:convnext_atto',
        '--synthetic',
        '2',
        '--size',
        '128',
        '--device',
        'cpu',
        '--out-dir',
        str(out),
        timeout=600,
        fresh_process=True)  # the tool's smoke run
    names = ['upernet_slak_demo_synthetic_ade20k', 'timm_convnext_atto']
    for name in names:
        scores = np.load(out / f'{name}_erf.npy')
        assert scores.shape == (128, 128) and scores.max() > 0
        assert (out / f'{name}_erf.png').stat().st_size > 1000
        assert name in proc.stdout
    assert (out / 'erf_compare.png').stat().st_size > 1000
    report = json.loads((out / 'erf_area_ratios.json').read_text())
    assert report['size'] == 128 and report['num_images'] == 2
    assert list(report['models']) == names
    for entry in report['models'].values():
        areas = entry['areas']
        assert list(areas) == ['20%', '30%', '50%', '99%']
        ratios = [a['area_ratio'] for a in areas.values()]
        assert all(0 < r <= 1 for r in ratios)
        assert ratios == sorted(ratios)
        for a in areas.values():
            assert a['area_ratio'] == pytest.approx(a['side']**2 / 128**2)
    assert 't=99%' in proc.stdout  # the printed table


def test_cli_bad_input(tmp_path):
    spec = importlib.util.spec_from_file_location(
        'erf_tool', osp.join(ROOT, 'tools', 'analysis', 'erf.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    bad = [['m.py', '--synthetic', '1', '--size', '16'],
           ['m.py', '--images', 'x', '--num-images', '0'],
           ['m.py', 'n.py', '--synthetic', '1', '--checkpoints', 'a']]
    for argv in bad:
        with pytest.raises(SystemExit) as exc:
            tool.parse_args(argv)
        assert exc.value.code == 2
    assert erf_models(['a/cfg.py=ck/x.pth', 'timm:convnext_atto',
                       'a/cfg.py']) == [('cfg-x', 'a/cfg.py', 'ck/x.pth'),
                                        ('timm_convnext_atto',
                                         'timm:convnext_atto', None),
                                        ('cfg', 'a/cfg.py', None)]
    with pytest.raises(ValueError, match='checkpoint given twice'):
        erf_models(['a/cfg.py=x.pth'], ['y.pth'])
    out = tmp_path / 'erf'
    for spec, message in (('foo', 'unknown model spec'),
                          ('timm:no_such_net', 'unknown timm model'),
                          ('configs/none.py', 'config file not found')):
        with pytest.raises((ValueError, FileNotFoundError), match=message):
            compare_erfs(erf_models([spec]), str(out), synthetic=1)
    with pytest.raises(FileNotFoundError, match='Image folder not found'):
        compare_erfs(
            erf_models([DEMO_CONFIG]), str(out), images=str(tmp_path / 'x'))
    assert not out.exists()  # refused before any work
