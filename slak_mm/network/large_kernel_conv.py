"""SLaK's large depthwise kernel as parallel conv+norm branches, and its
merged inference (deploy) form.

The attribute names ``LoRA1``, ``LoRA2``, ``small_conv``, ``lkb_origin`` and
the children ``conv`` / ``bn`` are the official SLaK checkpoint's names: they
are part of the file format, so the published weights load without renaming.

The deploy form (:meth:`LargeKernelConv.switch_to_deploy`, or
``deploy=True``) folds every branch's BatchNorm into its conv and sums the
branches into one kernel with a bias, as RepLKNet / mmpretrain do, held by
one :class:`MergedLargeKernel` child ``merged``. Its parameters
(``merged.weight_v``, ``merged.weight_h`` (decomposed only),
``merged.bias``) are this package's own names and are NOT part of the
official checkpoint format: a deploy checkpoint loads only into a deploy
model, and an official (training-form) one only into a training-form model.
"""
from typing import Callable, Iterator, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.fusion import fuse_conv_bn_weights

from slak_mm.ops import resolve_impl, run_cross, run_multi, to_preferred_layout

#: Branch attributes of the training form (removed by ``switch_to_deploy``).
BRANCH_NAMES = ('LoRA1', 'LoRA2', 'small_conv', 'lkb_origin')


