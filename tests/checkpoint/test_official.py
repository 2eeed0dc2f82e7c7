"""Loading official-format SLaK checkpoints (built here, never downloaded)."""
import pytest
import torch

import slak_mm  # noqa: F401
from slak_mm.checkpoint import load_pretrained_backbone
from slak_mm.models import SLaK
from tests.common import TINY_SLAK as SMALL
from tests.official_format import model_shapes, write_official_checkpoint


def official_file(path, model, prefix='', rename=None):
    return write_official_checkpoint(path, model_shapes(model), prefix, rename)


@pytest.mark.parametrize('prefix,rename', [('', None), ('module.', None),
                                           ('', ('LoRA', 'Decom'))])
def test_official_file_loads(tmp_path, prefix, rename):
    model = SLaK(**SMALL)
    path = str(tmp_path / 'slak.pth')
    state = official_file(path, model, prefix, rename)
    missing, unexpected = load_pretrained_backbone(model, path)
    assert sorted(missing) == sorted(f'norm{i}.{p}' for i in range(4)
                                     for p in ('weight', 'bias'))
    assert unexpected == []
    key = 'stages.0.0.large_kernel.LoRA1.conv.weight'
    src = state[key]
    assert torch.equal(model.state_dict()[key], src)
    zeros = (model.stages[0][0].pwconv1.weight == 0).float().mean().item()
    assert 0.3 < zeros < 0.5


def test_init_cfg_pretrained_path(tmp_path):
    path = str(tmp_path / 'slak.pth')
    state = official_file(path, SLaK(**SMALL), 'module.')
    model = SLaK(**SMALL, init_cfg=dict(type='Pretrained', checkpoint=path))
    model.init_weights()
    assert torch.equal(model.downsample_layers[0][0].weight,
                       state['downsample_layers.0.0.weight'])


def test_shape_mismatch_refused_and_nothing_loaded(tmp_path):
    path = str(tmp_path / 'big.pth')
    official_file(path, SLaK(**dict(SMALL, kernel_size=(11, 7, 7, 5))))
    model = SLaK(**SMALL)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError) as err:
        load_pretrained_backbone(model, path)
    msg = str(err.value)
    assert 'stages.0.0.large_kernel.LoRA1.conv.weight' in msg
    assert '(8, 1, 11, 3)' in msg and '(8, 1, 9, 3)' in msg
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_non_decomposed_file_is_recognised(tmp_path):
    path = str(tmp_path / 'dense.pth')
    official_file(path, SLaK(**SMALL, decompose=False))
    with pytest.raises(ValueError, match='decompose=False'):
        load_pretrained_backbone(SLaK(**SMALL), path)
    missing, _ = load_pretrained_backbone(SLaK(**SMALL, decompose=False), path)
    assert not any('lkb_origin' in k for k in missing)


class Payload:

    def __reduce__(self):
        return (print, ('arbitrary code ran', ))


def test_arbitrary_pickled_object_refused(tmp_path):
    path = str(tmp_path / 'evil.pth')
    torch.save(dict(model=SLaK(**SMALL).state_dict(), extra=Payload()), path)
    with pytest.raises(RuntimeError, match='Refused to load'):
        load_pretrained_backbone(SLaK(**SMALL), path)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_pretrained_backbone(SLaK(**SMALL), str(tmp_path / 'nope.pth'))
