"""Masks, layer-wise initialisation, prune-and-regrow, and the mask hook on a
plain torch optimizer (also under a CPU GradScaler)."""
import logging
import math

import pytest
import torch
from mmengine.config import Config

import slak_mm  # noqa: F401
from slak_mm.config import check_sparse_training
from slak_mm.engine import DynamicSparsityHook, SparseMaskHook
from slak_mm.models import SLaK
from slak_mm.sparse import (apply_masks, cosine_prune_rate, density_by_group,
                            erk_densities, mask_gradients, masked_weights,
                            masks_from_zeros, prune_and_regrow,
                            uniform_densities)
from tests.common import tiny_slak_args

SMALL = tiny_slak_args(depths=[1, 1, 2, 1])


def sparse_model(**kwargs):
    torch.manual_seed(0)
    model = SLaK(**SMALL, sparse=True, **kwargs)
    model.init_weights()
    return model


def test_every_2d_4d_parameter_gets_a_bool_mask_buffer():
    model = SLaK(**SMALL, sparse=True)
    weights = {k for k, v in model.named_parameters() if v.dim() in (2, 4)}
    masks = {
        k[:-len('_mask')]
        for k in model.state_dict() if k.endswith('_mask')
    }
    assert masks == weights and weights
    assert 'stages.0.0.large_kernel.LoRA1.conv.weight' in masks
    assert 'stages.0.0.pwconv1.weight' in masks
    assert all(m.dtype == torch.bool for _, _, m in masked_weights(model))
    # 1-D parameters (biases, norms, layer scale) stay dense: no masks
    assert not any('gamma_mask' in k or 'bias_mask' in k
                   for k in model.state_dict())
    assert not any(k.endswith('_mask') for k in SLaK(**SMALL).state_dict())


def test_masks_follow_the_model_to_another_dtype_and_device():
    model = sparse_model().to(torch.float64)
    assert all(m.dtype == torch.bool for _, _, m in masked_weights(model))


@pytest.mark.parametrize('method', ['uniform', 'ERK'])
def test_random_init_hits_global_sparsity(method):
    model = sparse_model(sparsity=0.4, sparse_init=method)
    global_density, _ = density_by_group(model)
    assert global_density == pytest.approx(0.6, abs=1e-3)
    for name, weight, mask in masked_weights(model):
        assert not weight[~mask].any(), name
    if method == 'uniform':
        for name, weight, _ in masked_weights(model):
            assert weight.count_nonzero() / weight.numel() == pytest.approx(
                0.6, abs=1 / weight.numel() + 1e-6), name


def test_erk_gives_small_layers_more_density_and_caps_at_one():
    shapes = {
        'small': (8, 1, 3, 3),  # score (8+1+3+3)/72 ~ 0.21
        'large_kernel': (32, 1, 51, 5),  # ~ 0.011
        'linear': (512, 128),  # ~ 0.0098
    }
    dens = erk_densities(shapes, 0.5)
    assert dens['small'] == 1.0
    assert dens['large_kernel'] > dens['linear']
    numel = {k: math.prod(v) for k, v in shapes.items()}
    kept = sum(dens[k] * numel[k] for k in shapes)
    assert kept / sum(numel.values()) == pytest.approx(0.5)
    assert uniform_densities(shapes, 0.5) == dict.fromkeys(shapes, 0.5)
    with pytest.raises(ValueError, match=r'density must be in \(0, 1\]'):
        erk_densities(shapes, 0.)


def test_invalid_sparse_arguments_are_refused():
    with pytest.raises(ValueError, match=r'sparsity .* \[0, 1\)'):
        SLaK(**SMALL, sparse=True, sparsity=1.0)
    with pytest.raises(ValueError, match="sparse_init 'SNIP'.*'ERK'"):
        SLaK(**SMALL, sparse=True, sparse_init='SNIP')


def test_masks_from_zeros_and_apply():
    model = SLaK(**SMALL, sparse=True)
    weight = model.stages[0][0].pwconv1.weight
    with torch.no_grad():
        weight[:, 0] = 0
    masks_from_zeros(model)
    mask = model.stages[0][0].pwconv1.weight_mask
    assert torch.equal(mask, weight != 0) and not mask[:, 0].any()
    with torch.no_grad():
        weight.fill_(1.)
    apply_masks(model)
    assert torch.equal(weight != 0, mask)


def test_prune_and_regrow_keeps_count_and_moves_smallest():
    torch.manual_seed(0)
    weight = torch.randn(20, 10)
    mask = torch.rand(20, 10) < 0.6
    weight[~mask] = 0
    original = weight.clone()
    before = mask.clone()
    moved = prune_and_regrow(
        weight,
        mask,
        0.1,
        'random',
        generator=torch.Generator().manual_seed(0))
    assert moved == int(0.1 * before.sum())
    assert mask.sum() == before.sum()
    assert not torch.equal(mask, before)
    assert not weight[~mask].any()
    grown = mask & ~before
    assert grown.any() and (weight[grown] == 0).all()  # regrown start at 0
    # the `moved` active weights of smallest magnitude were zeroed (some may
    # be regrown at once, restarting from zero); all others kept their value
    dropped = before & (weight == 0)
    kept = before & (weight != 0)
    assert dropped.sum() == moved
    assert original.abs()[dropped].max() <= original.abs()[kept].min()
    assert torch.equal(weight[kept], original[kept])