class ConvBN(nn.Sequential):
    """Depthwise convolution without bias, then a norm layer.

    Padding is ``(kh // 2, kw // 2)`` so the spatial size is kept for odd
    kernels.

    Args:
        channels (int): Input and output channels (one group per channel).
        kernel_size (tuple[int, int]): Odd kernel height and width.
        norm_layer (Callable[[int], nn.Module]): Builds the norm for
            ``channels`` features (BatchNorm in SLaK).
    """

    def __init__(self, channels: int, kernel_size: Tuple[int, int],
                 norm_layer: Callable[[int], nn.Module]):
        super().__init__()
        kh, kw = kernel_size
        self.conv = nn.Conv2d(
            channels,
            channels,
            kernel_size=(kh, kw),
            padding=(kh // 2, kw // 2),
            groups=channels,
            bias=False)
        self.bn = norm_layer(channels)


@torch.no_grad()
def fuse_conv_bn(conv_weight: torch.Tensor,
                 bn: nn.Module) -> Tuple[torch.Tensor, torch.Tensor]:
    """Fold an eval-mode BatchNorm into the bias-free conv before it.

    ``bn(conv(x, w)) == conv(x, w * g / s) + (b - m * g / s)`` with
    ``s = sqrt(running_var + eps)``, ``g``/``b`` the affine weight/bias (1/0
    without affine) and ``m`` the running mean. The running statistics are
    always used, whatever ``bn.training`` is: the result is the eval-mode
    function. The arithmetic is torch's ``fuse_conv_bn_weights``; this adds
    the checks.

    Args:
        conv_weight (Tensor): Conv weight (C_out, C_in/groups, kh, kw).
        bn (nn.Module): A norm with running statistics: ``nn.BatchNorm2d``,
            ``nn.SyncBatchNorm`` (mm's ``BN`` / ``SyncBN``) or any module
            with ``running_mean``, ``running_var`` and ``eps``.

    Returns:
        tuple[Tensor, Tensor]: Fused kernel (same shape as ``conv_weight``)
        and bias (C_out,).

    Raises:
        TypeError: If ``bn`` keeps no running statistics (GroupNorm,
            LayerNorm, BatchNorm with ``track_running_stats=False``).
    """
    mean = getattr(bn, 'running_mean', None)
    var = getattr(bn, 'running_var', None)
    if not isinstance(mean, torch.Tensor) or not isinstance(
            var, torch.Tensor) or not hasattr(bn, 'eps'):
        raise TypeError(
            f'Cannot fold {type(bn).__name__} into the conv: only norms with '
            f'running statistics (BatchNorm / SyncBatchNorm with '
            f'track_running_stats=True) are per-channel affine at inference.')
    if mean.numel() != conv_weight.shape[0]:
        raise ValueError(f'{type(bn).__name__} has {mean.numel()} channels, '
                         f'the conv {conv_weight.shape[0]}')
    kernel, bias = fuse_conv_bn_weights(conv_weight, None, mean, var, bn.eps,
                                        getattr(bn, 'weight', None),
                                        getattr(bn, 'bias', None))
    return kernel.detach(), bias.detach()


def _pad_to(kernel: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Zero-pad an odd (.., kh, kw) kernel to (.., height, width), centred."""
    kh, kw = kernel.shape[-2:]
    dh, dw = (height - kh) // 2, (width - kw) // 2
    return F.pad(kernel, (dw, dw, dh, dh))


class MergedLargeKernel(nn.Module):
    """The merged (deploy) form of a :class:`LargeKernelConv`: its branches'
    kernels summed into one depthwise kernel with a bias.

    Decomposed (SLaK): a tall kernel ``weight_v`` (C, 1, M, N) and a wide
    one ``weight_h`` (C, 1, N, M), applied together as one cross-shaped
    kernel (:func:`slak_mm.ops.cross_depthwise_conv2d`: one pass on the
    Triton path, no dense ``M x M``). Dense (RepLKNet): one ``weight_v``
    (C, 1, M, M) and no ``weight_h``.

    Args:
        weight_v (Tensor): The tall (or dense) kernel.
        weight_h (Tensor, optional): The wide kernel; None for a dense one.
        bias (Tensor): The per-channel bias (C,).
    """

    def __init__(self, weight_v: torch.Tensor,
                 weight_h: Optional[torch.Tensor], bias: torch.Tensor):
        super().__init__()
        self.weight_v = nn.Parameter(weight_v)
        self.register_parameter(
            'weight_h', None if weight_h is None else nn.Parameter(weight_h))
        self.bias = nn.Parameter(bias)

    @classmethod
    def zeros(cls, channels: int, kernel_size: int, small_kernel: int,
              decompose: bool) -> 'MergedLargeKernel':
        """A zero-initialised merged kernel, to load a deploy checkpoint
        into.

        Args:
            channels (int): Number of channels.
            kernel_size (int): The large side ``M``.
            small_kernel (int): The short side ``N``.
            decompose (bool): Cross-shaped (True) or dense (False).

        Returns:
            MergedLargeKernel: All parameters zero.
        """
        width = small_kernel if decompose else kernel_size
        return cls(
            torch.zeros(channels, 1, kernel_size, width),
            torch.zeros(channels, 1, small_kernel, kernel_size)
            if decompose else None, torch.zeros(channels))

    @property
    def op(self) -> str:
        """The :mod:`slak_mm.ops` op that runs it: ``'cross'`` or
        ``'multi'`` (dense)."""
        return 'multi' if self.weight_h is None else 'cross'

    def op_tensors(self) -> List[Optional[torch.Tensor]]:
        """What :func:`slak_mm.ops.resolve_impl` needs for :attr:`op`."""
        if self.weight_h is None:
            return [self.weight_v]
        return [self.weight_v, self.weight_h, self.bias]

    def forward(self, x: torch.Tensor, impl: str) -> torch.Tensor:
        """Apply the merged kernel.

        Args:
            x (Tensor): Input (N, C, H, W).
            impl (str): The implementation, as
                :func:`slak_mm.ops.resolve_impl` resolved it for ``x`` and
                :meth:`op_tensors` with :attr:`op`.

        Returns:
            Tensor: Output (N, C, H, W).
        """
        if self.weight_h is None:
            (out, ) = run_multi(impl, x, [self.weight_v])
            return out + self.bias.to(out.dtype).view(1, -1, 1, 1)
        return run_cross(impl, x, self.weight_v, self.weight_h, self.bias)


class LargeKernelConv(nn.Module):
    """Sum of depthwise conv+norm branches that together form a large kernel.

    With ``decompose=True`` (SLaK) an ``M x M`` kernel is approximated by an
    ``M x N`` branch (``LoRA1``), an ``N x M`` branch (``LoRA2``) and an
    ``N x N`` branch (``small_conv``). With ``decompose=False`` (RepLKNet)
    one dense ``M x M`` branch (``lkb_origin``) plus the ``N x N`` branch are
    used. Each branch has its own norm, which the paper found essential.

    Deploy form (inference only; see :meth:`switch_to_deploy`): the norms
    are folded into the convs and the branches merged into one
    :class:`MergedLargeKernel` child ``merged``. Decomposed: the ``N x N``
    kernel is added into the centre of the ``M x N`` one, giving a tall
    kernel ``merged.weight_v`` (C, 1, M, N), a wide one ``merged.weight_h``
    (C, 1, N, M) and ``merged.bias`` (C,), applied together as one
    cross-shaped kernel. Non-decomposed: one dense ``merged.weight_v``
    (C, 1, M, M) and ``merged.bias``. These names are not part of the
    official checkpoint format.

    Args:
        channels (int): Number of channels.
        kernel_size (int): The large side ``M`` (odd).
        small_kernel (int): The short side ``N`` (odd, smaller than ``M``).
        decompose (bool): Use the three-branch decomposition. Default: True.
        norm_layer (Callable[[int], nn.Module]): Builds each branch's norm.
            Default: ``nn.BatchNorm2d``.
        deploy (bool): Build the merged form directly, to load a deploy
            checkpoint into (its parameters start at zero). Default: False.
        impl (str, optional): Depthwise conv implementation: ``'auto'``
            (the fastest correct one, measured per shape), ``'torch'``,
            ``'fft'`` or ``'triton'``; None: the ops' ``impl`` setting
            (``$SLAK_MM_DWCONV_IMPL`` or :class:`slak_mm.ops.use`, default
            ``'auto'``; see :func:`slak_mm.ops.resolve_impl`). Default:
            None.
    """

    def __init__(self,
                 channels: int,
                 kernel_size: int,
                 small_kernel: int = 5,
                 decompose: bool = True,
                 norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
                 deploy: bool = False,
                 impl: Optional[str] = None):
        super().__init__()
        self.channels = channels
        self.impl = impl
        self.last_impl: Optional[str] = None
        self.kernel_size = kernel_size
        self.small_kernel = small_kernel
        self.decompose = decompose
        self.deploy = deploy
        if deploy:
            self.merged = MergedLargeKernel.zeros(channels, kernel_size,
                                                  small_kernel, decompose)
        else:
            if decompose:
                self.LoRA1 = ConvBN(channels, (kernel_size, small_kernel),
                                    norm_layer)
                self.LoRA2 = ConvBN(channels, (small_kernel, kernel_size),
                                    norm_layer)
            else:
                self.lkb_origin = ConvBN(channels, (kernel_size, kernel_size),
                                         norm_layer)
            self.small_conv = ConvBN(channels, (small_kernel, small_kernel),
                                     norm_layer)

    def branches(self) -> Iterator[ConvBN]:
        """Yield the conv+norm branches whose outputs are summed."""
        if self.deploy:
            raise RuntimeError('LargeKernelConv in deploy form has no '
                               'branches; they were merged.')
        if self.decompose:
            yield self.LoRA1
            yield self.LoRA2
        else:
            yield self.lkb_origin
        yield self.small_conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = to_preferred_layout(x)
        if self.deploy:
            return self.merged(
                x, self._resolve(x, self.merged.op_tensors(), self.merged.op))
        branches = list(self.branches())
        weights = [branch.conv.weight for branch in branches]
        impl = self._resolve(x, weights, 'multi')
        if impl == 'torch':  # through the conv modules: hooks see each conv
            convs = [branch.conv(x) for branch in branches]
        else:  # one call for all branches: the input is read (or
            # transformed) once
            convs = run_multi(impl, x, weights)
        out = branches[0].bn(convs[0])
        for branch, conv in zip(branches[1:], convs[1:]):
            out = out + branch.bn(conv)
        return out

    def _resolve(self, x: torch.Tensor, tensors, op: str) -> str:
        # the one check and choice of this forward
        impl = resolve_impl(x, self.impl, tensors, op)
        if not torch.compiler.is_compiling():
            self.last_impl = impl  # what 'auto' chose (benchmarks report it)
        return impl

    @torch.no_grad()
    def get_equivalent_kernel_bias(
            self) -> Tuple[torch.Tensor, Optional[torch.Tensor], torch.Tensor]:
        """The merged kernel(s) and bias equal to the eval-mode branches.

        Each branch's norm is folded with its running statistics (eval
        semantics, also for a module in training mode). Sparsity masks are
        not consulted: the weights are taken as they are (a masked model's
        weights hold zeros at masked positions anyway).

        Returns:
            tuple: ``(weight_v, weight_h, bias)``. Decomposed: ``weight_v``
            (C, 1, M, N) is ``LoRA1`` plus the zero-padded ``small_conv``,
            ``weight_h`` (C, 1, N, M) is ``LoRA2``. Non-decomposed:
            ``weight_v`` is the dense (C, 1, M, M) kernel (``lkb_origin``
            plus the padded ``small_conv``) and ``weight_h`` is None.
            ``bias`` (C,) is the sum of the folded norm biases.
        """
        if self.deploy:
            weight_h = self.merged.weight_h
            return (self.merged.weight_v.detach(),
                    None if weight_h is None else weight_h.detach(),
                    self.merged.bias.detach())
        k_small, b_small = fuse_conv_bn(self.small_conv.conv.weight,
                                        self.small_conv.bn)
        if self.decompose:
            k_v, b_v = fuse_conv_bn(self.LoRA1.conv.weight, self.LoRA1.bn)
            k_h, b_h = fuse_conv_bn(self.LoRA2.conv.weight, self.LoRA2.bn)
            k_v = k_v + _pad_to(k_small, *k_v.shape[-2:])
            return k_v, k_h, b_v + b_h + b_small
        k, b = fuse_conv_bn(self.lkb_origin.conv.weight, self.lkb_origin.bn)
        return k + _pad_to(k_small, *k.shape[-2:]), None, b + b_small

    @torch.no_grad()
    def switch_to_deploy(self) -> None:
        """Replace the branches by their merged kernel(s) and bias, in place.

        The result computes the eval-mode output of the branches (the norms'
        running statistics are folded in) in training and eval mode alike;
        it is meant for inference. The branch modules are deleted, with any
        sparsity mask buffers they carried; the merged parameters get no
        masks. Calling it again does nothing.
        """
        if self.deploy:
            return
        merged = MergedLargeKernel(*self.get_equivalent_kernel_bias())
        for name in BRANCH_NAMES:
            if hasattr(self, name):
                delattr(self, name)
        self.merged = merged
        self.deploy = True

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # a strict=False load (mmengine's default) would otherwise leave the
        # model random with only a warning about missing keys
        def has(starts):
            return any(k.startswith(starts) for k in state_dict)

        where = prefix.rstrip('.') or 'LargeKernelConv'
        if self.deploy and has(tuple(f'{prefix}{n}.' for n in BRANCH_NAMES)):
            raise ValueError(
                f'{where}: the checkpoint holds the '
                f'training form (LoRA1/LoRA2/small_conv or lkb_origin '
                f'branches) but the model was built with deploy=True (merged '
                f'kernels). Convert the checkpoint with tools/deploy.py, or '
                f'build the model with deploy=False, load it and call '
                f'switch_to_deploy().')
        if self.deploy and has(prefix + 'merged_'):
            raise ValueError(
                f'{where}: the checkpoint is a deploy checkpoint of an '
                f'earlier slak_mm (bare merged_v/merged_h/merged_bias, now '
                f'merged.weight_v/weight_h/bias); write it again with '
                f'tools/deploy.py from the training checkpoint.')
        # 'merged': also the bare merged_v/h/bias of earlier versions
        if not self.deploy and has(prefix + 'merged'):
            raise ValueError(
                f'{where}: the checkpoint is a deploy '
                f'checkpoint (merged kernels, e.g. from tools/deploy.py) but '
                f'the model was built with deploy=False; build it with '
                f'deploy=True (--cfg-options model.backbone.deploy=True).')
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return (f'kernel_size={self.kernel_size}, '
                f'small_kernel={self.small_kernel}, '
                f'decompose={self.decompose}, deploy={self.deploy}')
