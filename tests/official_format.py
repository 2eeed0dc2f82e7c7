"""Checkpoints laid out like the official SLaK ImageNet files, built here.

``torch.save`` of ``{'model', 'optimizer', 'epoch', 'scaler', 'args'
(argparse.Namespace), ['model_ema']}``; weights random with exact zeros in
every 2-D / 4-D tensor; classifier ``norm.*`` / ``head.*`` included. Also
a functional re-implementation of the official forward, as a reference.
"""
import argparse
import json
import os.path as osp

import torch
import torch.nn.functional as F

#: SLaK-T's depths at 9-76 channels with small kernels, as arguments of the
#: timm entrypoints (``timm.create_model('slak_tiny', **SLAK_T_SHRUNK)``):
#: built in milliseconds through the real registration
SLAK_T_SHRUNK = dict(
    width_factor=0.1, kernel_size=(9, 7, 7, 5), small_kernel=3)
SLAK_T_DEPTHS = [3, 3, 9, 3]

REFERENCE_KEYS = osp.join(
    osp.dirname(osp.abspath(__file__)), 'data',
    'slak_official_state_dict_keys.json')


def reference_shapes(arch):
    """Key -> shape of the official ``arch`` ('tiny', 'small', 'base')."""
    with open(REFERENCE_KEYS) as f:
        return {k: tuple(shape) for k, shape, _ in json.load(f)[arch]}


def model_shapes(model, num_classes=1000):
    """Key -> shape of a SLaK backbone as the official file would hold it
    (output norms ``norm0..3`` dropped, a classifier ``norm`` / ``head``
    with ``num_classes`` outputs added, masks left out)."""
    shapes = {
        k: tuple(v.shape)
        for k, v in model.state_dict().items()
        if not k.startswith('norm') and not k.endswith('_mask')
    }
    last = model.channels[-1]
    shapes.update({
        'norm.weight': (last, ),
        'norm.bias': (last, ),
        'head.weight': (num_classes, last),
        'head.bias': (num_classes, )
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


def _ln_channels_first(x, w, b):
    u = x.mean(1, keepdim=True)
    s = (x - u).pow(2).mean(1, keepdim=True)
    return w[:, None, None] * ((x - u) / torch.sqrt(s + 1e-6)) + \
        b[:, None, None]


def official_stages(sd, x, depths, kernel, small):
    """Independent functional re-implementation of the official SLaK body:
    the map after each stage (before any output norm)."""

    def conv_bn(x, p, kh, kw):
        y = F.conv2d(x, sd[p + '.conv.weight'], None, 1, (kh // 2, kw // 2), 1,
                     x.shape[1])
        return F.batch_norm(y, sd[p + '.bn.running_mean'],
                            sd[p + '.bn.running_var'], sd[p + '.bn.weight'],
                            sd[p + '.bn.bias'], False, 0., 1e-5)

    outs = []
    for i in range(4):
        d = f'downsample_layers.{i}'
        if i == 0:
            x = F.conv2d(x, sd[d + '.0.weight'], sd[d + '.0.bias'], 4)
            x = _ln_channels_first(x, sd[d + '.1.weight'], sd[d + '.1.bias'])
        else:
            x = _ln_channels_first(x, sd[d + '.0.weight'], sd[d + '.0.bias'])
            x = F.conv2d(x, sd[d + '.1.weight'], sd[d + '.1.bias'], 2)
        for j in range(depths[i]):
            p = f'stages.{i}.{j}'
            m = kernel[i]
            y = (
                conv_bn(x, p + '.large_kernel.LoRA1', m, small) +
                conv_bn(x, p + '.large_kernel.LoRA2', small, m) +
                conv_bn(x, p + '.large_kernel.small_conv', small, small))
            y = y.permute(0, 2, 3, 1)
            y = F.layer_norm(y, (y.shape[-1], ), sd[p + '.norm.weight'],
                             sd[p + '.norm.bias'], 1e-6)
            y = F.linear(y, sd[p + '.pwconv1.weight'], sd[p + '.pwconv1.bias'])
            y = F.linear(
                F.gelu(y), sd[p + '.pwconv2.weight'], sd[p + '.pwconv2.bias'])
            x = x + (sd[p + '.gamma'] * y).permute(0, 3, 1, 2)
        outs.append(x)
    return outs


def official_forward(sd, x, depths, kernel, small):
    """The dense-prediction outputs: each stage through its ``norm{i}``."""
    return [
        _ln_channels_first(y, sd[f'norm{i}.weight'], sd[f'norm{i}.bias'])
        for i, y in enumerate(official_stages(sd, x, depths, kernel, small))
    ]


def official_classifier_forward(sd, x, depths, kernel, small):
    """The official ImageNet classifier's logits: last stage, global
    average pooling, ``norm`` (LayerNorm), ``head`` (Linear)."""
    x = official_stages(sd, x, depths, kernel, small)[-1].mean((2, 3))
    x = F.layer_norm(x, (x.shape[-1], ), sd['norm.weight'], sd['norm.bias'],
                     1e-6)
    return F.linear(x, sd['head.weight'], sd['head.bias'])


def official_outputs(sd, x, depths=SLAK_T_DEPTHS, kernel=None, small=None):
    """The official classifier's logits and its stage maps (default: the
    shapes of :data:`SLAK_T_SHRUNK`)."""
    kernel = kernel or SLAK_T_SHRUNK['kernel_size']
    small = small or SLAK_T_SHRUNK['small_kernel']
    return (official_classifier_forward(sd, x, depths, kernel, small),
            official_stages(sd, x, depths, kernel, small))