def test_gradient_growth_picks_largest_inactive_gradients():
    weight = torch.ones(4, 5)
    mask = torch.ones(4, 5, dtype=torch.bool)
    mask[0] = False
    weight[0] = 0
    weight[1, 0] = 0.01  # the weakest active weight
    grad = torch.zeros(4, 5)
    grad[0, 3] = 5.
    prune_and_regrow(weight, mask, 1 / 15, 'gradient', grad=grad)
    assert not mask[1, 0] and mask[0, 3]
    assert mask.sum() == 15
    with pytest.raises(ValueError, match="needs the weight's gradient"):
        prune_and_regrow(weight, mask, 0.5, 'gradient', grad=None)


def test_cosine_prune_rate():
    assert cosine_prune_rate(0.3, 0, 100) == pytest.approx(0.3)
    assert cosine_prune_rate(0.3, 50, 100) == pytest.approx(0.15)
    assert cosine_prune_rate(0.3, 100, 100) == pytest.approx(0.)


def _train_steps(model, optimizer, steps, scaler=None):
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(2, 3, 32, 32, generator=gen)
        loss = sum(o.square().mean() for o in model(x))
        optimizer.zero_grad()
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()


def test_adamw_fills_zeros_without_the_hook():
    model = sparse_model()
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=1e-2, weight_decay=0.05)
    _train_steps(model, optimizer, 2)
    filled = [n for n, w, m in masked_weights(model) if w[~m].any()]
    assert filled  # the reason SparseMaskHook exists


def test_hook_keeps_zeros_and_adamw_state_clean():
    model = sparse_model()
    masks = {n: m.clone() for n, _, m in masked_weights(model)}
    before = {n: w.detach().clone() for n, w, _ in masked_weights(model)}
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=1e-2, weight_decay=0.05)
    hook = SparseMaskHook()
    hook.attach(model, [optimizer])
    _train_steps(model, optimizer, 3)
    for name, weight, mask in masked_weights(model):
        assert torch.equal(mask, masks[name]), name
        assert torch.equal(weight != 0, mask), name
        assert not optimizer.state[weight]['exp_avg'][~mask].any(), name
    changed = [
        n for n, w, _ in masked_weights(model)
        if not torch.equal(w, before[n])
    ]
    assert changed  # it trained
    hook.detach()
    _train_steps(model, optimizer, 1)
    assert any(w[~m].any() for _, w, m in masked_weights(model))


def test_hook_with_grad_scaler_including_a_skipped_step():
    model = sparse_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    scaler = torch.amp.GradScaler('cpu', init_scale=2.**16)
    SparseMaskHook().attach(model, [optimizer])
    # an overflowing step: GradScaler skips optimizer.step
    before = {n: w.detach().clone() for n, w, _ in masked_weights(model)}
    loss = model(torch.randn(2, 3, 32, 32))[0].sum() * 1e38
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    assert scaler.get_scale() < 2.**16  # the step was skipped
    for name, weight, _ in masked_weights(model):
        assert torch.equal(weight, before[name]), name
    optimizer.zero_grad()
    _train_steps(model, optimizer, 2, scaler=scaler)
    for name, weight, mask in masked_weights(model):
        assert torch.equal(weight != 0, mask), name


def test_mask_gradients_helper():
    model = sparse_model()
    model(torch.randn(2, 3, 32, 32))[0].sum().backward()
    mask_gradients(model)
    for name, weight, mask in masked_weights(model):
        if weight.grad is not None:
            assert not weight.grad[~mask].any(), name


def test_training_without_hook_warns_once(mm_log):
    """The config check of the train action warns (once per run) when a
    sparse SLaK has no mask-keeping hook; the backbone's own forward, which
    knows nothing of hooks, does not."""
    model = sparse_model().train()
    model(torch.randn(2, 3, 32, 32))
    model(torch.randn(2, 3, 32, 32))

    def config(*hooks):
        return Config(
            dict(
                model=dict(backbone=dict(type='SLaK', sparse=True, **SMALL)),
                custom_hooks=list(hooks)))

    assert check_sparse_training(config())
    warnings = [
        r for r in mm_log
        if r.levelno == logging.WARNING and 'SparseMaskHook' in r.getMessage()
    ]
    assert len(warnings) == 1
    assert not check_sparse_training(config(dict(type='SparseMaskHook')))
    assert not check_sparse_training(
        config(dict(type='mmseg.DynamicSparsityHook')))


@pytest.mark.parametrize('growth', ['random', 'gradient'])
def test_dynamic_hook_moves_masks_keeps_density_clears_state(growth):
    model = sparse_model()
    start = {n: m.clone() for n, _, m in masked_weights(model)}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    hook = DynamicSparsityHook(
        update_interval=1, prune_rate=0.3, growth=growth, end=10)
    hook.attach(model, [optimizer])
    _train_steps(model, optimizer, 1)  # AdamW state exists from here on
    for step in (1, 2):
        hook.request_update(step)
        _train_steps(model, optimizer, 1)
    moved = 0
    for name, weight, mask in masked_weights(model):
        assert mask.sum() == start[name].sum(), name  # per-layer density
        assert not weight[~mask].any(), name  # (regrown ones start at 0)
        state = optimizer.state[weight]
        assert not state['exp_avg'][~mask].any(), name
        moved += int((mask != start[name]).sum())
    assert moved > 0
    with pytest.raises(ValueError, match='needs `end`'):
        DynamicSparsityHook().request_update(1)
