"""SLaK the network (:mod:`slak_mm.network`) as timm users meet it: the
registered names, an official file loaded through timm's pretrained path
(read by slak_mm's safe reader) giving the official logits,
``features_only`` / ``out_indices`` with timm's ``feature_info``, and the
arch table read in one place. Without OpenMMLab: test_torch_only_import.py.
"""
import pytest
import timm
import torch

import slak_mm  # noqa: F401  (registers the timm models)
from slak_mm.checkpoint import UnsafeCheckpointError
from slak_mm.models import SLaK as MMSLaK
from slak_mm.network import SLaK, resolve_arch
from tests.common import TINY_SLAK, Payload, rel_err, serve_folder
from tests.official_format import SLAK_T_DEPTHS as DEPTHS
from tests.official_format import SLAK_T_SHRUNK as SHRINK
from tests.official_format import (model_shapes, official_outputs,
                                   write_official_checkpoint)


@pytest.fixture(scope='module')
def official_tiny(tmp_path_factory):
    """An official-format SLaK-T file (shrunk): path and its weights."""
    path = str(
        tmp_path_factory.mktemp('official') / 'SLaK_tiny_checkpoint.pth')
    model = timm.create_model('slak_tiny', **SHRINK)
    return path, write_official_checkpoint(path, model_shapes(model))


def test_names_registered_in_timm():
    assert {
        'slak_tiny', 'slak_small', 'slak_base', 'SLaK_tiny', 'SLaK_small',
        'SLaK_base'
    } <= set(timm.list_models())


@pytest.mark.parametrize('name,sparse', [('slak_tiny', False),
                                         ('SLaK_tiny', True)])
def test_official_file_gives_the_official_logits(official_tiny, name, sparse):
    path, state = official_tiny
    model = timm.create_model(
        name,
        pretrained=True,
        pretrained_cfg_overlay=dict(file=path),
        sparse=sparse,
        **SHRINK).eval()
    assert type(model) is SLaK and model.depths == DEPTHS
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        logits, _ = official_outputs(state, x)
        assert rel_err(model(x), logits) < 1e-6
    if sparse:  # the file's zeros became the masks
        mask = model.stages[2][8].pwconv1.weight_mask
        assert torch.equal(mask, state['stages.2.8.pwconv1.weight'] != 0)


def test_features_only_gives_the_stage_maps_with_feature_info(official_tiny):
    path, state = official_tiny
    model = timm.create_model(
        'slak_tiny',
        pretrained=True,
        features_only=True,
        out_indices=(1, 3),
        pretrained_cfg_overlay=dict(file=path),
        **SHRINK).eval()
    assert model.feature_info.channels() == [19, 76]
    assert model.feature_info.reduction() == [8, 32]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        maps = model(x)
        _, ref = official_outputs(state, x)
    assert [tuple(m.shape) for m in maps] == [(1, 19, 8, 8), (1, 76, 2, 2)]
    assert rel_err(maps[0], ref[1]) < 1e-6 and rel_err(maps[1], ref[3]) < 1e-6


def test_new_classes_and_channels_keep_the_body(official_tiny):
    """As timm does: a head of another size is left out (random), the stem
    adapted to ``in_chans``."""
    path, state = official_tiny
    model = timm.create_model(
        'slak_tiny',
        pretrained=True,
        num_classes=10,
        in_chans=1,
        pretrained_cfg_overlay=dict(file=path),
        **SHRINK)
    assert model.head.weight.shape == (10, 76)
    assert torch.equal(model.norm.weight, state['norm.weight'])
    assert torch.equal(model.stages[2][8].pwconv1.weight,
                       state['stages.2.8.pwconv1.weight'])
    torch.testing.assert_close(
        model.downsample_layers[0][0].weight,
        state['downsample_layers.0.0.weight'].sum(1, keepdim=True))


def test_a_file_is_read_by_our_safe_reader(tmp_path):
    """timm's own loader would unpickle with torch's allow-list only; the
    refusal names slak_mm's reader, and nothing ran."""
    marker = tmp_path / 'ran'
    path = tmp_path / 'evil.pth'
    torch.save(dict(model={}, extra=Payload(str(marker))), path)
    with pytest.raises(UnsafeCheckpointError, match='Refused to load'):
        timm.create_model(
            'slak_tiny',
            pretrained=True,
            pretrained_cfg_overlay=dict(file=str(path)),
            **SHRINK)
    assert not marker.exists()


def test_a_url_is_downloaded_then_read_by_our_safe_reader(
        tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    marker = tmp_path / 'ran'
    served = tmp_path / 'served'
    served.mkdir()
    torch.save(dict(model={}, extra=Payload(str(marker))), served / 'x.pth')
    with serve_folder(str(served)) as url, pytest.raises(
            UnsafeCheckpointError, match='hub/checkpoints/x.pth'):
        timm.create_model(
            'slak_tiny',
            pretrained=True,
            pretrained_cfg_overlay=dict(url=f'{url}/x.pth'),
            **SHRINK)
    assert not marker.exists()


def test_pretrained_without_a_file_says_where_to_get_it():
    with pytest.raises(ValueError, match=r'overlay=dict\(file=PATH\)'):
        timm.create_model('slak_tiny', pretrained=True)


def test_a_file_that_does_not_fit_is_refused_whole(official_tiny):
    path, _ = official_tiny
    with pytest.raises(ValueError, match='shape mismatches'):
        timm.create_model(
            'slak_tiny',
            pretrained=True,
            pretrained_cfg_overlay=dict(file=path),
            **dict(SHRINK, kernel_size=(11, 7, 7, 5)))


def test_an_arch_row_names_the_model_as_the_paper():
    assert resolve_arch('tiny') == dict(
        depths=[3, 3, 9, 3],
        dims=[96, 192, 384, 768],
        kernel_size=[51, 49, 47, 13],
        small_kernel=5,
        width_factor=1.3,
        channels=[124, 249, 499, 998])
    assert resolve_arch('base')['channels'] == [166, 332, 665, 1331]
    assert resolve_arch(
        'small', kernel_size=(61, 59, 57, 13))['kernel_size'][0] == 61
    with pytest.raises(ValueError, match=r"arch keys \['kernel'\]"):
        resolve_arch(dict(depths=[1] * 4, dims=[8] * 4, kernel=3))
    # the mm backbone reads it there too
    mm = MMSLaK(**TINY_SLAK)
    assert mm.arch == resolve_arch(TINY_SLAK['arch'], **
                                   {k: TINY_SLAK[k]
                                    for k in SHRINK}) == SLaK(**TINY_SLAK).arch
