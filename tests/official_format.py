"""Checkpoints laid out like the official SLaK ImageNet files, built here.

``torch.save`` of ``{'model', 'optimizer', 'epoch', 'scaler', 'args'
(argparse.Namespace), ['model_ema']}``; weights random with exact zeros in
every 2-D / 4-D tensor; classifier ``norm.*`` / ``head.*`` included.
"""
import argparse
import json
import os.path as osp

import torch

REFERENCE_KEYS = osp.join(
    osp.dirname(osp.abspath(__file__)), 'data',
    'slak_official_state_dict_keys.json')


def reference_shapes(arch):
    """Key -> shape of the official ``arch`` ('tiny', 'small', 'base')."""
    with open(REFERENCE_KEYS) as f:
        return {k: tuple(shape) for k, shape, _ in json.load(f)[arch]}


def model_shapes(model):
    """Key -> shape of a SLaK backbone as the official file would hold it
    (output norms ``norm0..3`` dropped, a classifier ``norm`` / ``head``
    added, masks left out)."""
    shapes = {
        k: tuple(v.shape)
        for k, v in model.state_dict().items()
        if not k.startswith('norm') and not k.endswith('_mask')
    }
    last = model.dims[-1]
    shapes.update({
        'norm.weight': (last, ),
        'norm.bias': (last, ),
        'head.weight': (1000, last),
        'head.bias': (1000, )
    })
    return shapes


def random_sparse_state(shapes, sparsity=0.4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        if key.endswith('num_batches_tracked'):
            state[key] = torch.tensor(100)
            continue
        value = torch.randn(shape, generator=gen)
        if key.endswith('running_var'):
            value = value.abs() + 0.5
        if len(shape) in (2, 4):
            value[torch.rand(shape, generator=gen) < sparsity] = 0
        state[key] = value
    return state


def write_official_checkpoint(path,
                              shapes,
                              prefix='',
                              rename=None,
                              sparsity=0.4,
                              with_ema=False):
    """Write an official-format file; return its model state (keys without
    ``prefix``, before ``rename``)."""
    state = random_sparse_state(shapes, sparsity)

    def stored(sd):
        return {
            prefix + (k.replace(*rename) if rename else k): v
            for k, v in sd.items()
        }

    checkpoint = dict(
        model=stored(state),
        optimizer={
            'state': {},
            'param_groups': []
        },
        epoch=299,
        scaler={'scale': 65536.0},
        args=argparse.Namespace(
            model='SLaK_tiny',
            kernel_size=[51, 49, 47, 13, 5],
            sparse=True,
            density=0.6))
    if with_ema:
        checkpoint['model_ema'] = stored(
            random_sparse_state(shapes, sparsity, seed=1))
    torch.save(checkpoint, path)
    return state
