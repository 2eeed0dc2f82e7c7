"""SLaK backbone (Sparse Large Kernel Network, ICLR 2023) for mmseg / mmdet.

Parameter names follow the official SLaK checkpoints (``downsample_layers``,
``stages``, ``large_kernel.LoRA1`` ...), which keep ConvNeXt's layout, so the
published ImageNet weights load unchanged and mm's ConvNeXt layer-decay rules
apply.
"""
from functools import partial
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmcv.cnn import build_norm_layer
from mmengine.logging import print_log
from mmengine.model import BaseModule
from timm.layers import DropPath, LayerNorm2d, trunc_normal_
from torch.nn.modules.batchnorm import _BatchNorm

from slak_mm.checkpoint import load_pretrained_backbone
from slak_mm.ops import MAX_KERNEL
from slak_mm.registry import register_model
from slak_mm.sparse import (SPARSE_INIT_METHODS, apply_masks, attach_masks,
                            init_random_masks, mask_gradients_in_backward,
                            mask_key, masked_weights)
from ..layers import LargeKernelConv

__all__ = ['SLaK', 'SLaKBlock']


def _norm_module(norm_cfg: dict, channels: int) -> nn.Module:
    return build_norm_layer(norm_cfg, channels)[1]


class SLaKBlock(nn.Module):
    """One SLaK block: large-kernel depthwise conv, then a ConvNeXt MLP.

    ``x + drop_path(gamma * pwconv2(gelu(pwconv1(norm(large_kernel(x))))))``,
    with the MLP applied channels-last.

    Args:
        dim (int): Number of channels.
        kernel_size (int): Large kernel side ``M``.
        small_kernel (int): Short kernel side ``N``.
        decompose (bool): Three-branch decomposed kernel (SLaK) or one dense
            ``M x M`` branch (RepLKNet).
        norm_cfg (dict): Config of the branch norms.
        drop_path_rate (float): Stochastic depth rate. Default: 0.
        layer_scale_init_value (float): Initial value of ``gamma``; 0 or less
            disables layer scale. Default: 1e-6.
        with_cp (bool): Gradient checkpointing of the block. Default: False.
        deploy (bool): Build the large kernel in its merged inference form
            (see :class:`LargeKernelConv`). Default: False.
        conv_impl (str, optional): Depthwise conv implementation, see
            :class:`LargeKernelConv`. Default: None (automatic).
    """

    def __init__(self,
                 dim: int,
                 kernel_size: int,
                 small_kernel: int,
                 decompose: bool,
                 norm_cfg: dict,
                 drop_path_rate: float = 0.,
                 layer_scale_init_value: float = 1e-6,
                 with_cp: bool = False,
                 deploy: bool = False,
                 conv_impl: Optional[str] = None):
        super().__init__()
        self.with_cp = with_cp
        self.large_kernel = LargeKernelConv(
            dim,
            kernel_size,
            small_kernel,
            decompose=decompose,
            norm_layer=partial(_norm_module, norm_cfg),
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
        if self.with_cp and x.requires_grad:
            return cp.checkpoint(self._inner_forward, x, use_reentrant=False)
        return self._inner_forward(x)


@register_model
class SLaK(BaseModule):
    """SLaK backbone with multi-scale outputs for dense prediction.

    A ConvNeXt macro design whose 7x7 depthwise convs are replaced by
    decomposed large kernels (``M x N + N x M + N x N``, each branch with its
    own BatchNorm), channels widened by ``width_factor``. Registered in both
    ``mmseg.registry.MODELS`` and ``mmdet.registry.MODELS``.

    Args:
        arch (str | dict): ``'tiny'``, ``'small'``, ``'base'``, or a dict with
            ``depths`` (4 ints) and ``dims`` (4 ints, before
            ``width_factor``). Default: ``'tiny'``.
        in_channels (int): Input image channels. Default: 3.
        kernel_size (Sequence[int]): Large kernel side per stage, odd.
            Default: (51, 49, 47, 13).
        small_kernel (int): Short side ``N`` of the decomposed kernels, odd
            and smaller than every large kernel. Default: 5.
        width_factor (float): Channel multiplier: stage ``i`` has
            ``int(dims[i] * width_factor)`` channels. Default: 1.3.
        decompose (bool): Decomposed ``M x N + N x M + N x N`` kernels (SLaK)
            or one dense ``M x M`` + ``N x N`` (RepLKNet). Default: True.
        drop_path_rate (float): Stochastic depth rate, increasing linearly
            over the blocks. Default: 0.
        layer_scale_init_value (float): Initial layer scale. Default: 1e-6.
        out_indices (Sequence[int]): Stages (0-3) whose features are output,
            each through its own LayerNorm ``norm{i}``; strides 4, 8, 16, 32.
            Default: (0, 1, 2, 3).
        frozen_stages (int): Freeze (no gradients, norms in eval) the stem
            and stages ``0 .. frozen_stages - 1``; -1 or 0 freezes nothing.
            Default: -1.
        norm_eval (bool): Keep the branch BatchNorms in eval mode during
            training (running statistics frozen). Default: False.
        with_cp (bool): Gradient checkpointing per block, trading compute
            for memory. The backward recomputes each block, so in training
            mode the branch BatchNorms update their running statistics
            twice per step (outputs and gradients are unaffected; as with
            any BN under checkpointing). Default: False.
        norm_cfg (dict): Config of the branch norms; the real configs use
            ``SyncBN``. Default: ``dict(type='BN', requires_grad=True)``.
        sparse (bool): Keep the conv and linear weights (every parameter
            with 2 or 4 dims) sparse: each gets a bool ``<name>_mask``
            buffer, saved in checkpoints, taken from the pretrained
            weights' zeros (or drawn at ``sparsity`` without a checkpoint).
            The backbone keeps its own zeros under any runner: masked
            gradient entries are zeroed as autograd computes them
            (:func:`slak_mm.sparse.mask_gradients_in_backward`), and masked
            weights are zeroed after every ``load_state_dict`` (a state
            dict without masks brings its zeros as masks); no hook is
            needed (see docs/sparsity.md). Default: False.
        sparsity (float): Fraction of zeros when masks are drawn at random
            (no pretrained checkpoint), in [0, 1). Default: 0.4 (SLaK).
        sparse_init (str): Layer-wise scheme for random masks: ``'ERK'`` or
            ``'uniform'``. Default: ``'ERK'``.
        deploy (bool): Build every large kernel in its merged inference
            form (BatchNorms folded, branches summed into one cross-shaped
            or dense kernel with a bias), to load a deploy checkpoint written
            by ``tools/deploy.py`` or by :meth:`switch_to_deploy`. Sparsity
            masks (``sparse=True``) are attached to the other weights only:
            the merged kernels get none. Default: False.
        conv_impl (str, optional): Large-kernel depthwise conv: ``'auto'``
            (the fastest correct implementation, measured per shape, see
            :mod:`slak_mm.ops.dispatch`), ``'torch'``, ``'fft'`` or
            ``'triton'``; None reads ``$SLAK_MM_DWCONV_IMPL`` (default
            ``auto``). On the CPU the
            convs run channels-last (``$SLAK_MM_CPU_LAYOUT``). Default: None.
        init_cfg (dict, optional): ``dict(type='Pretrained',
            checkpoint=PATH)`` loads an official SLaK ImageNet checkpoint or
            an mm checkpoint; None initialises randomly. Default: None.
        pretrained (None): Accepted only as None, which mm base configs
            (e.g. mmseg's ResNet bases) pass to every backbone; a path is
            refused with a pointer to ``init_cfg``. Default: None.
    """

    arch_settings: Dict[str, dict] = {
        'tiny': dict(depths=[3, 3, 9, 3], dims=[96, 192, 384, 768]),
        'small': dict(depths=[3, 3, 27, 3], dims=[96, 192, 384, 768]),
        'base': dict(depths=[3, 3, 27, 3], dims=[128, 256, 512, 1024]),
    }
    num_stages = 4

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 in_channels: int = 3,
                 kernel_size: Sequence[int] = (51, 49, 47, 13),
                 small_kernel: int = 5,
                 width_factor: float = 1.3,
                 decompose: bool = True,
                 drop_path_rate: float = 0.,
                 layer_scale_init_value: float = 1e-6,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 sparse: bool = False,
                 sparsity: float = 0.4,
                 sparse_init: str = 'ERK',
                 deploy: bool = False,
                 conv_impl: Optional[str] = None,
                 init_cfg: Union[dict, None] = None,
                 pretrained: Optional[str] = None):
        super().__init__(init_cfg=init_cfg)
        if pretrained is not None:
            raise ValueError(
                f'SLaK(pretrained={pretrained!r}): give the checkpoint as '
                f"init_cfg=dict(type='Pretrained', checkpoint=...) instead "
                f'(pretrained=None, as mm base configs set, is accepted).')
        if not (isinstance(width_factor, (int, float)) and width_factor > 0):
            raise ValueError(f'width_factor must be a number > 0 (SLaK '
                             f'uses 1.3), got {width_factor!r}')
        if not 0. <= sparsity < 1.:
            raise ValueError(f'sparsity is the fraction of zero weights and '
                             f'must be in [0, 1), got {sparsity}')
        if sparse_init not in SPARSE_INIT_METHODS:
            raise ValueError(f'Unknown sparse_init {sparse_init!r}; choose '
                             f'one of {SPARSE_INIT_METHODS}')
        self.sparse = sparse
        self.sparsity = sparsity
        self.sparse_init = sparse_init
        self.deploy = deploy
        depths, base_dims = self._parse_arch(arch)
        self.kernel_size = self._check_kernel_sizes(kernel_size, small_kernel)
        self.small_kernel = small_kernel
        self.out_indices = self._check_out_indices(out_indices)
        if not -1 <= frozen_stages <= self.num_stages:
            raise ValueError(f'frozen_stages must be in [-1, '
                             f'{self.num_stages}], got {frozen_stages}')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.dims = [int(d * width_factor) for d in base_dims]
        self.depths = depths

        self.downsample_layers = nn.ModuleList([
            nn.Sequential(
                nn.Conv2d(in_channels, self.dims[0], kernel_size=4, stride=4),
                LayerNorm2d(self.dims[0], eps=1e-6))
        ])
        for i in range(1, self.num_stages):
            self.downsample_layers.append(
                nn.Sequential(
                    LayerNorm2d(self.dims[i - 1], eps=1e-6),
                    nn.Conv2d(
                        self.dims[i - 1],
                        self.dims[i],
                        kernel_size=2,
                        stride=2)))

        dp_rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.stages = nn.ModuleList()
        for i in range(self.num_stages):
            first = sum(depths[:i])
            self.stages.append(
                nn.Sequential(*[
                    SLaKBlock(
                        self.dims[i],
                        self.kernel_size[i],
                        small_kernel,
                        decompose=decompose,
                        norm_cfg=norm_cfg,
                        drop_path_rate=dp_rates[first + j],
                        layer_scale_init_value=layer_scale_init_value,
                        with_cp=with_cp,
                        deploy=deploy,
                        conv_impl=conv_impl) for j in range(depths[i])
                ]))

        for i in self.out_indices:
            self.add_module(f'norm{i}', LayerNorm2d(self.dims[i], eps=1e-6))
        if sparse:
            # merged (deploy) kernels sum differently masked branches: no
            # branch mask applies to them (see switch_to_deploy)
            attach_masks(
                self,
                exclude=[
                    m for m in self.modules()
                    if isinstance(m, LargeKernelConv) and m.deploy
                ])
            # before freezing: a weight that needs no gradient takes no hook
            mask_gradients_in_backward(self)
            # whoever loads a state dict: one without masks gives its zeros
            # as masks, and no loaded weight revives a masked entry
            self.register_load_state_dict_pre_hook(self._masks_from_zeros)
            self.register_load_state_dict_post_hook(self._apply_masks)
        self._freeze_stages()

    # ----------------------------------------------------------- validation
    def _parse_arch(self, arch) -> Tuple[list, list]:
        if isinstance(arch, str):
            if arch not in self.arch_settings:
                raise ValueError(
                    f'Unknown SLaK arch {arch!r}; choose one of '
                    f'{sorted(self.arch_settings)} or pass a dict with '
                    f'"depths" and "dims" (4 ints each).')
            arch = self.arch_settings[arch]
        if not isinstance(arch, dict) or not {'depths', 'dims'} <= set(arch):
            raise ValueError('A custom SLaK arch must be a dict with keys '
                             f'"depths" and "dims", got {arch!r}')
        depths, dims = list(arch['depths']), list(arch['dims'])
        if len(depths) != self.num_stages or len(dims) != self.num_stages:
            raise ValueError(
                f'arch "depths" and "dims" need {self.num_stages} entries '
                f'(one per stage), got depths={depths}, dims={dims}')
        return depths, dims

    def _check_kernel_sizes(self, kernel_size, small_kernel) -> list:
        kernel_size = list(kernel_size)
        if len(kernel_size) != self.num_stages:
            raise ValueError(
                f'kernel_size needs {self.num_stages} values (one per stage, '
                f'e.g. (51, 49, 47, 13)), got {kernel_size}; the short side '
                f'goes in small_kernel')
        for k in kernel_size + [small_kernel]:
            if not isinstance(k, int) or k < 1 or k % 2 == 0:
                raise ValueError(
                    f'Kernel sizes must be odd positive integers so that '
                    f'"same" padding keeps the map size; got kernel_size='
                    f'{kernel_size}, small_kernel={small_kernel}')
            if k > MAX_KERNEL:
                raise ValueError(
                    f'Kernel side {k} in kernel_size={kernel_size} is larger '
                    f'than the supported maximum {MAX_KERNEL} (the paper '
                    f'goes up to 61); use an odd size <= {MAX_KERNEL}.')
        if any(small_kernel >= k for k in kernel_size):
            raise ValueError(
                f'small_kernel ({small_kernel}) must be smaller than every '
                f'large kernel size {kernel_size}')
        return kernel_size

    def _check_out_indices(self, out_indices) -> Tuple[int, ...]:
        if isinstance(out_indices, int):
            out_indices = [out_indices]
        out_indices = tuple(out_indices)
        bad = [i for i in out_indices if not 0 <= i < self.num_stages]
        if bad or not out_indices:
            raise ValueError(f'out_indices must be non-empty stage indices in '
                             f'0..{self.num_stages - 1}, got {out_indices}')
        return out_indices

    # ------------------------------------------------------- init / freezing
    def init_weights(self):
        """Load ``init_cfg``'s pretrained checkpoint, or initialise randomly
        (truncated normal, std 0.02, for conv and linear weights; with
        ``sparse=True`` also random masks at ``sparsity``)."""
        if self.init_cfg is not None and self.init_cfg.get(
                'type') == 'Pretrained':
            try:
                load_pretrained_backbone(
                    self,
                    self.init_cfg['checkpoint'],
                    map_location=self.init_cfg.get('map_location', 'cpu'))
            except ValueError as err:
                if not self.deploy:
                    raise
                raise ValueError(
                    f'{err}\nNote: this SLaK was built with deploy=True '
                    f'(merged kernels); official and training checkpoints '
                    f'(LoRA1/LoRA2/small_conv branches) load only with '
                    f'deploy=False. Load them that way and call '
                    f'switch_to_deploy(), or convert an mm checkpoint with '
                    f'tools/deploy.py.') from err
            return
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                trunc_normal_(m.weight, std=.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        if self.sparse:
            init_random_masks(self, 1. - self.sparsity, self.sparse_init)
        if self.init_cfg is not None:
            super().init_weights()

    def _freeze_stages(self):
        for i in range(max(self.frozen_stages, 0)):
            for module in (self.downsample_layers[i], self.stages[i]):
                module.eval()
                for param in module.parameters():
                    param.requires_grad = False

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
            print_log(
                f'SLaK: {derived} sparsity masks taken from the zeros of the '
                f'loaded weights (the state dict has no *_mask entries)',
                logger='current')

    @staticmethod
    def _apply_masks(module: nn.Module, incompatible_keys=None) -> None:
        apply_masks(module)

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and self.sparse:
            # a deep copy or an unpickled model has new weights: torch
            # copies no hooks (idempotent for weights that have one)
            mask_gradients_in_backward(self)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    def get_layer_depth(self, param_name: str, prefix: str = '') -> tuple:
        """The layer depth of a parameter, for mmpretrain's layer-decay
        constructor (``LearningRateDecayOptimWrapperConstructor``): the rule
        of mmpretrain's ConvNeXt, whose parameter names and ``depths`` SLaK
        keeps (imported here: mmpretrain is optional).

        Args:
            param_name (str): The parameter's name.
            prefix (str): The backbone's prefix in it (``'backbone.'``).

        Returns:
            tuple[int, int]: The layer depth and the number of layers.
        """
        from mmpretrain.models.backbones import ConvNeXt
        return ConvNeXt.get_layer_depth(self, param_name, prefix)

    # ---------------------------------------------------------------- deploy
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
        the state dict of a switched model loads into
        ``SLaK(..., deploy=True)`` only. Calling it again does nothing.
        """
        for m in self.modules():
            if isinstance(m, LargeKernelConv):
                m.switch_to_deploy()
        self.deploy = True
        self._freeze_stages()  # the new parameters of frozen stages, too

    # --------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Return the normalised features of the stages in ``out_indices``.

        Args:
            x (torch.Tensor): Images, shape (N, C, H, W), H and W >= 32.

        Returns:
            tuple[torch.Tensor]: One (N, dims[i], H_i, W_i) map per entry of
            ``out_indices``, at stride 4, 8, 16, 32 for stages 0-3.
        """
        if x.dim() != 4 or min(x.shape[-2:]) < 32:
            raise ValueError(
                f'SLaK expects (N, C, H, W) input with H, W >= 32 (four '
                f'downsamplings, stride 32); got shape {tuple(x.shape)}')
        outs = []
        for i in range(self.num_stages):
            x = self.stages[i](self.downsample_layers[i](x))
            if i in self.out_indices:
                # timm's LayerNorm2d returns channels-last strides; mmcv's
                # RoIAlign reads its input as contiguous NCHW
                outs.append(getattr(self, f'norm{i}')(x).contiguous())
        return tuple(outs)

    @property
    def out_channels(self) -> list[int]:
        """Channels of the output maps, one per ``out_indices`` entry (what
        a neck's or head's ``in_channels`` must list); e.g. SLaK-T:
        ``[124, 249, 499, 998]``."""
        return [self.dims[i] for i in self.out_indices]
