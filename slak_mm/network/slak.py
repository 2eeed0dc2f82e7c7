"""SLaK, the network (Sparse Large Kernel Network, ICLR 2023), in torch and
timm.

One file, as timm's ``convnext.py``: the arch table, the block, the model,
and its registration in timm (``slak_tiny`` / ``slak_small`` /
``slak_base`` and the official ``SLaK_tiny`` / ``SLaK_small`` /
``SLaK_base``), with :func:`~slak_mm.checkpoint.checkpoint_filter_fn` on
the load path and ``features_only=True`` through
:meth:`SLaK.forward_intermediates`. Parameter names are the official
checkpoints' (``downsample_layers``, ``stages``, ``large_kernel.LoRA1``
..., ``norm``, ``head``), so the published ImageNet files load unchanged.

It imports torch, timm and slak_mm's torch-only parts (the large-kernel
ops, sparsity masks, the safe checkpoint reader and the official format),
no OpenMMLab: ``import slak_mm`` registers it in timm on a bare box. The
mm backbone (:class:`slak_mm.models.SLaK`) is a thin subclass.
"""
import dataclasses
from functools import partial
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import DropPath, LayerNorm2d, trunc_normal_
from timm.models import (adapt_input_conv, build_model_with_cfg,
                         generate_default_cfgs, register_model,
                         resolve_pretrained_cfg)
# timm's own models take it from here; it is not exported
from timm.models._features import feature_take_indices

from slak_mm.checkpoint import (CLASSIFIER_PREFIXES, checkpoint_filter_fn,
                                extract_state_dict, load_checkpoint_safely,
                                to_backbone_state_dict)
from slak_mm.ops import MAX_KERNEL
from slak_mm.sparse import (SPARSE_INIT_METHODS, apply_masks, attach_masks,
                            init_random_masks, mask_gradients_in_backward,
                            mask_key, masked_weights)
from slak_mm.utils import log_message
from .large_kernel_conv import LargeKernelConv

__all__ = [
    'ARCH_SETTINGS', 'SLaK', 'SLaKBlock', 'resolve_arch', 'slak_tiny',
    'slak_small', 'slak_base', 'SLaK_tiny', 'SLaK_small', 'SLaK_base'
]

#: SLaK-51 as the paper names it: kernels per stage, the short side ``N``,
#: the width factor.
_SLAK_51 = dict(kernel_size=(51, 49, 47, 13), small_kernel=5, width_factor=1.3)
#: The models of the paper: blocks per stage, ConvNeXt's channels per stage
#: (before ``width_factor``), large kernel side per stage, short side ``N``,
#: width factor. SLaK-T/S: channels [124, 249, 499, 998]; SLaK-B: [166,
#: 332, 665, 1331].
ARCH_SETTINGS: Dict[str, dict] = {
    'tiny': dict(depths=(3, 3, 9, 3), dims=(96, 192, 384, 768), **_SLAK_51),
    'small': dict(depths=(3, 3, 27, 3), dims=(96, 192, 384, 768), **_SLAK_51),
    'base': dict(depths=(3, 3, 27, 3), dims=(128, 256, 512, 1024), **_SLAK_51),
}
_ARCH_KEYS = ('depths', 'dims', 'kernel_size', 'small_kernel', 'width_factor')
NUM_STAGES = 4


def _check_kernels(kernel_size, small_kernel) -> None:
    if len(kernel_size) != NUM_STAGES:
        raise ValueError(
            f'kernel_size needs {NUM_STAGES} values (one per stage, e.g. '
            f'(51, 49, 47, 13)), got {kernel_size}; the short side goes in '
            f'small_kernel')
    for k in kernel_size + [small_kernel]:
        if not isinstance(k, int) or k < 1 or k % 2 == 0:
            raise ValueError(
                f'Kernel sizes must be odd positive integers so that "same" '
                f'padding keeps the map size; got kernel_size={kernel_size}, '
                f'small_kernel={small_kernel}')
        if k > MAX_KERNEL:
            raise ValueError(
                f'Kernel side {k} in kernel_size={kernel_size} is larger '
                f'than the supported maximum {MAX_KERNEL} (the paper goes up '
                f'to 61); use an odd size <= {MAX_KERNEL}.')
    if any(small_kernel >= k for k in kernel_size):
        raise ValueError(f'small_kernel ({small_kernel}) must be smaller than '
                         f'every large kernel size {kernel_size}')


