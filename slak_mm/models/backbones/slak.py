"""SLaK backbone (Sparse Large Kernel Network, ICLR 2023) for mmseg / mmdet.

A thin adapter over the network (:class:`slak_mm.network.SLaK`, torch and
timm): what every mm backbone takes (``out_indices``, ``frozen_stages``,
``norm_eval``, ``with_cp``, ``norm_cfg``, ``init_cfg``), the output norms
``norm0..3`` of dense prediction, and the registries. Parameter names are
the official SLaK checkpoints' (``downsample_layers``, ``stages``,
``large_kernel.LoRA1`` ...), so the published ImageNet weights load
unchanged and mm's ConvNeXt layer-decay rules apply.
"""
from functools import partial
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from mmengine.registry import MODELS
from timm.layers import LayerNorm2d
from torch.nn.modules.batchnorm import _BatchNorm

from slak_mm import network
from slak_mm.checkpoint import load_pretrained_backbone
from slak_mm.registry import register_model
from slak_mm.sparse import mask_gradients_in_backward

__all__ = ['SLaK']

# the name mm's ConvNeXt gives its LayerNorm on channels-first maps (the
# default norm_cfg); mmpretrain registers it in its own scope only, so
# mmseg and mmdet configs find it in mmcv's place for norms
if 'LN2d' not in MODELS.module_dict:
    MODELS.register_module('LN2d', module=LayerNorm2d)


def _norm(norm_cfg: dict, channels: int) -> nn.Module:
    return build_norm_layer(norm_cfg, channels)[1]


