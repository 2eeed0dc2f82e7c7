"""The official-format filter is a pure function (as timm's
``checkpoint_filter_fn``): names mapped, fit checked, masks derived, and
neither the model nor the given weights changed."""
import pytest
import torch

from slak_mm.checkpoint import checkpoint_filter_fn
from slak_mm.models import SLaK
from slak_mm.sparse import MASK_SUFFIX

SMALL = dict(
    arch=dict(depths=[1, 1, 2, 1], dims=[8, 16, 24, 32]),
    kernel_size=(9, 7, 7, 5),
    small_kernel=3,
    width_factor=1.0)


def test_filter_maps_checks_and_derives_masks_without_side_effects():
    torch.manual_seed(0)
    weights = SLaK(**SMALL).state_dict()
    # an official file: DDP prefix, classifier norm and head
    state = {f'module.{k}': v.clone() for k, v in weights.items()}
    state['module.norm.weight'] = torch.ones(32)
    state['module.head.weight'] = torch.zeros(3, 32)
    file_before = dict(state)
    model = SLaK(**SMALL, sparse=True)
    model_before = {k: v.clone() for k, v in model.state_dict().items()}

    out = checkpoint_filter_fn(state, model)

    assert set(out) == set(model.state_dict())
    masks = [k for k in out if k.endswith(MASK_SUFFIX)]
    assert masks and set(out) - set(masks) == set(weights)
    for key in masks:
        assert torch.equal(out[key], out[key[:-len(MASK_SUFFIX)]] != 0)
    assert state.keys() == file_before.keys()
    assert all(state[k] is v for k, v in file_before.items())
    for key, value in model.state_dict().items():
        assert torch.equal(value, model_before[key]), key


def test_filter_refuses_weights_that_do_not_fit():
    state = SLaK(**dict(SMALL, kernel_size=(11, 7, 7, 5))).state_dict()
    with pytest.raises(ValueError, match='shape mismatches'):
        checkpoint_filter_fn(state, SLaK(**SMALL), 'other.pth')