def resolve_arch(arch: Union[str, dict] = 'tiny',
                 **overrides: Any) -> Dict[str, Any]:
    """The whole SLaK model a name or a dict describes, checked: the one
    place an ``arch`` is read (the network, the mm backbone and the config
    checks call it).

    Args:
        arch (str | dict): A name of :data:`ARCH_SETTINGS` (``'tiny'``,
            ``'small'``, ``'base'``) or a dict with ``depths`` and ``dims``
            (4 ints each) and optionally ``kernel_size``, ``small_kernel``,
            ``width_factor`` (default: SLaK-51's (51, 49, 47, 13), 5, 1.3).
        **overrides: ``kernel_size``, ``small_kernel`` or ``width_factor``
            values that replace the row's; None keeps the row's.

    Returns:
        dict: ``depths``, ``dims``, ``kernel_size`` (lists),
        ``small_kernel``, ``width_factor``, and ``channels``: the channels
        per stage, ``int(dims[i] * width_factor)``.

    Raises:
        ValueError: An unknown name or key, or values that do not make a
            SLaK (one line naming them).
    """
    if isinstance(arch, str):
        if arch not in ARCH_SETTINGS:
            raise ValueError(
                f'Unknown SLaK arch {arch!r}; choose one of '
                f'{sorted(ARCH_SETTINGS)} or pass a dict with "depths" and '
                f'"dims" (4 ints each).')
        arch = ARCH_SETTINGS[arch]
    if not isinstance(arch, dict) or not {'depths', 'dims'} <= set(arch):
        raise ValueError('A custom SLaK arch must be a dict with keys '
                         f'"depths" and "dims", got {arch!r}')
    unknown = sorted(set(arch) - set(_ARCH_KEYS))
    bad_overrides = sorted(set(overrides) - set(_ARCH_KEYS[2:]))
    if unknown or bad_overrides:
        raise ValueError(f'Unknown SLaK arch keys {unknown + bad_overrides}; '
                         f'an arch has {list(_ARCH_KEYS)}')
    row = dict(_SLAK_51, **arch)
    row.update((k, v) for k, v in overrides.items() if v is not None)
    row['depths'], row['dims'] = list(row['depths']), list(row['dims'])
    if len(row['depths']) != NUM_STAGES or len(row['dims']) != NUM_STAGES:
        raise ValueError(
            f'arch "depths" and "dims" need {NUM_STAGES} entries (one per '
            f'stage), got depths={row["depths"]}, dims={row["dims"]}')
    width = row['width_factor']
    if isinstance(width, bool) or not isinstance(width,
                                                 (int, float)) or width <= 0:
        raise ValueError(f'width_factor must be a number > 0 (SLaK uses '
                         f'1.3), got {width!r}')
    row['kernel_size'] = list(row['kernel_size'])
    _check_kernels(row['kernel_size'], row['small_kernel'])
    row['channels'] = [int(d * width) for d in row['dims']]
    return row