@register_model
class SLaK(network.SLaK, BaseModule):
    """SLaK backbone with multi-scale outputs for dense prediction.

    A ConvNeXt macro design whose 7x7 depthwise convs are replaced by
    decomposed large kernels (``M x N + N x M + N x N``, each branch with its
    own BatchNorm), channels widened by ``width_factor``. Registered in both
    ``mmseg.registry.MODELS`` and ``mmdet.registry.MODELS``.

    Args:
        arch (str | dict): ``'tiny'``, ``'small'``, ``'base'``, or a dict with
            ``depths`` and ``dims`` (4 ints each, ``dims`` before
            ``width_factor``) and optionally ``kernel_size``,
            ``small_kernel``, ``width_factor``; see
            :func:`slak_mm.network.resolve_arch`. Default: ``'tiny'``.
        in_channels (int): Input image channels. Default: 3.
        kernel_size (Sequence[int], optional): Large kernel side per stage,
            odd, replacing the arch's (51, 49, 47, 13). Default: None.
        small_kernel (int, optional): Short side ``N`` of the decomposed
            kernels, odd and smaller than every large kernel, replacing the
            arch's 5. Default: None.
        width_factor (float, optional): Channel multiplier (stage ``i`` has
            ``int(dims[i] * width_factor)`` channels), replacing the arch's
            1.3. Default: None.
        decompose (bool): Decomposed ``M x N + N x M + N x N`` kernels (SLaK)
            or one dense ``M x M`` + ``N x N`` (RepLKNet). Default: True.
        drop_path_rate (float): Stochastic depth rate, increasing linearly
            over the blocks. Default: 0.
        layer_scale_init_value (float): Initial layer scale. Default: 1e-6.
        out_indices (Sequence[int]): Stages (0-3) whose features are output,
            each through its own norm ``norm{i}``; strides 4, 8, 16, 32.
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
        norm_cfg (dict): The norms on channels-first maps, as in mm's
            ConvNeXt: the stem's, the downsampling layers' and the output
            norms ``norm0..3``. A BatchNorm here is refused: it is what
            ``norm_cfg`` meant before it was renamed ``branch_norm_cfg``.
            Default: ``dict(type='LN2d', eps=1e-6)``.
        branch_norm_cfg (dict): The norm after each large-kernel branch; the
            real configs use ``SyncBN``. Default:
            ``dict(type='BN', requires_grad=True)``.
        sparse (bool): Keep the conv and linear weights sparse: each gets a
            bool ``<name>_mask`` buffer, saved in checkpoints, taken from the
            pretrained weights' zeros (or drawn at ``sparsity`` without a
            checkpoint). The backbone keeps its own zeros under any runner
            (masked gradients, masks re-applied after every
            ``load_state_dict``; see :class:`slak_mm.network.SLaK` and
            docs/sparsity.md); no hook is needed. Default: False.
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
            docs/kernels.md), ``'torch'``, ``'fft'`` or ``'triton'``; None:
            the ops' ``impl`` setting (``$SLAK_MM_DWCONV_IMPL`` or
            :class:`slak_mm.ops.use`, default ``'auto'``). On the CPU the
            convs run channels-last (``$SLAK_MM_CPU_LAYOUT``). Default:
            None.
        init_cfg (dict, optional): ``dict(type='Pretrained',
            checkpoint=PATH)`` loads an official SLaK ImageNet checkpoint or
            an mm checkpoint; None initialises randomly. Default: None.
        pretrained (None): Accepted only as None, which mm base configs
            (e.g. mmseg's ResNet bases) pass to every backbone; a path is
            refused with a pointer to ``init_cfg``. Default: None.
    """

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 in_channels: int = 3,
                 kernel_size: Optional[Sequence[int]] = None,
                 small_kernel: Optional[int] = None,
                 width_factor: Optional[float] = None,
                 decompose: bool = True,
                 drop_path_rate: float = 0.,
                 layer_scale_init_value: float = 1e-6,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 norm_cfg: dict = dict(type='LN2d', eps=1e-6),
                 branch_norm_cfg: dict = dict(type='BN', requires_grad=True),
                 sparse: bool = False,
                 sparsity: float = 0.4,
                 sparse_init: str = 'ERK',
                 deploy: bool = False,
                 conv_impl: Optional[str] = None,
                 init_cfg: Union[dict, None] = None,
                 pretrained: Optional[str] = None):
        if pretrained is not None:
            raise ValueError(
                f'SLaK(pretrained={pretrained!r}): give the checkpoint as '
                f"init_cfg=dict(type='Pretrained', checkpoint=...) instead "
                f'(pretrained=None, as mm base configs set, is accepted).')
        if isinstance(_norm(norm_cfg, 1), _BatchNorm):
            raise ValueError(
                f'SLaK(norm_cfg={norm_cfg}): norm_cfg is the LayerNorm of the '
                f"stem, downsampling and outputs, as in mm's ConvNeXt "
                f"(default dict(type='LN2d', eps=1e-6)); the BatchNorm after "
                f'each large-kernel branch is now branch_norm_cfg: rename '
                f'the key.')
        out_indices = self._check_out_indices(out_indices)
        if not -1 <= frozen_stages <= self.num_stages:
            raise ValueError(f'frozen_stages must be in [-1, '
                             f'{self.num_stages}], got {frozen_stages}')
        super().__init__(
            arch,
            kernel_size,
            small_kernel,
            width_factor,
            in_chans=in_channels,
            num_classes=0,
            global_pool='',
            decompose=decompose,
            drop_path_rate=drop_path_rate,
            layer_scale_init_value=layer_scale_init_value,
            norm_layer=partial(_norm, norm_cfg),
            branch_norm_layer=partial(_norm, branch_norm_cfg),
            sparse=sparse,
            sparsity=sparsity,
            sparse_init=sparse_init,
            deploy=deploy,
            conv_impl=conv_impl,
            init_cfg=init_cfg)
        self.out_indices = out_indices
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.with_cp = with_cp
        for i in self.out_indices:
            self.add_module(f'norm{i}', _norm(norm_cfg, self.channels[i]))
        self.set_grad_checkpointing(with_cp)
        self._freeze_stages()

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
        """Load ``init_cfg``'s pretrained checkpoint, or apply its
        initialiser. Without ``init_cfg`` the weights stay as the network
        drew them when it was built (truncated normal, std 0.02, for conv
        and linear weights; with ``sparse=True`` random masks at
        ``sparsity``; :meth:`~slak_mm.network.SLaK.reset_parameters` draws
        new ones)."""
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
        if self.init_cfg is not None:
            BaseModule.init_weights(self)

    def _freeze_stages(self):
        for i in range(max(self.frozen_stages, 0)):
            for module in (self.downsample_layers[i], self.stages[i]):
                module.eval()
                for param in module.parameters():
                    param.requires_grad = False

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

    def switch_to_deploy(self) -> None:
        """Merge every large kernel's branches for inference, in place (see
        :meth:`slak_mm.network.SLaK.switch_to_deploy`); frozen stages stay
        frozen."""
        super().switch_to_deploy()
        self._freeze_stages()  # the new parameters of frozen stages, too

    # --------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Return the normalised features of the stages in ``out_indices``.

        Args:
            x (torch.Tensor): Images, shape (N, C, H, W), H and W >= 32.

        Returns:
            tuple[torch.Tensor]: One (N, channels[i], H_i, W_i) map per
            entry of ``out_indices``, at stride 4, 8, 16, 32 for stages 0-3.
        """
        maps = self.forward_intermediates(
            x, indices=list(self.out_indices), intermediates_only=True)
        # timm's LayerNorm2d returns channels-last strides; mmcv's RoIAlign
        # reads its input as contiguous NCHW
        return tuple(
            getattr(self, f'norm{i}')(m).contiguous()
            for i, m in zip(self.out_indices, maps))

    @property
    def out_channels(self) -> list[int]:
        """Channels of the output maps, one per ``out_indices`` entry (what
        a neck's or head's ``in_channels`` must list); e.g. SLaK-T:
        ``[124, 249, 499, 998]``."""
        return [self.channels[i] for i in self.out_indices]
