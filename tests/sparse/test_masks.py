"""Masks, layer-wise initialisation, prune-and-regrow; the sparse backbone
keeping its own zeros on a plain torch optimizer (AdamW, SGD with momentum,
clipping, a CPU GradScaler, deep copies, checkpoints), and the optional
mask hook."""
import copy
import io
import math

import pytest
import torch

import slak_mm  # noqa: F401
from slak_mm.engine import DynamicSparsityHook, SparseMaskHook
from slak_mm.models import SLaK
from slak_mm.sparse import (apply_masks, attach_masks, cosine_prune_rate,
                            density_by_group, erk_densities, mask_gradients,
                            mask_gradients_in_backward, masked_weights,
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


def _train_steps(model, optimizer, steps, scaler=None, clip=None):
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(2, 3, 32, 32, generator=gen)
        loss = sum(o.square().mean() for o in model(x))
        optimizer.zero_grad()
        if scaler is None:
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()


def assert_zeros_kept(model, masks, optimizer=None):
    """Masks unchanged, masked weights exactly 0, no optimizer state there
    (AdamW's moments, SGD's momentum buffer)."""
    for name, weight, mask in masked_weights(model):
        assert torch.equal(mask, masks[name]), name
        assert torch.equal(weight != 0, mask), name
        for value in (optimizer.state[weight] if optimizer else {}).values():
            if torch.is_tensor(value) and value.shape == weight.shape:
                assert not value[~mask].any(), name


def _masks(model):
    return {n: m.clone() for n, _, m in masked_weights(model)}


@pytest.mark.parametrize(
    'make_optimizer', [
        lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.05),
        lambda p: torch.optim.SGD(p, lr=1e-2, momentum=0.9, weight_decay=1e-4),
    ],
    ids=['adamw', 'sgd'])
def test_backbone_keeps_its_zeros_without_a_hook(make_optimizer):
    """Gradient hooks on the masked weights: momentum, decoupled weight
    decay and gradient clipping leave every masked entry at 0."""
    model = sparse_model()
    masks = _masks(model)
    before = {n: w.detach().clone() for n, w, _ in masked_weights(model)}
    optimizer = make_optimizer(model.parameters())
    _train_steps(model, optimizer, 3, clip=1.0)
    assert_zeros_kept(model, masks, optimizer)
    assert all(not torch.equal(w, before[n])
               for n, w, _ in masked_weights(model))  # it trained


def test_deep_copy_and_unpickled_model_keep_their_zeros():
    """torch copies no hooks: the copy gets its own in train() (mmengine's
    loops call it), reading the copy's masks."""
    model = sparse_model()
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    copies = [copy.deepcopy(model), torch.load(buffer, weights_only=False)]
    for other in copies:
        masks = _masks(other)
        other.train()
        optimizer = torch.optim.AdamW(other.parameters(), lr=1e-2)
        _train_steps(other, optimizer, 2)
        assert_zeros_kept(other, masks, optimizer)


def test_checkpoint_round_trip_keeps_names_masks_and_zeros():
    """The state dict holds the official names and the masks; loading it
    into a new model restores the masks, and weights that are not zero where
    a loaded mask is off (a checkpoint trained elsewhere) are zeroed."""
    model = sparse_model()
    state = model.state_dict()
    dense_keys = set(SLaK(**SMALL).state_dict())
    assert set(state) == dense_keys | {
        k + '_mask'
        for k, v in SLaK(**SMALL).state_dict().items() if v.dim() in (2, 4)
    }
    revived = {k: v.clone() for k, v in state.items()}
    for key in revived:
        if key.endswith('_mask'):
            revived[key[:-len('_mask')]].fill_(0.5)
    fresh = SLaK(**SMALL, sparse=True)
    fresh.load_state_dict(revived)
    masks = _masks(model)
    optimizer = torch.optim.AdamW(fresh.parameters(), lr=1e-2)
    assert_zeros_kept(fresh, masks)
    _train_steps(fresh, optimizer, 2)
    assert_zeros_kept(fresh, masks, optimizer)


def test_state_dict_without_masks_brings_its_zeros_as_masks():
    """A dense or official-style file (no *_mask entries) loaded by plain
    torch into a model with random masks: the file's non-zero pattern
    becomes the masks (not the model's random ones, which would zero 40%
    of its weights)."""
    source = sparse_model()
    weights = {
        k: v
        for k, v in source.state_dict().items() if not k.endswith('_mask')
    }
    target = SLaK(**SMALL, sparse=True)
    torch.manual_seed(1)
    target.init_weights()  # other random masks
    assert any(not torch.equal(m, source.get_buffer(n + '_mask'))
               for n, _, m in masked_weights(target))
    target.load_state_dict(weights, strict=False)
    for name, weight, mask in masked_weights(target):
        assert torch.equal(mask, weights[name] != 0), name
        assert torch.equal(weight, weights[name]), name


def test_frozen_stages_and_other_models_take_the_hook_where_needed():
    frozen = sparse_model(frozen_stages=2)
    masks = _masks(frozen)
    optimizer = torch.optim.AdamW(
        [p for p in frozen.parameters() if p.requires_grad], lr=1e-2)
    _train_steps(frozen, optimizer, 2)
    assert_zeros_kept(frozen, masks, optimizer)
    # any model with mask buffers, through the plain torch API
    linear = torch.nn.Linear(4, 4)
    attach_masks(linear)
    linear.weight_mask[0] = False
    apply_masks(linear)
    assert mask_gradients_in_backward(linear) == 1
    assert mask_gradients_in_backward(linear) == 1  # no second hook
    linear(torch.ones(1, 4)).sum().backward()
    assert not linear.weight.grad[0].any() and linear.weight.grad[1].all()


def test_hook_keeps_zeros_and_adamw_state_clean():
    model = sparse_model()
    masks = _masks(model)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=1e-2, weight_decay=0.05)
    hook = SparseMaskHook()
    hook.attach(model, [optimizer])
    _train_steps(model, optimizer, 3)
    assert_zeros_kept(model, masks, optimizer)
    hook.detach()  # the backbone's own hooks stay
    _train_steps(model, optimizer, 1)
    assert_zeros_kept(model, masks, optimizer)


def test_hook_re_zeroes_after_a_step_that_moves_masked_weights():
    """For optimizers whose update is not elementwise in the gradient
    (stood in for by one that adds a constant): the step post-hook."""

    class Shift(torch.optim.SGD):

        @torch.no_grad()
        def step(self, closure=None):
            super().step(closure)
            for group in self.param_groups:
                for param in group['params']:
                    param.add_(0.1)

    model = sparse_model()
    masks = _masks(model)
    optimizer = Shift(model.parameters(), lr=1e-2)
    _train_steps(model, optimizer, 1)
    assert any(w[~m].any() for _, w, m in masked_weights(model))
    SparseMaskHook().attach(model, [optimizer])
    _train_steps(model, optimizer, 1)
    assert_zeros_kept(model, masks)


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