class SLaKBlock(nn.Module):
    """One SLaK block: large-kernel depthwise conv, then a ConvNeXt MLP.

    ``x + drop_path(gamma * pwconv2(gelu(pwconv1(norm(large_kernel(x))))))``,
    with the MLP applied channels-last.

    Args:
        dim (int): Number of channels.
        kernel_size (int): Large kernel side ``M``.
        small_kernel (int): Short kernel side ``N``.
        decompose (bool): Three-branch decomposed kernel (SLaK) or one dense
            ``M x M`` branch (RepLKNet). Default: True.
        branch_norm_layer (Callable[[int], nn.Module]): Builds the norm
            after each branch. Default: ``nn.BatchNorm2d``.
        drop_path_rate (float): Stochastic depth rate. Default: 0.
        layer_scale_init_value (float): Initial value of ``gamma``; 0 or less
            disables layer scale. Default: 1e-6.
        deploy (bool): Build the large kernel in its merged inference form
            (see :class:`LargeKernelConv`). Default: False.
        conv_impl (str, optional): Depthwise conv implementation, see
            :class:`LargeKernelConv`. Default: None (automatic).
    """

    def __init__(self,
                 dim: int,
                 kernel_size: int,
                 small_kernel: int,
                 decompose: bool = True,
                 branch_norm_layer: Callable[[int],
                                             nn.Module] = nn.BatchNorm2d,
                 drop_path_rate: float = 0.,
                 layer_scale_init_value: float = 1e-6,
                 deploy: bool = False,
                 conv_impl: Optional[str] = None):
        super().__init__()
        #: Recompute the block in the backward pass (memory for compute).
        self.grad_checkpointing = False
        self.large_kernel = LargeKernelConv(
            dim,
            kernel_size,
            small_kernel,
            decompose=decompose,
            norm_layer=branch_norm_layer,
            deploy=deploy,
            impl=conv_impl)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(
            torch.full((dim, ), float(layer_scale_init_value))
        ) if layer_scale_init_value > 0 else None
        self.drop_path = DropPath(
            drop_path_rate) if drop_path_rate > 0. else nn.Identity()

    def _inner_forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.large_kernel(x).permute(0, 2, 3, 1)
        x = self.pwconv2(self.act(self.pwconv1(self.norm(x))))
        if self.gamma is not None:
            x = self.gamma * x
        return shortcut + self.drop_path(x.permute(0, 3, 1, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpointing and x.requires_grad:
            return cp.checkpoint(self._inner_forward, x, use_reentrant=False)
        return self._inner_forward(x)


class SLaK(nn.Module):
    """SLaK: a ConvNeXt whose 7x7 depthwise convs are decomposed large
    kernels (``M x N + N x M + N x N``, each branch with its own BatchNorm),
    channels widened by ``width_factor``; the official ImageNet classifier
    (global average pooling, ``norm``, ``head``) and, without it, a
    backbone.

    Args:
        arch (str | dict): ``'tiny'``, ``'small'``, ``'base'`` or a dict;
            see :func:`resolve_arch`. Default: ``'tiny'``.
        kernel_size (Sequence[int], optional): Large kernel side per stage
            (odd), replacing the arch's. Default: None (the arch's).
        small_kernel (int, optional): Short side ``N`` of the decomposed
            kernels (odd, smaller than every large kernel), replacing the
            arch's. Default: None (the arch's).
        width_factor (float, optional): Channel multiplier, replacing the
            arch's. Default: None (the arch's).
        in_chans (int): Input image channels. Default: 3.
        num_classes (int): Classes of the head; 0: no head (``forward``
            returns the pooled, normalised features). Default: 1000.
        global_pool (str): ``'avg'`` (the official classifier: pooling, then
            the LayerNorm ``norm``) or ``''`` (no pooling and no ``norm``;
            ``forward`` returns the last stage's map; needs
            ``num_classes=0``). Default: ``'avg'``.
        decompose (bool): Decomposed ``M x N + N x M + N x N`` kernels (SLaK)
            or one dense ``M x M`` + ``N x N`` (RepLKNet). Default: True.
        drop_rate (float): Dropout before the head. Default: 0.
        drop_path_rate (float): Stochastic depth rate, increasing linearly
            over the blocks. Default: 0.
        layer_scale_init_value (float): Initial layer scale. Default: 1e-6.
        head_init_scale (float): Scale of the head's initial weights.
            Default: 1.
        norm_layer (Callable[[int], nn.Module], optional): Builds the
            LayerNorms on channels-first maps (stem, downsampling). Default:
            None (timm's ``LayerNorm2d``, eps 1e-6).
        branch_norm_layer (Callable[[int], nn.Module], optional): Builds the
            norm after each large-kernel branch. Default: None
            (``nn.BatchNorm2d``).
        sparse (bool): Keep the conv and linear weights (every parameter
            with 2 or 4 dims) sparse: each gets a bool ``<name>_mask``
            buffer, saved in state dicts, drawn at ``sparsity`` when the
            weights are initialised and taken from the zeros of loaded
            weights that bring no masks. The model keeps its own zeros under
            any training loop: masked gradient entries are zeroed as
            autograd computes them
            (:func:`slak_mm.sparse.mask_gradients_in_backward`), and masked
            weights are zeroed after every ``load_state_dict``. Default:
            False.
        sparsity (float): Fraction of zeros of random masks, in [0, 1).
            Default: 0.4 (SLaK).
        sparse_init (str): Layer-wise scheme for random masks: ``'ERK'`` or
            ``'uniform'``. Default: ``'ERK'``.
        deploy (bool): Build every large kernel in its merged inference
            form (see :meth:`switch_to_deploy`), to load a deploy state
            dict. Default: False.
        conv_impl (str, optional): Large-kernel depthwise conv: ``'auto'``
            (the fastest correct implementation, measured per shape),
            ``'torch'``, ``'fft'`` or ``'triton'``; None: the ops' ``impl``
            setting (``$SLAK_MM_DWCONV_IMPL`` or :class:`slak_mm.ops.use`,
            default ``'auto'``). Default: None.
        **kwargs: Passed to the next class's ``__init__`` (the mm
            backbone's ``BaseModule`` takes ``init_cfg``); none for this
            class alone.
    """

    #: The models of the paper (see :data:`ARCH_SETTINGS`).
    arch_settings = ARCH_SETTINGS
    num_stages = NUM_STAGES

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 kernel_size: Optional[Sequence[int]] = None,
                 small_kernel: Optional[int] = None,
                 width_factor: Optional[float] = None,
                 in_chans: int = 3,
                 num_classes: int = 1000,
                 global_pool: str = 'avg',
                 decompose: bool = True,
                 drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 layer_scale_init_value: float = 1e-6,
                 head_init_scale: float = 1.,
                 norm_layer: Optional[Callable[[int], nn.Module]] = None,
                 branch_norm_layer: Optional[Callable[[int],
                                                      nn.Module]] = None,
                 sparse: bool = False,
                 sparsity: float = 0.4,
                 sparse_init: str = 'ERK',
                 deploy: bool = False,
                 conv_impl: Optional[str] = None,
                 **kwargs):
        super().__init__(**kwargs)
        if not 0. <= sparsity < 1.:
            raise ValueError(f'sparsity is the fraction of zero weights and '
                             f'must be in [0, 1), got {sparsity}')
        if sparse_init not in SPARSE_INIT_METHODS:
            raise ValueError(f'Unknown sparse_init {sparse_init!r}; choose '
                             f'one of {SPARSE_INIT_METHODS}')
        self.arch = resolve_arch(
            arch,
            kernel_size=kernel_size,
            small_kernel=small_kernel,
            width_factor=width_factor)
        self.depths = self.arch['depths']
        self.kernel_size = self.arch['kernel_size']
        self.small_kernel = self.arch['small_kernel']
        self.channels = self.arch['channels']
        self.in_chans = in_chans
        self.drop_rate = drop_rate
        self.head_init_scale = head_init_scale
        self.sparse = sparse
        self.sparsity = sparsity
        self.sparse_init = sparse_init
        self.deploy = deploy
        norm_layer = norm_layer or partial(LayerNorm2d, eps=1e-6)
        branch_norm_layer = branch_norm_layer or nn.BatchNorm2d

        channels = self.channels
        self.downsample_layers = nn.ModuleList([
            nn.Sequential(
                nn.Conv2d(in_chans, channels[0], kernel_size=4, stride=4),
                norm_layer(channels[0]))
        ])
        for i in range(1, self.num_stages):
            self.downsample_layers.append(
                nn.Sequential(
                    norm_layer(channels[i - 1]),
                    nn.Conv2d(
                        channels[i - 1], channels[i], kernel_size=2,
                        stride=2)))
        dp_rates = torch.linspace(0, drop_path_rate, sum(self.depths)).tolist()
        self.stages = nn.ModuleList()
        for i in range(self.num_stages):
            first = sum(self.depths[:i])
            self.stages.append(
                nn.Sequential(*[
                    SLaKBlock(
                        channels[i],
                        self.kernel_size[i],
                        self.small_kernel,
                        decompose=decompose,
                        branch_norm_layer=branch_norm_layer,
                        drop_path_rate=dp_rates[first + j],
                        layer_scale_init_value=layer_scale_init_value,
                        deploy=deploy,
                        conv_impl=conv_impl) for j in range(self.depths[i])
                ]))
        #: timm's description of the stage outputs (``features_only``).
        self.feature_info = [
            dict(num_chs=c, reduction=4 * 2**i, module=f'stages.{i}')
            for i, c in enumerate(channels)
        ]
        self.num_features = self.head_hidden_size = channels[-1]
        self.head_drop = nn.Dropout(drop_rate)
        self.reset_classifier(num_classes, global_pool)

        if sparse:
            # merged (deploy) kernels sum differently masked branches: no
            # branch mask applies to them (see switch_to_deploy)
            attach_masks(
                self,
                exclude=[
                    m for m in self.modules()
                    if isinstance(m, LargeKernelConv) and m.deploy
                ])
            # before any freezing: a weight that needs no gradient takes no
            # hook
            mask_gradients_in_backward(self)
            # whoever loads a state dict: one without masks gives its zeros
            # as masks, and no loaded weight revives a masked entry
            self.register_load_state_dict_pre_hook(self._masks_from_zeros)
            self.register_load_state_dict_post_hook(self._apply_masks)
        self.reset_parameters()

    # ------------------------------------------------------------- weights
    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Draw new weights: truncated normal (std 0.02) conv and linear
        weights, zero biases, the head scaled by ``head_init_scale``; with
        ``sparse=True`` also random masks at ``sparsity``."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                trunc_normal_(m.weight, std=.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        if isinstance(self.head, nn.Linear):
            self.head.weight.mul_(self.head_init_scale)
            self.head.bias.mul_(self.head_init_scale)
        if self.sparse:
            init_random_masks(self, 1. - self.sparsity, self.sparse_init)

    @staticmethod
    def _masks_from_zeros(module: nn.Module, state_dict: dict, prefix: str,
                          *args) -> None:
        """A state dict with weights but no ``*_mask`` entries (a dense or
        an official file) brings its own non-zero pattern as the masks, as
        our tools' load check does, not the model's current (random)
        ones."""
        derived = 0
        for name, _, _ in masked_weights(module):
            key = prefix + name
            if key in state_dict and mask_key(key) not in state_dict:
                state_dict[mask_key(key)] = state_dict[key] != 0
                derived += 1
        if derived:
            log_message(
                f'SLaK: {derived} sparsity masks taken from the zeros of the '
                f'loaded weights (the state dict has no *_mask entries)')

    @staticmethod
    def _apply_masks(module: nn.Module, incompatible_keys=None) -> None:
        apply_masks(module)

    def load_pretrained(self, checkpoint_path: str) -> None:
        """Load an official SLaK ImageNet file (or a SLaK checkpoint of
        slak_mm, mm or timm) into this model: what timm calls for a
        pretrained file or URL (``pretrained_cfg_overlay=dict(file=PATH)``).

        The file is read by slak_mm's safe reader
        (:func:`~slak_mm.checkpoint.load_checkpoint_safely`: an allow-list
        that takes the official files' ``argparse.Namespace``, checked zip
        members and numpy objects) and mapped by
        :func:`~slak_mm.checkpoint.checkpoint_filter_fn`. As timm does, a
        head of another ``num_classes`` is left out (the new head stays
        random) and the stem is adapted to ``in_chans``.

        Args:
            checkpoint_path (str): Local path of the checkpoint.

        Raises:
            ValueError: The file does not fit the model (nothing is loaded)
                or lacks weights the model needs.
            CheckpointError: Unsafe or damaged files.
        """
        state_dict = to_backbone_state_dict(
            extract_state_dict(load_checkpoint_safely(checkpoint_path)),
            keep=CLASSIFIER_PREFIXES)
        head = state_dict.get('head.weight')
        new_head = head is not None and (not isinstance(self.head, nn.Linear)
                                         or head.shape
                                         != self.head.weight.shape)
        if new_head:
            del state_dict['head.weight'], state_dict['head.bias']
        stem = 'downsample_layers.0.0.weight'
        if stem in state_dict and state_dict[stem].shape[1] != self.in_chans:
            state_dict[stem] = adapt_input_conv(self.in_chans,
                                                state_dict[stem])
        state_dict = checkpoint_filter_fn(state_dict, self, checkpoint_path)
        expected = self.state_dict()
        missing = [
            k for k in expected
            if k not in state_dict and not (new_head and k.startswith('head.'))
        ]
        if missing:
            raise ValueError(
                f'{checkpoint_path!r} lacks {len(missing)} weights of this '
                f'model, e.g. {missing[:3]}; nothing was loaded. A file '
                f'without the classifier (norm.*, head.*) fits num_classes=0, '
                f"global_pool='' or features_only=True.")
        unexpected = [k for k in state_dict if k not in expected]
        self.load_state_dict(
            {
                k: v
                for k, v in state_dict.items() if k in expected
            },
            strict=not new_head)
        notes = [f'not used: {unexpected[:4]}'] if unexpected else []
        if new_head:
            notes.append(f'head {tuple(head.shape)} of the file left out')
        log_message(f'SLaK: loaded {checkpoint_path}' +
                    ''.join(f'; {n}' for n in notes))

    # ----------------------------------------------------------------- timm
    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict[str, Any]:
        """Parameter groups by depth, for timm's layer-wise lr decay
        (``timm.optim.create_optimizer_v2(model, layer_decay=...)``).

        Args:
            coarse (bool): One group per stage instead of per block.

        Returns:
            dict: timm's regex patterns.
        """
        return dict(
            stem=r'^downsample_layers\.0\.',
            blocks=r'^(?:downsample_layers|stages)\.(\d+)' if coarse else [
                (r'^downsample_layers\.(\d+)', (0, )),
                (r'^stages\.(\d+)\.(\d+)', None),
                (r'^norm\.', (99999, )),
            ])

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block in the backward pass (memory for compute).
        In training mode the branch BatchNorms then update their running
        statistics twice per step (outputs and gradients are unaffected,
        as with any BatchNorm under checkpointing).

        Args:
            enable (bool): On or off. Default: True.
        """
        for stage in self.stages:
            for block in stage:
                block.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        """The classifier: the ``head`` Linear (or ``nn.Identity``)."""
        return self.head

    def reset_classifier(self,
                         num_classes: int,
                         global_pool: Optional[str] = None) -> None:
        """Replace the classifier: a new random ``head`` for
        ``num_classes`` (0: none), and with ``global_pool=''`` no pooling
        and no ``norm`` either.

        Args:
            num_classes (int): Classes of the new head.
            global_pool (str, optional): ``'avg'`` or ``''``; None keeps
                the current one.
        """
        if global_pool is not None:
            if global_pool not in ('avg', ''):
                raise ValueError(f"global_pool must be 'avg' or '' (no "
                                 f'pooling), got {global_pool!r}')
            self.global_pool = global_pool
            self.norm = nn.LayerNorm(
                self.num_features, eps=1e-6) if global_pool else nn.Identity()
        if num_classes and not self.global_pool:
            raise ValueError(
                f"global_pool='' gives the last stage's map, which a head of "
                f'{num_classes} classes cannot take; set num_classes=0')
        self.num_classes = num_classes
        self.head = nn.Linear(self.num_features,
                              num_classes) if num_classes else nn.Identity()

    def prune_intermediate_layers(self,
                                  indices: Union[int, List[int]] = 1,
                                  prune_norm: bool = False,
                                  prune_head: bool = True) -> List[int]:
        """Drop the stages after the last of ``indices`` and the classifier
        (timm's ``features_only`` wrapper calls it).

        Args:
            indices (int | list[int]): Stages to keep outputs of (an int:
                the last n).
            prune_norm (bool): Drop the classifier's ``norm`` too.
            prune_head (bool): Drop the head.

        Returns:
            list[int]: The stages whose outputs are kept.
        """
        take_indices, max_index = feature_take_indices(
            len(self.stages), indices)
        self.stages = self.stages[:max_index + 1]
        self.downsample_layers = self.downsample_layers[:max_index + 1]
        if prune_norm or prune_head or max_index < self.num_stages - 1:
            self.num_features = self.channels[max_index]
            self.reset_classifier(0, '')
        return take_indices

    # -------------------------------------------------------------- deploy
    def switch_to_deploy(self) -> None:
        """Merge every large kernel's branches for inference, in place.

        Each branch's BatchNorm is folded into its conv with the running
        statistics (the eval-mode function, whatever ``self.training``
        is), the ``N x N`` kernel is added into the centre of the ``M x N``
        one, and the block then runs one cross-shaped kernel (``M x N`` +
        ``N x M`` + bias, :func:`slak_mm.ops.cross_depthwise_conv2d`), or one
        dense ``M x M`` conv with bias when ``decompose=False``. The eval
        outputs are unchanged up to float rounding.

        Sparsity: the branch modules are deleted, and with them their mask
        buffers. The merged kernels get no mask: their non-zeros are the
        union of the branches' (denser than any branch where they overlap,
        e.g. the ``N x N`` centre), so no branch mask applies to them. The
        masks of the other weights (downsampling, ``pwconv``) stay. Deploy
        models are for inference; train the training form. The merged
        parameter names are not part of the official checkpoint format, so
        the state dict of a switched model loads into ``deploy=True``
        models only. Calling it again does nothing.
        """
        for m in self.modules():
            if isinstance(m, LargeKernelConv):
                m.switch_to_deploy()
        self.deploy = True

    # ------------------------------------------------------------- forward
    @staticmethod
    def _check_input(x: torch.Tensor) -> None:
        if x.dim() != 4 or min(x.shape[-2:]) < 32:
            raise ValueError(
                f'SLaK expects (N, C, H, W) input with H, W >= 32 (four '
                f'downsamplings, stride 32); got shape {tuple(x.shape)}')

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: Optional[Union[int, List[int]]] = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = 'NCHW',
        intermediates_only: bool = False
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """The stage outputs (timm's interface; ``features_only=True``
        returns these).

        Args:
            x (torch.Tensor): Images (N, C, H, W), H and W >= 32.
            indices (int | list[int], optional): Stages to return (an int:
                the last n; None: all).
            norm (bool): Ignored: SLaK's ``norm`` acts on pooled features,
                not on maps.
            stop_early (bool): Run no stage after the last of ``indices``.
            output_fmt (str): ``'NCHW'`` only.
            intermediates_only (bool): Return the maps only.

        Returns:
            list[Tensor] | tuple: The (N, channels[i], H / 2**(i + 2),
            W / 2**(i + 2)) maps of the stages in ``indices``; unless
            ``intermediates_only``, after the last stage's map.
        """
        if output_fmt != 'NCHW':
            raise ValueError(f'SLaK outputs NCHW maps, not {output_fmt}')
        self._check_input(x)
        take_indices, max_index = feature_take_indices(
            len(self.stages), indices)
        last = max_index if stop_early else len(self.stages) - 1
        intermediates = []
        for i in range(last + 1):
            x = self.stages[i](self.downsample_layers[i](x))
            if i in take_indices:
                intermediates.append(x)
        if intermediates_only:
            return intermediates
        return x, intermediates

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's map (N, channels[-1], H / 32, W / 32).

        Args:
            x (torch.Tensor): Images (N, C, H, W), H and W >= 32.

        Returns:
            torch.Tensor: The map.
        """
        self._check_input(x)
        for downsample, stage in zip(self.downsample_layers, self.stages):
            x = stage(downsample(x))
        return x

    def forward_head(self,
                     x: torch.Tensor,
                     pre_logits: bool = False) -> torch.Tensor:
        """Global average pooling, ``norm``, dropout, ``head`` (the official
        order: the LayerNorm acts on the pooled features).

        Args:
            x (torch.Tensor): The last stage's map.
            pre_logits (bool): Stop before the head.

        Returns:
            torch.Tensor: Logits (N, num_classes), or the features.
        """
        if self.global_pool == 'avg':
            x = x.mean((2, 3))
        x = self.head_drop(self.norm(x))
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the images ``x`` (N, C, H, W), H and W >= 32."""
        return self.forward_head(self.forward_features(x))


# ------------------------------------------------------------- timm models
def _create_slak(variant: str, pretrained: bool = False, **kwargs) -> SLaK:
    cfg = resolve_pretrained_cfg(variant, kwargs.pop('pretrained_cfg', None),
                                 kwargs.pop('pretrained_cfg_overlay', None))
    if pretrained and not (cfg.has_weights or cfg.state_dict):
        raise ValueError(
            f'{variant}: timm cannot download the official SLaK weights '
            f'(they are on Google Drive / SURFdrive, see {cfg.origin_url}); '
            f'download the checkpoint (e.g. SLaK_tiny_checkpoint.pth) and '
            f'pass pretrained_cfg_overlay=dict(file=PATH).')
    # a file or URL is read by SLaK.load_pretrained, i.e. by slak_mm's safe
    # reader: timm's torch.load refuses the official files' Namespace and
    # checks neither zip members nor numpy objects
    cfg = dataclasses.replace(cfg, custom_load=bool(cfg.file or cfg.url))
    return build_model_with_cfg(
        SLaK,
        variant,
        pretrained,
        pretrained_cfg=cfg.to_dict(),
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(out_indices=(0, 1, 2, 3), feature_cls='getter'),
        **kwargs)


def _cfg(**kwargs) -> dict:
    return dict(
        url='',
        num_classes=1000,
        input_size=(3, 224, 224),
        pool_size=(7, 7),
        crop_pct=0.875,
        interpolation='bicubic',
        mean=IMAGENET_DEFAULT_MEAN,
        std=IMAGENET_DEFAULT_STD,
        first_conv='downsample_layers.0.0',
        classifier='head',
        license='mit',
        paper_ids='arXiv:2207.03620',
        paper_name='More ConvNets in the 2020s: Scaling up Kernels Beyond '
        '51x51 using Sparsity',
        origin_url='https://github.com/VITA-Group/SLaK',
        **kwargs)


#: The official ImageNet-1K weights, as timm's registry lists them.
default_cfgs = generate_default_cfgs({
    'slak_tiny.in1k': _cfg(),
    'slak_small.in1k': _cfg(),
    'slak_base.in1k': _cfg(),
})


@register_model
def slak_tiny(pretrained: bool = False, **kwargs) -> SLaK:
    """SLaK-T (kernels 51/49/47/13, width 1.3, 82.5% ImageNet-1K top-1)."""
    return _create_slak('slak_tiny', pretrained, arch='tiny', **kwargs)


@register_model
def slak_small(pretrained: bool = False, **kwargs) -> SLaK:
    """SLaK-S (kernels 51/49/47/13, width 1.3, 83.8% ImageNet-1K top-1)."""
    return _create_slak('slak_small', pretrained, arch='small', **kwargs)


@register_model
def slak_base(pretrained: bool = False, **kwargs) -> SLaK:
    """SLaK-B (kernels 51/49/47/13, width 1.3, 84.0% ImageNet-1K top-1)."""
    return _create_slak('slak_base', pretrained, arch='base', **kwargs)


# the official repository's names (its timm registrations), the same models
@register_model
def SLaK_tiny(pretrained: bool = False, **kwargs) -> SLaK:  # noqa: N802
    """The official name of :func:`slak_tiny`."""
    return slak_tiny(pretrained, **kwargs)


@register_model
def SLaK_small(pretrained: bool = False, **kwargs) -> SLaK:  # noqa: N802
    """The official name of :func:`slak_small`."""
    return slak_small(pretrained, **kwargs)


@register_model
def SLaK_base(pretrained: bool = False, **kwargs) -> SLaK:  # noqa: N802
    """The official name of :func:`slak_base`."""
    return slak_base(pretrained, **kwargs)
